"""Normalization layers: LayerNorm, BatchNorm1d, BatchNorm2d, as PyTorch's (same arguments,
defaults, buffers and state_dict keys)."""

from __future__ import annotations

import numpy as np

import nn.functional as F
from engine.tensor import Tensor
from nn import init
from nn.module import Module, empty_parameter


class LayerNorm(Module):
    """y = (x - μ) / √(σ² + ε) · γ + β over the trailing ``normalized_shape`` axes.

    μ and the biased σ² are taken per sample over those axes; ``weight`` γ (ones) and
    ``bias`` β (zeros) have shape ``normalized_shape`` when ``elementwise_affine``.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = empty_parameter(self.normalized_shape, dtype)
            if bias:
                self.bias = empty_parameter(self.normalized_shape, dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class _BatchNorm(Module):
    """Batch normalization over the channel axis 1 (PyTorch's ``_BatchNorm``).

    Training: normalize with the batch statistics and update the buffers
    ``running_mean ← (1 - f)·running_mean + f·μ``,
    ``running_var ← (1 - f)·running_var + f·σ²·n/(n - 1)`` (unbiased),
    ``num_batches_tracked += 1``, where f = ``momentum``, or with ``momentum=None`` the
    cumulative average f = 1/num_batches_tracked. Eval: normalize with the running
    statistics, unless ``track_running_stats=False`` (then there are none and the batch
    statistics are used in both modes).
    """

    _expected_ndim: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = empty_parameter((num_features,), dtype)
            self.bias = empty_parameter((num_features,), dtype)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            fdt = self.weight.dtype if affine else empty_parameter((0,), dtype).dtype
            self.register_buffer("running_mean", Tensor._make(
                np.zeros(num_features, dtype=fdt), None, 0))
            self.register_buffer("running_var", Tensor._make(
                np.ones(num_features, dtype=fdt), None, 0))
            self.register_buffer("num_batches_tracked", Tensor._make(
                np.zeros((), dtype=np.int64), None, 0))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim not in self._expected_ndim:
            want = " or ".join(f"{d}D" for d in self._expected_ndim)
            raise ValueError(f"{type(self).__name__}: expected {want} input "
                             f"(got {input.ndim}D input of shape {input.shape})")
        if input.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: input {input.shape} has "
                             f"{input.shape[1]} channels, expected {self.num_features}")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        bn_training = self.training or (self.running_mean is None
                                        and self.running_var is None)
        use_buffers = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if use_buffers else None,
            self.running_var if use_buffers else None,
            self.weight, self.bias, bn_training, factor, self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) or (N, C, L) inputs, statistics over N (and L)."""

    _expected_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) inputs, statistics over N, H and W."""

    _expected_ndim = (4,)
