import numpy as np
import pytest

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
    causes_in,
)
from grader.gradcheck import (
    GradientCheckError,
    check_gradient,
    diagnose,
    directional_derivative,
    numerical_gradient,
    numerical_gradient_array,
    rel_error,
)


def quad_loss(W, X, y):
    """Squared error of a linear map summed over outputs, mean over the batch of n rows."""
    return float(np.sum((X @ W - y) ** 2) / X.shape[0])


def quad_grad(W, X, y):
    n = X.shape[0]
    return 2.0 / n * X.T @ (X @ W - y)


@pytest.fixture
def problem(rng):
    X = rng.normal(size=(16, 5))
    W = rng.normal(size=(5, 3))
    y = rng.normal(size=(16, 3))
    return W, X, y


def test_numerical_gradient_matches_known_functions(rng):
    x = rng.normal(size=(3, 4))
    g = numerical_gradient(lambda v: float(np.sum(np.sin(v))), x)
    assert rel_error(g, np.cos(x)) < 1e-8
    g = numerical_gradient(lambda v: float(np.sum(v**3)), x)
    assert rel_error(g, 3 * x**2) < 1e-8


def test_numerical_gradient_restores_input(rng):
    x = rng.normal(size=(4,))
    before = x.copy()
    numerical_gradient(lambda v: float(np.sum(v**2)), x)
    assert np.array_equal(x, before)


def test_numerical_gradient_of_scalar_array():
    x = np.array(2.0)
    g = numerical_gradient(lambda v: float(v) ** 3, x)
    assert abs(float(g) - 12.0) < 1e-6


def test_numerical_gradient_array_is_vector_jacobian_product(rng):
    x = rng.normal(size=(3, 2))
    dout = rng.normal(size=(3, 2))
    g = numerical_gradient_array(np.tanh, x, dout)
    assert rel_error(g, dout * (1 - np.tanh(x) ** 2)) < 1e-8


def test_directional_derivative(rng):
    x = rng.normal(size=6)
    v = rng.normal(size=6)
    d = directional_derivative(lambda z: float(np.sum(z**2)), x, v)
    assert abs(d - float(2 * x @ v)) < 1e-7


def test_float32_is_refused():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda v: float(np.sum(v)), np.ones(3, dtype=np.float32))


def test_rel_error_floor_and_shapes():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.array([1.0]), np.array([1.0 + 1e-9])) < 1e-9
    assert rel_error(np.array([1e-12]), np.array([0.0])) == pytest.approx(1e-4)
    with pytest.raises(ValueError):
        rel_error(np.ones(2), np.ones(3))


def test_correct_gradient_passes(problem):
    W, X, y = problem
    err = check_gradient(lambda w: quad_loss(w, X, y), W, quad_grad(W, X, y), batch_size=16)
    assert err < 1e-7


def test_correct_gradient_with_exact_zeros_passes(rng):
    # ReLU-like: entries whose true gradient is exactly 0 must not trip the relative error
    x = rng.normal(size=(8, 8))
    mask = x > 0

    def f(v):
        return float(np.sum(np.maximum(v, 0) ** 2))

    check_gradient(f, x, 2 * x * mask)


def _second(problem, n=12):
    """A second, independent probe of the same shapes, with another batch size."""
    W, X, _ = problem
    rng = np.random.default_rng(99)
    d, c = W.shape
    return rng.normal(size=(d, c)), rng.normal(size=(n, d)), rng.normal(size=(n, c))


def _diagnosis(problem, bug, *, probe2=True, n2=12, **kwargs):
    """The message for the gradient ``bug(correct gradient, n)`` on ``problem`` (and on a
    second probe with batch size ``n2`` unless ``probe2=False``)."""
    W, X, y = problem
    kwargs.setdefault("batch_size", 16)
    grad = None if bug is None else bug(quad_grad(W, X, y), X.shape[0])
    if probe2:
        W2, X2, y2 = _second(problem, n2)
        g2 = None if bug is None else bug(quad_grad(W2, X2, y2), n2)
        kwargs["probe2"] = (lambda w: quad_loss(w, X2, y2), W2, g2,
                            n2 if kwargs["batch_size"] else kwargs["batch_size"])
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda w: quad_loss(w, X, y), W, grad, name="dW", **kwargs)
    msg = str(info.value)
    assert msg.startswith("dW: ") and msg.count("likely cause:") <= 1
    return msg


