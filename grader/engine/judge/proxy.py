"""Stand-ins for the peer's objects, and what the judge lets cross to the student.

:class:`Remote` (judge side) stands for a student object: call it, read and assign its public
attributes. It has no ``__array__``, ``__float__``, ``__eq__`` (identity only), ``__len__``,
``__iter__`` or ``__getitem__``, and ``bool()`` of it raises: a student object where a value was
expected fails the check instead of passing it. :class:`JudgeObject` (student side) stands for
a test's callback, helper object or generator; it works only while a test cell runs.

:func:`judge_policy` decides which judge objects may be lent to student code (everything else
raises :class:`~grader.engine.judge.codec.Refused`): functions and methods (their internals are
``_``-names, never served), functions of NumPy and ``math``, NumPy objects
(``np.random.Generator``, ufuncs), instances of classes defined in test cells and of ``grader``
classes. Never a module, a class, a frame or code object, a ``builtins`` function (``open``,
``getattr``, ``eval``), ctypes or thread objects: student code cannot walk to the judge's
globals or run code of its choosing there.
"""

from __future__ import annotations

import functools
import types

import numpy as np

from grader.engine.judge.base import Proxy, Refused

#: ``__name__`` of the namespace test cells run in (their classes' ``__module__``).
JUDGE_MODULE = "__judge__"
_SAFE_MODULE_FUNCTIONS = {"math", "cmath"}
_SAFE_TYPES = (types.FunctionType, types.MethodType, functools.partial, np.ufunc)


def _safe_module(name: object) -> bool:
    if type(name) is not str:
        return False
    root = name.split(".")[0]
    return name == JUDGE_MODULE or root == "numpy" or (
        root == "grader" and not name.startswith(("grader.engine", "grader.course")))


def judge_policy(obj: object) -> None:
    """Raise :class:`Refused` unless ``obj`` may be lent to student code as a handle."""
    kind = type(obj)
    if isinstance(obj, types.BuiltinFunctionType):
        owner = obj.__self__
        if isinstance(owner, types.ModuleType):
            if owner.__name__ in _SAFE_MODULE_FUNCTIONS or _safe_module(owner.__name__):
                return
        elif owner is not None and (type(owner) in (list, dict, set) or _allowed(owner)):
            return
    elif kind in _SAFE_TYPES or _allowed(obj):
        return
    raise Refused(f"a {kind.__name__} of the test cannot be lent to student code")


def _allowed(obj: object) -> bool:
    if isinstance(obj, type | types.ModuleType | types.CodeType | types.FrameType |
                  types.TracebackType | types.GeneratorType | types.CoroutineType |
                  types.AsyncGeneratorType | types.CellType):
        return False
    kind = type(obj)
    return kind in _SAFE_TYPES or _safe_module(getattr(kind, "__module__", None))


class Remote(Proxy):
    """A student object, seen from the judge."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        return _derived(self, self._dl_ep.request("call", self._dl_h, None,
                                                  (list(args), kwargs)), "()")

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return _derived(self, self._dl_ep.request("getattr", self._dl_h, name), name)

    def __setattr__(self, name: str, value) -> None:
        if name.startswith("_"):
            raise AttributeError(f"cannot assign {name!r} of a student object")
        self._dl_ep.request("setattr", self._dl_h, name, value)

    def __bool__(self) -> bool:
        raise TypeError(f"your code returned an object of class {self._dl_type} where a value "
                        "was expected (a number, an array, True or False)")

    def __repr__(self) -> str:
        return f"<student {self._dl_type} object>"


def _derived(parent: Proxy, value: object, step: str) -> object:
    """Record where a new Remote came from (``Linear``, ``()``, ``forward``): the path lets
    ``assert_no_loops`` find its source."""
    if isinstance(value, Remote) and not value._dl_path and parent._dl_path:
        object.__setattr__(value, "_dl_path", parent._dl_path + (step,))
    return value


class JudgeObject(Proxy):
    """A test's object (callback, helper, generator), seen from student code."""

    __slots__ = ()

    def _dl_request(self, op: str, name=None, value=None):
        if not self._dl_ep.in_session:
            raise RuntimeError("a test's object was used outside the test cell that made it")
        return self._dl_ep.request(op, self._dl_h, name, value)

    def __call__(self, *args, **kwargs):
        return self._dl_request("call", None, (list(args), kwargs))

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._dl_request("getattr", name)

    def __setattr__(self, name: str, value) -> None:
        if name.startswith("_"):
            raise AttributeError(f"cannot assign {name!r} of a test's object")
        self._dl_request("setattr", name, value)

    def __repr__(self) -> str:
        return f"<test's {self._dl_type} object>"
