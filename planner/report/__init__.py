"""Reports: spreadsheet-safe CSV (tables) and plotly figures (plots)."""