def test_one_probe_names_no_cause(problem):
    # one input can show the same ratio for two different bugs: a relation alone is described
    msg = _diagnosis(problem, lambda g, n: n * g, probe2=False, reference_loss=True)
    assert "exactly n = 16" in msg and causes_in(msg) == []
    msg = _diagnosis(problem, lambda g, n: -g, probe2=False, reference_loss=True)
    assert "-1" in msg and causes_in(msg) == []
    assert causes_in(_diagnosis(problem, lambda g, n: g.T, probe2=False)) == []


def test_ratio_n_blames_the_pair_unless_the_loss_is_the_tests(problem):
    # f is the student's loss: n× may be a gradient without ÷n or a loss divided twice
    msg = _diagnosis(problem, lambda g, n: n * g)
    assert "exactly n = 16" in msg and causes_in(msg) == [LOSS_GRAD_FACTOR_N]
    assert "both test inputs" in msg
    msg = _diagnosis(problem, lambda g, n: n * g, reference_loss=True)
    assert causes_in(msg) == [NOT_DIVIDED_BY_N]
    msg = _diagnosis(problem, lambda g, n: g / n, reference_loss=True)
    assert causes_in(msg) == [DIVIDED_BY_N_TWICE]
    # the same batch size on both probes: a factor 16 twice may be any constant 16
    msg = _diagnosis(problem, lambda g, n: n * g, n2=16, reference_loss=True)
    assert causes_in(msg) == []
    # a constant 16 is n on the first probe only: described, not blamed
    msg = _diagnosis(problem, lambda g, n: 16 * g, reference_loss=True)
    assert "exactly n = 16" in msg and causes_in(msg) == []
    # without the batch size a factor 16 is described, not explained; nor is a factor 2,
    # which might be a batch of two; the sign is never a batch size
    msg = _diagnosis(problem, lambda g, n: 16 * g, batch_size=None)
    assert "16 × numeric" in msg and causes_in(msg) == []
    assert causes_in(_diagnosis(problem, lambda g, n: 2 * g, batch_size=None)) == []
    msg = _diagnosis(problem, lambda g, n: -g, batch_size=None)
    assert causes_in(msg) == [LOSS_GRAD_SIGN]
    # batch_size=1: a loss without a batch, where 2 can only be the factor 2
    msg = _diagnosis(problem, lambda g, n: 2 * g, batch_size=1, n2=1)
    assert causes_in(msg) == [LOSS_GRAD_FACTOR_2]


def test_broadcast_db_that_gives_exactly_n_is_not_called_undivided(rng):
    # issue 20: an MSE gradient that flattens y for dw but not for db: db from an
    # (n,) - (n, 1) broadcast is exactly n times the right one. A second probe where y comes
    # as (n,) (no broadcast) separates it from "not divided by n": no cause is named.
    def mse_db(w, b, X, y):
        p = X @ w + b
        return 2.0 / len(p) * np.sum(p - y)  # y (n, 1): an (n, n) sum

    X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    X2, y2 = rng.normal(size=(5, 3)), rng.normal(size=5)
    w, b = rng.normal(size=3), np.array(0.3)

    def loss(bb, X=X, y=y):
        return float(np.mean((X @ w + bb - y.reshape(-1)) ** 2))

    with pytest.raises(GradientCheckError) as info:
        check_gradient(loss, b.copy(), mse_db(w, b, X, y), batch_size=8, reference_loss=True)
    assert "exactly n = 8" in str(info.value) and causes_in(str(info.value)) == []
    with pytest.raises(GradientCheckError) as info:
        check_gradient(loss, b.copy(), mse_db(w, b, X, y), batch_size=8, reference_loss=True,
                       probe2=(lambda bb: loss(bb, X2, y2), b.copy(), mse_db(w, b, X2, y2), 5))
    assert causes_in(str(info.value)) == []
    # the real "not divided by n" fails both probes with the ratio n: named
    def undivided(X, y):
        return 2.0 * np.sum(X @ w + b - y.reshape(-1))

    with pytest.raises(GradientCheckError) as info:
        check_gradient(loss, b.copy(), undivided(X, y), batch_size=8, reference_loss=True,
                       probe2=(lambda bb: loss(bb, X2, y2), b.copy(), undivided(X2, y2), 5))
    assert causes_in(str(info.value)) == [NOT_DIVIDED_BY_N]


def test_second_probe_failing_alone_fails_the_check(problem):
    W, X, y = problem
    W2, X2, y2 = _second(problem)
    msg = None
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda w: quad_loss(w, X, y), W, quad_grad(W, X, y), batch_size=16,
                       probe2=(lambda w: quad_loss(w, X2, y2), W2, -quad_grad(W2, X2, y2), 12))
    msg = str(info.value)
    assert "second test input" in msg and causes_in(msg) == []
    err = check_gradient(lambda w: quad_loss(w, X, y), W, quad_grad(W, X, y), batch_size=16,
                         probe2=(lambda w: quad_loss(w, X2, y2), W2, quad_grad(W2, X2, y2), 12))
    assert err < 1e-7


