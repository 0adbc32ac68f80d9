"""Validation of background models: against a known truth, on runs, by cross-validation."""
