"""Synchronous, re-entrant request/response between the judge and the student process.

One :class:`Endpoint` per side, over a socket (or a pair of pipe descriptors). A request waits
for its reply; while waiting the endpoint serves the peer's requests (callbacks, any depth).
Replies must come in stack order: any other message, a malformed one, or one past a limit
raises :class:`ProtocolError`, after which the endpoint refuses everything (fail closed).

Requests: ``lookup(name)`` (served only where a ``lookup`` function is given: the student
side), ``call(handle, args, kwargs)``, ``getattr(handle, name)``, ``setattr(handle, name,
value)``; only names without a leading ``_``. Releases of handles ride on the next message.
An error while serving comes back as (type name, message) and is raised on the caller's side
as a fresh exception of a class from :data:`SAFE_ERRORS`, else :class:`StudentError`.

Arrays of a call are copies on the serving side: each one changed in place is sent back and
written into the caller's own array (``arr[...] = new``); a result that *is* an argument comes
back as a reference to it, so the caller gets its own object. An array the student side reads as an
attribute of a judge object is a copy too; changed in place, it is written back into the
attribute's array before the student side's next message (:mod:`grader.engine.judge.inplace`:
``"w"`` frames). The judge's own reads stay copies (tests assign attributes, never change them
in place).
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Callable

import numpy as np

from grader.engine.judge.base import (
    DEFAULT_LIMITS,
    Limits,
    ProtocolError,
    Proxy,
    Refused,
    make_error,
    notebook_frames,
    text_of,
)
from grader.engine.judge.codec import Packed, pack, unpack, unpack_arrays
from grader.engine.judge.handles import HandleTable
from grader.engine.judge.inplace import LentArrays, WatchedCopies, changed_arguments
from grader.engine.judge.message import parse_header

MAGIC = b"DLJ1"
PREFIX = 16  # magic, header length (4 bytes), blob length (8 bytes)

def _public(name: object) -> str:
    if type(name) is not str or not name.isidentifier() or name.startswith("_"):
        raise AttributeError(f"only public attributes can be reached, not {str(name)[:80]!r}")
    return name


def _where(exc: BaseException) -> list:
    """Where ``exc`` was raised in this side's notebook code (names and lines only)."""
    try:
        return notebook_frames(exc.__traceback__) + list(getattr(exc, "notebook_frames", []))
    except Exception:  # noqa: BLE001 - a location is a courtesy, never a reason to fail
        return []


_FP_KEYS, _FP_MODES = ("divide", "over", "under", "invalid"), ("ignore", "warn", "raise")


def _fp_state(fp: object) -> dict[str, str]:
    """The caller's floating-point error modes, only the keys and modes known to be safe."""
    if type(fp) is not dict:
        return {}
    return {k: fp[k] for k in _FP_KEYS if fp.get(k) in _FP_MODES}


