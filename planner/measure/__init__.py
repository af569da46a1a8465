"""Measurement with torch: reference models (torch_models), per-layer counters (counters),
local kernel calibration (calibration) and the analytic-vs-measured comparison (validate).
Nothing here is imported by `import planner`; torch is imported when a function runs."""
