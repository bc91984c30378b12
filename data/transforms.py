"""Image transforms on NumPy arrays, torchvision's names and semantics.

Layouts: a **uint8** array is an image as decoded, ``(H, W, C)`` or ``(H, W)``; a **float**
array is ``(C, H, W)`` or ``(H, W)``, as :class:`ToArray` makes it. Every transform takes
either (and a Pillow image, read as its uint8 array) and keeps the layout, so they compose
in any order; the usual pipeline is::

    Compose([Resize(32), RandomCrop(32, padding=4), RandomHorizontalFlip(),
             ToArray(), Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])

All randomness comes from the engine generator, so ``engine.manual_seed(s)`` repeats the
augmentations. ``Resize`` uses Pillow (imported on first use); the others only NumPy, so
they also augment arrays such as :func:`data.load_digits` images without Pillow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

import engine


def require_pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "image support needs Pillow: pip install 'xpgrad[examples]' (or pip install pillow)"
        ) from None
    return Image


def _as_array(img) -> np.ndarray:
    """A NumPy image: Pillow images become their uint8 array."""
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"transforms: expected an image of 2 or 3 dimensions, got shape "
                             f"{img.shape}")
        if img.dtype != np.uint8 and img.dtype.kind != "f":
            raise TypeError(f"transforms: expected a uint8 (H, W[, C]) or float (C, H, W) "
                            f"image, got dtype {img.dtype}")
        return img
    if type(img).__module__.startswith("PIL."):
        return np.asarray(img)
    raise TypeError(f"transforms: expected a NumPy array or a Pillow image, got "
                    f"{type(img).__name__}")


def _spatial_axes(x: np.ndarray) -> tuple[int, int]:
    """Axes of height and width: (0, 1) for uint8 HWC, the last two otherwise."""
    return (0, 1) if x.dtype == np.uint8 and x.ndim == 3 else (x.ndim - 2, x.ndim - 1)


def _hw(x: np.ndarray) -> tuple[int, int]:
    a, b = _spatial_axes(x)
    return x.shape[a], x.shape[b]


def _pair(size, name: str) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{name}: size must be an int or a pair (h, w), got {size!r}")


def _to_hwc(x: np.ndarray) -> np.ndarray:
    """A view with the spatial axes first and one channel axis last."""
    if x.ndim == 2:
        return x[:, :, None]
    return x if _spatial_axes(x) == (0, 1) else np.moveaxis(x, 0, -1)


def _from_hwc(y: np.ndarray, like: np.ndarray) -> np.ndarray:
    if like.ndim == 2:
        return y[:, :, 0]
    return y if _spatial_axes(like) == (0, 1) else np.ascontiguousarray(np.moveaxis(y, -1, 0))


def _cast_like(y: np.ndarray, like: np.ndarray) -> np.ndarray:
    if like.dtype == np.uint8:
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)
    return y.astype(like.dtype, copy=False)


class Compose:
    """Apply transforms in order: ``Compose([t1, t2])(x) == t2(t1(x))``."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class ToArray:
    """uint8 ``(H, W, C)`` / ``(H, W)`` in 0..255 -> float32 ``(C, H, W)`` in [0, 1].

    x_float = x_uint8 / 255 (torchvision's ``ToTensor``). A float image is returned with a
    channel axis added if it is ``(H, W)``, values unchanged.
    """

    def __call__(self, img) -> np.ndarray:
        x = _as_array(img)
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / np.float32(255.0)
            return x[None] if x.ndim == 2 else np.ascontiguousarray(np.moveaxis(x, -1, 0))
        return x[None] if x.ndim == 2 else x

    def __repr__(self) -> str:
        return "ToArray()"


