"""Values that cross between the judge and the student process: plain data, or opaque handles.

A value is packed into a JSON *tree* (tags below), a list of array descriptions and the raw
bytes of those arrays. Plain data crosses by value: ``None``, ``bool``, ``int`` (bounded),
``float`` (NaN and inf too), ``complex``, ``str``, NumPy arrays and scalars of bool, int, uint,
float and complex dtypes, ``tuple``, ``list``, ``dict`` (``str``/``int`` keys) and ``slice``.
Anything else becomes a handle: ``export(obj) -> int`` registers it in the sender's table.

Decoding never runs code: ``json.loads`` and ``np.frombuffer(...).reshape(...).copy()`` on a
fixed allow-list of dtypes, nothing else (no pickle, no eval, no attribute of a decoded thing).
Every violation of the format or of the :class:`Limits` raises :class:`ProtocolError`.

Tags of the tree: JSON scalars are themselves; ``{"L": [...]}`` list, ``{"T": [...]}`` tuple,
``{"D": [[k, v], ...]}`` dict, ``{"S": [start, stop, step]}`` slice, ``{"C": [re, im]}``
complex, ``{"N": [dtype, value]}`` NumPy scalar, ``{"A": k}`` array ``k`` of the message,
``{"R": k}`` array ``k`` of the request this message replies to (the caller's own object),
``{"H": [id, type name]}`` an object of the sender, ``{"Y": id}`` an object of the receiver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from grader.engine.judge.base import (
    DEFAULT_LIMITS,
    DTYPES,
    MAX_INT,
    SCALAR_TYPES,
    Limits,
    ProtocolError,
    Proxy,
)


@dataclass
class Packed:
    tree: object
    metas: list = field(default_factory=list)  # [dtype, shape, offset, nbytes, writeable]
    buffers: list = field(default_factory=list)  # memoryviews, in order
    arrays: list = field(default_factory=list)  # the array objects packed, in order
    nbytes: int = 0


def _scalar_tree(x: np.generic) -> dict:
    dt = x.dtype.str
    if x.dtype.kind == "c":
        return {"N": [dt, [float(x.real), float(x.imag)]]}
    return {"N": [dt, x.item()]}


class _Packer:
    def __init__(self, export, limits: Limits, alias: dict[int, int] | None):
        self.export, self.limits, self.alias = export, limits, alias or {}
        self.out = Packed(None)
        self.seen: dict[int, int] = {}
        self.items = 0

    def array(self, a: np.ndarray) -> dict:
        if id(a) in self.alias:
            return {"R": self.alias[id(a)]}
        if id(a) in self.seen:
            return {"A": self.seen[id(a)]}
        base = np.ndarray.view(a, np.ndarray)  # the data itself, whatever a subclass says
        if base.dtype.str not in DTYPES:
            return self.handle(a)
        data = np.ascontiguousarray(base)  # at least 1-d: the shape sent is base's (0-d too)
        k = len(self.out.arrays)
        self.out.metas.append([data.dtype.str, list(base.shape), self.out.nbytes, data.nbytes,
                               bool(base.flags.writeable)])
        self.out.buffers.append(memoryview(data).cast("B") if data.nbytes else b"")
        self.out.arrays.append(a)
        self.out.nbytes += data.nbytes
        if self.out.nbytes > self.limits.max_bytes:
            raise ProtocolError(f"message larger than {self.limits.max_bytes} bytes")
        self.seen[id(a)] = k
        return {"A": k}

    def handle(self, obj: object) -> dict:
        if isinstance(obj, Proxy):
            return {"Y": obj._dl_h}
        return {"H": [self.export(obj), type(obj).__name__[:100]]}

    def value(self, x: object, depth: int = 0):
        self.items += 1
        if self.items > self.limits.max_items:
            raise ProtocolError(f"more than {self.limits.max_items} items in one message")
        if depth > self.limits.max_depth:
            raise ProtocolError(f"nested deeper than {self.limits.max_depth}")
        if x is None or type(x) is bool:
            return x
        if isinstance(x, np.ndarray):
            return self.array(x)
        if isinstance(x, np.generic):
            return _scalar_tree(x) if isinstance(x, SCALAR_TYPES) else self.handle(x)
        if isinstance(x, Proxy):
            return self.handle(x)
        if isinstance(x, int) and not isinstance(x, bool):
            if abs(int.__int__(x)) >= MAX_INT:
                raise ProtocolError("integer too large to send")
            return int.__int__(x)
        if isinstance(x, float):
            return float.__float__(x)
        if isinstance(x, complex):
            c = complex.__complex__(x)
            return {"C": [c.real, c.imag]}
        if isinstance(x, str):
            return str.__str__(x)
        if isinstance(x, tuple | list):
            items = [self.value(v, depth + 1) for v in (tuple.__iter__(x) if isinstance(
                x, tuple) else list.__iter__(x))]
            return {"T" if isinstance(x, tuple) else "L": items}
        if isinstance(x, dict):
            pairs = []
            for k, v in dict.items(x):
                if type(k) not in (str, int):
                    return self.handle(x)
                pairs.append([self.value(k, depth + 1), self.value(v, depth + 1)])
            return {"D": pairs}
        if isinstance(x, slice):
            return {"S": [self.value(v, depth + 1) for v in (x.start, x.stop, x.step)]}
        return self.handle(x)


def pack(value: object, export: Callable[[object], int], *, limits: Limits = DEFAULT_LIMITS,
         alias: dict[int, int] | None = None) -> Packed:
    """Pack ``value``; ``alias`` maps ``id(array)`` to its index in the request replied to."""
    packer = _Packer(export, limits, alias)
    packer.out.tree = packer.value(value)
    return packer.out


# ----------------------------------------------------------------------------- decoding


def bad(msg: str) -> ProtocolError:
    return ProtocolError(f"malformed message: {msg}")


def _int(x: object, what: str) -> int:
    if type(x) is not int or abs(x) >= MAX_INT:
        raise bad(f"{what} is not a bounded integer")
    return x


def unpack_arrays(metas: object, blob, limits: Limits) -> list[np.ndarray]:
    """Rebuild the arrays from dtype, shape and bytes (copies, each the size it claims)."""
    if type(metas) is not list or len(metas) > limits.max_items:
        raise bad("array list")
    arrays = []
    for meta in metas:
        if type(meta) is not list or len(meta) != 5:
            raise bad("array description")
        dt, shape, offset, nbytes, writeable = meta
        if type(dt) is not str or dt not in DTYPES:
            raise bad(f"dtype {str(dt)[:20]!r} is not allowed")
        if type(shape) is not list or len(shape) > 32:
            raise bad("array shape")
        dims = [_int(d, "a dimension") for d in shape]
        offset, nbytes = _int(offset, "an offset"), _int(nbytes, "a size")
        count = 1
        for d in dims:
            if d < 0:
                raise bad("negative dimension")
            count *= d
        dtype = DTYPES[dt]
        if count * dtype.itemsize != nbytes or offset < 0 or offset + nbytes > len(blob):
            raise bad("array size does not match its bytes")
        arr = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(dims).copy()
        if writeable is False:
            arr.flags.writeable = False
        arrays.append(arr)
    return arrays


class _Unpacker:
    def __init__(self, arrays, import_, local, argrefs, limits: Limits):
        self.arrays, self.import_, self.local = arrays, import_, local
        self.argrefs, self.limits, self.items = argrefs or [], limits, 0

    def index(self, k: object, seq: list, what: str):
        if type(k) is not int or not 0 <= k < len(seq):
            raise bad(f"{what} index")
        return seq[k]

    def value(self, x: object, depth: int = 0):
        self.items += 1
        if self.items > self.limits.max_items or depth > self.limits.max_depth:
            raise ProtocolError("message nested too deep or with too many items")
        if x is None or type(x) in (bool, float, str):
            return x
        if type(x) is int:
            return _int(x, "an integer")
        if type(x) is not dict or len(x) != 1:
            raise bad(f"unexpected {type(x).__name__}")
        ((tag, body),) = x.items()
        if tag in ("L", "T"):
            if type(body) is not list:
                raise bad("sequence")
            items = [self.value(v, depth + 1) for v in body]
            return items if tag == "L" else tuple(items)
        if tag == "D":
            return self.mapping(body, depth)
        if tag == "A":
            return self.index(body, self.arrays, "array")
        if tag == "R":
            return self.index(body, self.argrefs, "argument")
        if tag == "H":
            if type(body) is not list or len(body) != 2 or type(body[1]) is not str:
                raise bad("handle")
            return self.import_(_int(body[0], "a handle"), body[1][:100])
        if tag == "Y":
            return self.local(_int(body, "a handle"))
        if tag == "S":
            if type(body) is not list or len(body) != 3:
                raise bad("slice")
            return slice(*[None if v is None else _int(v, "a slice bound") for v in body])
        if tag == "C":
            if type(body) is not list or len(body) != 2 or any(
                    type(v) not in (int, float) for v in body):
                raise bad("complex")
            return complex(body[0], body[1])
        if tag == "N":
            return self.scalar(body)
        raise bad(f"unknown tag {str(tag)[:10]!r}")

    def mapping(self, body: object, depth: int) -> dict:
        if type(body) is not list:
            raise bad("dict")
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) not in (str, int):
                raise bad("dict item")
            out[self.value(pair[0], depth + 1)] = self.value(pair[1], depth + 1)
        return out

    def scalar(self, body: object) -> np.generic:
        if type(body) is not list or len(body) != 2 or body[0] not in DTYPES:
            raise bad("numpy scalar")
        dtype, v = DTYPES[body[0]], body[1]
        if dtype.kind == "c":
            if type(v) is not list or len(v) != 2 or any(type(p) not in (int, float) for p in v):
                raise bad("complex scalar")
            v = complex(v[0], v[1])
        elif type(v) not in ((bool,) if dtype.kind == "b" else (int, float)):
            raise bad("numpy scalar value")
        try:
            return dtype.type(v)
        except (OverflowError, ValueError, TypeError):
            raise bad("numpy scalar out of range") from None


def unpack(tree: object, arrays: list[np.ndarray], import_: Callable[[int, str], object],
           local: Callable[[int], object], *, limits: Limits = DEFAULT_LIMITS,
           argrefs: list | None = None) -> object:
    """The value of ``tree``; ``import_(id, type name)`` makes a proxy for a sender's object,
    ``local(id)`` returns the receiver's own object, ``argrefs`` the caller's request arrays."""
    return _Unpacker(arrays, import_, local, argrefs, limits).value(tree)
