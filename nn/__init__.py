"""Neural-network layers with PyTorch's constructor arguments, defaults and state_dict keys."""

from nn.module import Module, Parameter

__all__ = ["Module", "Parameter"]
