"""Finite-difference gradient checks that say *why* a gradient is wrong.

Conventions (COURSE_NOTES.md, CS231n ``gradient_check.py``):

* centred differences ``(f(x + h) - f(x - h)) / 2h`` with ``h = 1e-5``, in float64;
* relative error elementwise, then the maximum, with a floor on the denominator;
* for tensors too big to perturb entry by entry, a random subset of entries and a few
  random directions ``v``: ``(f(x + hv) - f(x - hv)) / 2h ≈ <grad f, v>``.

``f`` is always a function of the array ``x`` that returns a scalar, and it must use its
argument: a test may run where a student's object is remote and an array read from it is a copy
(docs/AUTHORING.md). For a parameter of an object use :func:`through_attribute`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "GradientCheckError",
    "check_gradient",
    "diagnose",
    "directional_derivative",
    "numerical_gradient",
    "numerical_gradient_array",
    "rel_error",
    "through_attribute",
]

ScalarFn = Callable[[np.ndarray], float]

GOOD, SUSPICIOUS, WRONG = 1e-7, 1e-4, 1e-2  # the thresholds students are told


class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with finite differences (message names the likely bug)."""


def _as_float64(x: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.float64:
        raise TypeError(
            f"{what} has dtype {x.dtype}; gradient checks need float64 "
            "(float32 round-off swamps a finite difference). Use x.astype(np.float64)."
        )
    return x


def numerical_gradient(f: ScalarFn, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Centred-difference gradient of the scalar function ``f`` at ``x``; same shape as ``x``."""
    x = _as_float64(x, "x")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = float(f(x))
        x[i] = old - h
        f_minus = float(f(x))
        x[i] = old  # restore
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Gradient of ``sum(f(x) * dout)``: the input gradient a layer's ``backward(dout)`` returns."""
    return numerical_gradient(lambda z: float(np.sum(f(z) * dout)), x, h)


def directional_derivative(f: ScalarFn, x: np.ndarray, v: np.ndarray, h: float = 1e-5) -> float:
    """``(f(x + hv) - f(x - hv)) / 2h``; ``x`` is restored afterwards."""
    x = _as_float64(x, "x")
    old = x.copy()
    try:
        x += h * v
        f_plus = float(f(x))
        x[...] = old - h * v
        f_minus = float(f(x))
    finally:
        x[...] = old
    return (f_plus - f_minus) / (2 * h)


def rel_error(a: np.ndarray, n: np.ndarray, floor: float = 1e-8) -> float:
    """``max |a - n| / max(floor, |a| + |n|)``, elementwise then the maximum."""
    a = np.asarray(a, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {n.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - n) / np.maximum(floor, np.abs(a) + np.abs(n))))


def _near(value: float, target: float, rtol: float = 0.05) -> bool:
    return abs(value - target) <= rtol * abs(target)


def diagnose(
    analytic: object, numeric: np.ndarray, batch_size: int | None = None
) -> str | None:
    """Name the likely bug when ``analytic`` differs from ``numeric``, or None if no pattern fits.

    Patterns (COURSE_NOTES.md): NaN/inf, transposed or broadcast shapes, and an analytic
    gradient that is a constant multiple of the true one (sign, factor 2, batch size).
    """
    if analytic is None:
        return "the gradient is None: did the function forget to `return` it?"
    analytic = np.asarray(analytic)
    numeric = np.asarray(numeric)
    if analytic.dtype == object:
        return f"the gradient is not a numeric array (dtype object, shape {analytic.shape})"
    if not np.all(np.isfinite(numeric)):
        return (
            "the loss itself is NaN/inf at this point, so no gradient can be checked: "
            "look for overflow (exp of large numbers: use the max-shift / log-sum-exp trick)"
        )
    if not np.all(np.isfinite(analytic)):
        return (
            "the gradient contains NaN/inf: overflow somewhere (exp of a large number, log of 0); "
            "use the max-shift / log-sum-exp trick"
        )
    if analytic.shape != numeric.shape:
        msg = f"shape {analytic.shape} but the parameter has shape {numeric.shape}"
        if analytic.ndim == 2 and analytic.shape == numeric.shape[::-1]:
            return msg + ": the gradient looks transposed (e.g. X @ dO instead of X.T @ dO)"
        sq = {s for s in analytic.shape if analytic.shape.count(s) == 2}
        if sq or analytic.size == numeric.size**2:
            return msg + (
                ": an (n, n) array usually comes from broadcasting (n, 1) - (n,); "
                "reshape y or the prediction so both are (n,)"
            )
        if analytic.size == numeric.size:
            return msg + f": right number of entries, wrong shape; reshape to {numeric.shape}"
        return msg
    a = analytic.astype(np.float64).ravel()
    n = numeric.astype(np.float64).ravel()
    n_norm2 = float(n @ n)
    if n_norm2 == 0.0:
        return "the true gradient is zero here but yours is not" if np.any(a) else None
    if not np.any(a):
        return "your gradient is all zeros: not computed, or never written into the output array"
    c = float(a @ n) / n_norm2  # least-squares scale: a ≈ c n
    residual = float(np.linalg.norm(a - c * n) / np.linalg.norm(n))
    if residual < 1e-3 and not _near(c, 1.0, 1e-3):
        if _near(c, -1.0):
            return "gradient has the wrong sign (ratio analytic/numeric ≈ -1)"
        if _near(c, 2.0) or _near(c, 0.5):
            return (
                f"gradient is off by a factor {c:.3g}: the factor 2 from differentiating a square "
                "(MSE, L2 penalty) is missing or doubled"
            )
        if batch_size and batch_size > 1:
            if _near(c, batch_size):
                return (
                    f"gradient is {batch_size}× too large (= batch size): "
                    "the loss is a mean, divide the gradient by n"
                )
            if _near(c, 1.0 / batch_size):
                return (
                    f"gradient is {batch_size}× too small (= batch size): divided by n twice"
                )
        return f"gradient is a constant multiple ({c:.4g}×) of the true one"
    return None


def through_attribute(obj: object, name: str, loss: Callable[[], float]) -> ScalarFn:
    """``f(value)``: assign ``value`` to ``obj.<name>``, return ``loss()``, restore the old value.

    ``check_gradient(through_attribute(layer, "W", loss), layer.W, layer.dW)`` checks a
    parameter's gradient by assignment only, so it means the same in the student's kernel and
    in the judge (where ``layer`` is remote).
    """

    def f(value: np.ndarray) -> float:
        old = getattr(obj, name)
        setattr(obj, name, np.array(value, dtype=np.float64))
        try:
            return float(loss())
        finally:
            setattr(obj, name, old)

    return f


def _sample_indices(shape: tuple[int, ...], k: int, rng: np.random.Generator) -> list[tuple]:
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(k, size), replace=False)
    return [np.unravel_index(int(i), shape) for i in flat]


