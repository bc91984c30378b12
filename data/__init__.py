"""Datasets, DataLoader, splits, text tokenization and padding, built-in data."""
