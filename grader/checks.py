"""Student-facing assertions: each failure says what is wrong, not just ``AssertionError``.

A message describes what differs (where, by how much); it names a cause (``likely cause:``)
only when the evidence is exact (:mod:`grader.diagnose`). Test cells call these; gradient
checks live in :mod:`grader.gradcheck`. Every function sets ``__tracebackhide__`` so IPython
and pytest show the student the failing line of the test cell, not the kit's internals.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import numpy as np

from grader.diagnose import (
    BROADCAST_N1,
    MODIFIES_INPUT,
    PYTHON_LOOP,
    TRANSPOSED,
    close,
    describe_difference,
    describe_multiple,
    describe_value,
    exact_multiple,
    fail,
    student_words,
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


def _shape_problem(x: object, shape: tuple[int, ...], name: str) -> tuple[str, str | None] | None:
    """``(description, cause or None)`` when ``x`` is not an ndarray of ``shape``."""
    if x is None:
        return f"{name} is None: did the function forget to `return`?", None
    if not isinstance(x, np.ndarray):
        return f"{name} should be a numpy array of shape {shape}, got {describe_value(x)}", None
    if x.shape == shape:
        return None
    msg = f"{name} has shape {x.shape}, expected {shape}"
    n = shape[0] if shape else 0
    if n > 1 and shape in ((n,), (n, 1)) and x.shape == (n, n):
        hint = msg + "; make both operands (n,) with .reshape(-1)"
        return hint, BROADCAST_N1 if _separable(x, 1e-6, 1e-8) else None
    if x.ndim == 2 and x.shape == shape[::-1]:
        return msg + " (its transpose)", None
    if x.size == int(np.prod(shape)):
        return msg + f": right number of entries; reshape to {shape}", None
    return msg, None


def assert_shape(x: object, shape: tuple[int, ...], name: str = "result") -> None:
    """``x`` is an ndarray of exactly ``shape``; an ``(n, n)`` broadcast is named as such."""
    __tracebackhide__ = True
    problem = _shape_problem(x, tuple(shape), name)
    if problem is not None:
        fail(AssertionError(with_cause(*problem)))


def _scalar_problem(x: object, name: str) -> str | None:
    """Why ``x`` is not a finite real number, or None."""
    if x is None:
        return f"{name} is None: did the function forget to `return`?"
    if isinstance(x, np.ndarray):
        if x.size != 1:
            return (
                f"{name} should be a single number, got an array of shape {x.shape}"
                + (": did you forget to average (np.mean) over the batch?" if x.ndim else "")
            )
        x = x.reshape(())[()]
    if not isinstance(x, (int, float, np.integer, np.floating)) or isinstance(x, bool):
        return f"{name} should be a number, got {describe_value(x)}"
    if not np.isfinite(float(x)):
        return f"{name} is {float(x)} (NaN/inf come from overflow or 0/0, log 0)"
    return None


def assert_scalar(x: object, name: str = "result") -> float:
    """``x`` is a real number (Python or NumPy scalar, or a 0-d/size-1 array); return it."""
    __tracebackhide__ = True
    problem = _scalar_problem(x, name)
    if problem:
        fail(AssertionError(problem))
    return float(np.asarray(x).reshape(()))


def _nonfinite(arr: np.ndarray, name: str) -> str | None:
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    first = tuple(int(k) for k in np.unravel_index(int(np.argmax(bad)), arr.shape))
    return (
        f"{name} contains {int(bad.sum())} NaN/inf values of {arr.size} (first at {first}); "
        "NaN/inf come from overflow (exp of a large number) or from 0/0, log 0, 1/0"
    )


def assert_finite(x: np.ndarray, name: str = "result") -> None:
    """No NaN or inf anywhere in ``x``."""
    __tracebackhide__ = True
    problem = _nonfinite(np.asarray(x, dtype=np.float64), name)
    if problem:
        fail(AssertionError(problem))


def _broadcast_n1(actual: object, exp: np.ndarray, rtol: float, atol: float) -> bool:
    """``actual`` is an ``(n, n)`` array that an ``(n,)``/``(n, 1)`` mix-up gives: its diagonal
    is the expected values and each entry is ``u[i] + v[j]`` or ``u[i] * v[j]``."""
    n = exp.shape[0] if exp.ndim else 0
    if not (n > 2 and exp.shape in ((n,), (n, 1)) and isinstance(actual, np.ndarray)
            and actual.shape == (n, n)):
        return False
    a = np.asarray(actual, dtype=np.float64)
    return close(np.diag(a), exp.reshape(-1), rtol, atol) and _separable(a, rtol, atol)


def _separable(a: np.ndarray, rtol: float, atol: float) -> bool:
    """``a[i, j]`` is ``u[i] + v[j]`` or ``u[i] * v[j]``: what broadcasting a column against a
    row gives (an ``(n, n)`` array from other mistakes, such as ``X @ X.T``, is not)."""
    if a.dtype == object or not np.issubdtype(a.dtype, np.number):
        return False
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or not np.all(np.isfinite(a)):
        return False
    scale = atol + rtol * float(np.max(np.abs(a)))
    summed = a[:, :1] + a[:1, :] - a[0, 0]
    if np.all(np.abs(a - summed) <= 10 * scale):
        return True
    s = np.linalg.svd(a, compute_uv=False)
    return bool(s[0] > 0 and s[1] <= 1e-9 * s[0] + scale)


def _close_problem(actual, exp: np.ndarray, name: str, rtol: float, atol: float):
    """``(description, built-in cause or None)`` when ``actual`` is not close, else None."""
    __tracebackhide__ = True
    if exp.ndim == 0:
        problem = _scalar_problem(actual, name)
        if problem:
            return problem, None
        value = float(np.asarray(actual).reshape(()))
        if abs(value - float(exp)) <= atol + rtol * abs(float(exp)):
            return None
        c = exact_multiple(np.array([value]), exp.reshape(1))
        ratio = describe_multiple(c, scalar=True)
        return f"{name} = {value!r}, expected {float(exp)!r}{ratio}", None
    problem = _shape_problem(actual, exp.shape, name)
    if problem is not None:
        desc, why = problem
        flipped = isinstance(actual, np.ndarray) and actual.ndim == 2
        if why is None and flipped and actual.T.shape == exp.shape and close(actual.T, exp, rtol,
                                                                              atol):
            why = TRANSPOSED
        if why == BROADCAST_N1 and not _broadcast_n1(actual, exp, rtol, atol):
            why = None  # (n, n) but not the values of a broadcast: say the shape only
        return desc, why
    act = np.asarray(actual, dtype=np.float64)
    if close(act, exp, rtol, atol):
        return None
    nonfinite = _nonfinite(act, name)
    if nonfinite and np.all(np.isfinite(exp)):
        return nonfinite, None
    desc = describe_difference(act, exp, name, rtol, atol)
    desc += describe_multiple(exact_multiple(act, exp))
    transposed = (
        act.ndim == 2 and not close(exp.T, exp, rtol, atol) and close(act.T, exp, rtol, atol)
    )
    return desc, TRANSPOSED if transposed else None


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
    problem = _close_problem(actual, exp, name, rtol, atol)
    probes = [(actual, exp, dict(bugs or {}), problem)]
    if probe2 is not None:
        if not isinstance(probe2, tuple) or len(probe2) not in (2, 3):
            raise TypeError("probe2 is (actual2, expected2) or (actual2, expected2, bugs2)")
        actual2, expected2 = probe2[0], probe2[1]
        exp2 = np.asarray(expected2, dtype=np.float64)
        problem2 = _close_problem(actual2, exp2, f"{name} ({SECOND_INPUT})", rtol, atol)
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


def _library_dirs() -> tuple[str, ...]:
    import os
    import sys
    import sysconfig

    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(__file__)}
    dirs |= {v for k, v in sysconfig.get_paths().items() if k in (
        "stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.join(os.path.abspath(d), "") for d in dirs if d)


def _notebook_frames(exc: BaseException) -> list[tuple[str, int]]:
    """``[(qualified name, line)]`` of the notebook code ``exc`` went through, outermost first:
    this process's frames (not Python's, NumPy's or the grader's), then those the judge's peer
    reported (``exc.notebook_frames``: the student's process, when the test runs in the judge)."""
    libs = _library_dirs()
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if not code.co_filename.startswith(libs) and not code.co_filename.startswith(
                ("<frozen", "<grader", "<setup")):
            frames.append((getattr(code, "co_qualname", code.co_name), tb.tb_lineno))
        tb = tb.tb_next
    frames += [tuple(f) for f in getattr(exc, "notebook_frames", None) or []]
    return frames


def _student_frames(exc: BaseException) -> list[tuple[str, int]]:
    """The frames of the student's own functions and classes (a test's helpers start with
    ``_``; a cell's top level and lambdas are ``<...>``)."""
    return [(name, line) for name, line in _notebook_frames(exc)
            if name and not name.startswith(("_", "<"))]


def _error_text(exc: BaseException) -> str:
    text = str(exc) if not isinstance(exc, NotImplementedError) else ""
    kind = getattr(exc, "name", None) if type(exc).__name__ == "StudentError" else None
    kind = kind or type(exc).__name__
    if kind == "StudentError":
        kind = "an error"
    if type(exc).__name__ == "StudentError":
        text = getattr(exc, "message", "") or ""
    return student_words(f"{kind}: {text}" if text else kind)


@contextmanager
def uses(*names: str) -> Iterator[None]:
    """For a test of code that builds on earlier exercises: an error (anything but a failed
    check, an ``AssertionError``) becomes a failed check that says whose code raised it.

    Raised inside one of ``names`` (its innermost frame of the student's code is a method of
    that class or that function): ``this test uses Sequential, Linear: make Linear's own tests
    pass first (the error was: ValueError: matmul ..., in Linear.forward, line 12)``. Raised in
    the student's code under test itself (say ``train_epoch`` is still the stub): said as that
    function's own error (``train_epoch is not written yet: it raises NotImplementedError
    (line 9)``), never blamed on the earlier exercises.
    """
    __tracebackhide__ = True
    try:
        yield
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001 - any error of the student's code is reported
        fail(AssertionError(_uses_message(exc, names)))


def _uses_message(exc: BaseException, names: tuple[str, ...]) -> str:
    frames = _student_frames(exc)
    error = _error_text(exc)
    if not frames:  # raised by the test's own code, on something the student's code returned
        return f"this test could not use what your code returned (the error was: {error})"
    where, line = frames[-1]
    owner = where.split(".")[0]
    at = f"in {where.replace('.<locals>', '')}, line {line}"
    if owner in names:
        return (f"this test uses {', '.join(names)}: make {owner}'s own tests pass first "
                f"(the error was: {error}, {at})")
    if isinstance(exc, NotImplementedError):
        who = "it still" if where == owner else f"{where.replace('.<locals>', '')}"
        return (f"{owner} is not written yet: {who} raises NotImplementedError "
                f"(line {line}); replace the stub with your code")
    return f"{owner} raised {error} ({at})"
