"""The model side: `ModelSpec` (spec), the per-layer analytic table (layers), precision
policies (precision) and the seed document's worked example (seed)."""
