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

from grader.diagnose import (
    BROADCAST_N1,
    DIVIDED_BY_N_TWICE,
    EXTRA_FACTOR_2,
    GRADIENT_SIGN,
    LOSS_GRAD_FACTOR_2,
    LOSS_GRAD_FACTOR_N,
    LOSS_GRAD_SIGN,
    MISSING_FACTOR_2,
    NOT_DIVIDED_BY_N,
    TRANSPOSED,
    describe_value,
    exact_multiple,
    fail,
    is_ratio,
    with_cause,
)

__all__ = [
    "GradientCheckError",
    "check_gradient",
    "diagnose",
    "diagnosis",
    "directional_derivative",
    "numerical_gradient",
    "numerical_gradient_array",
    "rel_error",
    "through_attribute",
]

ScalarFn = Callable[[np.ndarray], float]



class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with finite differences (message names the likely bug)."""


def _as_float64(x: np.ndarray, what: str) -> np.ndarray:
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


def _relations(batch_size: int | None, reference_loss: bool) -> list[tuple[float, str, str]]:
    """``(ratio analytic/numeric, its name, the cause it proves)`` for the exact relations.

    A factor 2 is told from a batch of two only when the batch size is known: without
    ``batch_size`` only the sign is named.
    """
    if reference_loss:  # f is the test's own loss: a wrong ratio is the gradient's fault
        sign, up2, down2 = GRADIENT_SIGN, EXTRA_FACTOR_2, MISSING_FACTOR_2
        up_n, down_n = NOT_DIVIDED_BY_N, DIVIDED_BY_N_TWICE
    else:  # f is the student's loss: either one may be the wrong one
        sign, up2, down2 = LOSS_GRAD_SIGN, LOSS_GRAD_FACTOR_2, LOSS_GRAD_FACTOR_2
        up_n = down_n = LOSS_GRAD_FACTOR_N
    rels = [(-1.0, "-1", sign)]
    if batch_size is not None:
        rels += [(2.0, "2", up2), (0.5, "1/2", down2)]
    if batch_size and batch_size > 1:
        n = float(batch_size)
        rels += [(n, f"n = {batch_size}", up_n), (1.0 / n, f"1/n = 1/{batch_size}", down_n)]
    return rels


#: Causes proved by a ratio equal to the batch size (or its inverse).
_PER_BATCH = frozenset({NOT_DIVIDED_BY_N, DIVIDED_BY_N_TWICE, LOSS_GRAD_FACTOR_N})


def _ratio_diagnosis(c: float, batch_size: int | None,
                     reference_loss: bool) -> tuple[str, str | None]:
    hits = [(label, why) for r, label, why in _relations(batch_size, reference_loss)
            if is_ratio(c, r, 1e-4)]
    desc = f"analytic = {c:.6g} × numeric in every entry"
    if len(hits) == 1:
        return f"{desc} (exactly {hits[0][0]})", hits[0][1]
    if hits:  # e.g. 2 with n = 2: a factor 2 or the batch size, cannot tell
        return f"{desc} (exactly {' and '.join(h[0] for h in hits)}: ambiguous)", None
    return desc, None


def _shape_diagnosis(analytic: np.ndarray, numeric: np.ndarray) -> tuple[str, str | None]:
    msg = f"shape {analytic.shape} but the parameter has shape {numeric.shape}"
    if analytic.ndim == 2 and analytic.shape == numeric.shape[::-1]:
        floor = max(1e-8, 1e-3 * float(np.max(np.abs(numeric), initial=0.0)))
        if numeric.any() and rel_error(analytic.T, numeric, floor) <= 1e-5:
            return msg + "; its transpose is the right gradient", TRANSPOSED
        return msg + " (the transpose of it)", None
    m = numeric.shape[0] if numeric.ndim else 0
    if m > 1 and numeric.shape in ((m,), (m, 1)) and analytic.shape == (m, m):
        return msg + "; make both operands (n,) with .reshape(-1)", BROADCAST_N1
    if analytic.size == numeric.size:
        return msg + f": right number of entries, wrong shape; reshape to {numeric.shape}", None
    return msg, None


def diagnosis(
    analytic: object,
    numeric: np.ndarray,
    batch_size: int | None = None,
    *,
    reference_loss: bool = False,
) -> tuple[str | None, str | None]:
    """``(description, relation)``: how ``analytic`` differs from ``numeric`` on this one probe
    (None when no pattern fits), and the cause of the exact relation that holds, if any.

    A relation is evidence, not yet a cause: :func:`check_gradient` names it only when the same
    relation holds on a second, independent probe (a ratio of exactly ``n`` on one input may be
    an ``(n,) - (n, 1)`` broadcast that happens to give ``n`` there).
    """
    __tracebackhide__ = True
    if analytic is None:
        return "the gradient is None: did the function forget to `return` it?", None
    if not isinstance(analytic, np.ndarray | np.generic | float | int):
        return f"the gradient should be a numeric array, got {describe_value(analytic)}", None
    analytic = np.asarray(analytic)
    numeric = np.asarray(numeric)
    if analytic.dtype == object or not np.issubdtype(analytic.dtype, np.number):
        return (
            f"the gradient is not a numeric array (dtype {analytic.dtype}, "
            f"shape {analytic.shape})"
        ), None
    if not np.all(np.isfinite(numeric)):
        return (
            "the loss itself is NaN/inf at this point, so no gradient can be checked "
            "(NaN/inf come from overflow, such as exp of a large number, or from 0/0, log 0)"
        ), None
    bad = ~np.isfinite(analytic)
    if bad.any():
        return (
            f"the gradient contains {int(bad.sum())} NaN/inf values of {analytic.size} "
            "(NaN/inf come from overflow, such as exp of a large number, or from 0/0, log 0)"
        ), None
    if analytic.shape != numeric.shape:
        return _shape_diagnosis(analytic, numeric)
    a = analytic.astype(np.float64)
    if not np.any(numeric):
        return ("the true gradient is zero here but yours is not" if np.any(a) else None), None
    if not np.any(a):
        return ("your gradient is all zeros: not computed, or never written into the output "
                "array"), None
    if a.ndim == 2 and a.shape[0] == a.shape[1] > 1:
        floor = max(1e-8, 1e-3 * float(np.max(np.abs(numeric))))
        if rel_error(numeric.T, numeric, floor) > 1e-5 and rel_error(a.T, numeric, floor) <= 1e-5:
            return "the transpose of your gradient is the right gradient", TRANSPOSED
    c = exact_multiple(a, numeric, tol=1e-5)
    return (None, None) if c is None else _ratio_diagnosis(c, batch_size, reference_loss)


def diagnose(
    analytic: object,
    numeric: np.ndarray,
    batch_size: int | None = None,
    *,
    reference_loss: bool = False,
) -> str | None:
    """Describe how ``analytic`` differs from ``numeric`` on one probe, or None if no pattern
    fits. It names no cause: one probe is never sure (:func:`diagnosis` gives the relation,
    :func:`check_gradient` with ``probe2`` names it when a second probe confirms it).
    """
    __tracebackhide__ = True
    return diagnosis(analytic, numeric, batch_size, reference_loss=reference_loss)[0]


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


def _sampled(f: ScalarFn, x: np.ndarray, analytic: np.ndarray, h: float, num_samples: int,
             num_directions: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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


def _error(a: np.ndarray, n: np.ndarray) -> float:
    """Relative error; entries below 1/1000 of the largest are judged on that scale."""
    floor = max(1e-8, 1e-3 * float(np.max(np.abs(n), initial=0.0)))
    return rel_error(a, n, floor)


def _comparable(analytic: object, shape: tuple[int, ...]) -> bool:
    return (
        isinstance(analytic, np.ndarray) and analytic.shape == shape
        and np.issubdtype(analytic.dtype, np.number) and bool(np.all(np.isfinite(analytic)))
    )


def _probe(f: ScalarFn, x: np.ndarray, analytic: object, name: str, h: float, tol: float,
           batch_size: int | None, max_full: int, num_samples: int, num_directions: int,
           rng: np.random.Generator, reference_loss: bool):
    """``(error, None, None)`` when ``analytic`` is ``f``'s gradient at ``x``, else
    ``(error, description, relation or None)``."""
    __tracebackhide__ = True
    x = _as_float64(x, "x")
    if analytic is not None and not isinstance(analytic, np.ndarray):
        try:  # a Python number or list is a gradient too
            analytic = np.asarray(analytic, dtype=np.float64)
        except (TypeError, ValueError):
            pass  # not numeric: diagnosis() says so
    err = np.inf
    if x.size <= max_full:
        numeric = numerical_gradient(f, x, h)
        if _comparable(analytic, x.shape) and np.all(np.isfinite(numeric)):
            err = _error(analytic, numeric)
            if err <= tol:
                return err, None, None
        problem, why = diagnosis(analytic, numeric, batch_size, reference_loss=reference_loss)
        if problem is None:
            worst = tuple(
                int(k)
                for k in np.unravel_index(int(np.argmax(np.abs(analytic - numeric))), x.shape)
            )
            problem = (
                f"max relative error {err:.2e} > {tol:.0e}; worst entry {worst}: "
                f"analytic {analytic[worst]:.6g}, numeric {numeric[worst]:.6g}"
            )
        return err, problem, why

    # Large tensor: random entries, then random directions.
    if _comparable(analytic, x.shape):
        a_s, n_s = _sampled(f, x, analytic, h, num_samples, num_directions, rng)
        err = _error(a_s, n_s)
        if err <= tol and np.all(np.isfinite(n_s)):
            return err, None, None
        problem, why = diagnosis(a_s, n_s, batch_size, reference_loss=reference_loss)
        return err, problem or f"max relative error {err:.2e} > {tol:.0e} on sampled entries", why
    flipped = isinstance(analytic, np.ndarray) and analytic.shape == x.shape[::-1] != x.shape
    if flipped and _comparable(analytic.T, x.shape):
        a_s, n_s = _sampled(f, x, analytic.T, h, num_samples, num_directions, rng)
        if _error(a_s, n_s) <= 1e-5:
            return err, (f"shape {analytic.shape} but the parameter has shape {x.shape}; "
                         "its transpose is the right gradient"), TRANSPOSED
    shape_only = np.zeros_like(x) if flipped else np.ones_like(x)
    problem, why = diagnosis(analytic, shape_only, batch_size)
    return err, problem, why if why in (TRANSPOSED, BROADCAST_N1) else None


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
    reference_loss: bool = False,
    probe2: tuple | None = None,
) -> float:
    """Assert that ``analytic`` is the gradient of ``f`` at ``x``; return the relative error.

    Up to ``max_full`` entries every entry is checked; beyond that ``num_samples`` random
    entries and ``num_directions`` random directions. Entries smaller than 1/1000 of the
    largest are judged on that scale, so finite-difference round-off on near-zero entries
    cannot fail a correct gradient. On failure raises :class:`GradientCheckError`, whose
    message says how the gradient differs.

    ``probe2 = (f2, x2, analytic2)`` (or ``(f2, x2, analytic2, batch_size2)``) is a second,
    independent probe of the same gradient: the check fails when either probe fails, and a
    cause is named only when the *same* exact relation (:func:`diagnosis`: a ratio of exactly
    -1, 2, 1/2, ``n`` or 1/``n``, a transpose, an ``(n, n)`` broadcast) holds on both probes.
    A ratio ``n`` or ``1/n`` is a cause only when the two probes have different batch sizes
    (``batch_size2``): otherwise it might be any constant factor that happens to equal ``n``.
    Without ``probe2`` no cause is named. Pass ``batch_size`` (1 for a loss without a batch)
    to recognise a factor 2 or n, and ``reference_loss=True`` when ``f`` is the test's own
    loss, so that a wrong ratio is the gradient's fault.
    """
    __tracebackhide__ = True
    rng = np.random.default_rng(rng)
    opts = (h, tol)
    rest = (max_full, num_samples, num_directions, rng, reference_loss)
    results = [_probe(f, x, analytic, name, *opts, batch_size, *rest)]
    if probe2 is not None:
        if not isinstance(probe2, tuple) or len(probe2) not in (3, 4):
            raise TypeError("probe2 is (f2, x2, analytic2) or (f2, x2, analytic2, batch_size2)")
        n2 = probe2[3] if len(probe2) == 4 else batch_size
        results.append(_probe(probe2[0], probe2[1], probe2[2], name, *opts, n2, *rest))
    else:
        n2 = None
    failed = [(k, r) for k, r in enumerate(results) if r[1] is not None]
    if not failed:
        return max(r[0] for r in results)
    k, (_, problem, _) = failed[0]
    where = " (on a second test input)" if k else ""
    relations = {r[2] for r in results}
    why = relations.pop() if len(results) > 1 and len(relations) == 1 else None
    if why in _PER_BATCH and n2 == batch_size:  # n on both could be any constant factor n
        why = None
    if why is not None:
        problem += "\n(the same relation holds on both test inputs)"
    fail(GradientCheckError(with_cause(f"{name}{where}: {problem}", why)))
