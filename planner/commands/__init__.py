"""Sub-commands of the `planner` command line, one module each, each with `register(subparsers)`.

A handler returns an exit code; a ValueError it raises is printed as one line by
`planner.cli.main`, which then exits with status 2.
"""