def test_summing_loss_with_averaging_gradient_is_not_called_divided_twice(problem):
    W, X, y = problem
    W2, X2, y2 = _second(problem)

    def summed_loss(w, X=X, y=y):  # the student's loss sums; the student's gradient averages
        return float(np.sum((X @ w - y) ** 2))

    with pytest.raises(GradientCheckError) as info:
        check_gradient(summed_loss, W, quad_grad(W, X, y), batch_size=16,
                       probe2=(lambda w: summed_loss(w, X2, y2), W2, quad_grad(W2, X2, y2), 12))
    msg = str(info.value)
    assert causes_in(msg) == [LOSS_GRAD_FACTOR_N] and "twice" not in msg


def test_sign_error_is_named(problem):
    assert causes_in(_diagnosis(problem, lambda g, n: -g)) == [LOSS_GRAD_SIGN]
    msg = _diagnosis(problem, lambda g, n: -g, reference_loss=True)
    assert causes_in(msg) == [GRADIENT_SIGN]


def test_factor_two_is_named(problem):
    assert causes_in(_diagnosis(problem, lambda g, n: 0.5 * g)) == [LOSS_GRAD_FACTOR_2]
    assert causes_in(_diagnosis(problem, lambda g, n: 2.0 * g)) == [LOSS_GRAD_FACTOR_2]
    half = _diagnosis(problem, lambda g, n: 0.5 * g, reference_loss=True)
    assert causes_in(half) == [MISSING_FACTOR_2]
    double = _diagnosis(problem, lambda g, n: 2.0 * g, reference_loss=True)
    assert causes_in(double) == [EXTRA_FACTOR_2]
    # a factor 2 on one probe and a sign on the other: two relations, none named
    msg = _diagnosis(problem, lambda g, n: 2.0 * g if n == 16 else -g, reference_loss=True)
    assert causes_in(msg) == []


def test_ratio_two_with_batch_of_two_is_ambiguous(rng):
    X = rng.normal(size=(2, 3))
    y = rng.normal(size=2)
    w = rng.normal(size=3)
    grad = 2.0 / 2 * X.T @ (X @ w - y)

    def loss(v):
        return float(np.mean((X @ v - y) ** 2))

    for wrong in (2 * grad, grad / 2):
        with pytest.raises(GradientCheckError) as info:
            check_gradient(loss, w, wrong, batch_size=2, probe2=(loss, w.copy(), wrong, 2))
        assert "ambiguous" in str(info.value) and causes_in(str(info.value)) == []


def test_rmse_loss_with_mse_gradient_names_no_factor(rng):
    X = rng.normal(size=(8, 3))
    y = rng.normal(size=8)
    w = rng.normal(size=3)
    grad = 2.0 / 8 * X.T @ (X @ w - y)  # the MSE gradient; the student's loss is the RMSE
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda v: float(np.sqrt(np.mean((X @ v - y) ** 2))), w, grad, batch_size=8)
    assert causes_in(str(info.value)) == []


def test_constant_multiple_only_if_exact(problem):
    def nearly(g, n):
        g = 2.0 * g
        g[0, 0] *= 1.01  # nearly a factor 2, but not exactly: no cause
        return g

    assert causes_in(_diagnosis(problem, nearly)) == []


def test_transpose_is_named(problem):
    assert causes_in(_diagnosis(problem, lambda g, n: g.T)) == [TRANSPOSED]
    # a transposed shape whose transpose is still wrong: described only
    assert causes_in(_diagnosis(problem, lambda g, n: 2 * g.T)) == []


def test_square_transpose_is_named(rng):
    X = rng.normal(size=(10, 4))
    Y = rng.normal(size=(10, 4))
    W = rng.normal(size=(4, 4))
    grad = 2.0 / 10 * X.T @ (X @ W - Y)
    def loss(w):
        return float(np.sum((X @ w - Y) ** 2) / 10)

    with pytest.raises(GradientCheckError) as info:
        check_gradient(loss, W, grad.T)
    assert "transpose" in str(info.value) and causes_in(str(info.value)) == []
    with pytest.raises(GradientCheckError) as info:
        grad2 = 2.0 / 10 * X.T @ (X @ (W + 1.0) - Y)
        check_gradient(loss, W, grad.T, probe2=(loss, W + 1.0, grad2.T))
    assert causes_in(str(info.value)) == [TRANSPOSED]


