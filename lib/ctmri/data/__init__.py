"""Inputs: the phantom, the readers of real data, and their preparation into model space."""
