"""Sweeps over avatar settings: the sweeper objective, the frontier summary and the Hydra callback."""
