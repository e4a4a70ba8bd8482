"""A whole message as bytes: 8-byte header length, JSON header, raw array bytes.

:func:`encode` and :func:`decode` are the codec's one-shot form (the RPC endpoint frames its
messages itself, with the same header and the same checks).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from grader.engine.judge.base import DEFAULT_LIMITS, Limits, ProtocolError, Refused
from grader.engine.judge.codec import bad, pack, unpack, unpack_arrays


def parse_header(data: bytes) -> dict:
    try:
        header = json.loads(data)
    except (ValueError, RecursionError):
        raise bad("header is not JSON (or nested too deep)") from None
    if type(header) is not dict:
        raise bad("header is not an object")
    return header


def _no_handles(_obj: object) -> int:
    raise Refused(f"a {type(_obj).__name__} cannot be sent as plain data")


def encode(value: object, export: Callable[[object], int] = _no_handles, *,
           limits: Limits = DEFAULT_LIMITS) -> bytes:
    """``value`` as one self-contained message: 8-byte header length, JSON header, array bytes."""
    p = pack(value, export, limits=limits)
    head = json.dumps({"v": p.tree, "a": p.metas}).encode()
    if len(head) > limits.max_header or 8 + len(head) + p.nbytes > limits.max_bytes:
        raise ProtocolError("message larger than the limit")
    return len(head).to_bytes(8, "big") + head + b"".join(bytes(b) for b in p.buffers)


def _no_local(_h: int) -> object:
    raise bad("a handle to a local object where none is expected")


def decode(data: bytes, import_: Callable[[int, str], object] = lambda h, t: _no_local(h),
           local: Callable[[int], object] = _no_local, *,
           limits: Limits = DEFAULT_LIMITS) -> object:
    """The value of a message made by :func:`encode`."""
    if len(data) < 8 or len(data) > limits.max_bytes:
        raise bad("message size")
    n = int.from_bytes(data[:8], "big")
    if n > min(limits.max_header, len(data) - 8):
        raise bad("header length")
    header = parse_header(data[8:8 + n])
    blob = memoryview(data)[8 + n:]
    arrays = unpack_arrays(header.get("a"), blob, limits)
    return unpack(header.get("v"), arrays, import_, local, limits=limits)
