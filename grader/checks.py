"""Student-facing assertions: each failure says what is wrong, not just ``AssertionError``.

Test cells in the notebooks call these; gradient checks live in :mod:`grader.gradcheck`.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable

import numpy as np

__all__ = [
    "assert_close",
    "assert_finite",
    "assert_inputs_unchanged",
    "assert_no_loops",
    "assert_scalar",
    "assert_shape",
]


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape}, dtype {x.dtype}"
    return type(x).__name__


def assert_shape(x: object, shape: tuple[int, ...], name: str = "result") -> None:
    """``x`` is an ndarray of exactly ``shape``; a broadcasting accident is named as such."""
    if x is None:
        raise AssertionError(f"{name} is None: did the function forget to `return`?")
    if not isinstance(x, np.ndarray):
        raise AssertionError(f"{name} should be a numpy array of shape {shape}, got {_describe(x)}")
    if x.shape == tuple(shape):
        return
    msg = f"{name} has shape {x.shape}, expected {tuple(shape)}"
    n = shape[0] if len(shape) >= 1 else None
    if n is not None and n > 1 and x.ndim == 2 and x.shape == (n, n) and tuple(shape) != (n, n):
        msg += (
            ": an (n, n) array usually comes from broadcasting an (n, 1) column against an (n,) "
            "vector; make both (n,) with .reshape(-1) (or .ravel())"
        )
    elif x.ndim == 2 and x.shape == tuple(shape)[::-1]:
        msg += ": transposed?"
    elif x.size == int(np.prod(shape)):
        msg += f": right number of entries; reshape to {tuple(shape)}"
    raise AssertionError(msg)


def assert_scalar(x: object, name: str = "result") -> float:
    """``x`` is a real number (Python or NumPy scalar, or a 0-d/size-1 array); return it."""
    if x is None:
        raise AssertionError(f"{name} is None: did the function forget to `return`?")
    if isinstance(x, np.ndarray):
        if x.size != 1:
            raise AssertionError(
                f"{name} should be a single number, got an array of shape {x.shape}"
                + (": did you forget to average (np.mean) over the batch?" if x.ndim else "")
            )
        x = x.reshape(())[()]
    if not isinstance(x, (int, float, np.integer, np.floating)) or isinstance(x, bool):
        raise AssertionError(f"{name} should be a number, got {type(x).__name__}")
    value = float(x)
    if not np.isfinite(value):
        raise AssertionError(f"{name} is {value}: overflow or division by zero")
    return value


def assert_finite(x: np.ndarray, name: str = "result") -> None:
    """No NaN or inf anywhere in ``x``."""
    arr = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(k) for k in np.unravel_index(int(np.argmax(bad)), arr.shape))
        raise AssertionError(
            f"{name} contains {int(bad.sum())} NaN/inf values (first at {first}): overflow? "
            "exp of large numbers needs the max-shift / log-sum-exp trick"
        )


def assert_close(
    actual: object,
    expected: object,
    name: str = "result",
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> None:
    """``actual`` equals ``expected`` within ``|a - e| <= atol + rtol·|e|`` (elementwise)."""
    exp = np.asarray(expected, dtype=np.float64)
    if exp.ndim == 0:
        value = assert_scalar(actual, name)
        if not abs(value - float(exp)) <= atol + rtol * abs(float(exp)):
            hint = ""
            if float(exp) != 0:
                ratio = value / float(exp)
                for r, why in ((-1, "sign"), (2, "factor 2"), (0.5, "factor 2")):
                    if abs(ratio - r) < 1e-6:
                        hint = f" (ratio {ratio:g}: {why}?)"
            raise AssertionError(f"{name} = {value!r}, expected {float(exp)!r}{hint}")
        return
    assert_shape(actual, exp.shape, name)
    act = np.asarray(actual, dtype=np.float64)
    assert_finite(act, name)
    diff = np.abs(act - exp)
    bad = diff > atol + rtol * np.abs(exp)
    if bad.any():
        i = tuple(int(k) for k in np.unravel_index(int(np.argmax(diff)), exp.shape))
        raise AssertionError(
            f"{name} differs from the expected value in {int(bad.sum())} of {exp.size} entries; "
            f"largest difference at {i}: got {act[i]:.6g}, expected {exp[i]:.6g}"
        )


def assert_inputs_unchanged(fn: Callable, *args: np.ndarray, name: str | None = None):
    """Call ``fn(*args)`` and fail if it modified any array argument in place; return its result.

    In-place bugs (``x[x < 0] = 0`` on the caller's array) pass gradient checks, so they are
    tested directly.
    """
    before = [a.copy() if isinstance(a, np.ndarray) else None for a in args]
    result = fn(*args)
    label = name or getattr(fn, "__qualname__", "the function")
    for k, (a, b) in enumerate(zip(args, before, strict=True)):
        if b is not None and not np.array_equal(a, b, equal_nan=True):
            raise AssertionError(
                f"{label} modified its argument #{k + 1} in place; work on a copy "
                "(e.g. np.maximum(x, 0) or x * mask instead of assigning into x)"
            )
    return result


def assert_no_loops(fn: Callable, name: str | None = None) -> None:
    """``fn``'s source contains no ``for``/``while`` loop and no comprehension."""
    label = name or getattr(fn, "__name__", "function")
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise AssertionError(f"cannot read the source of {label}: {exc}") from None
    loops = (ast.For, ast.While, ast.AsyncFor, ast.ListComp, ast.SetComp, ast.DictComp,
             ast.GeneratorExp)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, loops):
            kind = type(node).__name__
            raise AssertionError(
                f"{label} must be vectorised but has a Python loop ({kind}) at line "
                f"{node.lineno} of its source: express it with array operations"
            )
