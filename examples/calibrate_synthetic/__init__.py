"""How hard is a synthetic dataset? Model-free baselines and a larger vs a smaller trained
backbone (`python -m examples.calibrate_synthetic`); see calibrate.py."""
