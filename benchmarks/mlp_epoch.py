"""Time one training epoch of an MNIST-size MLP: the NumPy reference against PyTorch on the CPU.

The model is notebook 03's: 784-256-10, Linear (He init) → ReLU → Linear, softmax
cross-entropy averaged over the batch, plain SGD; batch 128 over 60,000 seeded synthetic
samples (the last incomplete batch is dropped here; the notebook's ``train_epoch`` trains on
it as a smaller batch, so its epoch has one more, smaller, step when 128 does not divide the
number of samples).

This file is instructor-side. It times, in one run and on the same data and batch order:

* ``notebook``: the reference solution itself — the ``Module``, ``Linear``, ``ReLU``,
  ``SoftmaxCrossEntropy``, ``Sequential`` and ``train_epoch`` cells of
  ``solutions/03_mlp_backprop``, executed as written, with float32 weights and data;
* ``fused``: a compact float32 copy of the same math (no module objects, in-place updates
  where the math allows), the floor of what NumPy can do here;
* ``torch``: the same model in PyTorch on the CPU, when PyTorch is importable, with
  ``torch.set_num_threads`` equal to NumPy's BLAS thread count.

It prints seconds per epoch for each and the ratios to PyTorch. It needs only NumPy (and
PyTorch for the comparison): the notebook is read as JSON.

    python benchmarks/mlp_epoch.py                 # threads = all cores
    python benchmarks/mlp_epoch.py --threads 2 --repeats 5

Target (issue 4): NumPy time ≤ 1.0× PyTorch time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="BLAS / PyTorch threads (default: all cores)")
    p.add_argument("--samples", type=int, default=60_000, help="training samples (default 60000)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=3,
                   help="epochs timed per implementation; the fastest is reported")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true", help="time the NumPy reference only")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # Thread counts must be fixed before NumPy (and its BLAS) is first imported.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

D_IN, N_CLASSES = 784, 10


def synthetic_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images in [0, 1) of shape (n, 784) float32, labels from a random linear teacher."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, D_IN), dtype=np.float32)
    teacher = rng.standard_normal((D_IN, N_CLASSES)).astype(np.float32)
    y = np.argmax((X - 0.5) @ teacher, axis=1).astype(np.int64)
    return X, y


def init_params(hidden: int, seed: int = 0) -> dict[str, np.ndarray]:
    """He initialisation, as the notebook's ``Linear``: W ~ N(0, 2 / fan_in), b = 0."""
    rng = np.random.default_rng(seed)
    return {
        "W1": (rng.standard_normal((D_IN, hidden)) * np.sqrt(2.0 / D_IN)).astype(np.float32),
        "b1": np.zeros(hidden, dtype=np.float32),
        "W2": (rng.standard_normal((hidden, N_CLASSES)) * np.sqrt(2.0 / hidden)).astype(
            np.float32
        ),
        "b2": np.zeros(N_CLASSES, dtype=np.float32),
    }


def numpy_sgd_step(p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, lr: float) -> float:
    """Forward, loss, backward and SGD step on one batch, updating ``p`` in place; the loss."""
    n = x.shape[0]
    rows = np.arange(n)
    # forward: H = relu(X W1 + b1), O = H W2 + b2
    h = x @ p["W1"]
    h += p["b1"]
    np.maximum(h, 0.0, out=h)
    o = h @ p["W2"]
    o += p["b2"]
    # softmax cross-entropy with the max shift, mean over the batch
    o -= o.max(axis=1, keepdims=True)
    np.exp(o, out=o)
    total = o.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(total[:, 0]) - np.log(o[rows, y])))
    # backward: dO = (P - onehot) / n
    o /= total
    o[rows, y] -= 1.0
    o *= np.float32(1.0 / n)
    dW2 = h.T @ o
    db2 = o.sum(axis=0)
    dh = o @ p["W2"].T
    dh *= h > 0  # ReLU: pass the gradient where the unit was on
    dW1 = x.T @ dh
    db1 = dh.sum(axis=0)
    # SGD step
    lr32 = np.float32(lr)
    for name, g in (("W1", dW1), ("b1", db1), ("W2", dW2), ("b2", db2)):
        g *= lr32
        p[name] -= g
    return loss


def numpy_epoch(p, X, y, order, batch_size, lr) -> float:
    losses = []
    for k in range(len(order) // batch_size):
        idx = order[k * batch_size : (k + 1) * batch_size]
        losses.append(numpy_sgd_step(p, X[idx], y[idx], lr))
    return float(np.mean(losses))


NOTEBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "solutions",
                        "03_mlp_backprop", "03_mlp_backprop.ipynb")
REFERENCE_CELLS = ("module_base", "Linear", "ReLU", "SoftmaxCrossEntropy", "Sequential",
                   "train_epoch")


def notebook_reference(path: str = NOTEBOOK) -> dict:
    """The reference solution's classes and ``train_epoch``, executed from the source notebook."""
    import json

    with open(path, encoding="utf-8") as f:
        cells = json.load(f)["cells"]
    by_id = {c["metadata"].get("nbgrader", {}).get("grade_id"): c for c in cells}
    missing = [g for g in REFERENCE_CELLS if g not in by_id]
    if missing:
        raise SystemExit(f"{path}: no cells {missing}")
    namespace = {"np": np}
    for grade_id in REFERENCE_CELLS:
        source = "".join(by_id[grade_id]["source"])
        exec(compile(source, f"{path}:{grade_id}", "exec"), namespace)  # noqa: S102
    return namespace


