"""Timing scripts: per-op overhead, fused kernels, training steps, CPU vs GPU vs PyTorch."""
