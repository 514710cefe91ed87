"""Runs from a config: training with baselines and Δm%, the demo, plots of a run."""
