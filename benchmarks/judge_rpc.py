"""Per-call cost of the judge's protocol: a call from the judge into a forked student process.

Times ``f(x)`` through :mod:`grader.engine.judge` (encode, socket, decode, call, in-place check,
reply) for a scalar argument, a 100x100 and a 1000x1000 float64 array, and a method call on a
remote object (``obj.forward(x)``: an attribute read, then the call). Prints µs per call.

    python benchmarks/judge_rpc.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import numpy as np

from grader.engine.judge import judge_endpoint
from grader.engine.judge.runner import serve_student, student_endpoint


class _Layer:
    def forward(self, x):
        return x


def _student(sock: socket.socket) -> None:
    ep = student_endpoint(sock)
    ns = {"double": lambda x: 2 * x, "layer": _Layer()}
    try:
        while True:
            serve_student(ep, ns)
    finally:
        os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        _student(theirs)
    theirs.close()
    ep = judge_endpoint(ours)
    double = ep.request("lookup", None, "double")[1]
    layer = ep.request("lookup", None, "layer")[1]
    cases = [("scalar", lambda: double(1.5), args.repeats),
             ("100x100 float64", lambda: double(np.ones((100, 100))), args.repeats),
             ("1000x1000 float64", lambda: double(np.ones((1000, 1000))), 10),
             ("method call, 10 floats", lambda: layer.forward(np.ones(10)), args.repeats)]
    for label, call, n in cases:
        call()
        started = time.perf_counter()
        for _ in range(n):
            call()
        print(f"{label:24s} {(time.perf_counter() - started) / n * 1e6:10.0f} µs per call")
    ours.close()
    os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
