"""How an analytic gradient differs from the numeric one on one probe, and the exact
relation that holds (a ratio of exactly -1, 2, 1/2, ``n`` or 1/``n``, a transpose, an
``(n, n)`` broadcast).

A relation is evidence, not yet a cause: :func:`grader.gradcheck.check_gradient` names it only
when the same relation holds on a second, independent probe.
"""

from __future__ import annotations

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
    is_ratio,
)
from grader.finite_differences import rel_error


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
PER_BATCH = frozenset({NOT_DIVIDED_BY_N, DIVIDED_BY_N_TWICE, LOSS_GRAD_FACTOR_N})


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