class Endpoint:
    def __init__(self, conn, table: HandleTable, proxy: type, *,
                 lookup: Callable[[str], tuple] | None = None, limits: Limits = DEFAULT_LIMITS):
        self._conn = conn  # kept alive: its descriptor is used below
        self._rfd, self._wfd = (conn.fileno(),) * 2 if hasattr(conn, "fileno") else conn
        self.table, self.proxy, self.lookup, self.limits = table, proxy, lookup, limits
        self._proxies: dict[int, list] = {}  # handle -> [weakref to proxy, times received]
        self._released: list = []
        self._waiting: list[int] = []  # sequence numbers of our requests, innermost last
        self._seq = 0
        self.broken: str | None = None
        self.in_session = False  # the student side: between a test cell's start and end
        self.report_all = False  # see _serve
        self.lent, self.watched = LentArrays(), WatchedCopies()  # arrays of attributes
        self.write_back_reads = False  # the student side: see the module's docstring

    # -------------------------------------------------------------- frames
    def _poison(self, why: str) -> ProtocolError:
        self.broken = self.broken or why
        return ProtocolError(why)

    def check(self) -> None:
        if self.broken:
            raise ProtocolError(f"the connection is broken: {self.broken}")

    def _send(self, header: dict, packed: Packed | None = None) -> None:
        self.check()
        if header.get("k") != "w":  # the peer sees this side's in-place changes first
            for token, array in self.watched.changed():
                self._send({"k": "w", "t": token}, self._pack(array))
        if self._released:
            header["rel"], self._released = self._released, []
        if packed is not None:
            header["v"], header["a"] = packed.tree, packed.metas
        head = json.dumps(header).encode()
        nbytes = packed.nbytes if packed else 0
        if len(head) > self.limits.max_header or PREFIX + len(head) + nbytes > \
                self.limits.max_bytes:
            raise Refused("message larger than the limit")
        pieces = [MAGIC + len(head).to_bytes(4, "big") + nbytes.to_bytes(8, "big"), head]
        try:
            for piece in pieces + (packed.buffers if packed else []):
                view = memoryview(piece)
                while view:
                    view = view[os.write(self._wfd, view):]
        except BaseException as exc:
            raise self._poison(f"sending failed: {type(exc).__name__}") from None

    def _read(self, n: int) -> bytearray:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = os.readv(self._rfd, [view[got:]])
            if k == 0:
                raise self._poison("the peer closed the connection")
            got += k
        return buf

    def _recv(self) -> tuple[dict, list[np.ndarray], bytearray]:
        """The next frame that is not a write-back (those are applied on the way)."""
        while True:
            header, arrays, blob = self._recv_frame()
            if header.get("k") != "w":
                return header, arrays, blob
            try:
                self.lent.write_back(header.get("t"), self._unpack(header, arrays))
            except ProtocolError as exc:
                raise self._poison(str(exc)) from None

    def _recv_frame(self) -> tuple[dict, list[np.ndarray], bytearray]:
        self.check()
        try:
            prefix = self._read(PREFIX)
            hlen, blen = int.from_bytes(prefix[4:8], "big"), int.from_bytes(prefix[8:], "big")
            if prefix[:4] != MAGIC or hlen > self.limits.max_header or \
                    PREFIX + hlen + blen > self.limits.max_bytes:
                raise self._poison("bad frame (magic or size over the limit)")
            header = parse_header(bytes(self._read(hlen)))
            blob = self._read(blen)
            arrays = unpack_arrays(header.get("a", []), blob, self.limits)
            for h, count in self._pairs(header.get("rel", [])):
                self.table.release(h, count)
        except ProtocolError as exc:
            raise self._poison(str(exc)) from None
        except BaseException as exc:  # interrupted mid-frame: the stream is lost
            self._poison(f"receiving failed: {type(exc).__name__}")
            raise
        return header, arrays, blob

    def _pairs(self, rel: object) -> list:
        if type(rel) is not list or any(type(p) is not list or len(p) != 2 for p in rel):
            raise ProtocolError("malformed release list")
        return rel

    # -------------------------------------------------------------- values
    def _import(self, h: int, type_name: str) -> Proxy:
        entry = self._proxies.get(h)
        proxy = entry[0]() if entry else None
        if proxy is None:
            proxy = self.proxy.__new__(self.proxy)
            for slot, value in (("_dl_ep", self), ("_dl_h", h), ("_dl_type", type_name),
                                ("_dl_path", ())):
                object.__setattr__(proxy, slot, value)
            ref = weakref.ref(proxy, lambda r, h=h: self._forget(h, r))
            entry = self._proxies[h] = [ref, 0]
        entry[1] += 1
        return proxy

    def _forget(self, h: int, ref) -> None:
        entry = self._proxies.get(h)
        if entry is not None and entry[0] is ref:
            del self._proxies[h]
            self._released.append([h, entry[1]])

    def _unpack(self, header: dict, arrays, argrefs=None) -> object:
        try:
            return unpack(header.get("v"), arrays, self._import, self.table.get,
                          limits=self.limits, argrefs=argrefs)
        except ProtocolError as exc:
            raise self._poison(str(exc)) from None

    def _pack(self, value: object, alias=None) -> Packed:
        try:
            return pack(value, self.table.export, limits=self.limits, alias=alias)
        except Refused:
            raise
        except ProtocolError as exc:  # nothing was sent: the stream is intact
            raise Refused(str(exc)) from None

    # -------------------------------------------------------------- requests
    def request(self, op: str, handle: int | None = None, name: str | None = None,
                value: object = None) -> object:
        packed = self._pack(value)
        self._seq += 1
        seq = self._seq
        header = {"k": "q", "s": seq, "op": op, "h": handle, "n": name}
        if op == "call":  # the caller's np.errstate holds during the call, as in one process
            header["fp"] = np.geterr()
        self._send(header, packed)
        self._waiting.append(seq)
        try:
            header, arrays, _ = self._wait(seq)
        finally:
            self._waiting.pop()
        if header["k"] == "e":
            raise make_error(header.get("en"), header.get("em"), header.get("ew"))
        reply = self._unpack(header, arrays, argrefs=packed.arrays)
        if type(reply) is not tuple or len(reply) != 2:
            raise self._poison("malformed reply")
        if op == "getattr" and "wt" in header and self.write_back_reads:
            self.watched.watch(header["wt"], reply[0])
        self._write_back(packed.arrays, reply[1])
        return reply[0]

    def _wait(self, seq: int):
        while True:
            header, arrays, blob = self._recv()
            kind = header.get("k")
            if kind == "q":
                self._serve(header, arrays, blob)
            elif kind in ("r", "e") and header.get("s") == seq:
                return header, arrays, blob
            else:
                raise self._poison(f"unexpected message {str(kind)[:10]!r} while waiting")

    def _write_back(self, own: list, changed: object) -> None:
        if type(changed) is not dict:
            raise self._poison("malformed write-back")
        for k, new in changed.items():
            if type(k) is not int or not 0 <= k < len(own) or type(new) is not np.ndarray:
                raise self._poison("malformed write-back")
            mine = own[k]
            if not isinstance(mine, np.ndarray) or not mine.flags.writeable:
                raise self._poison("write-back into a read-only array")
            if mine.shape != new.shape or mine.dtype != new.dtype:
                raise ValueError(f"argument array changed its shape or dtype in place: "
                                 f"{mine.shape} {mine.dtype} -> {new.shape} {new.dtype}")
            mine[...] = new

    def serve_until_end(self) -> None:
        """Serve the peer's requests until it says the test cell is over (student side)."""
        self.in_session = True
        try:
            while True:
                header, arrays, blob = self._recv()
                if header.get("k") == "end":
                    return
                if header.get("k") != "q":
                    raise self._poison("a reply with no request")
                self._serve(header, arrays, blob)
        finally:
            self.in_session = False
            self.lent.clear()
            self.watched.clear()

    def end_session(self) -> None:
        self._send({"k": "end"})
        self.lent.clear()
        self.watched.clear()

    # -------------------------------------------------------------- serving
    def _serve(self, header: dict, arrays: list, blob) -> None:
        op, seq = header.get("op"), header.get("s")
        try:
            value = self._unpack(header, arrays)
            with np.errstate(**_fp_state(header.get("fp"))):
                result = self._perform(op, header.get("h"), header.get("n"), value)
            changed = changed_arguments(arrays, header.get("a", []), blob) if op == "call" else {}
            packed = self._pack((result, changed),
                                alias={id(a): k for k, a in enumerate(arrays)})
            reply = {"k": "r", "s": seq}
            if op == "getattr" and type(result) is np.ndarray:
                reply["wt"] = self.lent.issue(self.table.get(header.get("h")), header.get("n"),
                                              result)
        except ProtocolError as exc:
            if not isinstance(exc, Refused):
                raise
            self._send({"k": "e", "s": seq, "en": "TypeError", "em": text_of(exc)})
        except Exception as exc:  # noqa: BLE001 - the peer gets every error of the call
            error = {"k": "e", "s": seq, "en": type(exc).__name__, "em": text_of(exc)}
            if self.lookup is not None:  # the student's side says where its code raised;
                error["ew"] = _where(exc)  # the judge's never (names of hidden tests' helpers)
            self._send(error)
        except BaseException as exc:
            if not self.report_all:  # the judge's own timeout: unwind, the stream is lost
                self._poison(f"interrupted while serving: {type(exc).__name__}")
                raise
            # the student side: SystemExit, a cell timeout in student code... fail the call
            self._send({"k": "e", "s": seq, "en": type(exc).__name__, "em": text_of(exc)})
        else:
            self._send(reply, packed)

    def _perform(self, op: object, h: object, name: object, value: object) -> object:
        if op == "lookup":
            if self.lookup is None:
                raise TypeError("lookup is not served here")
            if type(name) is not str or not name.isidentifier():
                raise NameError("bad name")
            return self.lookup(name)
        if op not in ("call", "getattr", "setattr") or type(h) is not int:
            raise self._poison(f"unknown request {str(op)[:20]!r}")
        target = self.table.get(h)
        if op == "getattr":
            return getattr(target, _public(name))
        if op == "setattr":
            setattr(target, _public(name), value)
            return None
        if type(value) is not tuple or len(value) != 2 or type(value[0]) is not list or \
                type(value[1]) is not dict or any(type(k) is not str for k in value[1]):
            raise self._poison("malformed call")
        return target(*value[0], **value[1])
