"""Saved state that cannot execute code: ``save_state`` / ``load_state``.

A state file is a `safetensors <https://huggingface.co/docs/safetensors>`_ file: a JSON header
and raw little-endian array bytes, nothing that a reader executes (unlike pickle, where loading a
crafted file runs its code). Its ``__metadata__`` holds:

- ``format``: ``"ruvector-attention.state"`` and ``version``: ``"2"`` (version 1 files still load);
- ``objects``: a JSON document of the saved values, where each array is replaced by
  ``{"__array__": tensor name}`` (``"torch": true`` added for a PyTorch tensor, loaded back as one
  where PyTorch is installed), each stateful object (anything with ``state_dict()`` /
  ``load_state_dict()``: optimizers, ours and ``torch.optim``'s, schedulers, curriculum,
  annealing, miners) by ``{"__object__": class name, "state": its state_dict}``, a dict with keys
  other than strings (a ``torch.optim`` state) by ``{"__items__": [[key, value], ...]}`` and a
  tuple by ``{"__tuple__": [...]}``;
- ``sha256``: the SHA-256 of ``objects`` and of every tensor (name, dtype, shape, bytes), so any
  change to the file is detected.

Arrays keep their shape (0-d included), dtype and values; they are stored little-endian, as
safetensors requires, whatever their byte order in memory. Values nest at most
``MAX_DEPTH`` levels deep.

Files are written atomically and durably (a crash leaves the previous file intact). Reading a
truncated, corrupted, foreign or newer file raises :class:`StateFileError` naming the file and the
problem. Pickling the objects still works for in-process use, but like NumPy's ``allow_pickle``,
never unpickle a file you did not write yourself.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from typing import Any

import numpy as np

from ._atomic_file import write_atomically
from .errors import ArgumentError, RuvectorError

__all__ = ["FORMAT", "MAX_DEPTH", "VERSION", "StateFileError", "load_state", "save_state"]

FORMAT = "ruvector-attention.state"
VERSION = 2
#: How deeply saved values may nest (lists, dicts, objects' states): deeper documents are refused
#: when saving and reported as damaged when loading, instead of exhausting Python's recursion.
MAX_DEPTH = 64

_ARRAY, _OBJECT, _ITEMS, _TUPLE = "__array__", "__object__", "__items__", "__tuple__"
_RESERVED = (_ARRAY, _OBJECT, _ITEMS, _TUPLE)
_KEY_TYPES = (str, int, float, bool, type(None))


class StateFileError(RuvectorError, ValueError):
    """A state file is missing, unreadable, truncated, corrupt, foreign or from a newer version.

    Examples:
        >>> import os, tempfile
        >>> import ruvector_attention as ra
        >>> path = os.path.join(tempfile.mkdtemp(), "broken.safetensors")
        >>> with open(path, "wb") as f:
        ...     _ = f.write(b"not a state file")
        >>> try:
        ...     ra.load_state(path)
        ... except ra.StateFileError as exc:
        ...     print("refused:", str(exc).split(": ", 1)[1])
        refused: truncated or not a state file (header of 8391086132249784174 bytes)
    """


def _is_stateful(value: object) -> bool:
    return callable(getattr(value, "state_dict", None)) and callable(
        getattr(value, "load_state_dict", None)
    )


def _torch_tensor(value: object) -> bool:
    """Whether ``value`` is a PyTorch tensor (without importing PyTorch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _storable(value: np.ndarray, path: str) -> np.ndarray:
    """``value`` C-contiguous and little-endian (what safetensors stores), shape kept (0-d too)."""
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{path}: only bool, int and float arrays can be saved, got {value.dtype}")
    return np.array(value, dtype=value.dtype.newbyteorder("<"), order="C", copy=True)


def _encode(value: Any, path: str, arrays: dict[str, np.ndarray], depth: int = 0) -> Any:
    """A JSON-able tree of ``value`` with arrays moved into ``arrays``."""
    if depth > MAX_DEPTH:
        raise ArgumentError(f"{path}: nested more than {MAX_DEPTH} levels deep")
    # Each tensor gets a fresh name, so no nesting of keys (such as "a/b" beside "a" -> "b") can
    # make two of them collide; the path after the number is for people reading the file.
    name = f"{len(arrays)}:{path}"
    if _is_stateful(value):
        state = _encode(value.state_dict(), path, arrays, depth + 1)
        return {_OBJECT: type(value).__name__, "state": state}
    if _torch_tensor(value):
        try:
            host = value.detach().cpu().numpy()
        except (RuntimeError, TypeError) as exc:
            raise TypeError(f"{path}: cannot save this tensor ({exc})") from None
        arrays[name] = _storable(host, path)
        return {_ARRAY: name, "torch": True}
    if isinstance(value, np.ndarray):
        arrays[name] = _storable(value, path)
        return {_ARRAY: name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            out = {}
            for key, item in value.items():
                if key in _RESERVED:
                    raise ArgumentError(f"{path}: the key {key!r} is reserved")
                out[key] = _encode(item, f"{path}/{key}", arrays, depth + 1)
            return out
        items = []
        for key, item in value.items():
            if not isinstance(key, _KEY_TYPES):
                raise TypeError(
                    f"{path}: dict keys must be str, int, float, bool or None to be saved, "
                    f"got {key!r}"
                )
            items.append([key, _encode(item, f"{path}/{key}", arrays, depth + 1)])
        return {_ITEMS: items}
    if isinstance(value, (list, tuple)):
        encoded = [_encode(item, f"{path}/{i}", arrays, depth + 1) for i, item in enumerate(value)]
        return {_TUPLE: encoded} if isinstance(value, tuple) else encoded
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"{path}: cannot save a {type(value).__name__} (arrays, tensors, numbers, strings, lists, "
        "tuples, dicts and objects with state_dict() can be saved)"
    )


class _Damaged(Exception):
    """The object document does not decode: reported as a StateFileError by ``load_state``."""


def _decode(tree: Any, arrays: dict[str, np.ndarray], depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise _Damaged(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(tree, list):
        return [_decode(item, arrays, depth + 1) for item in tree]
    if not isinstance(tree, dict):
        return tree
    keys = set(tree)
    if _ARRAY in keys:
        name = tree[_ARRAY]
        if keys - {_ARRAY, "torch"} or not isinstance(name, str) or name not in arrays:
            raise _Damaged(f"a bad array reference {tree!r:.80}")
        if tree.get("torch") is True:
            try:
                import torch
            except ImportError:  # read without PyTorch: the values, as a NumPy array
                return arrays[name]
            return torch.from_numpy(arrays[name].copy())
        return arrays[name]
    if _OBJECT in keys:
        if keys != {_OBJECT, "state"}:
            raise _Damaged(f"a bad object entry {sorted(keys)!r:.80}")
        return _decode(tree["state"], arrays, depth + 1)
    if _ITEMS in keys:
        items = tree[_ITEMS]
        if keys != {_ITEMS} or not isinstance(items, list):
            raise _Damaged("a bad dict entry")
        out = {}
        for pair in items:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], _KEY_TYPES)):
                raise _Damaged("a bad dict item")
            out[pair[0]] = _decode(pair[1], arrays, depth + 1)
        return out
    if _TUPLE in keys:
        if keys != {_TUPLE} or not isinstance(tree[_TUPLE], list):
            raise _Damaged("a bad tuple entry")
        return tuple(_decode(item, arrays, depth + 1) for item in tree[_TUPLE])
    return {key: _decode(item, arrays, depth + 1) for key, item in tree.items()}


