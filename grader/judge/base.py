"""What both sides share: the errors, the limits, the dtypes that cross, the proxy base."""

from __future__ import annotations

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


def make_error(name: object, message: object) -> Exception:
    name = name if type(name) is str else "Exception"
    message = message if type(message) is str else ""
    cls = SAFE_ERRORS.get(name)
    return cls(message) if cls is not None else StudentError(name[:100], message)


def text_of(exc: BaseException) -> str:
    try:
        return str(exc)[:4000]
    except BaseException:  # noqa: BLE001 - a __str__ of the student's may raise anything
        return ""
