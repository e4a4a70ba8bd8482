"""Where to set notebook 03's digits bar: test accuracies of the reference and of other MLPs.

``test_digits_accuracy`` (solutions/03_mlp_backprop) trains the student's ``digits_model`` on
``load_digits`` split by ``train_val_test_split(..., val=0.1, test=0.2, seed=s)`` and asks for
a test accuracy of at least ``BAR``. This script runs, on ``--splits`` splits (seed s = 1, 2,
..., each with model seed s and shuffling seed s, as the test does):

* ``reference``: the reference solution's ``digits_model`` (its code cells executed from the
  source notebook, as written);
* a few *reasonable* MLPs a student could choose after the notebook's grid (one hidden
  ReLU layer of 64 to 512 units, learning rate 0.1, minibatches of 16 or 32; the reference
  itself is h = 256, 20 epochs, lr 0.5, batches of 32);
* ``linear``: softmax regression trained with the same loop (what the non-linearity check of
  the test is there for: it must not pass on accuracy alone).

For each it prints the mean, the worst and the best test accuracy and the margin of the mean
and of the worst over the bar, and the fraction of splits that reach it.

    python benchmarks/mlp_bar.py               # 13 splits
    python benchmarks/mlp_bar.py --splits 13 --bar 0.97

Instructor-side; needs the course's Python environment (NumPy, scikit-learn for the data).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

from grader.datasets import load_digits, train_val_test_split  # noqa: E402

NOTEBOOK = os.path.join(ROOT, "solutions", "03_mlp_backprop", "03_mlp_backprop.ipynb")
REFERENCE_CELLS = ("module_base", "activations", "Linear", "ReLU", "SoftmaxCrossEntropy",
                   "Sequential", "make_mlp", "accuracy", "train_epoch", "fit", "digits_model")
#: The bars of test_digits_accuracy (keep in step with it): the visible part asks for
#: VISIBLE_BAR on split 1, the hidden part for a mean of BAR over splits 2, 3 and 4.
VISIBLE_BAR = 0.96
BAR = 0.96


class _Quiet:
    """Stands in for tqdm's trange in the notebook's fit (no progress bar)."""

    def __init__(self, n, **_):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def set_postfix(self, **_):
        pass


def notebook_reference(path: str = NOTEBOOK) -> dict:
    """The reference solution's code cells (those of REFERENCE_CELLS present), executed."""
    with open(path, encoding="utf-8") as f:
        cells = json.load(f)["cells"]
    by_id = {c["metadata"].get("nbgrader", {}).get("grade_id"): c for c in cells}
    namespace: dict = {"np": np, "trange": _Quiet}
    for grade_id in REFERENCE_CELLS:
        if grade_id in by_id:
            source = "".join(by_id[grade_id]["source"])
            exec(compile(source, f"{path}:{grade_id}", "exec"), namespace)  # noqa: S102
    return namespace


def candidates(ref: dict) -> dict:
    """name -> builder(rng) returning (net, settings), as digits_model does."""
    Sequential, Linear, ReLU = ref["Sequential"], ref["Linear"], ref["ReLU"]

    def mlp(h, epochs, lr, batch_size):
        def build(rng):
            net = Sequential(Linear(64, h, rng), ReLU(), Linear(h, 10, rng))
            return net, dict(epochs=epochs, lr=lr, batch_size=batch_size)
        return build

    def linear(rng):
        return Sequential(Linear(64, 10, rng)), dict(epochs=40, lr=0.1, batch_size=16)

    return {
        "reference": ref["digits_model"],
        "h=64, 30 epochs, lr 0.1, batch 16": mlp(64, 30, 0.1, 16),
        "h=128, 20 epochs, lr 0.1, batch 32": mlp(128, 20, 0.1, 32),
        "h=256, 20 epochs, lr 0.1, batch 16": mlp(256, 20, 0.1, 16),
        "h=512, 40 epochs, lr 0.1, batch 16": mlp(512, 40, 0.1, 16),
        "linear (softmax regression)": linear,
    }


def run(splits: int, bar: float) -> dict:
    ref = notebook_reference()
    X, y = load_digits()
    results = {}
    for name, build in candidates(ref).items():
        accs, start = [], time.perf_counter()
        for s in range(1, splits + 1):
            Xtr, ytr, Xva, yva, Xte, yte = train_val_test_split(X, y, val=0.1, test=0.2, seed=s)
            net, settings = build(np.random.default_rng(s))
            ref["fit"](net, Xtr, ytr, Xva, yva, **settings, seed=s, progress=False)
            accs.append(ref["accuracy"](net, Xte, yte))
        a = np.array(accs)
        results[name] = a
        print(f"{name:36s} mean {a.mean():.4f}  worst {a.min():.4f}  best {a.max():.4f}  "
              f"mean - bar {a.mean() - bar:+.4f}  worst - bar {a.min() - bar:+.4f}  "
              f"splits >= bar {np.mean(a >= bar):.2f}  "
              f"({(time.perf_counter() - start) / splits:.1f} s per run)", flush=True)
        print(f"{'':36s} per split: {' '.join(f'{v:.4f}' for v in a)}", flush=True)
        if splits >= 4:
            triples = [a[k:k + 3].mean() for k in range(1, splits - 2, 3)]
            passes = a[0] >= VISIBLE_BAR and a[1:4].mean() >= bar
            print(f"{'':36s} the test (split 1 >= {VISIBLE_BAR}, mean of splits 2-4 >= {bar}): "
                  f"{'passes' if passes else 'FAILS'}; means of splits 2-4, 5-7, ...: "
                  f"{' '.join(f'{v:.4f}' for v in triples)} (worst - bar "
                  f"{min(triples) - bar:+.4f})", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--splits", type=int, default=13, help="splits / seeds 1..N (default 13)")
    p.add_argument("--bar", type=float, default=BAR, help=f"the bar (default {BAR})")
    args = p.parse_args(argv)
    print(f"digits, {args.splits} splits (seeds 1..{args.splits}), bar {args.bar}")
    run(args.splits, args.bar)
    return 0


if __name__ == "__main__":
    sys.exit(main())
