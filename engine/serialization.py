"""Checkpoints: ``save(obj, path)`` / ``load(path)`` in the safetensors format (a binary file
object opened by the caller works in place of the path).

``obj`` is a (nested) state dict: dicts with string or integer keys, lists and tuples,
whose leaves are Tensors, arrays, Python scalars, strings or None, as module and optimizer
state dicts are. The arrays go into the safetensors body under their dotted path
(little-endian, as the format requires); the structure and the small values go, as JSON,
into the header's metadata, together with a CRC-32 of every array. The header itself
opens with a CRC-32 of the whole header region (the 8-byte length, the names, dtypes,
shapes, offsets and metadata), so that no damaged byte anywhere in the file goes unnoticed::

    <u64 n> {"__metadata__":{"xpgrad_crc32":"<8 hex digits>","format":...,"tree":...},
             "model.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]}, ...}
    <array bytes, back to back>

No pickle is involved: loading a file never runs code. Saving writes a temporary file
beside the target (``.<name>.<8 hex digits>.tmp``), fsyncs it and renames it over the
target, so an interrupted save leaves the previous checkpoint intact. The writer holds an
advisory lock on its temporary file; the next save to the same target removes the ones
whose lock is free, left by a save that was killed. Saving copies device arrays to the
host and never moves or modifies what it saves.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import struct
import warnings
import zlib

import numpy as np

from engine import backend
from engine.tensor import Tensor

try:
    import fcntl
except ImportError:      # not POSIX: no advisory locks, so leftovers of killed saves stay
    fcntl = None

_FORMAT = "xpgrad-checkpoint-2"
_LEGACY_FORMAT = "xpgrad-checkpoint-1"   # per-array checksums only; still read
_CRC_FIELD = "xpgrad_crc32"
_HEADER_START = b'{"__metadata__":{"' + _CRC_FIELD.encode() + b'":"'   # then 8 hex digits
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "U64": "<u8",
           "I32": "<i4", "U32": "<u4", "I16": "<i2", "U16": "<u2", "I8": "i1", "U8": "u1",
           "BOOL": "?", "C64": "<c8"}
_DTYPE_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


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
        if little not in _DTYPE_NAMES:
            raise TypeError(f"save: cannot store the {data.dtype} array at {where} "
                            f"(safetensors holds {', '.join(_DTYPES)})")
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
    hint = "; save its state_dict() instead" if hasattr(obj, "state_dict") else ""
    raise TypeError(f"save: cannot store {type(obj).__name__} at {path!r}{hint}")


def _decode(node, arrays):
    kind = node["t"]
    if kind in ("tensor", "array"):
        raw, dtype, shape = arrays[node["key"]]
        if zlib.crc32(raw) != node["crc"]:
            raise CheckpointError(f"checkpoint is corrupted: checksum mismatch in {node['key']!r}")
        data = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
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


def _header(tree, arrays) -> tuple[bytes, list]:
    """The length prefix and JSON header (checksummed), and the arrays in body order.

    Arrays go in order of decreasing item size, so each starts aligned to its item size
    (the header is padded with spaces to a multiple of 8 bytes, as safetensors does).
    """
    order = sorted(arrays.items(), key=lambda item: -item[1].dtype.itemsize)
    entries, offset = {}, 0
    for name, a in order:
        entries[name] = {"dtype": _DTYPE_NAMES[a.dtype], "shape": list(a.shape),
                         "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    meta = {_CRC_FIELD: "0" * 8, "format": _FORMAT, "tree": json.dumps(tree)}
    text = json.dumps({"__metadata__": meta, **entries}, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    head = struct.pack("<Q", len(text)) + text.encode("ascii")
    crc = f"{_header_crc(head):08x}".encode("ascii")
    at = 8 + len(_HEADER_START)
    return head[:at] + crc + head[at + 8:], [a for _, a in order]


def _header_crc(head: bytes) -> int:
    """CRC-32 of the length prefix and header, skipping the 8 digits that hold it."""
    at = 8 + len(_HEADER_START)
    return zlib.crc32(head[at + 8:], zlib.crc32(head[:at]))


def _remove_abandoned(directory: str, name: str) -> None:
    """Delete the temporary files of killed saves to ``name``: those nobody holds locked."""
    if fcntl is None:
        return
    pattern = re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{8}}\.tmp")
    for entry in os.listdir(directory):
        if not pattern.fullmatch(entry):
            continue
        leftover = os.path.join(directory, entry)
        try:
            fd = os.open(leftover, os.O_RDONLY)
        except OSError:                      # removed meanwhile by its writer or another save
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # fails while its writer lives
            os.unlink(leftover)
        except OSError:
            pass
        finally:
            os.close(fd)


def _open_temporary(path: str) -> tuple[int, str]:
    """A new, locked temporary file beside ``path``."""
    directory, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"save: cannot write {path}: directory "
                                f"{directory} does not exist")
    _remove_abandoned(directory, name)
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)   # less the umask
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:    # not taken for a leftover by a concurrent save
            return fd, tmp
        os.close(fd)


def save(obj, f) -> None:
    """Write ``obj`` (a nested state dict) in safetensors format to ``f``: a path, written
    atomically, or a binary file open for writing (``with open(path, "wb") as f``), written
    at its position as it is (the caller owns that file, and its atomicity)."""
    arrays: dict = {}
    tree = _encode(obj, "", "", arrays, {})
    head, body = _header(tree, arrays)
    if hasattr(f, "write"):
        f.write(head)
        for a in body:
            f.write(a.reshape(-1).view(np.uint8))
        return
    path = os.fspath(f)
    fd, tmp = _open_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            for a in body:
                f.write(a.reshape(-1).view(np.uint8))
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)            # before the lock goes with the file's closing
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(os.path.dirname(tmp), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _sniff(raw: bytes, path) -> int:
    """Refuse pickles, zip archives and truncated headers; the header's length."""
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
    return n


