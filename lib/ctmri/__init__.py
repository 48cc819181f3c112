"""ctmri: MRI to CT with conditional diffusion and score-matching models (Lyu & Wang, arXiv 2209.12104)."""
__version__ = "0.1.0"
