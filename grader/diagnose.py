"""The diagnosis engine: name a bug's cause only when its signature matches.

A failure message *describes* what differs (where, by how much). It *names a cause* only when
the evidence is exact and unambiguous, and then it contains the marker ``likely cause: <phrase>``
exactly once, on a line of its own, at the end of the message. Two kinds of evidence:

* **variants on two probes** (``assert_close(..., bugs={phrase: value},
  probe2=(got2, ref2, {phrase: value2}))``, :func:`sure_cause`): the values a known mistake
  would produce on two independent inputs. The student's values match that mistake's variant
  on both, the variant differs from the right answer on both, and no other candidate fits
  both. One probe alone names nothing: on one input two different bugs can give the same
  number (a signature collision).
* **exact relations** (``grader.gradcheck``): the analytic gradient is exactly ``-1``, ``2``,
  ``1/2``, ``n`` or ``1/n`` times the numeric one, its transpose, or an ``(n, n)`` broadcast,
  *on two independent probes* (``check_gradient(..., probe2=(f2, x2, g2))``); a ratio shared
  by two relations (``n == 2``) names nothing. In ``assert_close`` a transpose of a whole
  non-symmetric matrix, or an ``(n, n)`` array whose diagonal is the expected ``(n,)`` values
  and whose entries are a broadcast sum or product of a row and a column, is exact too.

The catalogue below holds the standard phrases; notebooks use these constants (or their own
short phrase) so that the mutants gate can check that each known bug gets its cause
(``diagnosis = "<phrase>"`` in ``solutions/<assignment>.mutants.toml``).
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Mapping
from typing import NoReturn

import numpy as np

MARKER = "likely cause:"

# --- the catalogue of standard causes -------------------------------------------------------
# Batch averaging, signs, factors (loss and gradient).
NOT_DIVIDED_BY_N = "the gradient is not divided by the batch size n"
DIVIDED_BY_N_TWICE = "the gradient is divided by the batch size n twice"
LOSS_NOT_AVERAGED = "the loss sums over the batch instead of averaging"
LOSS_GRAD_FACTOR_N = (
    "loss and gradient disagree by a factor n (one of them is not averaged over the batch)"
)
GRADIENT_SIGN = "the gradient has the wrong sign"
LOSS_GRAD_SIGN = "loss and gradient disagree in sign (one of them is negated)"
MISSING_FACTOR_2 = "the factor 2 from differentiating the square is missing"
EXTRA_FACTOR_2 = "the gradient has an extra factor 2"
LOSS_GRAD_FACTOR_2 = "loss and gradient disagree by a factor 2"
RMSE_NOT_MSE = "the square root of the mean squared error (RMSE) instead of the MSE"
NO_BIAS = "the bias is left out"
REG_GRAD_MISSING = "the gradient of the L2 penalty is missing"
REG_GRAD_NOT_DOUBLED = "the L2 penalty's gradient is reg * W instead of 2 * reg * W"
REG_MISSING = "the L2 penalty is missing from the loss"
# Shapes and axes.
TRANSPOSED = "the result is transposed"
BROADCAST_N1 = "an (n, 1) column broadcast against an (n,) vector"
WRONG_AXIS = "the reduction is over the wrong axis"
BIAS_GRAD_NOT_SUMMED = "the bias gradient is not summed over the batch"
# Softmax, cross-entropy, hinge.
NO_MAX_SHIFT = "exp without the max-shift overflows"
GLOBAL_MAX_SHIFT = "the max-shift uses the max of the whole batch instead of each row"
SOFTMAX_WRONG_AXIS = "softmax normalised over the wrong axis"
ONE_HOT_NOT_SUBTRACTED = "the one-hot labels are not subtracted"
LOG_OF_UNDERFLOWED_SOFTMAX = "log of a softmax probability that underflowed to 0"
HINGE_MARGIN_ZERO_COUNTED = "a hinge margin of exactly 0 is counted as a violation"
HINGE_CORRECT_CLASS_COUNTED = "the correct class is counted in the hinge sum"
# Layers, modes, training loops.
RELU_MASK_AT_ZERO = "the ReLU mask counts x = 0 as active (x >= 0 instead of x > 0)"
MODIFIES_INPUT = "an input array is modified in place"
PYTHON_LOOP = "a Python loop (or a call per element) instead of array operations"
MASK_ONLY_IN_TRAINING = "the mask is kept only in training mode"
STEP_BEFORE_BACKWARD = "the step is taken before backward"
NO_SHUFFLE = "the data is not shuffled each epoch"
NO_TRAIN_MODE = "the model is not put in training mode"
RNG_IGNORED = "the rng argument is not used"
NO_ACTIVATION = "no nonlinearity between the linear layers"
# Dropout.
P_AS_KEEP_PROBABILITY = "p is used as the keep probability instead of the drop probability"
NOT_RESCALED = "the kept units are not rescaled by 1/(1 - p)"
DROPOUT_AT_EVAL = "dropout is applied (or rescaled) in evaluation mode"
MASK_PER_FEATURE = "one mask per feature shared by the batch instead of one per entry"
NEW_MASK_IN_BACKWARD = "backward draws a new mask instead of reusing the forward one"
MASK_FROM_OUTPUT = "backward rebuilds the mask from out != 0"

CATALOGUE: tuple[str, ...] = tuple(
    v for k, v in dict(globals()).items() if k.isupper() and k != "MARKER" and isinstance(v, str)
)


# --- messages --------------------------------------------------------------------------------
def cause(phrase: str) -> str:
    """``"likely cause: <phrase>"``: the one marker a message naming a cause contains."""
    if not phrase or "\n" in phrase or MARKER in phrase:
        raise ValueError(f"a cause phrase is one non-empty line without the marker: {phrase!r}")
    return f"{MARKER} {phrase}"


def with_cause(message: str, phrase: str | None) -> str:
    """``message``, plus the cause on a line of its own when ``phrase`` is given."""
    return message if phrase is None else f"{message}\n{cause(phrase)}"


_CAUSE_RE = re.compile(re.escape(MARKER) + r"[ \t]*([^\n]*)")


def causes_in(text: str) -> list[str]:
    """Every phrase named by a ``likely cause:`` marker in ``text``, in order."""
    return [m.group(1).strip().rstrip(".").strip() for m in _CAUSE_RE.finditer(text or "")]


def names(named: str, phrase: str) -> bool:
    """Whether the extracted phrase ``named`` is ``phrase`` (perhaps followed by punctuation)."""
    if named == phrase:
        return True
    return named.startswith(phrase) and not named[len(phrase)].isalnum()


# Where a failed check is raised from. IPython hides frames that set ``__tracebackhide__``
# (as every check does) except the innermost one, so the innermost is this one line, whose
# text tells the student where to look, instead of the kit's internals.
_RAISE_SRC = "raise failure  # a check failed: read its message below\n"
_RAISE_FILE = "<grader check>"
_RAISE = compile(_RAISE_SRC, _RAISE_FILE, "exec")


def fail(failure: BaseException) -> NoReturn:
    """Raise ``failure`` (a check's AssertionError) with a one-line innermost frame and no
    chained context, so the student's traceback is the test cell's line and the message."""
    __tracebackhide__ = True
    failure.__suppress_context__ = True
    # its source, for the traceback (set each time: linecache.clearcache() may have run)
    linecache.cache[_RAISE_FILE] = (len(_RAISE_SRC), None, [_RAISE_SRC], _RAISE_FILE)
    exec(_RAISE, {"failure": failure})
    raise AssertionError("unreachable")  # pragma: no cover


# --- comparing values ------------------------------------------------------------------------
def as_array(x: object) -> np.ndarray | None:
    """``x`` as a float64 array, or None if it is not numeric data."""
    if x is None or isinstance(x, (str, bytes)):
        return None
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr


def close(actual: object, expected: object, rtol: float, atol: float) -> bool:
    """Same shape and ``|a - e| <= atol + rtol·|e|`` everywhere (NaN matches NaN)."""
    a, e = as_array(actual), as_array(expected)
    if a is None or e is None:
        return False
    if a.shape != e.shape:
        if a.size == 1 and e.size == 1:  # a scalar and a 1-element array are the same number
            a, e = a.reshape(()), e.reshape(())
        else:
            return False
    with np.errstate(invalid="ignore"):
        return bool(np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True))


def matching_cause(
    actual: object,
    expected: object,
    bugs: Mapping[str, object] | None,
    rtol: float,
    atol: float,
) -> str | None:
    """The one cause whose variant ``actual`` matches, or None.

    Variants indistinguishable from ``expected`` are ignored (these inputs cannot show that
    bug). ``actual`` must match exactly one of the others: two matching variants are two
    candidate causes, and naming either could be wrong.
    """
    if not bugs or close(actual, expected, rtol, atol):
        return None
    hits = [
        phrase
        for phrase, variant in bugs.items()
        if not close(variant, expected, rtol, atol) and close(actual, variant, rtol, atol)
    ]
    return hits[0] if len(hits) == 1 else None


def sure_cause(
    probes: list[tuple[object, object, Mapping[str, object] | None]],
    rtol: float,
    atol: float,
) -> str | None:
    """The cause that ``probes`` (each ``(actual, expected, {phrase: variant})``) prove, or None.

    Sure means: at least two probes; the student's value matches the phrase's variant on
    *every* probe; on none of them is that variant indistinguishable from the expected value
    (a probe that cannot show the bug proves nothing); and no other phrase fits every probe on
    which it has a variant (a phrase given on one probe only is never named, but it still
    competes: it might explain the other probe too).
    """
    if len(probes) < 2:
        return None
    phrases: list[str] = []
    for _, _, bugs in probes:
        phrases += [p for p in (bugs or {}) if p not in phrases]
    fits = []
    for phrase in phrases:
        given = [(a, e, bugs[phrase]) for a, e, bugs in probes if bugs and phrase in bugs]
        if all(close(a, v, rtol, atol) for a, _, v in given):
            fits.append((phrase, len(given) == len(probes) and all(
                not close(v, e, rtol, atol) and not close(a, e, rtol, atol)
                for a, e, v in given)))
    return fits[0][0] if len(fits) == 1 and fits[0][1] else None


def exact_multiple(a: np.ndarray, e: np.ndarray, tol: float = 1e-6) -> float | None:
    """``c`` if ``a == c·e`` up to ``tol`` (relative, in the 2-norm) with ``c != 1``, else None."""
    a = np.asarray(a, dtype=np.float64).ravel()
    e = np.asarray(e, dtype=np.float64).ravel()
    if a.shape != e.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(e))):
        return None
    ee = float(e @ e)
    if ee == 0.0 or not np.any(a):
        return None
    c = float(a @ e) / ee
    if np.linalg.norm(a - c * e) > tol * np.linalg.norm(a) or abs(c - 1.0) <= tol:
        return None
    return c


def is_ratio(c: float, r: float, tol: float = 1e-5) -> bool:
    return abs(c - r) <= tol * abs(r)


def _simple_ratio(c: float) -> str | None:
    """``"k"`` or ``"1/k"`` for an integer ``k`` with ``|k| <= 1000`` (to 1e-9), else None."""
    if c == 0 or not np.isfinite(c):
        return None
    k = round(c)
    if k != 0 and abs(k) <= 1000 and is_ratio(c, float(k), 1e-9):
        return str(k)
    k = round(1.0 / c)
    if 1 < abs(k) <= 1000 and is_ratio(c, 1.0 / k, 1e-9):
        return f"1/{k}" if k > 0 else f"-1/{-k}"
    return None


def describe_multiple(c: float | None, *, scalar: bool = False) -> str:
    """`` (exactly c times the expected value)`` for a constant multiple, else ``""``.

    Two numbers are always a multiple of each other, so for scalars only a simple ratio
    (``k`` or ``1/k``, such as -1, 2, 1/2 or a batch size) is worth saying.
    """
    if c is None:
        return ""
    simple = _simple_ratio(c)
    if simple is None and scalar:
        return ""
    return f" (exactly {simple or f'{c:.6g}'} times the expected value)"


def describe_difference(act: np.ndarray, exp: np.ndarray, name: str, rtol: float, atol: float):
    """Where and by how much two same-shape arrays differ (no cause)."""
    with np.errstate(invalid="ignore"):
        diff = np.abs(act - exp)
        bad = ~(diff <= atol + rtol * np.abs(exp))
    if exp.ndim == 0:
        return f"{name} = {float(act)!r}, expected {float(exp)!r}"
    rank = np.where(bad, np.nan_to_num(diff, nan=np.inf), -1.0)
    i = tuple(int(k) for k in np.unravel_index(int(np.argmax(rank)), exp.shape))
    return (
        f"{name} differs from the expected value in {int(bad.sum())} of {exp.size} entries; "
        f"largest difference at {i}: got {act[i]:.6g}, expected {exp[i]:.6g}"
    )


def student_words(text: str) -> str:
    """``text`` without the grader's internal names (in the judge a student's object is a
    ``Remote``): what the student's code returned is called what it is."""
    text = re.sub(r"<student (\w+) object>", lambda m: kind_phrase(m.group(1)), text)
    text = re.sub(r"a student object \((\w+)\)", lambda m: kind_phrase(m.group(1)), text)
    text = re.sub(r"object of type 'Remote' has no (\w+)\(\)",
                  r"the value returned by your code has no \1() (it is not a list or an array)",
                  text)
    text = re.sub(r"'Remote' object is not (\w+)",
                  r"the value returned by your code is not \1 (it is not a list or an array)",
                  text)
    return text.replace("Remote", "object of your notebook")


