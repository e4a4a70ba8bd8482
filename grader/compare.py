"""Comparing a student's value with the expected one, and describing how they differ.

Each function returns a description of what is wrong (where, by how much) or None when the
value is right; the ``assert_*`` API of :mod:`grader.checks` turns a description into a failed
check. A cause is returned only for the exact built-in relations (a transposed matrix, an
``(n, n)`` broadcast of an ``(n,)`` against an ``(n, 1)``).
"""

from __future__ import annotations

import numpy as np

from grader.diagnose import (
    BROADCAST_N1,
    TRANSPOSED,
    close,
    describe_difference,
    describe_multiple,
    describe_value,
    exact_multiple,
)


def shape_problem(x: object, shape: tuple[int, ...], name: str) -> tuple[str, str | None] | None:
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


def scalar_problem(x: object, name: str) -> str | None:
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


def nonfinite_problem(arr: np.ndarray, name: str) -> str | None:
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    first = tuple(int(k) for k in np.unravel_index(int(np.argmax(bad)), arr.shape))
    return (
        f"{name} contains {int(bad.sum())} NaN/inf values of {arr.size} (first at {first}); "
        "NaN/inf come from overflow (exp of a large number) or from 0/0, log 0, 1/0"
    )


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


def close_problem(actual, exp: np.ndarray, name: str, rtol: float, atol: float):
    """``(description, built-in cause or None)`` when ``actual`` is not close, else None."""
    __tracebackhide__ = True
    if exp.ndim == 0:
        problem = scalar_problem(actual, name)
        if problem:
            return problem, None
        value = float(np.asarray(actual).reshape(()))
        if abs(value - float(exp)) <= atol + rtol * abs(float(exp)):
            return None
        c = exact_multiple(np.array([value]), exp.reshape(1))
        ratio = describe_multiple(c, scalar=True)
        return f"{name} = {value!r}, expected {float(exp)!r}{ratio}", None
    problem = shape_problem(actual, exp.shape, name)
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
    nonfinite = nonfinite_problem(act, name)
    if nonfinite and np.all(np.isfinite(exp)):
        return nonfinite, None
    desc = describe_difference(act, exp, name, rtol, atol)
    desc += describe_multiple(exact_multiple(act, exp))
    transposed = (
        act.ndim == 2 and not close(exp.T, exp, rtol, atol) and close(act.T, exp, rtol, atol)
    )
    return desc, TRANSPOSED if transposed else None

