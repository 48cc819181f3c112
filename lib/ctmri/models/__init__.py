"""Networks, building them from a profile, and their checkpoints."""