def describe_value(x: object) -> str:
    """What ``x`` is, in the student's words: "an array of shape (2, 3), dtype float64",
    "a generator", "a list", "an object of class Linear" (also for a student's object in the
    judge, which knows the class name only)."""
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape}, dtype {x.dtype}"
    kind = type(x)
    if kind.__name__ == "Remote" and kind.__module__.startswith("grader."):
        try:
            return kind_phrase(str(object.__getattribute__(x, "_dl_type")))
        except AttributeError:
            return "an object of your notebook"
    if isinstance(x, (np.generic,)):
        return f"a NumPy {kind.__name__}"
    return kind_phrase(kind.__name__)


def kind_phrase(kind: str) -> str:
    """How to say what a value of type ``kind`` is, in the student's words."""
    named = {"generator": "a generator", "list": "a list", "tuple": "a tuple",
             "dict": "a dict", "str": "a string", "NoneType": "None", "int": "an int",
             "float": "a float", "bool": "a bool", "set": "a set", "function": "a function",
             "method": "a method", "type": "a class", "map": "a map object (a lazy iterator)",
             "zip": "a zip object (a lazy iterator)", "range": "a range",
             "filter": "a filter object (a lazy iterator)", "module": "a module"}
    return named.get(kind, f"an object of class {kind}")
