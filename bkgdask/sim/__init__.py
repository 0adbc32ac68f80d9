"""Simulated stores with a known truth: the truth model, the simulator, the DL3 writer."""
