"""The engine's seeded random generators.

One generator serves parameter initialization, dropout and data shuffling, as PyTorch's
default generator does: ``manual_seed(s)`` reseeds it in place and makes a run repeatable.
Initial weights and other factory draws for a CUDA tensor are made on the host by the same
generator and then copied, so a model initialized with a given seed has the same weights
on either device. Dropout masks (:func:`dropout_mask`) are drawn where the data is: on the
host by this generator, on a GPU by that device's CuPy generator (one per device, made on
first use), which ``manual_seed(s)`` seeds with ``s`` as well. Same seed, same masks on the
same device; a CPU run and a GPU run drop different elements.

``get_rng_state()`` / ``set_rng_state(state)`` take and restore the host generator's
state, a uint8 Tensor as in PyTorch, which ``engine.save`` stores like any other Tensor:
saved in a checkpoint and restored on resume, the draws continue exactly where they
stopped. As ``torch.get_rng_state``, it leaves out the GPU generators: CuPy cannot save
their state, so a resumed run on a GPU draws its dropout masks from the seed given to
``manual_seed`` again, not from where the interrupted run stopped. :class:`Generator` is a
separate generator (a NumPy ``Generator`` with ``torch.Generator``'s methods), e.g. a data
loader's private source of shuffling.

The state is the PCG64 bit generator's, packed little-endian into 37 bytes::

    bytes 0-15  state (128 bits)   16-31  increment (128 bits)
    byte 32     has_uint32 (0/1)   33-36  the buffered uint32
"""

from __future__ import annotations

import secrets

import numpy as np

from engine import backend

STATE_BYTES = 37


