import numpy as np
import pytest

from grader.checks import (
    assert_close,
    assert_finite,
    assert_inputs_unchanged,
    assert_no_loops,
    assert_scalar,
    assert_shape,
    uses,
)
from grader.diagnose import (
    BROADCAST_N1,
    MODIFIES_INPUT,
    PYTHON_LOOP,
    TRANSPOSED,
    causes_in,
)


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_assert_shape_names_broadcasting_trap():
    y_hat, y = np.zeros(5), np.zeros((5, 1))
    msg = _message(assert_shape, y_hat - y, (5,), "residual")
    assert causes_in(msg) == [BROADCAST_N1] and msg.count("likely cause:") == 1
    assert causes_in(_message(assert_shape, y_hat - y, (5, 1))) == [BROADCAST_N1]
    # an (n, n) array that no column-against-row broadcast gives: the shape only
    x = np.arange(5.0)[:, None] * np.ones(3)
    gram = x @ x.T + np.eye(5)
    msg = _message(assert_shape, gram, (5,), "residual")
    assert "reshape(-1)" in msg and causes_in(msg) == []


def test_assert_shape_describes_without_guessing():
    # a transposed shape or an (n, n) where (n, C) is wanted may have many causes: none named
    msg = _message(assert_shape, np.zeros((3, 4)), (4, 3))
    assert "transpose" in msg and causes_in(msg) == []
    assert causes_in(_message(assert_shape, np.zeros((4, 4)), (4, 3))) == []
    with pytest.raises(AssertionError, match="return"):
        assert_shape(None, (4, 3))
    with pytest.raises(AssertionError, match="numpy array"):
        assert_shape([1, 2], (2,))
    assert_shape(np.zeros((2, 3)), (2, 3))


def test_assert_scalar():
    assert assert_scalar(np.float64(2.5)) == 2.5
    assert assert_scalar(np.array([[3.0]])) == 3.0
    with pytest.raises(AssertionError, match="average"):
        assert_scalar(np.ones(4), "loss")
    with pytest.raises(AssertionError, match="nan"):
        assert_scalar(float("nan"))
    with pytest.raises(AssertionError, match="number"):
        assert_scalar("1.0")


def test_assert_close_scalar_ratio_is_described_not_blamed():
    # a ratio of 2 may be a factor 2 or a batch of n = 2; -1 a sign in the loss or the data:
    # say what the ratio is, name no cause
    assert_close(1.0 + 1e-9, 1.0)
    msg = _message(assert_close, -2.0, 2.0, "dL")
    assert "exactly -1 times" in msg and causes_in(msg) == []
    msg = _message(assert_close, 4.0, 2.0, "dL")
    assert "exactly 2 times" in msg and causes_in(msg) == []
    msg = _message(assert_close, 2.5, 2.0, "dL")
    assert "2.5" in msg and "times" not in msg


def test_assert_close_one_probe_names_no_cause():
    # one input can give the same number for two different bugs: a variant alone names nothing
    bugs = {"summed": 6.0, "no bias": 1.0, "squared twice": 2.25}
    msg = _message(assert_close, 6.0, 1.5, "loss", bugs=bugs)
    assert causes_in(msg) == [] and msg.startswith("loss = 6.0, expected 1.5")
    assert "exactly 4 times" in msg  # still localised: what differs and by how much
    assert_close(1.5, 1.5, bugs=bugs)


