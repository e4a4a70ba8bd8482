"""Finite-difference gradient checks that say *why* a gradient is wrong.

Conventions (COURSE_NOTES.md, CS231n ``gradient_check.py``):

* centred differences ``(f(x + h) - f(x - h)) / 2h`` with ``h = 1e-5``, in float64;
* relative error elementwise, then the maximum, with a floor on the denominator;
* for tensors too big to perturb entry by entry, a random subset of entries and a few
  random directions ``v``: ``(f(x + hv) - f(x - hv)) / 2h ≈ <grad f, v>``.

``f`` is always a function of the array ``x`` that returns a scalar, and it must use its
argument: a test may run where a student's object is remote and an array read from it is a copy
(docs/AUTHORING.md). For a parameter of an object use :func:`through_attribute`.

The numeric side lives in :mod:`grader.finite_differences`, the reading of how a gradient
differs (:func:`diagnosis`) in :mod:`grader.gradient_relations`; both are importable from here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from grader.diagnose import BROADCAST_N1, TRANSPOSED, fail, with_cause
from grader.finite_differences import (
    ScalarFn,
    as_float64,
    directional_derivative,
    numerical_gradient,
    numerical_gradient_array,
    rel_error,
    sampled_derivatives,
    scaled_error,
)
from grader.gradient_relations import PER_BATCH, diagnose, diagnosis

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


class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with finite differences (message names the likely bug)."""


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
    x = as_float64(x, "x")
    if analytic is not None and not isinstance(analytic, np.ndarray):
        try:  # a Python number or list is a gradient too
            analytic = np.asarray(analytic, dtype=np.float64)
        except (TypeError, ValueError):
            pass  # not numeric: diagnosis() says so
    err = np.inf
    if x.size <= max_full:
        numeric = numerical_gradient(f, x, h)
        if _comparable(analytic, x.shape) and np.all(np.isfinite(numeric)):
            err = scaled_error(analytic, numeric)
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
        a_s, n_s = sampled_derivatives(f, x, analytic, h, num_samples, num_directions, rng)
        err = scaled_error(a_s, n_s)
        if err <= tol and np.all(np.isfinite(n_s)):
            return err, None, None
        problem, why = diagnosis(a_s, n_s, batch_size, reference_loss=reference_loss)
        return err, problem or f"max relative error {err:.2e} > {tol:.0e} on sampled entries", why
    flipped = isinstance(analytic, np.ndarray) and analytic.shape == x.shape[::-1] != x.shape
    if flipped and _comparable(analytic.T, x.shape):
        a_s, n_s = sampled_derivatives(f, x, analytic.T, h, num_samples, num_directions, rng)
        if scaled_error(a_s, n_s) <= 1e-5:
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
    if why in PER_BATCH and n2 == batch_size:  # n on both could be any constant factor n
        why = None
    if why is not None:
        problem += "\n(the same relation holds on both test inputs)"
    fail(GradientCheckError(with_cause(f"{name}{where}: {problem}", why)))
