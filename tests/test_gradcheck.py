import numpy as np
import pytest

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


def _diagnosis(problem, grad):
    W, X, y = problem
    with pytest.raises(GradientCheckError) as info:
        check_gradient(lambda w: quad_loss(w, X, y), W, grad, name="dW", batch_size=16)
    return str(info.value)


def test_missing_division_by_batch_is_named(problem):
    W, X, y = problem
    msg = _diagnosis(problem, 16 * quad_grad(W, X, y))
    assert "batch size" in msg and "divide" in msg


def test_divided_twice_is_named(problem):
    W, X, y = problem
    msg = _diagnosis(problem, quad_grad(W, X, y) / 16)
    assert "divided by n twice" in msg


def test_sign_error_is_named(problem):
    W, X, y = problem
    assert "wrong sign" in _diagnosis(problem, -quad_grad(W, X, y))


def test_factor_two_is_named(problem):
    W, X, y = problem
    assert "factor 2" in _diagnosis(problem, 0.5 * quad_grad(W, X, y))
    assert "factor 2" in _diagnosis(problem, 2.0 * quad_grad(W, X, y))


def test_transpose_is_named(problem):
    W, X, y = problem
    assert "transposed" in _diagnosis(problem, quad_grad(W, X, y).T)


def test_nan_is_named(problem):
    W, X, y = problem
    g = quad_grad(W, X, y)
    g[0, 0] = np.nan
    assert "NaN/inf" in _diagnosis(problem, g)


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
    with pytest.raises(GradientCheckError, match="broadcasting"):
        check_gradient(lambda v: float(np.mean((v - y) ** 2)), p, wrong)


def test_unpatterned_error_reports_worst_entry(problem):
    W, X, y = problem
    g = quad_grad(W, X, y)
    g[2, 1] += 0.5
    msg = _diagnosis(problem, g)
    assert "worst entry (2, 1)" in msg


def test_loss_nan_is_named():
    x = np.array([1000.0, 1.0])
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(GradientCheckError, match="loss itself"):
            check_gradient(lambda v: float(np.exp(v[0]) - np.exp(v[0])), x, np.zeros(2))


def test_sampled_check_on_big_tensor(rng):
    W = rng.normal(size=(80, 60))  # 4800 entries > max_full
    X = rng.normal(size=(10, 80))
    y = rng.normal(size=(10, 60))
    good = quad_grad(W, X, y)
    assert check_gradient(lambda w: quad_loss(w, X, y), W, good) < 1e-6
    with pytest.raises(GradientCheckError, match="wrong sign"):
        check_gradient(lambda w: quad_loss(w, X, y), W, -good)
    bad = good.copy()
    bad[:, :30] *= 1.5  # wrong on half the entries, no constant ratio
    with pytest.raises(GradientCheckError, match="sampled"):
        check_gradient(lambda w: quad_loss(w, X, y), W, bad)


def test_diagnose_returns_none_when_no_pattern():
    assert diagnose(np.array([1.0, 2.0]), np.array([1.0, 2.5])) is None