def _legacy_header(head: bytes, path) -> dict | None:
    """The header of a checkpoint in the first format, whose header had no checksum (its
    arrays have theirs, checked as they are read); None for anything else."""
    try:
        header = json.loads(head[8:])
        legacy = header["__metadata__"]["format"] == _LEGACY_FORMAT
    except (ValueError, KeyError, TypeError):
        return None
    if not legacy:
        return None
    warnings.warn(f"{path}: checkpoint in the first format, whose header carries no "
                  "checksum; load it and save it again to protect its header", stacklevel=3)
    return header


def _checked_header(raw: bytes, path) -> tuple[dict, int]:
    """The parsed header and where the body starts, once the header checksum matches every
    byte of the header region (files of the first format have none: see _legacy_header)."""
    n = _sniff(raw, path)
    head = raw[:8 + n]
    at = 8 + len(_HEADER_START)
    if not head.startswith(_HEADER_START, 8) or n < len(_HEADER_START) + 8:
        legacy = _legacy_header(head, path)
        if legacy is not None:
            return legacy, 8 + n
        raise CheckpointError(f"{path}: no xpgrad header checksum (a safetensors file "
                              "not written by engine.save, or a damaged one)")
    if head[at:at + 8] != f"{_header_crc(head):08x}".encode("ascii"):
        raise CheckpointError(f"{path}: checkpoint is corrupted: header checksum mismatch")
    try:
        header = json.loads(head[8:])
        if header["__metadata__"]["format"] != _FORMAT:
            raise CheckpointError(f"{path}: unknown checkpoint format "
                                  f"{header['__metadata__']['format']!r}")
        return header, 8 + n
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: malformed checkpoint header ({exc})") from None


def _arrays(header: dict, body: memoryview, path) -> dict:
    """Each named array's bytes, dtype and shape, once the offsets are seen to tile the body
    exactly (back to back, each as long as its shape and dtype say)."""
    arrays, end = {}, 0
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                     key=lambda item: item[1]["data_offsets"][0])
    for name, entry in entries:
        dtype = np.dtype(_DTYPES[entry["dtype"]])
        start, stop = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if start != end or stop - start != dtype.itemsize * math.prod(shape):
            raise CheckpointError(f"{path}: array {name!r} has offsets {start}..{stop}, "
                                  f"expected {end}.. for {shape} {dtype}")
        if stop > len(body):
            raise CheckpointError(f"{path}: file is truncated in array {name!r}")
        arrays[name] = (body[start:stop], dtype, shape)
        end = stop
    if end != len(body):
        raise CheckpointError(f"{path}: {len(body) - end} bytes after the last array")
    return arrays


def load(f, map_location=None, weights_only: bool = True):
    """Read a checkpoint written by :func:`save` from ``f``, a path or a binary file open
    for reading. Tensors come back on the CPU, or on the device ``map_location`` names
    (``'cpu'``, ``'cuda:N'``; PyTorch's dicts and functions are not taken).
    ``weights_only`` is accepted for PyTorch's sake: a checkpoint here only ever holds
    tensors, arrays and plain values, and loading one never runs code."""
    if map_location is not None:
        if not isinstance(map_location, str):
            raise TypeError(f"load: map_location must name a device ('cpu', 'cuda:N'), got "
                            f"{type(map_location).__name__}")
        map_location = backend.parse_device(map_location)
    if hasattr(f, "read"):
        raw, path = f.read(), getattr(f, "name", "<file>")
    else:
        with open(f, "rb") as file:
            raw, path = file.read(), f
    header, body_start = _checked_header(raw, path)
    try:
        arrays = _arrays(header, memoryview(raw)[body_start:], path)
        tree = json.loads(header["__metadata__"]["tree"])
        obj = _decode(tree, arrays)
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise CheckpointError(f"{path}: malformed checkpoint structure ({exc})") from None
    return obj if map_location in (None, "cpu") else _to_device(obj, map_location)


def _to_device(obj, device: str):
    """``obj`` with every Tensor in it moved to ``device``."""
    if isinstance(obj, Tensor):
        return Tensor._make(backend.to_device(obj.data, device), None, 0)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_to_device(v, device) for v in obj]
        return items if isinstance(obj, list) else tuple(items)
    return obj