def _check_seed(seed, where: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{where}: seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def pack_state(state: dict):
    """A PCG64 state dict (``bit_generator.state``) -> uint8 Tensor of STATE_BYTES bytes."""
    from engine.tensor import Tensor

    if state.get("bit_generator") != "PCG64":
        raise TypeError(f"random state: only PCG64 generators are supported, got "
                        f"{state.get('bit_generator')}")
    inner = state["state"]
    raw = (inner["state"].to_bytes(16, "little") + inner["inc"].to_bytes(16, "little")
           + bytes([int(state["has_uint32"])])
           + int(state["uinteger"]).to_bytes(4, "little"))
    return Tensor._make(np.frombuffer(raw, dtype=np.uint8).copy(), None, 0)


def unpack_state(state, where: str) -> dict:
    """A uint8 Tensor or array from :func:`pack_state` -> PCG64 state dict; errors name
    ``where``."""
    from engine.tensor import Tensor

    data = state.data if isinstance(state, Tensor) else state
    if backend.is_cuda_array(data):
        data = backend.to_numpy(data)
    if not isinstance(data, np.ndarray):
        raise ValueError(f"{where}: expected the uint8 state from get_rng_state(), got "
                         f"{type(state).__name__}")
    if data.dtype != np.uint8 or data.shape != (STATE_BYTES,):
        raise ValueError(f"{where}: expected a ({STATE_BYTES},) uint8 state from "
                         f"get_rng_state(), got {data.shape} {data.dtype}")
    raw = data.tobytes()
    if raw[32] > 1:
        raise ValueError(f"{where}: not a state from get_rng_state() (byte 32 is {raw[32]})")
    return {"bit_generator": "PCG64",
            "state": {"state": int.from_bytes(raw[0:16], "little"),
                      "inc": int.from_bytes(raw[16:32], "little")},
            "has_uint32": raw[32], "uinteger": int.from_bytes(raw[33:37], "little")}


class Generator(np.random.Generator):
    """A random generator with ``torch.Generator``'s methods; also a NumPy ``Generator``.

        g = engine.Generator().manual_seed(0)
        g.permutation(10)                   # any NumPy Generator method
        state = g.get_state(); ...; g.set_state(state)

    A fresh one is seeded with 0. ``device`` is recorded for PyTorch compatibility: draws
    are always made on the host and copied where needed.
    """

    def __init__(self, device="cpu"):
        if isinstance(device, np.random.BitGenerator):      # NumPy's spawn() passes one
            super().__init__(device)
            self.device, self._initial_seed = "cpu", None
            return
        self.device = backend.parse_device(device)
        self._initial_seed = 0
        super().__init__(np.random.PCG64(0))

    def manual_seed(self, seed: int) -> Generator:
        """Reseed in place (the same stream as ``np.random.default_rng(seed)``); returns self."""
        self._initial_seed = _check_seed(seed, "Generator.manual_seed")
        self.bit_generator.state = np.random.PCG64(self._initial_seed).state
        return self

    def seed(self) -> int:
        """Reseed from the operating system's entropy; returns the new seed."""
        self.manual_seed(secrets.randbits(63))
        return self._initial_seed

    def initial_seed(self) -> int:
        """The seed last given to :meth:`manual_seed` or drawn by :meth:`seed`."""
        return self._initial_seed

    def get_state(self):
        """The state as a uint8 Tensor of 37 bytes (see the module docstring)."""
        return pack_state(self.bit_generator.state)

    def set_state(self, state) -> Generator:
        """Restore a state taken with :meth:`get_state`; returns self."""
        self.bit_generator.state = unpack_state(state, "Generator.set_state")
        return self

    def __reduce__(self):
        return _rebuild, (self.device, self._initial_seed, self.bit_generator.state)


def _rebuild(device: str, seed: int | None, state: dict) -> Generator:
    """A copy or an unpickled :class:`Generator` (NumPy's own reduce makes a plain one)."""
    g = Generator(device)
    g._initial_seed = seed
    g.bit_generator.state = state
    return g


_generator = Generator()
_device_generators = {}     # "cuda:N" -> CuPy Generator, seeded on first use


def manual_seed(seed: int) -> Generator:
    """Reseed every generator the engine uses (the host one in place, the GPU ones on their
    next draw); returns the default generator."""
    _generator.manual_seed(_check_seed(seed, "manual_seed"))
    _device_generators.clear()
    return _generator


def device_generator(device: str):
    """The CuPy generator of a CUDA device (``cupy.random.default_rng``), seeded with the
    seed last given to :func:`manual_seed` (0 if never called)."""
    device = backend.parse_device(device)
    gen = _device_generators.get(device)
    if gen is None:
        cp = backend.cupy_module()
        with cp.cuda.Device(int(device[5:])):
            gen = cp.random.default_rng(_generator.initial_seed())
        _device_generators[device] = gen
    return gen


def initial_seed() -> int:
    """The seed last given to :func:`manual_seed` (0 if never called)."""
    return _generator.initial_seed()


def default_generator() -> Generator:
    """The engine's generator: the same object for the whole session."""
    return _generator


def get_rng_state():
    """The default generator's state as a uint8 Tensor (``torch.get_rng_state``)."""
    return _generator.get_state()


def set_rng_state(state) -> None:
    """Restore a state from :func:`get_rng_state` (a Tensor or a NumPy array)."""
    _generator.bit_generator.state = unpack_state(state, "set_rng_state")


def get_state() -> dict:
    """The state as NumPy's dict (``bit_generator.state``), to restore with :func:`set_state`."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    """Restore a state taken with :func:`get_state`."""
    _generator.bit_generator.state = state


def dropout_mask(shape: tuple, p: float, dtype, device: str):
    """The inverted-dropout mask m / (1 - p), m ~ Bernoulli(1 - p) (zeros for p = 1), of
    ``dtype`` on ``device``: what ``nn.Dropout`` and attention's dropout multiply by.

    The uniforms are float32 draws, whatever the dtype (a float64 tensor drops the same
    elements as a float32 one), made on ``device``: by the engine's generator on the host,
    by :func:`device_generator` on a GPU, so no mask crosses the bus.
    """
    dtype = np.dtype(dtype)
    device = backend.parse_device(device)
    if device == "cpu":
        uniforms = _generator.random(shape, dtype=np.float32)
    else:
        gen = device_generator(device)
        with backend.cupy_module().cuda.Device(int(device[5:])):
            uniforms = gen.random(shape, dtype=np.float32)
    scale = 0.0 if p >= 1.0 else 1.0 / (1.0 - p)
    return (uniforms >= np.float32(p)) * dtype.type(scale)   # bool * dtype scalar: dtype
