"""Finite differences in float64: the numeric side of a gradient check.

Centred differences ``(f(x + h) - f(x - h)) / 2h`` with ``h = 1e-5``; the relative error
elementwise, then the maximum, with a floor on the denominator; for tensors too big to perturb
entry by entry, random entries and random directions ``v``:
``(f(x + hv) - f(x - hv)) / 2h ≈ <grad f, v>``. :func:`grader.gradcheck.check_gradient` uses
these; they are importable from :mod:`grader.gradcheck` too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from grader.diagnose import describe_value

ScalarFn = Callable[[np.ndarray], float]


def as_float64(x: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {describe_value(x)}")
    if x.dtype != np.float64:
        raise TypeError(
            f"{what} has dtype {x.dtype}; gradient checks need float64 "
            "(float32 round-off swamps a finite difference). Use x.astype(np.float64)."
        )
    return x


def numerical_gradient(f: ScalarFn, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Centred-difference gradient of the scalar function ``f`` at ``x``; same shape as ``x``."""
    x = as_float64(x, "x")
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
    x = as_float64(x, "x")
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


def _sample_indices(shape: tuple[int, ...], k: int, rng: np.random.Generator) -> list[tuple]:
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(k, size), replace=False)
    return [np.unravel_index(int(i), shape) for i in flat]


def sampled_derivatives(f: ScalarFn, x: np.ndarray, analytic: np.ndarray, h: float,
                        num_samples: int, num_directions: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(analytic, numeric)`` derivatives at random entries and along random directions."""
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
    return np.array(a_s), np.array(n_s)


def scaled_error(a: np.ndarray, n: np.ndarray) -> float:
    """Relative error; entries below 1/1000 of the largest are judged on that scale."""
    floor = max(1e-8, 1e-3 * float(np.max(np.abs(n), initial=0.0)))
    return rel_error(a, n, floor)