def test_assert_close_names_a_cause_only_when_both_probes_match():
    bugs1 = {"summed": 6.0, "no bias": 1.0, "squared twice": 2.25}
    bugs2 = {"summed": 10.0, "no bias": 0.5, "squared twice": 4.0}
    msg = _message(assert_close, 6.0, 1.5, "loss", bugs=bugs1, probe2=(10.0, 2.0, bugs2))
    assert causes_in(msg) == ["summed"] and msg.startswith("loss = 6.0, expected 1.5")
    assert msg.count("likely cause:") == 1 and msg.splitlines()[-1].startswith("likely cause:")
    # the issue's collision: the same number on the first probe, another bug on the second
    msg = _message(assert_close, 6.0, 1.5, "loss", bugs=bugs1, probe2=(7.0, 2.0, bugs2))
    assert causes_in(msg) == []
    # two phrases that fit both probes: none named
    twins = dict(bugs2, **{"times n": 10.0})
    msg = _message(assert_close, 6.0, 1.5, bugs=dict(bugs1, **{"times n": 6.0}),
                   probe2=(10.0, 2.0, twins))
    assert causes_in(msg) == []
    # a phrase given on one probe only is never named, and it competes on that probe
    msg = _message(assert_close, 6.0, 1.5, bugs=bugs1, probe2=(10.0, 2.0, {}))
    assert causes_in(msg) == []
    msg = _message(assert_close, 6.0, 1.5, bugs=dict(bugs1, other=6.0), probe2=(10.0, 2.0, bugs2))
    assert causes_in(msg) == []
    # a variant equal to the right answer on one probe cannot be shown there: names nothing
    msg = _message(assert_close, 6.0, 1.5, bugs=bugs1, probe2=(2.0 + 1.0, 2.0, {"summed": 2.0}))
    assert causes_in(msg) == []
    # right on the first probe, wrong on the second: fails, describes the second, names nothing
    msg = _message(assert_close, 1.5, 1.5, "loss", bugs=bugs1, probe2=(10.0, 2.0, bugs2))
    assert "second test input" in msg and "10.0" in msg and causes_in(msg) == []
    # both right: passes
    assert_close(1.5, 1.5, bugs=bugs1, probe2=(2.0, 2.0, bugs2))
    # arrays of another shape and NaN variants work on both probes
    per1, per2 = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    msg = _message(assert_close, per1, 1.5, "loss", bugs={"not averaged": per1},
                   probe2=(per2, 4.0, {"not averaged": per2}))
    assert "single number" in msg and causes_in(msg) == ["not averaged"]
    msg = _message(assert_close, np.nan, 1.5, bugs={"overflow": np.nan},
                   probe2=(np.nan, 2.0, {"overflow": np.nan}))
    assert causes_in(msg) == ["overflow"]


def test_assert_close_variants_of_another_shape():
    x = np.arange(4.0)
    y = x[::-1].copy()
    expected = x - y
    broadcast = x - y[:, None]
    msg = _message(assert_close, broadcast, expected, "residual", bugs={"oops": broadcast})
    # the built-in (n, n) relation and the author's variant both fit: two causes, none named
    assert causes_in(msg) == []
    msg = _message(assert_close, broadcast, expected, "residual")
    assert causes_in(msg) == [BROADCAST_N1]
    msg = _message(assert_close, broadcast, expected, "residual", bugs={BROADCAST_N1: broadcast})
    assert causes_in(msg) == [BROADCAST_N1]
    # an (n, n) array that is not the values of a broadcast: the shape is said, no cause
    other = np.outer(x, x) + np.eye(4)
    msg = _message(assert_close, other, expected, "residual")
    assert "(4, 4)" in msg and causes_in(msg) == []
    # a product broadcast (n,) * (n, 1) is one too
    prod = x * (x + 1)[:, None]
    assert causes_in(_message(assert_close, prod, x * (x + 1), "r")) == [BROADCAST_N1]
    # with a second probe the relation must hold on both
    x2 = np.array([2.0, -1.0, 0.5, 3.0])
    y2 = x2[::-1].copy()
    msg = _message(assert_close, broadcast, expected, "r", probe2=(x2 - y2[:, None], x2 - y2))
    assert causes_in(msg) == [BROADCAST_N1]
    msg = _message(assert_close, broadcast, expected, "r", probe2=(x2 - y2, x2 - y2))
    assert causes_in(msg) == []


def test_assert_close_transposed_values():
    W = np.arange(6.0).reshape(2, 3)
    assert causes_in(_message(assert_close, W.T, W, "dW")) == [TRANSPOSED]
    S = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert causes_in(_message(assert_close, S.T, S, "dW")) == [TRANSPOSED]
    # a transposed shape with other values too: described, not blamed
    assert causes_in(_message(assert_close, W.T + 1, W, "dW")) == []
    # a (1, 1) where (1,) is wanted is its own transpose, but not a transposed (1,): an extra axis
    msg = _message(assert_close, np.array([[0.5]]), np.array([0.5]), "w")
    assert "shape (1, 1), expected (1,)" in msg and causes_in(msg) == []


def test_assert_close_tolerances_admit_library_functions():
    # scipy.special.expit(-745) is 5e-324 or 0 depending on the implementation: both right
    z = np.array([-745.0, -30.0, 0.0, 30.0])
    with np.errstate(over="ignore"):
        reference = 1.0 / (1.0 + np.exp(-z))
    other = np.exp(-np.logaddexp(0.0, -z))
    other[0] = 0.0
    assert_close(other, reference, "sigmoid")