class Resize:
    """Resize to ``(h, w)``, or, for an int, so that the shorter side is ``size`` with the
    aspect ratio kept (torchvision's rule). ``interpolation``: 'bilinear' (default),
    'nearest', 'bicubic' (Pillow's resampling, per channel, in float32)."""

    _MODES = ("nearest", "bilinear", "bicubic")

    def __init__(self, size, interpolation: str = "bilinear"):
        if interpolation not in self._MODES:
            raise ValueError(f"Resize: interpolation must be one of {self._MODES}, got "
                             f"{interpolation!r}")
        if isinstance(size, (int, np.integer)):
            if size < 1:
                raise ValueError(f"Resize: size must be positive, got {size}")
        else:
            _pair(size, "Resize")
        self.size = size
        self.interpolation = interpolation

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        if not isinstance(self.size, (int, np.integer)):
            return _pair(self.size, "Resize")
        short, long_ = (w, h) if w <= h else (h, w)
        new_short, new_long = int(self.size), int(int(self.size) * long_ / short)
        return (new_long, new_short) if w <= h else (new_short, new_long)

    def __call__(self, img) -> np.ndarray:
        Image = require_pillow()
        x = _as_array(img)
        h, w = _hw(x)
        oh, ow = self.output_size(h, w)
        if (oh, ow) == (h, w):
            return x
        resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR,
                    "bicubic": Image.BICUBIC}[self.interpolation]
        hwc = _to_hwc(x)
        # a 2-D float32 array is a Pillow "F" image: every channel resampled in float32
        planes = [np.asarray(Image.fromarray(np.ascontiguousarray(hwc[:, :, c], np.float32))
                             .resize((ow, oh), resample))
                  for c in range(hwc.shape[2])]
        return _from_hwc(_cast_like(np.stack(planes, axis=-1), x), x)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, interpolation={self.interpolation!r})"


class Normalize:
    """Per-channel standardization of a float ``(C, H, W)`` image:
    y[c] = (x[c] - mean[c]) / std[c]."""

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std has a zero, got {self.std.tolist()}")

    def __call__(self, img) -> np.ndarray:
        x = _as_array(img)
        if x.dtype.kind != "f":
            raise TypeError(f"Normalize: expected a float (C, H, W) image, got dtype "
                            f"{x.dtype}; apply ToArray first")
        channels = x.shape[0] if x.ndim == 3 else 1
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, channels):
                raise ValueError(f"Normalize: {name} has {v.size} values for an image with "
                                 f"{channels} channels (shape {x.shape})")
        shape = (-1, 1, 1) if x.ndim == 3 else (1, 1)
        mean = self.mean.astype(x.dtype).reshape(shape)
        std = self.std.astype(x.dtype).reshape(shape)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, img) -> np.ndarray:
        x = _as_array(img)
        if engine.default_generator().random() < self.p:
            return np.ascontiguousarray(np.flip(x, axis=_spatial_axes(x)[1]))
        return x

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCrop:
    """Crop a random ``size`` window, after optional zero (``fill``) padding.

    ``padding``: int (all sides), ``(left/right, top/bottom)`` or ``(left, top, right,
    bottom)``, as torchvision; ``pad_if_needed`` pads an image smaller than ``size``.
    The window's top-left corner is uniform over all positions that fit.
    """

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0):
        self.size = _pair(size, "RandomCrop")
        if padding is None:
            self.padding = (0, 0, 0, 0)
        elif isinstance(padding, (int, np.integer)):
            self.padding = (int(padding),) * 4
        elif len(padding) == 2:
            self.padding = (padding[0], padding[1], padding[0], padding[1])
        elif len(padding) == 4:
            self.padding = tuple(int(p) for p in padding)
        else:
            raise ValueError(f"RandomCrop: padding must be an int or 2 or 4 ints, got "
                             f"{padding!r}")
        self.pad_if_needed = pad_if_needed
        self.fill = fill

    def _pad(self, x: np.ndarray, left: int, top: int, right: int, bottom: int):
        if not any((left, top, right, bottom)):
            return x
        widths = [(0, 0)] * x.ndim
        ah, aw = _spatial_axes(x)
        widths[ah], widths[aw] = (top, bottom), (left, right)
        return np.pad(x, widths, mode="constant", constant_values=self.fill)

    def __call__(self, img) -> np.ndarray:
        x = self._pad(_as_array(img), *self.padding)
        th, tw = self.size
        h, w = _hw(x)
        if self.pad_if_needed and (h < th or w < tw):
            dh, dw = max(th - h, 0), max(tw - w, 0)
            x = self._pad(x, dw, dh, dw, dh)
            h, w = _hw(x)
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: crop size {(th, tw)} is larger than the (padded) "
                             f"image {(h, w)}; use padding or pad_if_needed=True")
        rng = engine.default_generator()
        i = int(rng.integers(0, h - th + 1))
        j = int(rng.integers(0, w - tw + 1))
        index = [slice(None)] * x.ndim
        ah, aw = _spatial_axes(x)
        index[ah], index[aw] = slice(i, i + th), slice(j, j + tw)
        return np.ascontiguousarray(x[tuple(index)])

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


