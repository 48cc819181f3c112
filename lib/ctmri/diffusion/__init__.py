"""The maths of the generative processes: forward processes, losses, samplers."""
