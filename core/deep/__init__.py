"""Deep-learning fusion methods and what they share (model files, training loop, tiled prediction)."""