def test_assert_close_arrays_reports_location():
    expected = np.arange(6.0).reshape(2, 3)
    actual = expected.copy()
    actual[1, 2] += 1
    with pytest.raises(AssertionError, match=r"\(1, 2\)"):
        assert_close(actual, expected)
    with pytest.raises(AssertionError, match="shape"):
        assert_close(actual.T, expected)
    assert_close(expected.copy(), expected)


def test_assert_finite():
    with pytest.raises(AssertionError, match="NaN/inf"):
        assert_finite(np.array([1.0, np.inf]))
    assert_finite(np.ones(3))


def test_assert_inputs_unchanged_catches_in_place_relu():
    def relu_in_place(x):
        x[x < 0] = 0
        return x

    def relu(x):
        return np.maximum(x, 0)

    x = np.array([-1.0, 2.0])
    assert_inputs_unchanged(relu, x)
    msg = _message(assert_inputs_unchanged, relu_in_place, x.copy())
    assert "in place" in msg and causes_in(msg) == [MODIFIES_INPUT]


def looped(X):
    total = 0.0
    for row in X:
        total += row.sum()
    return total


def comprehension(X):
    return sum([row.sum() for row in X])


def vectorised(X):
    return X.sum()


def hidden_in_map(X):
    return np.array(list(map(np.sum, X)))


def hidden_in_vectorize(X):
    return np.vectorize(abs)(X)


def ufunc_reduce(X):
    return np.maximum.reduce(X, axis=1) + np.add.reduce(X)


def test_assert_no_loops():
    assert_no_loops(vectorised)
    with pytest.raises(AssertionError, match="For"):
        assert_no_loops(looped)
    with pytest.raises(AssertionError, match="ListComp"):
        assert_no_loops(comprehension)
    msg = _message(assert_no_loops, hidden_in_map)
    assert "map" in msg and causes_in(msg) == [PYTHON_LOOP]
    assert "vectorize" in _message(assert_no_loops, hidden_in_vectorize)
    assert_no_loops(ufunc_reduce)


NOTEBOOK = """
import numpy as np


class Linear:
    def __init__(self, W):
        self.W = W

    def forward(self, x):
        return x @ self.W


class Sequential:
    def __init__(self, *modules):
        self.modules = list(modules)

    def forward(self, x):
        for m in self.modules:
            x = m.forward(x)
        return x


def train_epoch(net, X):
    # YOUR CODE HERE
    raise NotImplementedError()


def train_epoch_typo(net, X):
    return net.forward(X) + np.ones(7)


def train_epoch_ok(net, X):
    return net.forward(X)
"""


def _notebook() -> dict:
    """The student's code, compiled as a notebook cell is (not a file of the installation)."""
    ns: dict = {"__name__": "__main__"}
    exec(compile(NOTEBOOK, "<cell 3>", "exec"), ns)
    return ns


def _uses_message(names, fn, *args, body="fn(*args)") -> str:
    """The message of ``with uses(*names): <body>`` run as a test cell of the notebook."""
    cell = f"with uses(*names):\n    {body}\n"
    ns = {"uses": uses, "names": names, "fn": fn, "args": args}
    with pytest.raises(AssertionError) as info:
        exec(compile(cell, "<cell 9>", "exec"), ns)
    assert info.value.__suppress_context__ and causes_in(str(info.value)) == []
    return str(info.value)


