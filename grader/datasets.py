"""Datasets for the course, all offline and seeded.

* :func:`make_house_prices` — synthetic surface → price regression with known ground truth
  (lecture 000's running example);
* :func:`load_digits` — scikit-learn's 8×8 digits, the default image set (ships with sklearn);
* :func:`load_mnist` — MNIST read from IDX files under ``data/mnist/`` when they are present;
* :func:`make_moons` — scikit-learn's two moons;
* :func:`train_val_test_split` — one seeded, stratified three-way split.

Batches are rows: ``X`` has shape ``(n, d)``.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DatasetNotFoundError",
    "RegressionData",
    "data_dir",
    "load_digits",
    "load_mnist",
    "make_house_prices",
    "make_moons",
    "mnist_available",
    "read_idx",
    "train_val_test_split",
    "write_idx",
]

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset that must be supplied as files is not on disk."""


@dataclass(frozen=True)
class RegressionData:
    """Inputs ``X`` (n, d), targets ``y`` (n,), and the true parameters that generated them."""

    X: np.ndarray
    y: np.ndarray
    w_true: np.ndarray
    b_true: float
    noise: float


def data_dir() -> Path:
    """Where file-based datasets live: ``$DLKIT_DATA`` if set, else the repository's ``data/``."""
    env = os.environ.get("DLKIT_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def make_house_prices(
    n: int = 100,
    *,
    w: float = 3.0,
    b: float = 0.5,
    noise: float = 0.25,
    seed: int | np.random.Generator = 0,
) -> RegressionData:
    """Surface (in 100 m²) → price (in 100 k€): ``y = w·x + b + ε``, ``ε ~ N(0, noise²)``.

    Returns ``X`` of shape (n, 1) — one feature, batches as rows — and ``y`` of shape (n,).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")
    rng = np.random.default_rng(seed)
    surface = rng.uniform(0.3, 2.0, size=(n, 1))
    y = w * surface[:, 0] + b + noise * rng.standard_normal(n)
    return RegressionData(surface, y, np.array([w]), float(b), float(noise))


def load_digits(*, scale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits: ``X`` (1797, 64) float64, ``y`` (1797,) int64.

    With ``scale=True`` pixel values are divided by 16, into [0, 1].
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    X = bunch.data.astype(np.float64)
    if scale:
        X /= 16.0
    return X, bunch.target.astype(np.int64)


def make_moons(
    n: int = 1000, *, noise: float = 0.2, seed: int | np.random.Generator = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half-circles: ``X`` (n, 2) float64, ``y`` (n,) int64 in {0, 1}."""
    from sklearn.datasets import make_moons as _sk_make_moons

    rs = seed if isinstance(seed, int) else int(np.random.default_rng(seed).integers(2**31))
    X, y = _sk_make_moons(n_samples=n, noise=noise, random_state=rs)
    return X.astype(np.float64), y.astype(np.int64)


def train_val_test_split(
    X: np.ndarray,
    y: np.ndarray,
    *,
    val: float = 0.1,
    test: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
) -> tuple[np.ndarray, ...]:
    """Split into train / validation / test; returns ``Xtr, ytr, Xva, yva, Xte, yte``.

    ``val`` and ``test`` are fractions of the whole set. Stratified on ``y`` by default
    (turn it off for regression targets).
    """
    from sklearn.model_selection import train_test_split

    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if not (0 <= val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"need 0 <= val, 0 < test and val + test < 1; got val={val}, test={test}")
    strat = y if stratify else None
    X_rest, X_te, y_rest, y_te = train_test_split(
        X, y, test_size=test, random_state=seed, stratify=strat
    )
    if val == 0:
        empty_X, empty_y = X[:0], y[:0]
        return X_rest, y_rest, empty_X, empty_y, X_te, y_te
    strat = y_rest if stratify else None
    X_tr, X_va, y_tr, y_va = train_test_split(
        X_rest, y_rest, test_size=val / (1 - test), random_state=seed + 1, stratify=strat
    )
    return X_tr, y_tr, X_va, y_va, X_te, y_te


# ----------------------------------------------------------------------------- IDX / MNIST

_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), optionally gzipped, into an array."""
    path = Path(path)
    with _open(path) as fh:
        header = fh.read(4)
        if len(header) < 4 or header[0] != 0 or header[1] != 0:
            raise ValueError(f"{path}: not an IDX file (bad magic number {header!r})")
        code, ndim = header[2], header[3]
        if code not in _IDX_DTYPES:
            raise ValueError(f"{path}: unknown IDX data type 0x{code:02x}")
        shape = struct.unpack(">" + "I" * ndim, fh.read(4 * ndim))
        dtype = np.dtype(_IDX_DTYPES[code])
        payload = fh.read()
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(payload) != expected:
        raise ValueError(
            f"{path}: header promises {shape} ({expected} bytes) but {len(payload)} bytes follow"
        )
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (uint8 data); gzipped when the name ends in ``.gz``."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"write_idx writes uint8 arrays, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + array.tobytes())


def _find_mnist_file(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    return None


def mnist_available(root: str | Path | None = None) -> bool:
    """True when all four MNIST IDX files are under ``root`` (default ``data/mnist``)."""
    root = Path(root) if root is not None else data_dir() / "mnist"
    return all(_find_mnist_file(root, stem) for stem in MNIST_FILES.values())


def load_mnist(
    root: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST from IDX files: ``X_train`` (60000, 784) float64 in [0, 1], ``y_train``, ``X_test``,
    ``y_test``. Raises :class:`DatasetNotFoundError` naming the missing files when absent."""
    root = Path(root) if root is not None else data_dir() / "mnist"
    found = {key: _find_mnist_file(root, stem) for key, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[k] for k, p in found.items() if p is None]
    if missing:
        raise DatasetNotFoundError(
            f"MNIST is not available offline: missing {', '.join(missing)} (or .gz) in {root}. "
            "Copy the four IDX files there (see data/README.md), or use load_digits()."
        )
    images = {k: read_idx(found[k]) for k in ("train_images", "test_images")}
    labels = {k: read_idx(found[k]) for k in ("train_labels", "test_labels")}
    for split in ("train", "test"):
        n_img, n_lab = len(images[f"{split}_images"]), len(labels[f"{split}_labels"])
        if n_img != n_lab:
            raise ValueError(f"MNIST {split}: {n_img} images but {n_lab} labels")

    def flat(a: np.ndarray) -> np.ndarray:
        return a.reshape(len(a), -1).astype(np.float64) / 255.0

    return (
        flat(images["train_images"]),
        labels["train_labels"].astype(np.int64),
        flat(images["test_images"]),
        labels["test_labels"].astype(np.int64),
    )
