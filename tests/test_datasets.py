import gzip

import numpy as np
import pytest

from grader import datasets
from grader.datasets import (
    DatasetNotFoundError,
    load_digits,
    load_mnist,
    make_house_prices,
    make_moons,
    mnist_available,
    read_idx,
    train_val_test_split,
    write_idx,
)


def test_house_prices_shapes_seed_and_ground_truth():
    a = make_house_prices(n=500, seed=3)
    b = make_house_prices(n=500, seed=3)
    assert a.X.shape == (500, 1) and a.y.shape == (500,)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.y, make_house_prices(n=500, seed=4).y)
    # residuals of the true line are the noise: mean ~0, std ~noise
    resid = a.y - (a.X[:, 0] * a.w_true[0] + a.b_true)
    assert abs(resid.mean()) < 0.05 and abs(resid.std() - a.noise) < 0.03


def test_house_prices_noiseless_is_exact_and_bad_args():
    d = make_house_prices(n=10, noise=0.0, seed=0)
    np.testing.assert_allclose(d.y, 3.0 * d.X[:, 0] + 0.5)
    with pytest.raises(ValueError):
        make_house_prices(n=0)
    with pytest.raises(ValueError):
        make_house_prices(noise=-1)


def test_load_digits():
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.dtype == np.float64 and 0.0 <= X.min() and X.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))


def test_make_moons_seeded():
    X1, y1 = make_moons(200, noise=0.2, seed=5)
    X2, y2 = make_moons(200, noise=0.2, seed=5)
    assert X1.shape == (200, 2) and np.array_equal(X1, X2) and np.array_equal(y1, y2)
    X3, _ = make_moons(200, noise=0.2, seed=np.random.default_rng(1))
    assert X3.shape == (200, 2)


def test_split_sizes_disjoint_stratified():
    X, y = load_digits()
    Xtr, ytr, Xva, yva, Xte, yte = train_val_test_split(X, y, val=0.1, test=0.2, seed=0)
    assert len(Xtr) + len(Xva) + len(Xte) == len(X)
    assert abs(len(Xte) - 0.2 * len(X)) <= 1 and abs(len(Xva) - 0.1 * len(X)) <= 2
    # split the row indices the same way: the three parts partition them exactly
    idx = np.arange(len(X))[:, None]
    itr, _, iva, _, ite, _ = train_val_test_split(idx, y, val=0.1, test=0.2, seed=0)
    parts = [set(itr[:, 0]), set(iva[:, 0]), set(ite[:, 0])]
    assert set().union(*parts) == set(range(len(X))) and sum(map(len, parts)) == len(X)
    for part in (ytr, yva, yte):
        assert set(np.unique(part)) == set(range(10))
    again = train_val_test_split(X, y, val=0.1, test=0.2, seed=0)
    assert np.array_equal(again[0], Xtr)
    with pytest.raises(ValueError):
        train_val_test_split(X, y[:-1])
    with pytest.raises(ValueError):
        train_val_test_split(X, y, val=0.5, test=0.6)
    _, _, Xva0, _, _, _ = train_val_test_split(X, y, val=0.0, test=0.2)
    assert len(Xva0) == 0


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, suffix):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / f"a-idx3-ubyte{suffix}"
    write_idx(path, arr)
    back = read_idx(path)
    assert back.dtype == np.uint8 and np.array_equal(back, arr)


def test_idx_reader_against_hand_written_bytes(tmp_path):
    # header written by hand from the IDX spec: magic 0x00000801, count 3, then three labels
    raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 9])
    (tmp_path / "lab").write_bytes(raw)
    assert read_idx(tmp_path / "lab").tolist() == [7, 2, 9]


def test_idx_reader_rejects_corrupt_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(ValueError, match="bytes"):
        read_idx(tmp_path / "short")


def _write_small_mnist(root, rng, gz=False):
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    imgs = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labs = rng.integers(0, 10, size=12, dtype=np.uint8)
    write_idx(root / f"train-images-idx3-ubyte{ext}", imgs)
    write_idx(root / f"train-labels-idx1-ubyte{ext}", labs)
    write_idx(root / f"t10k-images-idx3-ubyte{ext}", imgs[:5])
    write_idx(root / f"t10k-labels-idx1-ubyte{ext}", labs[:5])
    return imgs, labs


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_small_idx_files(tmp_path, rng, gz):
    imgs, labs = _write_small_mnist(tmp_path / "mnist", rng, gz)
    assert mnist_available(tmp_path / "mnist")
    Xtr, ytr, Xte, yte = load_mnist(tmp_path / "mnist")
    assert Xtr.shape == (12, 784) and Xte.shape == (5, 784)
    np.testing.assert_allclose(Xtr[3], imgs[3].reshape(-1) / 255.0)
    assert ytr.tolist() == labs.tolist() and yte.tolist() == labs[:5].tolist()


def test_load_mnist_uses_data_dir_env(tmp_path, rng, monkeypatch):
    _write_small_mnist(tmp_path / "mnist", rng)
    monkeypatch.setenv("DLKIT_DATA", str(tmp_path))
    assert datasets.data_dir() == tmp_path
    assert mnist_available()
    assert load_mnist()[0].shape == (12, 784)


def test_missing_mnist_is_a_clear_error(tmp_path):
    assert not mnist_available(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte.*load_digits"):
        load_mnist(tmp_path)


def test_mismatched_mnist_counts(tmp_path, rng):
    _write_small_mnist(tmp_path, rng)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="labels"):
        load_mnist(tmp_path)


def test_gzip_files_really_are_gzip(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((2, 2), dtype=np.uint8))
    with gzip.open(tmp_path / "x.gz") as fh:
        assert fh.read(4) == bytes([0, 0, 8, 2])