def test_uses_blames_an_earlier_exercise_only_when_its_code_raised():
    nb = _notebook()
    X = np.ones((2, 3))
    broken = nb["Sequential"](nb["Linear"](np.ones((4, 2))))  # a shape bug inside Linear
    msg = _uses_message(("Sequential", "Linear"), nb["train_epoch_ok"], broken, X)
    assert msg.startswith("this test uses Sequential, Linear: make Linear's own tests pass first")
    assert "ValueError: matmul" in msg and "in Linear.forward, line 10)" in msg
    # the function under test is still the stub: its own, never Sequential's or Linear's
    good = nb["Sequential"](nb["Linear"](np.ones((3, 2))))
    msg = _uses_message(("Sequential", "Linear"), nb["train_epoch"], good, X)
    assert msg == ("train_epoch is not written yet: it still raises NotImplementedError "
                   "(line 25); replace the stub with your code")
    assert "Sequential" not in msg and "request" not in msg
    # an error of its own, not of the earlier exercises
    msg = _uses_message(("Sequential", "Linear"), nb["train_epoch_typo"], good, X)
    assert msg.startswith("train_epoch_typo raised ValueError: operands could not be broadcast")
    assert msg.endswith("(in train_epoch_typo, line 29)")
    # raised by the test's own code on what the student returned: no one's exercise blamed
    msg = _uses_message(("predict",), None, body="len(iter(()))")
    assert msg.startswith("this test could not use what your code returned")
    # a failed check inside passes through unchanged; no error, no message
    with pytest.raises(AssertionError, match="^the test's own check$"):
        with uses("predict"):
            raise AssertionError("the test's own check")
    with uses("Sequential", "Linear"):
        nb["train_epoch_ok"](good, X)


def test_every_public_check_hides_its_frames():
    import grader.checks as checks
    import grader.gradcheck as gradcheck

    fns = [getattr(checks, n) for n in checks.__all__]
    fns += [gradcheck.check_gradient, gradcheck.diagnose]
    for fn in fns:
        code = getattr(fn, "__wrapped__", fn).__code__
        assert "__tracebackhide__" in code.co_varnames, fn.__name__


def test_failed_checks_show_only_the_test_line_and_the_message():
    # IPython skips frames that set __tracebackhide__ except the innermost: that one is a
    # single line saying where to look, and no other frame of the kit is left visible
    from grader.gradcheck import check_gradient

    failing = [
        lambda: assert_close(np.ones(3), np.zeros(3)),
        lambda: assert_close(2.0, 1.0, bugs={"double": 2.0}),
        lambda: assert_shape(np.zeros(3), (4,)),
        lambda: check_gradient(lambda v: float(np.sum(v**2)), np.ones(3), -2 * np.ones(3)),
        lambda: check_gradient(lambda v: float(np.sum(v**2)), np.ones(4000), np.ones(4000)),
    ]
    for fn in failing:
        with pytest.raises(AssertionError) as info:
            fn()
        tb, frames = info.value.__traceback__, []
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        assert frames[-1].f_code.co_filename == "<grader check>"
        kit = [f for f in frames if "/grader/" in f.f_code.co_filename]
        assert kit and all(f.f_locals.get("__tracebackhide__") for f in kit)
        assert info.value.__suppress_context__


def test_issue_20_collision_critical_learning_rate():
    # eta = 2 / lambda_max of H = 2/n X1^T X1 (X1: X with a column of ones). On
    # X = [[0], [1], [2]] the student's bug (the largest *entry* of H) and the catalogued one (H
    # without the bias column) both give 0.6: one probe must not name the catalogued cause.
    no_bias_column = "the column of ones (the bias) is left out of the Hessian"

    def etas(X):
        n = len(X)
        X1 = np.hstack([X, np.ones((n, 1))])
        H = 2.0 / n * X1.T @ X1
        right = 2.0 / np.linalg.eigvalsh(H).max()
        largest_entry = 2.0 / np.abs(H).max()  # the student's bug
        without_bias = 2.0 / np.linalg.eigvalsh(2.0 / n * X.T @ X).max()
        return right, largest_entry, without_bias

    right1, student1, variant1 = etas(np.array([[0.0], [1.0], [2.0]]))
    assert student1 == pytest.approx(variant1) == pytest.approx(0.6)  # the collision
    msg = _message(assert_close, student1, right1, "eta", bugs={no_bias_column: variant1})
    assert causes_in(msg) == []
    right2, student2, variant2 = etas(np.array([[0.1], [0.2], [-0.3], [0.5]]))
    assert not np.isclose(student2, variant2)  # small x: H's largest entry is the bias one
    msg = _message(assert_close, student1, right1, "eta", bugs={no_bias_column: variant1},
                   probe2=(student2, right2, {no_bias_column: variant2}))
    assert causes_in(msg) == [] and msg.startswith("eta = 0.6")
    # the catalogued bug itself fits both probes: named
    msg = _message(assert_close, variant1, right1, "eta", bugs={no_bias_column: variant1},
                   probe2=(variant2, right2, {no_bias_column: variant2}))
    assert causes_in(msg) == [no_bias_column]
