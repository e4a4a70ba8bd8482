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


def _diagnosis(problem, grad, **kwargs):
    W, X, y = problem
    kwargs.setdefault("batch_size", 16)
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda w: quad_loss(w, X, y), W, grad, name="dW", **kwargs)
    msg = str(info.value)
    assert msg.startswith("dW: ") and msg.count("likely cause:") <= 1
    return msg


def test_ratio_n_blames_the_pair_unless_the_loss_is_the_tests(problem):
    W, X, y = problem
    # f is the student's loss: n× may be a gradient without ÷n or a loss divided twice
    msg = _diagnosis(problem, 16 * quad_grad(W, X, y))
    assert "exactly n = 16" in msg and causes_in(msg) == [LOSS_GRAD_FACTOR_N]
    msg = _diagnosis(problem, 16 * quad_grad(W, X, y), reference_loss=True)
    assert causes_in(msg) == [NOT_DIVIDED_BY_N]
    msg = _diagnosis(problem, quad_grad(W, X, y) / 16, reference_loss=True)
    assert causes_in(msg) == [DIVIDED_BY_N_TWICE]
    # without the batch size a factor 16 is described, not explained; nor is a factor 2,
    # which might be a batch of two; the sign is never a batch size
    msg = _diagnosis(problem, 16 * quad_grad(W, X, y), batch_size=None)
    assert "16 × numeric" in msg and causes_in(msg) == []
    assert causes_in(_diagnosis(problem, 2 * quad_grad(W, X, y), batch_size=None)) == []
    msg = _diagnosis(problem, -quad_grad(W, X, y), batch_size=None)
    assert causes_in(msg) == [LOSS_GRAD_SIGN]
    # batch_size=1: a loss without a batch, where 2 can only be the factor 2
    msg = _diagnosis(problem, 2 * quad_grad(W, X, y), batch_size=1)
    assert causes_in(msg) == [LOSS_GRAD_FACTOR_2]


def test_summing_loss_with_averaging_gradient_is_not_called_divided_twice(problem):
    W, X, y = problem

    def summed_loss(w):  # the student's loss sums; the student's gradient averages
        return float(np.sum((X @ w - y) ** 2))

    with pytest.raises(GradientCheckError) as info:
        check_gradient(summed_loss, W, quad_grad(W, X, y), batch_size=16)
    msg = str(info.value)
    assert causes_in(msg) == [LOSS_GRAD_FACTOR_N] and "twice" not in msg


def test_sign_error_is_named(problem):
    W, X, y = problem
    assert causes_in(_diagnosis(problem, -quad_grad(W, X, y))) == [LOSS_GRAD_SIGN]
    msg = _diagnosis(problem, -quad_grad(W, X, y), reference_loss=True)
    assert causes_in(msg) == [GRADIENT_SIGN]


def test_factor_two_is_named(problem):
    W, X, y = problem
    assert causes_in(_diagnosis(problem, 0.5 * quad_grad(W, X, y))) == [LOSS_GRAD_FACTOR_2]
    assert causes_in(_diagnosis(problem, 2.0 * quad_grad(W, X, y))) == [LOSS_GRAD_FACTOR_2]
    half = _diagnosis(problem, 0.5 * quad_grad(W, X, y), reference_loss=True)
    assert causes_in(half) == [MISSING_FACTOR_2]
    double = _diagnosis(problem, 2.0 * quad_grad(W, X, y), reference_loss=True)
    assert causes_in(double) == [EXTRA_FACTOR_2]


def test_ratio_two_with_batch_of_two_is_ambiguous(rng):
    X = rng.normal(size=(2, 3))
    y = rng.normal(size=2)
    w = rng.normal(size=3)
    grad = 2.0 / 2 * X.T @ (X @ w - y)
    for wrong in (2 * grad, grad / 2):
        with pytest.raises(GradientCheckError) as info:
            check_gradient(lambda v: float(np.mean((X @ v - y) ** 2)), w, wrong, batch_size=2)
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
    W, X, y = problem
    g = 2.0 * quad_grad(W, X, y)
    g[0, 0] *= 1.01  # nearly a factor 2, but not exactly: no cause
    assert causes_in(_diagnosis(problem, g)) == []