def check_gradient(
    f: ScalarFn,
    x: np.ndarray,
    analytic: object,
    *,
    name: str = "gradient",
    h: float = 1e-5,
    tol: float = 1e-6,
    batch_size: int | None = None,
    max_full: int = 3000,
    num_samples: int = 30,
    num_directions: int = 5,
    rng: np.random.Generator | int | None = 0,
) -> float:
    """Assert that ``analytic`` is the gradient of ``f`` at ``x``; return the relative error.

    Up to ``max_full`` entries every entry is checked; beyond that ``num_samples`` random
    entries and ``num_directions`` random directions. Entries smaller than 1/1000 of the
    largest are judged on that scale, so finite-difference round-off on near-zero entries
    cannot fail a correct gradient. On failure raises :class:`GradientCheckError` whose
    message names the likely bug (pass ``batch_size`` to detect a missing ÷n).
    """
    x = _as_float64(x, "x")
    rng = np.random.default_rng(rng)
    if analytic is not None and not isinstance(analytic, np.ndarray):
        analytic = np.asarray(analytic, dtype=np.float64) if np.isscalar(analytic) else analytic
    if x.size <= max_full:
        numeric = numerical_gradient(f, x, h)
        problem = diagnose(analytic, numeric, batch_size)
        if problem is None:
            floor = max(1e-8, 1e-3 * float(np.max(np.abs(numeric), initial=0.0)))
            err = rel_error(analytic, numeric, floor)
            if err <= tol:
                return err
            worst = tuple(
                int(k)
                for k in np.unravel_index(int(np.argmax(np.abs(analytic - numeric))), x.shape)
            )
            problem = (
                f"max relative error {err:.2e} > {tol:.0e}; worst entry {worst}: "
                f"analytic {analytic[worst]:.6g}, numeric {numeric[worst]:.6g}"
            )
        raise GradientCheckError(f"{name}: {problem}")

    # Large tensor: random entries, then random directions.
    if not isinstance(analytic, np.ndarray) or analytic.shape != x.shape:
        raise GradientCheckError(f"{name}: {diagnose(analytic, np.zeros_like(x), batch_size)}")
    idx = _sample_indices(x.shape, num_samples, rng)
    a_s, n_s = [], []
    for i in idx:
        e = np.zeros_like(x)
        e[i] = 1.0
        n_s.append(directional_derivative(f, x, e, h))
        a_s.append(float(analytic[i]))
    for _ in range(num_directions):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        n_s.append(directional_derivative(f, x, v, h))
        a_s.append(float(np.sum(analytic * v)))
    a_s, n_s = np.array(a_s), np.array(n_s)
    problem = diagnose(a_s, n_s, batch_size)
    floor = max(1e-8, 1e-3 * float(np.max(np.abs(n_s))))
    err = rel_error(a_s, n_s, floor)
    if problem is None and err <= tol:
        return err
    raise GradientCheckError(
        f"{name}: {problem or f'max relative error {err:.2e} > {tol:.0e} on sampled entries'}"
    )
