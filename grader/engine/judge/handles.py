"""The table of objects one side lent to the other, counted so that releases are exact."""

from __future__ import annotations

from collections.abc import Callable

from grader.engine.judge.base import ProtocolError


class HandleTable:
    """The objects this side lent to the peer: handle -> [object, times sent]."""

    def __init__(self, policy: Callable[[object], None] | None = None):
        self.policy = policy  # raises Refused for an object that must not cross
        self._objects: dict[int, list] = {}
        self._ids: dict[int, int] = {}
        self._next = 1

    def export(self, obj: object) -> int:
        if self.policy is not None:
            self.policy(obj)
        h = self._ids.get(id(obj))
        if h is None:
            h, self._next = self._next, self._next + 1
            self._objects[h], self._ids[id(obj)] = [obj, 0], h
        self._objects[h][1] += 1
        return h

    def get(self, h: int) -> object:
        entry = self._objects.get(h)
        if entry is None:
            raise ProtocolError(f"unknown handle {h}")
        return entry[0]

    def release(self, h: object, count: object) -> None:
        entry = self._objects.get(h) if type(h) is int else None
        if entry is not None and type(count) is int:
            entry[1] -= count
            if entry[1] <= 0:
                del self._objects[h], self._ids[id(entry[0])]

    def __len__(self) -> int:
        return len(self._objects)