def _digest(objects: str, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(objects.encode())
    for name in sorted(arrays):
        arr = arrays[name]
        h.update(f"\0{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def save_state(path: str | os.PathLike[str], **objects: Any) -> None:
    """Save named objects to ``path`` (a safetensors file) atomically and durably.

    Each value may be a stateful object (an optimizer, ``LearningRateScheduler``,
    ``CurriculumScheduler``, ``TemperatureAnnealing``, ``HardNegativeMiner``, the PyTorch front
    end's optimizers or any ``torch.optim`` one: its ``state_dict`` is saved), a NumPy array or CPU
    PyTorch tensor, or numbers, strings, lists, tuples and dicts of these (dict keys: strings, or
    ints, floats, bools and None as in a ``torch.optim`` state).

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> import ruvector_attention as ra
        >>> w = np.ones(3, np.float32)
        >>> opt = ra.AdamW(lr=0.1)
        >>> opt.step(w, np.full(3, 0.5, np.float32))
        >>> path = os.path.join(tempfile.mkdtemp(), "state.safetensors")
        >>> ra.save_state(path, optimizer=opt, weights=w, step=1)
        >>> other = ra.AdamW(lr=0.5)
        >>> saved = ra.load_state(path, optimizer=other)
        >>> other.lr, saved["step"], saved["weights"].tolist() == w.tolist()
        (0.1, 1, True)
    """
    from safetensors.numpy import save

    arrays: dict[str, np.ndarray] = {}
    tree = {name: _encode(value, name, arrays) for name, value in objects.items()}
    document = json.dumps(tree, sort_keys=True)
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "objects": document,
        "sha256": _digest(document, arrays),
    }
    write_atomically(os.fspath(path), save(arrays, metadata=metadata))


def _read_header(data: bytes, name: str) -> dict[str, Any]:
    if len(data) < 8:
        raise StateFileError(f"{name}: truncated ({len(data)} bytes): not a complete state file")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise StateFileError(f"{name}: truncated or not a state file (header of {size} bytes)")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise StateFileError(f"{name}: not a ruvector-attention state file") from None
    if not isinstance(header, dict):
        raise StateFileError(f"{name}: not a ruvector-attention state file")
    return header


def load_state(path: str | os.PathLike[str], **objects: Any) -> dict[str, Any]:
    """Read a file written by :func:`save_state`; returns every saved value by name (objects as
    their state dicts, arrays as NumPy arrays).

    Objects passed by keyword are restored in place (``obj.load_state_dict``), all or none: every
    one is first checked against its saved state on a copy, so an error leaves all of them as they
    were. Nothing in the file is ever executed.

    Raises:
        StateFileError: the file is missing, unreadable, truncated, corrupt (checksum), foreign,
            from a newer format version, or lacks a requested name.
        TypeError: a saved state does not fit the object it is loaded into.
        ValueError: a saved state does not fit the object it is loaded into.

    Examples:
        >>> import os, tempfile
        >>> import ruvector_attention as ra
        >>> path = os.path.join(tempfile.mkdtemp(), "s.safetensors")
        >>> sched = ra.LearningRateScheduler(0.1, warmup_steps=2)
        >>> _ = sched.step()
        >>> ra.save_state(path, scheduler=sched)
        >>> fresh = ra.LearningRateScheduler(0.1, warmup_steps=2)
        >>> _ = ra.load_state(path, scheduler=fresh)
        >>> fresh.get_lr() == sched.get_lr()
        True
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise StateFileError(f"{name}: cannot read: {exc.strerror or exc}") from None
    meta = _read_header(data, name).get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StateFileError(f"{name}: not a ruvector-attention state file")
    try:
        version = int(meta.get("version", ""))
    except ValueError:
        raise StateFileError(f"{name}: unreadable format version {meta.get('version')!r}") from None
    if version > VERSION:
        raise StateFileError(
            f"{name}: format version {version} is newer than this ruvector-attention reads "
            f"({VERSION}); upgrade the package"
        )
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        arrays = load(data)
    except (SafetensorError, ValueError) as exc:
        raise StateFileError(f"{name}: truncated or corrupt ({exc})") from None
    document = meta.get("objects")
    if not isinstance(document, str) or _digest(document, arrays) != meta.get("sha256"):
        raise StateFileError(f"{name}: checksum mismatch: the file is corrupt")
    try:
        tree = json.loads(document)
        if not isinstance(tree, dict):
            raise _Damaged("not a dict of names")
        saved = {key: _decode(value, arrays) for key, value in tree.items()}
    except (ValueError, RecursionError, _Damaged) as exc:
        raise StateFileError(f"{name}: corrupt object document ({exc})") from None
    missing = [key for key in objects if key not in saved]
    if missing:
        raise StateFileError(
            f"{name}: has no saved {', '.join(map(repr, missing))} (it holds "
            f"{', '.join(map(repr, sorted(saved)))})"
        )
    # Dry run on copies first: all or none. A state that does not fit its object raises the
    # object's own TypeError or ValueError; anything else it raises means the state is damaged.
    for key, obj in objects.items():
        try:
            copy.deepcopy(obj).load_state_dict(copy.deepcopy(saved[key]))
        except (TypeError, ValueError):
            raise
        except Exception as exc:
            raise StateFileError(
                f"{name}: the saved {key!r} does not fit a {type(obj).__name__} "
                f"({type(exc).__name__}: {exc})"
            ) from None
    for key, obj in objects.items():
        obj.load_state_dict(copy.deepcopy(saved[key]))
    return saved
