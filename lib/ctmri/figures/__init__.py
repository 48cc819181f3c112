"""The study's figures and the interactive explorer."""
