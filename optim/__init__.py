"""Optimizers (SGD, Adam, AdamW, RMSprop, Adagrad) with PyTorch's update rules and defaults."""
