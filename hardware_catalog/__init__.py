"""The built-in hardware catalog's data files (TOML, JSON Schema), shipped with `planner`.

This folder is data, not code; it is a package only so that a regular (non-editable) install
puts it beside `planner/`, where `planner.hardware.catalog.CATALOG_DIR` looks for it.
"""