def test_transpose_is_named(problem):
    W, X, y = problem
    assert causes_in(_diagnosis(problem, quad_grad(W, X, y).T)) == [TRANSPOSED]
    # a transposed shape whose transpose is still wrong: described only
    assert causes_in(_diagnosis(problem, 2 * quad_grad(W, X, y).T)) == []


def test_square_transpose_is_named(rng):
    X = rng.normal(size=(10, 4))
    Y = rng.normal(size=(10, 4))
    W = rng.normal(size=(4, 4))
    grad = 2.0 / 10 * X.T @ (X @ W - Y)
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda w: float(np.sum((X @ w - Y) ** 2) / 10), W, grad.T)
    assert causes_in(str(info.value)) == [TRANSPOSED]


def test_nan_is_described_without_a_cause(problem):
    # NaN may come from exp overflow, 0/0, log 0, 1/p with p = 0: no single cause
    W, X, y = problem
    g = quad_grad(W, X, y)
    g[0, 0] = np.nan
    msg = _diagnosis(problem, g)
    assert "1 NaN/inf values" in msg and causes_in(msg) == []


def test_none_is_named(problem):
    assert "return" in _diagnosis(problem, None)


def test_zero_gradient_is_named(problem):
    W, _, _ = problem
    assert "all zeros" in _diagnosis(problem, np.zeros_like(W))


def test_broadcasting_shape_is_named(rng):
    # loss over a vector of n predictions; the buggy gradient came from (n,1) - (n,) -> (n, n)
    p = rng.normal(size=6)
    y = rng.normal(size=6)
    wrong = 2.0 / 6 * (p[:, None] - y[None, :])
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda v: float(np.mean((v - y) ** 2)), p, wrong)
    assert causes_in(str(info.value)) == [BROADCAST_N1]
    # an extra batch axis (a gradient not summed over the batch) is not a broadcast: no cause
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda v: float(np.mean((v - y) ** 2)), p, np.zeros((6, 3)))
    assert causes_in(str(info.value)) == []


def test_unpatterned_error_reports_worst_entry(problem):
    W, X, y = problem
    g = quad_grad(W, X, y)
    g[2, 1] += 0.5
    msg = _diagnosis(problem, g)
    assert "worst entry (2, 1)" in msg


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
    assert check_gradient(lambda w: quad_loss(w, X, y), W, good) < 1e-6
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda w: quad_loss(w, X, y), W, -good)
    assert causes_in(str(info.value)) == [LOSS_GRAD_SIGN]
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda w: quad_loss(w, X, y), W, good.T)
    assert causes_in(str(info.value)) == [TRANSPOSED]
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda w: quad_loss(w, X, y), W, 10 * good, batch_size=10)
    assert causes_in(str(info.value)) == [LOSS_GRAD_FACTOR_N]
    bad = good.copy()
    bad[:, :30] *= 1.5  # wrong on half the entries, no constant ratio
    with pytest.raises(GradientCheckError, match="sampled"):
        check_gradient(lambda w: quad_loss(w, X, y), W, bad)


def test_diagnose_returns_none_when_no_pattern():
    assert diagnose(np.array([1.0, 2.0]), np.array([1.0, 2.5])) is None


def test_python_numbers_and_lists_are_gradients_too():
    check_gradient(lambda v: float(np.sum(v**2)), np.array([1.0, 2.0]), [2.0, 4.0])
    check_gradient(lambda v: float(v) ** 2, np.array(3.0), 6.0)
    with pytest.raises(GradientCheckError, match="not a numeric array"):
        check_gradient(lambda v: float(np.sum(v**2)), np.array([1.0, 2.0]), ["a", "b"])