def test_nan_is_described_without_a_cause(problem):
    # NaN may come from exp overflow, 0/0, log 0, 1/p with p = 0: no single cause
    def nan(g, n):
        g = g.copy()
        g[0, 0] = np.nan
        return g

    msg = _diagnosis(problem, nan)
    assert "1 NaN/inf values" in msg and causes_in(msg) == []


def test_none_is_named(problem):
    assert "return" in _diagnosis(problem, None)


def test_zero_gradient_is_named(problem):
    assert "all zeros" in _diagnosis(problem, lambda g, n: np.zeros_like(g))


def test_broadcasting_shape_is_named(rng):
    # loss over a vector of n predictions; the buggy gradient came from (n,1) - (n,) -> (n, n)
    p = rng.normal(size=6)
    y = rng.normal(size=6)
    wrong = 2.0 / 6 * (p[:, None] - y[None, :])
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda v: float(np.mean((v - y) ** 2)), p, wrong)
    assert "reshape(-1)" in str(info.value) and causes_in(str(info.value)) == []
    p2, y2 = rng.normal(size=6), rng.normal(size=6)
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda v: float(np.mean((v - y) ** 2)), p, wrong,
                       probe2=(lambda v: float(np.mean((v - y2) ** 2)), p2,
                               2.0 / 6 * (p2[:, None] - y2[None, :])))
    assert causes_in(str(info.value)) == [BROADCAST_N1]
    # an extra batch axis (a gradient not summed over the batch) is not a broadcast: no cause
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda v: float(np.mean((v - y) ** 2)), p, np.zeros((6, 3)))
    assert causes_in(str(info.value)) == []


def test_unpatterned_error_reports_worst_entry(problem):
    def off(g, n):
        g = g.copy()
        g[2, 1] += 0.5
        return g

    assert "worst entry (2, 1)" in _diagnosis(problem, off)


def test_loss_nan_is_named():
    x = np.array([1000.0, 1.0])
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(GradientCheckError, match="loss itself") as info:
            check_gradient(lambda v: float(np.exp(v[0]) - np.exp(v[0])), x, np.zeros(2))
    assert causes_in(str(info.value)) == []


def test_sampled_check_on_big_tensor(rng):
    W = rng.normal(size=(80, 60))  # 4800 entries > max_full
    X = rng.normal(size=(10, 80))
    y = rng.normal(size=(10, 60))
    good = quad_grad(W, X, y)
    X2, y2 = rng.normal(size=(7, 80)), rng.normal(size=(7, 60))
    good2 = quad_grad(W, X2, y2)

    def f(w):
        return quad_loss(w, X, y)

    def f2(w):
        return quad_loss(w, X2, y2)

    assert check_gradient(f, W, good) < 1e-6
    with pytest.raises(GradientCheckError) as info:
        check_gradient(f, W, -good, probe2=(f2, W.copy(), -good2))
    assert causes_in(str(info.value)) == [LOSS_GRAD_SIGN]
    with pytest.raises(GradientCheckError) as info:
        check_gradient(f, W, good.T, probe2=(f2, W.copy(), good2.T))
    assert causes_in(str(info.value)) == [TRANSPOSED]
    with pytest.raises(GradientCheckError) as info:
        check_gradient(f, W, 10 * good, batch_size=10, probe2=(f2, W.copy(), 7 * good2, 7))
    assert causes_in(str(info.value)) == [LOSS_GRAD_FACTOR_N]
    with pytest.raises(GradientCheckError) as info:  # one probe: described only
        check_gradient(f, W, -good)
    assert causes_in(str(info.value)) == []
    bad = good.copy()
    bad[:, :30] *= 1.5  # wrong on half the entries, no constant ratio
    with pytest.raises(GradientCheckError, match="sampled"):
        check_gradient(lambda w: quad_loss(w, X, y), W, bad)


def test_diagnose_returns_none_when_no_pattern():
    assert diagnose(np.array([1.0, 2.0]), np.array([1.0, 2.5])) is None


def test_python_numbers_and_lists_are_gradients_too():
    check_gradient(lambda v: float(np.sum(v**2)), np.array([1.0, 2.0]), [2.0, 4.0])
    check_gradient(lambda v: float(v) ** 2, np.array(3.0), 6.0)
    with pytest.raises(GradientCheckError, match="should be a numeric array, got a list"):
        check_gradient(lambda v: float(np.sum(v**2)), np.array([1.0, 2.0]), ["a", "b"])
