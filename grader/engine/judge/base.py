"""What both sides share: the errors, the limits, the dtypes that cross, the proxy base."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

MAX_INT = 2**128

#: The only dtypes that cross by value (every byte order), as ``np.dtype(...).str``.
_KINDS = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
          np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128]
DTYPES: dict[str, np.dtype] = {}
for _kind in _KINDS:
    for _order in "<>":
        _dt = np.dtype(_kind).newbyteorder(_order)
        DTYPES[_dt.str] = _dt
SCALAR_TYPES = tuple(_KINDS)


class ProtocolError(BaseException):
    """A message broke the format or a limit, or the peer broke the protocol.

    Not an ``Exception``: a test cell's ``except Exception`` cannot swallow it.
    """


class Refused(ProtocolError):
    """The sender's policy does not let this object cross (nothing was sent)."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 256 << 20  # a whole message
    max_header: int = 64 << 20  # its JSON part
    max_depth: int = 32
    max_items: int = 1_000_000


DEFAULT_LIMITS = Limits()


class Proxy:
    """Base of the objects that stand for the peer's objects (``Remote``, ``JudgeObject``)."""

    __slots__ = ("_dl_ep", "_dl_h", "_dl_type", "_dl_path", "__weakref__")


#: Built-in exception classes an error of the peer may be raised as; anything else is a
#: :class:`StudentError` carrying the peer's type name and message.
SAFE_ERRORS = {cls.__name__: cls for cls in (
    AssertionError, ArithmeticError, AttributeError, FloatingPointError, IndexError, KeyError,
    LookupError, NameError, NotImplementedError, OverflowError, RecursionError, RuntimeError,
    TypeError, UnboundLocalError, ValueError, ZeroDivisionError)}


class StudentError(Exception):
    """An exception of a type outside :data:`SAFE_ERRORS`, raised by the peer's code."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}" if message else name)
        self.name, self.message = name, message


def make_error(name: object, message: object, where: object = None) -> Exception:
    name = name if type(name) is str else "Exception"
    message = message if type(message) is str else ""
    cls = SAFE_ERRORS.get(name)
    exc = cls(message) if cls is not None else StudentError(name[:100], message)
    exc.notebook_frames = _frames(where)  # where the peer's code raised it (for messages)
    return exc


_FRAME_NAME = re.compile(r"[\w.<>]+")


def _frames(where: object) -> list[tuple[str, int]]:
    """``[(qualified name, line)]`` sent with an error, checked (it is only ever displayed)."""
    if type(where) is not list:
        return []
    return [(f[0][:200], f[1]) for f in where[:50]
            if type(f) is list and len(f) == 2 and type(f[0]) is str and type(f[1]) is int
            and _FRAME_NAME.fullmatch(f[0][:200])]


def _library_dirs() -> tuple[str, ...]:
    import os
    import sys
    import sysconfig

    import grader

    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, grader.__path__[0]}
    dirs |= {v for k, v in sysconfig.get_paths().items() if k in (
        "stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.join(os.path.abspath(d), "") for d in dirs if d)


def notebook_frames(tb) -> list[list]:
    """``[[qualified name, line]]`` of the frames of ``tb`` in the notebook's own code (not the
    Python installation, NumPy or the grader), outermost first."""
    import traceback

    libs = _library_dirs()
    out = []
    for fs in traceback.extract_tb(tb, limit=200) if tb is not None else []:
        if fs.filename.startswith(libs) or fs.filename.startswith(("<frozen", "<grader")):
            continue
        out.append([str(getattr(fs, "name", "")), int(fs.lineno or 0)])
    code_names = {}
    frame = tb
    while frame is not None:  # the qualified name (Class.method), where Python has it
        code = frame.tb_frame.f_code
        code_names[(code.co_name, frame.tb_lineno)] = getattr(code, "co_qualname", code.co_name)
        frame = frame.tb_next
    return [[code_names.get((n, ln), n), ln] for n, ln in out][-50:]


def text_of(exc: BaseException) -> str:
    try:
        return str(exc)[:4000]
    except BaseException:  # noqa: BLE001 - a __str__ of the student's may raise anything
        return ""
