"""Monte-Carlo sampling of trained models."""
