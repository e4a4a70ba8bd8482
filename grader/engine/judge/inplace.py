"""In-place changes cross the judge's boundary as they would in one process.

:func:`changed_arguments`: the arrays of a call that it changed in place (the serving side
sends them back with the reply; the caller writes them into its own arrays).

The rest: an in-place change to an array read from the peer's object reaches that object.

In one process ``model.W`` *is* the model's array: ``model.W[...] -= lr * dW`` or
``layer.dW += g`` through a local name changes the model. Across the judge's boundary an
attribute read returns a copy, so without this module such a change would be lost and correct
code would fail its test (with a wrong "likely cause" where a test names one).

* :class:`LentArrays` (the side that serves ``getattr``): each array attribute it sends gets a
  token, one per (object, attribute); a write-back for a token is copied into the array the
  attribute still holds. A stale token (the attribute was reassigned since, as in one process the
  old array no longer belongs to the object) or a new array of another shape or dtype changes
  nothing; an unknown token breaks the connection (fail closed).
* :class:`WatchedCopies` (the side that read it): keeps each copy with its token and bytes;
  before this side sends anything, each copy changed since it was read (or last sent) goes back,
  and a copy nothing else refers to any more is forgotten (``model.W[...] -= g`` changes a copy
  that lives only until the statement ends: it must still be sent).

Only a top-level array result of ``getattr`` is watched (not arrays inside a returned list or
dict), and only until the test cell ends. The write-back gives the peer no new power: it could
assign the same attribute anyway.
"""

from __future__ import annotations

import sys

import numpy as np

from grader.engine.judge.base import ProtocolError


def _differs(array: np.ndarray, dtype: str, shape: list, raw) -> bool:
    """Whether ``array`` is no longer ``dtype``, ``shape`` and the bytes ``raw``."""
    return array.dtype.str != dtype or list(array.shape) != shape or not np.array_equal(
        np.frombuffer(raw, np.uint8), array.reshape(-1).view(np.uint8))


def changed_arguments(arrays: list[np.ndarray], metas: list, blob) -> dict[int, np.ndarray]:
    """The arrays of a request that the call changed in place, by value (not as references to
    the arguments), keyed by their index in the request."""
    raw = memoryview(blob)
    return {k: a.copy() for k, (a, (dt, shape, offset, nbytes, _))
            in enumerate(zip(arrays, metas, strict=True))
            if _differs(a, dt, shape, raw[offset:offset + nbytes])}


class LentArrays:
    """Array attributes this side sent as ``getattr`` results in this test cell, by token."""

    def __init__(self):
        self._by_token: dict[int, tuple[object, str, np.ndarray]] = {}
        self._tokens: dict[tuple[int, str], int] = {}  # (id(owner), attribute) -> token
        self._next = 1

    def issue(self, owner: object, name: str, array: np.ndarray) -> int:
        key = (id(owner), name)
        token = self._tokens.get(key)
        if token is None or self._by_token[token][2] is not array:
            token, self._next = self._next, self._next + 1
            old = self._tokens.get(key)
            if old is not None:  # the attribute was reassigned: the old array is not its any more
                del self._by_token[old]
            self._tokens[key] = token
        self._by_token[token] = (owner, name, array)  # the owner is kept alive: ids stay unique
        return token

    def write_back(self, token: object, new: object) -> None:
        if type(token) is not int or not 0 < token < self._next or type(new) is not np.ndarray:
            raise ProtocolError("malformed write-back of an array attribute")
        entry = self._by_token.get(token)
        if entry is None:
            return  # a stale copy: its attribute was reassigned since
        owner, name, array = entry
        if getattr(owner, name, None) is not array or not array.flags.writeable:
            return  # the attribute holds another array now (or this one cannot change)
        if array.shape != new.shape or array.dtype != new.dtype:
            return  # an in-place change keeps both; anything else is not one
        array[...] = new

    def clear(self) -> None:
        self._by_token.clear()
        self._tokens.clear()


def _seen(array: np.ndarray) -> tuple[str, list, bytes]:
    return array.dtype.str, list(array.shape), array.tobytes()


def _only_ours() -> int:
    """What ``sys.getrefcount`` reads in :meth:`WatchedCopies.changed` for a copy no one else
    holds (measured the same way, so it holds on any CPython)."""
    entry = [0, np.empty(0), None]
    token, array, seen = entry
    return sys.getrefcount(array)


_ONLY_OURS = _only_ours()


class WatchedCopies:
    """Copies of the peer's array attributes this side received, to send back when changed."""

    def __init__(self):
        self._watched: list[list] = []  # [token, the copy, (dtype, shape, bytes) last seen]

    def watch(self, token: object, array: object) -> None:
        if type(token) is int and type(array) is np.ndarray:
            self._watched.append([token, array, _seen(array)])

    def changed(self) -> list[tuple[int, np.ndarray]]:
        """``[(token, array)]`` changed since last seen; copies only this list holds are then
        forgotten."""
        out, keep = [], []
        for entry in self._watched:
            token, array, seen = entry
            if _differs(array, *seen):
                out.append((token, array.copy()))
                entry[2] = _seen(array)
            if sys.getrefcount(array) > _ONLY_OURS:
                keep.append(entry)
        self._watched = keep
        return out

    def clear(self) -> None:
        self._watched.clear()
