"""Planning: workloads, memory, the per-op step-time model, the candidate search, the ranking,
cost and energy, and the backtest against published runs."""
