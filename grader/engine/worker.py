"""Worker side of class grading: run one notebook in a fresh, sandboxed process; relay results.

For each job the worker asks its zygote (:mod:`grader.engine.fork_server`, a pristine fork
server) for a process, hands it the job through a pipe, and reads one JSON line per finished
cell from another pipe — parsed, never unpickled, with a deadline on every wait and a limit on
every byte count. The process tree is limited as a whole (a cgroup, as root or delegated to the
account) and killed as a whole at the end. A worker that cannot isolate
(:func:`grader.engine.sandbox.probe`) runs no sandboxed job: each fails as a machinery failure
naming what was refused, on the local pool and on Dask alike.

Before its first job the worker runs the **isolation probe** through the same path and attaches
what it produced to every result, with the worker's own account of its environment, so the
coordinator can check this very worker before trusting anything it returns
(:mod:`grader.engine.canary`; the known-answer canaries are ordinary jobs).

:func:`execute_job` is a plain picklable function: the local pool, the coordinator itself and
Dask workers all call it. It never decides grades; the coordinator does.

One job's process, fork to clean-up, is :mod:`grader.engine.job_lifecycle`; reading what it
sends and how it ended, :mod:`grader.engine.job_results`. Their public names are importable
from here.
"""

from __future__ import annotations

import os
import signal

from grader.engine import environment
from grader.engine.job import Job
from grader.engine.job_lifecycle import run_notebook, shutdown, start_zygote, worker_id
from grader.engine.job_results import HARD_CELL_GRACE, ExecResult

__all__ = [
    "HARD_CELL_GRACE",
    "ExecResult",
    "canary_summary",
    "execute_job",
    "preload",
    "probe_environment",
    "run_notebook",
    "shutdown",
    "worker_id",
    "worker_ready",
]

_canary_results: dict[str, dict] = {}


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the pool may send another: finish this
    shutdown()
    os._exit(128 + signum)


def canary_summary(res: dict) -> dict:
    """What the coordinator needs of a canary run: status and every cell's outcome."""
    return {"status": res["status"], "detail": res["detail"], "sandbox": res["sandbox"],
            "cells": {i: {"raised": c["raised"], "execution_count": c["execution_count"],
                          "outputs": [o for o in c["outputs"] if o.get("output_type") in
                                      ("error", "stream")][:5]}
                      for i, c in res["cells"].items()},
            "running": res["running"]}


def probe_environment() -> dict:
    """This worker's own account of its environment (:mod:`grader.engine.environment`)."""
    return environment.describe()


def execute_job(job: Job) -> dict:
    """Run ``job`` (after this worker's isolation probe, once); return :class:`ExecResult`
    as a dict, with this worker's environment."""
    canaries = {}
    for canary in job.canaries:
        if canary.key not in _canary_results:
            _canary_results[canary.key] = canary_summary(run_notebook(canary).to_dict())
        canaries[canary.key] = _canary_results[canary.key]
    result = run_notebook(job)
    result.canaries = canaries
    result.environment = probe_environment()
    return result.to_dict()


def worker_ready() -> str:
    """Nothing to run: a warm-up job, so the pool starts every worker at once."""
    return worker_id()


def preload() -> None:
    """Pool initializer: start this worker's zygote before any job reaches the worker.

    Ctrl-C is the coordinator's to handle: a pool worker ignores SIGINT, and on SIGTERM (the
    coordinator stopping the run) kills its notebook, removes its sandbox and exits; at a
    normal exit it removes its job area."""
    from multiprocessing.util import Finalize

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    Finalize(None, shutdown, exitpriority=10)
    probe_environment()
    start_zygote()