def notebook_net(ref: dict, p: dict[str, np.ndarray]):
    """notebook 03's Sequential(Linear, ReLU, Linear) holding copies of the weights ``p``."""
    rng = np.random.default_rng(0)
    hidden = p["W1"].shape[1]
    l1, l2 = ref["Linear"](D_IN, hidden, rng), ref["Linear"](hidden, N_CLASSES, rng)
    for layer, w, b in ((l1, "W1", "b1"), (l2, "W2", "b2")):
        layer.W, layer.b = p[w].copy(), p[b].copy()
        layer.dW, layer.db = np.zeros_like(layer.W), np.zeros_like(layer.b)
    return ref["Sequential"](l1, ref["ReLU"](), l2)


def torch_model(p: dict[str, np.ndarray]):
    import torch

    hidden = p["W1"].shape[1]
    model = torch.nn.Sequential(
        torch.nn.Linear(D_IN, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, N_CLASSES)
    )
    with torch.no_grad():  # same initial weights (torch stores W transposed: (out, in))
        model[0].weight.copy_(torch.from_numpy(p["W1"].T.copy()))
        model[0].bias.copy_(torch.from_numpy(p["b1"]))
        model[2].weight.copy_(torch.from_numpy(p["W2"].T.copy()))
        model[2].bias.copy_(torch.from_numpy(p["b2"]))
    return model


def torch_epoch(model, opt, Xt, yt, order_t, batch_size) -> float:
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    for k in range(len(order_t) // batch_size):
        idx = order_t[k * batch_size : (k + 1) * batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(Xt[idx]), yt[idx])
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return float(torch.stack(losses).mean())


def check_same_model(hidden: int, lr: float, seed: int) -> float:
    """One SGD step of both implementations from the same weights; the max parameter gap."""
    import torch

    X, y = synthetic_mnist(256, seed + 1)
    p = init_params(hidden, seed)
    model = torch_model(p)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y)).backward()
    opt.step()
    numpy_sgd_step(p, X, y, lr)
    pairs = [("W1", model[0].weight.T), ("b1", model[0].bias),
             ("W2", model[2].weight.T), ("b2", model[2].bias)]
    return max(float(np.max(np.abs(p[k] - t.detach().numpy()))) for k, t in pairs)


def main(args: argparse.Namespace) -> int:
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(args.threads)
        blas = ", ".join(f"{i['internal_api']} ({i['num_threads']} threads)"
                         for i in threadpool_info() if i["user_api"] == "blas") or "unknown"
    except ImportError:
        blas = f"threads set through environment variables ({args.threads})"

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not installed: timing the NumPy reference only.")

    print(f"MLP 784-{args.hidden}-10, batch {args.batch_size}, {args.samples} samples, "
          f"float32, {args.threads} thread(s); numpy {np.__version__}, BLAS: {blas}"
          + (f"; torch {torch.__version__}" if torch else ""))

    X, y = synthetic_mnist(args.samples, args.seed)
    order = np.random.default_rng(args.seed + 1).permutation(args.samples)
    p = init_params(args.hidden, args.seed)
    ref = notebook_reference()
    net, loss_fn = notebook_net(ref, p), ref["SoftmaxCrossEntropy"]()
    ref["train_epoch"](net, loss_fn, X[:2048], y[:2048], lr=args.lr, batch_size=args.batch_size,
                       rng=np.random.default_rng(0))  # warm-up
    assert net.modules[0].W.dtype == np.float32, "the notebook's modules left float32"
    numpy_epoch(p, X[:2048], y[:2048], np.arange(2048), args.batch_size, args.lr)  # warm-up

    if torch is not None:
        torch.set_num_threads(args.threads)
        gap = check_same_model(args.hidden, args.lr, args.seed)
        print(f"same model: after one SGD step from the same weights the parameters differ by "
              f"at most {gap:.1e}")
        model = torch_model(init_params(args.hidden, args.seed))
        opt = torch.optim.SGD(model.parameters(), lr=args.lr)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        order_t = torch.from_numpy(order)
        torch_epoch(model, opt, Xt[:2048], yt[:2048], torch.arange(2048), args.batch_size)

    t_nb, t_np, t_torch = [], [], []
    for r in range(args.repeats):  # interleaved, so machine noise hits all alike
        t0 = time.perf_counter()
        loss_nb = ref["train_epoch"](net, loss_fn, X, y, lr=args.lr, batch_size=args.batch_size,
                                     rng=np.random.default_rng(args.seed + 1))
        t_nb.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        loss_np = numpy_epoch(p, X, y, order, args.batch_size, args.lr)
        t_np.append(time.perf_counter() - t0)
        line = (f"epoch {r + 1}: notebook {t_nb[-1]:.3f} s (mean loss {loss_nb:.3f})   "
                f"fused {t_np[-1]:.3f} s (mean loss {loss_np:.3f})")
        if torch is not None:
            t0 = time.perf_counter()
            loss_t = torch_epoch(model, opt, Xt, yt, order_t, args.batch_size)
            t_torch.append(time.perf_counter() - t0)
            line += f"   torch {t_torch[-1]:.3f} s (mean loss {loss_t:.3f})"
        print(line)

    print(f"notebook reference (float32): {min(t_nb):.3f} s per epoch (best of {args.repeats})")
    print(f"fused numpy (float32):        {min(t_np):.3f} s per epoch")
    if torch is not None:
        print(f"pytorch (CPU):                {min(t_torch):.3f} s per epoch")
        for name, t in (("notebook", t_nb), ("fused", t_np)):
            ratio = min(t) / min(t_torch)
            print(f"ratio {name} / pytorch: {ratio:.2f}x  (target <= 1.0x: "
                  f"{'met' if ratio <= 1.0 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
