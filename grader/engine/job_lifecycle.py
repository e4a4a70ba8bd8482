"""One job's process, from fork to clean-up: the per-job lifecycle of a worker.

For each job the worker asks its zygote (:mod:`grader.engine.fork_server`, a pristine fork
server) for a process, hands it the job through a pipe, and reads its results
(:mod:`grader.engine.job_results`). The process tree is limited as a whole (a cgroup, as root
or delegated to the account) and killed as a whole at the end; the job's folders go with it.
A worker that cannot isolate runs no sandboxed job (:func:`_refused`).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict

from grader.engine import sandbox
from grader.engine.fork_server import Zygote
from grader.engine.job import Job
from grader.engine.job_results import ExecResult, read_results, settle

_zygote: Zygote | None = None
_job_area: str | None = None
_seq = itertools.count()
_current: dict = {}  # the notebook now running: "tree", "folders", "pid" (for shutdown)


def worker_id() -> str:
    """This worker's name: its Dask address on a Dask worker, else host and pid."""
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            return get_worker().address
        except (ImportError, ValueError):
            pass
    return f"{os.uname().nodename}:{os.getpid()}"


def _job_spec(job: Job, workdir: str, roots: tuple[str, str], uid: int, cgroups: list[str],
              isolate: bool, mode: str = sandbox.ROOT) -> bytes:
    """Two JSON lines: the configuration (no cell in it), then the cells."""
    config = {"limits": asdict(job.limits), "sandbox": isolate, "mode": mode,
              "protect": job.protect,
              "workdir": workdir, "root": roots[0], "judge_root": roots[1], "uid": uid,
              "cgroups": cgroups, "judge": job.judge}
    work = {"cells": {str(k): v for k, v in job.cells.items()}, "tests": job.tests,
            "setup": job.setup}
    return json.dumps(config).encode() + b"\n" + json.dumps(work).encode()


def _kill_tree(pid: int, tree: sandbox.TreeLimit | None) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass
    if tree is not None:
        tree.kill_all()


def run_notebook(job: Job) -> ExecResult:
    """Run ``job`` in a fresh process from the zygote; never raises for the student's doing."""
    refused = _refused(job)
    if refused is not None:
        return refused
    started = time.perf_counter()
    folders = workdir, root, judge_root = _job_folders()
    mode = sandbox.mode() if job.sandbox else sandbox.NONE
    uid = sandbox.UID_BASE + (os.getpid() * 7919 + next(_seq)) % sandbox.UID_SPAN
    tree = sandbox.TreeLimit(f"dlgrader-{uid}-{os.getpid()}", job.limits.memory_mb,
                             job.limits.max_processes) if mode != sandbox.NONE else None
    _current.update(tree=tree, folders=folders)
    result = ExecResult(job.key, "ok", worker=worker_id())
    pid = None
    try:
        if tree is not None and tree.error:  # the run's summary promised a tree limit
            raise RuntimeError(f"the notebook's cgroup could not be made: {tree.error}")
        _write_files(workdir, job.files)
        pid, out_r, job_w = _fork()
        _current["pid"] = pid
        _send(job_w, _job_spec(job, workdir, (root, judge_root), uid, tree.dirs if tree else [],
                               job.sandbox, mode))
        stopped = read_results(result, out_r, job, started)
        os.close(out_r)
        _kill_tree(pid, tree)
        settle(result, job, stopped, _zygote.read(timeout=30).get("exit", 0))
        pid = None  # reaped by the zygote
    except (OSError, RuntimeError, TimeoutError) as exc:
        _zygote.stop()  # a fresh one next time
        result.status, result.detail = "machinery", f"{type(exc).__name__}: {exc}"
    finally:  # also when interrupted (KeyboardInterrupt in the coordinator's own zygote)
        if pid is not None:
            _kill_tree(pid, tree)
        _current.clear()
        if tree is not None:
            tree.remove()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    result.total_seconds = time.perf_counter() - started
    return result


def shutdown() -> None:
    """Stop now, leaving nothing behind: kill the running notebook's process tree, remove its
    sandbox (cgroup, folders) and this worker's job area, stop the zygote."""
    global _job_area
    pid, tree = _current.get("pid"), _current.get("tree")
    if pid is not None:
        _kill_tree(pid, tree)
    elif tree is not None:
        tree.kill_all()
    if tree is not None:
        tree.remove()
    for folder in _current.get("folders", ()):
        shutil.rmtree(folder, ignore_errors=True)
    _current.clear()
    if _zygote is not None:
        _zygote.stop()
    if _job_area is not None:
        shutil.rmtree(_job_area, ignore_errors=True)
        _job_area = None


def start_zygote() -> None:
    """Start this worker's zygote now, before any job reaches it (once)."""
    global _zygote
    if _zygote is None:
        _zygote = Zygote()
        _zygote.start()


def _refused(job: Job) -> ExecResult | None:
    """A machinery failure when this worker cannot run ``job``: it cannot isolate (fail closed,
    on every kind of worker), or its zygote does not start; else None, the zygote running."""
    global _zygote
    if job.sandbox and not sandbox.can_isolate():
        return ExecResult(job.key, "machinery", worker=worker_id(), detail=(
            f"{worker_id()} cannot isolate student code, so it runs none: "
            + "; ".join(f"{k}: {v}" for k, v in sandbox.probe()[1].items())))
    if _zygote is None:
        _zygote = Zygote()
    try:
        if not _zygote.alive():
            _zygote.start()  # not counted in the notebook's time
    except (OSError, RuntimeError, TimeoutError) as exc:
        _zygote.stop()
        return ExecResult(job.key, "machinery", detail=f"the zygote did not start: {exc}",
                          worker=worker_id())
    return None


def _job_folders() -> tuple[str, str, str]:
    """Fresh folders for one job: its working directory, the notebook's root, the judge's."""
    global _job_area
    if _job_area is None or not os.path.isdir(_job_area):
        _job_area = tempfile.mkdtemp(prefix="dlgrade-jobs-")
    return tuple(tempfile.mkdtemp(prefix=prefix, dir=_job_area)
                 for prefix in ("job-", "root-", "judge-"))


def _write_files(workdir: str, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = os.path.join(workdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)


def _fork() -> tuple[int, int, int]:
    """A fresh process from the zygote: its pid, the results pipe to read, the job pipe to
    write (the child holds the other ends, and nothing else of ours)."""
    job_r, job_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        pid = _zygote.fork(job_r, out_w)
    finally:
        os.close(job_r)
        os.close(out_w)
    return pid, out_r, job_w


def _send(job_w: int, spec: bytes) -> None:
    try:
        with os.fdopen(job_w, "wb") as fh:
            fh.write(spec)
    except BrokenPipeError:  # the process is gone already: its results will say why
        pass
