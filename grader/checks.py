"""Student-facing assertions: each failure says what is wrong, not just ``AssertionError``.

A message describes what differs (where, by how much); it names a cause (``likely cause:``)
only when the evidence is exact (:mod:`grader.diagnose`). Test cells call these; gradient
checks live in :mod:`grader.gradcheck`. Every function sets ``__tracebackhide__`` so IPython
and pytest show the student the failing line of the test cell, not the kit's internals.

What differs is worked out in :mod:`grader.compare`; :func:`uses` (whose code raised an error)
lives in :mod:`grader.blame` and is importable from here.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Mapping

import numpy as np

from grader.blame import uses
from grader.compare import close_problem, nonfinite_problem, scalar_problem, shape_problem
from grader.diagnose import (
    MODIFIES_INPUT,
    PYTHON_LOOP,
    close,
    fail,
    sure_cause,
    with_cause,
)

__all__ = [
    "assert_close",
    "assert_finite",
    "assert_inputs_unchanged",
    "assert_no_loops",
    "assert_scalar",
    "assert_shape",
    "uses",
]


def assert_shape(x: object, shape: tuple[int, ...], name: str = "result") -> None:
    """``x`` is an ndarray of exactly ``shape``; an ``(n, n)`` broadcast is named as such."""
    __tracebackhide__ = True
    problem = shape_problem(x, tuple(shape), name)
    if problem is not None:
        fail(AssertionError(with_cause(*problem)))


def assert_scalar(x: object, name: str = "result") -> float:
    """``x`` is a real number (Python or NumPy scalar, or a 0-d/size-1 array); return it."""
    __tracebackhide__ = True
    problem = scalar_problem(x, name)
    if problem:
        fail(AssertionError(problem))
    return float(np.asarray(x).reshape(()))


def assert_finite(x: np.ndarray, name: str = "result") -> None:
    """No NaN or inf anywhere in ``x``."""
    __tracebackhide__ = True
    problem = nonfinite_problem(np.asarray(x, dtype=np.float64), name)
    if problem:
        fail(AssertionError(problem))


#: How a message says that the second probe is the one that differs.
SECOND_INPUT = "on a second test input"


def assert_close(
    actual: object,
    expected: object,
    name: str = "result",
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    bugs: Mapping[str, object] | None = None,
    probe2: tuple | None = None,
) -> None:
    """``actual`` equals ``expected`` within ``|a - e| <= atol + rtol·|e|`` (elementwise).

    ``probe2 = (actual2, expected2, bugs2)`` is a second, independent input of the same check:
    the check fails when either probe differs, and the message says where and by how much (on
    the first probe that differs).

    ``bugs`` / ``bugs2`` map cause phrases (:mod:`grader.diagnose`) to the value each known
    mistake produces on that probe's inputs. A failure names a cause only when it is sure
    (:func:`grader.diagnose.sure_cause`): the student's values match that phrase's variant on
    *both* probes, the variant differs from the right answer on both, and no other phrase
    fits both. Without ``probe2`` a variant names nothing (one input can give the same number
    for two different bugs). Exact built-in relations (a transposed matrix, an ``(n, n)``
    broadcast) are named when they hold on every probe given.
    """
    __tracebackhide__ = True
    exp = np.asarray(expected, dtype=np.float64)
    problem = close_problem(actual, exp, name, rtol, atol)
    probes = [(actual, exp, dict(bugs or {}), problem)]
    if probe2 is not None:
        if not isinstance(probe2, tuple) or len(probe2) not in (2, 3):
            raise TypeError("probe2 is (actual2, expected2) or (actual2, expected2, bugs2)")
        actual2, expected2 = probe2[0], probe2[1]
        exp2 = np.asarray(expected2, dtype=np.float64)
        problem2 = close_problem(actual2, exp2, f"{name} ({SECOND_INPUT})", rtol, atol)
        probes.append((actual2, exp2, dict(probe2[2] if len(probe2) > 2 and probe2[2] else {}),
                       problem2))
    failed = [p for p in probes if p[3] is not None]
    if not failed:
        return
    desc = failed[0][3][0]
    builtins = {p[3][1] if p[3] is not None else None for p in probes}
    why = None
    if len(builtins) == 1 and None not in builtins:  # the same exact relation on every probe
        why = builtins.pop()
        rivals = [
            phrase for a, e, bugs, _ in probes for phrase, v in bugs.items()
            if phrase != why and close(a, v, rtol, atol) and not close(v, e, rtol, atol)
        ]
        if rivals:  # an author's variant fits too: two candidate causes, name none
            why = None
    elif len(probes) > 1 and len(failed) == len(probes):
        why = sure_cause([(a, e, bugs) for a, e, bugs, _ in probes], rtol, atol)
        if why is not None:
            desc += "\n(on both test inputs your values are exactly what this mistake gives)"
    fail(AssertionError(with_cause(desc, why)))


def assert_inputs_unchanged(fn: Callable, *args: np.ndarray, name: str | None = None):
    """Call ``fn(*args)`` and fail if it modified any array argument in place; return its result.

    In-place bugs (``x[x < 0] = 0`` on the caller's array) pass gradient checks, so they are
    tested directly.
    """
    __tracebackhide__ = True
    before = [a.copy() if isinstance(a, np.ndarray) else None for a in args]
    result = fn(*args)
    label = name or getattr(fn, "__qualname__", "the function")
    for k, (a, b) in enumerate(zip(args, before, strict=True)):
        if b is not None and not np.array_equal(a, b, equal_nan=True):
            changed = int(np.sum(~((a == b) | (np.isnan(a) & np.isnan(b)))))
            fail(AssertionError(with_cause(
                f"{label} modified its argument #{k + 1} in place ({changed} entries changed); "
                "work on a copy (e.g. np.maximum(x, 0) or x * mask instead of assigning into x)",
                MODIFIES_INPUT,
            )))
    return result


_LOOPS = (ast.For, ast.While, ast.AsyncFor, ast.ListComp, ast.SetComp, ast.DictComp,
          ast.GeneratorExp)
_PER_ELEMENT_CALLS = {"map", "filter", "vectorize", "apply_along_axis", "frompyfunc"}


def _call_name(node: ast.Call) -> str | None:
    """The name of a per-element call (``map(...)``, ``np.vectorize(...)``), else None."""
    fn = node.func
    if isinstance(fn, ast.Name):
        return fn.id if fn.id in _PER_ELEMENT_CALLS | {"reduce"} else None
    if isinstance(fn, ast.Attribute):
        if fn.attr == "reduce":  # functools.reduce loops in Python; np.add.reduce does not
            is_functools = isinstance(fn.value, ast.Name) and fn.value.id == "functools"
            return "functools.reduce" if is_functools else None
        return fn.attr if fn.attr in _PER_ELEMENT_CALLS else None
    return None


def assert_no_loops(fn: Callable, name: str | None = None) -> None:
    """``fn``'s source has no loop, comprehension, or per-element call (``map``, ``np.vectorize``,
    ``np.apply_along_axis``, ...)."""
    __tracebackhide__ = True
    label = name or getattr(fn, "__name__", "function")
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        fail(AssertionError(f"cannot read the source of {label}: {exc}"))
    for node in ast.walk(ast.parse(source)):
        kind = None
        if isinstance(node, _LOOPS):
            kind = f"a Python loop ({type(node).__name__})"
        elif isinstance(node, ast.Call) and _call_name(node):
            kind = f"a call per element ({_call_name(node)})"
        if kind:
            fail(AssertionError(with_cause(
                f"{label} must be vectorised but has {kind} at line {node.lineno} of its "
                "source: express it with array operations",
                PYTHON_LOOP,
            )))
