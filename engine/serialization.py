"""Checkpoints: ``save(obj, path)`` / ``load(path)`` in the safetensors format.

``obj`` is a (nested) state dict: dicts with string or integer keys, lists and tuples,
whose leaves are Tensors, arrays, Python scalars, strings or None, as module and optimizer
state dicts are. The arrays go into the safetensors body under their dotted path; the
structure and the small values go, as JSON, into the header's metadata, together with a
CRC-32 of every array so that a corrupted file is refused.

No pickle is involved: loading a file never runs code. Saving writes a temporary file
beside the target, fsyncs it and renames it over the target, so an interrupted save leaves
the previous checkpoint intact. Saving copies device arrays to the host and never moves or
modifies what it saves.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib

import numpy as np

from engine import backend
from engine.tensor import Tensor

_FORMAT = "xpgrad-checkpoint-1"


class CheckpointError(ValueError):
    """A file that is not a readable xpgrad checkpoint."""


def _encode(obj, path, where, arrays, owners):
    """JSON-able description of ``obj``; arrays are moved to ``arrays`` by dotted path.

    ``where`` is the same position as Python subscripts (``['a'][0]``), for messages;
    ``owners`` maps each dotted path to the ``where`` that claimed it, so that two keys
    flattening to one name (``'a.b'`` and ``['a']['b']``, ``1`` and ``'1'``) are refused.
    """
    if isinstance(obj, Tensor) or isinstance(obj, np.ndarray) or backend.is_cuda_array(obj):
        is_tensor = isinstance(obj, Tensor)
        data = backend.to_numpy(obj.data if is_tensor else obj)
        key = path or "_"
        if key in owners:
            raise ValueError(f"save: keys {owners[key]} and {where} both flatten to the "
                             f"array name {key!r}; rename one of them")
        if key == "__metadata__":
            raise ValueError(f"save: the array at {where} would be named '__metadata__', "
                             "which is reserved for the safetensors header; rename the key")
        owners[key] = where
        # safetensors is little-endian; 0-d stays 0-d (ascontiguousarray alone makes it (1,))
        little = data.dtype.newbyteorder("<")
        arrays[key] = np.ascontiguousarray(data, dtype=little).reshape(data.shape)
        return {"t": "tensor" if is_tensor else "array", "key": key,
                "crc": zlib.crc32(arrays[key].tobytes())}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save: dict keys must be str or int, got {k!r} at {path!r}")
            child = f"{path}.{k}" if path else str(k)
            items.append([k, _encode(v, child, f"{where}[{k!r}]", arrays, owners)])
        return {"t": "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        return {"t": "list" if isinstance(obj, list) else "tuple",
                "items": [_encode(v, f"{path}.{i}" if path else str(i), f"{where}[{i}]",
                                  arrays, owners)
                          for i, v in enumerate(obj)]}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        if isinstance(obj, float) and not np.isfinite(obj):
            return {"t": "float", "v": repr(obj)}
        return {"t": "value", "v": obj}
    raise TypeError(f"save: cannot store {type(obj).__name__} at {path!r}")


def _decode(node, arrays):
    kind = node["t"]
    if kind in ("tensor", "array"):
        data = arrays[node["key"]]
        if zlib.crc32(data.tobytes()) != node["crc"]:
            raise CheckpointError(f"checkpoint is corrupted: checksum mismatch in {node['key']!r}")
        return Tensor._make(data, None, 0) if kind == "tensor" else data
    if kind == "dict":
        return {k: _decode(v, arrays) for k, v in node["items"]}
    if kind in ("list", "tuple"):
        items = [_decode(v, arrays) for v in node["items"]]
        return items if kind == "list" else tuple(items)
    if kind == "float":
        return float(node["v"])
    if kind == "value":
        return node["v"]
    raise CheckpointError(f"checkpoint has an unknown entry kind {kind!r}")


def save(obj, path) -> None:
    """Write ``obj`` (a nested state dict) to ``path`` atomically in safetensors format."""
    from safetensors.numpy import save as st_save

    arrays: dict = {}
    tree = _encode(obj, "", "", arrays, {})
    payload = st_save(arrays, metadata={"format": _FORMAT, "tree": json.dumps(tree)})
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _sniff(raw: bytes, path) -> None:
    """Refuse pickles, zip archives and truncated headers before parsing anything."""
    # A safetensors header length may start with the same bytes (0x80, "PK"): only a file
    # whose header does not open with "{" is taken for a pickle or a zip archive.
    if raw[8:9] != b"{" and (raw[:1] == b"\x80" or raw[:2] == b"PK"):
        kind = "a pickle" if raw[:1] == b"\x80" else "a zip archive (a torch.save file?)"
        raise CheckpointError(f"{path}: this is {kind}, not a safetensors checkpoint; "
                              "xpgrad never unpickles files")
    if len(raw) < 8:
        raise CheckpointError(f"{path}: file is truncated ({len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise CheckpointError(f"{path}: file is truncated (header says {n} bytes, "
                              f"{len(raw) - 8} present)")
    if raw[8:9] != b"{":
        raise CheckpointError(f"{path}: not a safetensors file (bad header)")


def load(path):
    """Read a checkpoint written by :func:`save`; Tensors come back on the CPU."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    with open(path, "rb") as f:
        raw = f.read()
    _sniff(raw, path)
    try:
        header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
        arrays = st_load(raw)
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupted or truncated safetensors file ({exc})") \
            from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != _FORMAT:
        raise CheckpointError(f"{path}: safetensors file without xpgrad structure "
                              f"(format {meta.get('format')!r})")
    try:
        tree = json.loads(meta["tree"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupted checkpoint structure ({exc})") from None
    arrays = {k: np.array(v) for k, v in arrays.items()}   # writable copies
    return _decode(tree, arrays)