def rotate(img, angle: float, interpolation: str = "nearest", fill=0) -> np.ndarray:
    """Rotate counter-clockwise by ``angle`` degrees about the image centre, same size.

    Each output pixel p samples the input at c + R(-angle)(p - c) (y axis pointing up), c the
    centre ((W-1)/2, (H-1)/2); samples outside the input take ``fill``.
    """
    x = _as_array(img)
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"rotate: interpolation must be 'nearest' or 'bilinear', got "
                         f"{interpolation!r}")
    hwc = _to_hwc(x).astype(np.float64)
    h, w = hwc.shape[:2]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    theta = math.radians(angle)
    cos, sin = math.cos(theta), math.sin(theta)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xs - cx, cy - ys                        # y up
    src_x = cx + cos * u + sin * v
    src_y = cy - (-sin * u + cos * v)
    out = np.full_like(hwc, float(fill))
    if interpolation == "nearest":
        # snap values a rounding error away from a pixel centre (90 degrees is exact)
        sx, sy = np.rint(np.round(src_x, 9)).astype(np.int64), \
            np.rint(np.round(src_y, 9)).astype(np.int64)
        inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
        out[inside] = hwc[sy[inside], sx[inside]]
    else:
        x0, y0 = np.floor(src_x).astype(np.int64), np.floor(src_y).astype(np.int64)
        fx, fy = (src_x - x0)[..., None], (src_y - y0)[..., None]
        acc = np.zeros_like(hwc)
        for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                               (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            yy, xx = y0 + dy, x0 + dx
            inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
            sample = np.full_like(hwc, float(fill))
            sample[inside] = hwc[yy[inside], xx[inside]]
            acc += weight * sample
        out = acc
    return _from_hwc(_cast_like(out, x), x)


class RandomRotation:
    """Rotate by an angle uniform in ``[-degrees, degrees]`` (or ``[lo, hi]`` for a pair),
    counter-clockwise for positive angles, as torchvision; see :func:`rotate`."""

    def __init__(self, degrees, interpolation: str = "nearest", fill=0):
        if isinstance(degrees, (int, float, np.integer, np.floating)):
            if degrees < 0:
                raise ValueError(f"RandomRotation: degrees must be non-negative, got {degrees}")
            self.degrees = (-float(degrees), float(degrees))
        elif isinstance(degrees, Sequence) and len(degrees) == 2:
            self.degrees = (float(degrees[0]), float(degrees[1]))
        else:
            raise ValueError(f"RandomRotation: degrees must be a number or a pair, got "
                             f"{degrees!r}")
        self.interpolation = interpolation
        self.fill = fill

    def __call__(self, img) -> np.ndarray:
        angle = float(engine.default_generator().uniform(*self.degrees))
        return rotate(img, angle, self.interpolation, self.fill)

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees})"
