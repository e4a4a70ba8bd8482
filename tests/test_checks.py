import numpy as np
import pytest

from grader.checks import (
    assert_close,
    assert_finite,
    assert_inputs_unchanged,
    assert_no_loops,
    assert_scalar,
    assert_shape,
)


def test_assert_shape_names_broadcasting_trap():
    y_hat, y = np.zeros(5), np.zeros((5, 1))
    with pytest.raises(AssertionError, match="broadcasting"):
        assert_shape(y_hat - y, (5,), "residual")


def test_assert_shape_names_transpose_and_none():
    with pytest.raises(AssertionError, match="transposed"):
        assert_shape(np.zeros((3, 4)), (4, 3))
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


def test_assert_close_scalar_and_ratio_hint():
    assert_close(1.0 + 1e-9, 1.0)
    with pytest.raises(AssertionError, match="sign"):
        assert_close(-2.0, 2.0, "dL")
    with pytest.raises(AssertionError, match="factor 2"):
        assert_close(4.0, 2.0, "dL")


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
    with pytest.raises(AssertionError, match="in place"):
        assert_inputs_unchanged(relu_in_place, x.copy())


def looped(X):
    total = 0.0
    for row in X:
        total += row.sum()
    return total


def comprehension(X):
    return sum([row.sum() for row in X])


def vectorised(X):
    return X.sum()


def test_assert_no_loops():
    assert_no_loops(vectorised)
    with pytest.raises(AssertionError, match="For"):
        assert_no_loops(looped)
    with pytest.raises(AssertionError, match="ListComp"):
        assert_no_loops(comprehension)
