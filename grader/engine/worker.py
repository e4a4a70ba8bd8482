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
"""

from __future__ import annotations

import itertools
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from grader.engine import environment, sandbox
from grader.engine.fork_server import Zygote
from grader.engine.job import Job

HARD_CELL_GRACE = 3.0  # seconds past the per-cell limit before the process is killed

_zygote: Zygote | None = None
_job_area: str | None = None
_canary_results: dict[str, dict] = {}
_seq = itertools.count()
_current: dict = {}  # the notebook now running: "tree", "folders", "pid" (for shutdown)


@dataclass
class ExecResult:
    """What came back from one notebook's process."""

    key: str
    status: str  # "ok"; the student's: "died", "timeout", "output"; ours: "machinery"
    cells: dict[int, dict] = field(default_factory=dict)  # index -> outputs, raised, count
    running: int | None = None  # the cell that was running when the process ended early
    detail: str = ""
    sandbox: dict = field(default_factory=dict)
    cell_seconds: float = 0.0
    total_seconds: float = 0.0  # fork to reap, files and clean-up included
    setup_seconds: float = 0.0  # until the process reported its sandbox (and the judge ran)
    done_seconds: float = 0.0  # until the last cell's result came back
    worker: str = ""
    canaries: dict[str, dict] = field(default_factory=dict)
    ended: dict = field(default_factory=dict)  # how the notebook's process ended, if known
    job_full: bool = False  # the notebook filled its job folder (Limits.job_mb)
    environment: dict = field(default_factory=dict)  # the worker's (grader.engine.environment)

    def to_dict(self) -> dict:
        return asdict(self)


def worker_id() -> str:
    """This worker's name: its Dask address on a Dask worker, else host and pid."""
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            return get_worker().address
        except (ImportError, ValueError):
            pass
    return f"{os.uname().nodename}:{os.getpid()}"


def _absorb(result: ExecResult, msg: dict) -> bool:
    """Fold one message from the process into ``result``; True once it says it is done."""
    if not isinstance(msg, dict):
        raise ValueError("message is not an object")
    if "sandbox" in msg:
        result.sandbox = msg["sandbox"] if isinstance(msg["sandbox"], dict) else {}
    elif "start" in msg:
        result.running = int(msg["start"])
    elif "index" in msg:
        if msg.get("job_full") is True:
            result.job_full = True
        outputs = msg["outputs"]
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise ValueError("outputs are not a list of objects")
        result.cells[int(msg["index"])] = {
            "outputs": outputs,
            "raised": msg.get("raised") is not False,  # missing evidence: it raised
            "execution_count": msg.get("execution_count"),
        }
        result.cell_seconds += float(msg.get("seconds", 0.0))
        result.running = None
    elif "ended" in msg and isinstance(msg["ended"], dict):
        result.ended = {k: int(v) for k, v in msg["ended"].items() if k in ("signal", "code")}
    elif "machinery" in msg:
        result.status, result.detail = "machinery", str(msg["machinery"])[:2000]
        return True
    elif "stopped" in msg:  # the judge ended the notebook early, for the student's doing
        kind = msg.get("kind")
        result.status = kind if kind in ("timeout", "died", "output") else "died"
        result.detail = str(msg["stopped"])[:2000]
        return True
    return msg.get("done") is True


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


def _read_results(result: ExecResult, fd: int, job: Job, started: float) -> str | None:
    """Read the process's messages until it is done; return why it was stopped, if it was."""
    limits = job.limits
    deadline = started + limits.notebook_timeout
    hard_cell = limits.cell_timeout + HARD_CELL_GRACE  # if the in-process alarm fails
    budget = limits.max_result_mb << 20
    buffer, total, cell_started = b"", 0, None
    while True:
        now = time.perf_counter()
        if now >= deadline:
            return f"the notebook exceeded its time limit of {limits.notebook_timeout:g} s"
        if cell_started is not None and now - cell_started >= hard_cell:
            return f"a cell exceeded its time limit of {limits.cell_timeout:g} s and was killed"
        wait = deadline - now
        if cell_started is not None:
            wait = min(wait, cell_started + hard_cell - now)
        ready, _, _ = select.select([fd], [], [], min(wait, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        total += len(chunk)
        if total > budget:
            return f"the notebook's output exceeded {limits.max_result_mb} MB"
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            try:
                done = _absorb(result, json.loads(raw))
            except (ValueError, TypeError, KeyError) as exc:
                return f"the notebook's process sent a malformed message ({exc})"
            if result.sandbox and not result.setup_seconds:
                result.setup_seconds = time.perf_counter() - started
            if done:
                result.done_seconds = time.perf_counter() - started
                return None
            cell_started = time.perf_counter() if result.running is not None else None


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
        stopped = _read_results(result, out_r, job, started)
        os.close(out_r)
        _kill_tree(pid, tree)
        _settle(result, job, stopped, _zygote.read(timeout=30).get("exit", 0))
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


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the pool may send another: finish this
    shutdown()
    os._exit(128 + signum)


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


def _settle(result: ExecResult, job: Job, stopped: str | None, status: int) -> None:
    """Name how the process ended: stopped by the worker (time, output), died early (signal or
    exit code), or never reported its sandbox (a machinery failure)."""
    if stopped and result.status == "ok":
        result.status = "output" if "output" in stopped or "malformed" in stopped else "timeout"
        result.detail = stopped
    elif result.status == "ok" and result.running is not None or (
            result.status == "ok" and not _finished(result, job)):
        result.status = "died"
        if "signal" in result.ended:
            result.detail = f"the process was killed by signal {result.ended['signal']}"
        elif "code" in result.ended:
            result.detail = f"the process exited with code {result.ended['code']}"
        elif os.WIFSIGNALED(status):
            result.detail = f"the process was killed by signal {os.WTERMSIG(status)}"
        else:
            result.detail = f"the process exited with code {os.waitstatus_to_exitcode(status)}"
    if job.sandbox and not result.sandbox and result.status == "ok":
        result.status, result.detail = "machinery", "the process never reported its sandbox"


def _finished(result: ExecResult, job: Job) -> bool:
    return set(result.cells) == set(job.cells)


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
    global _zygote
    from multiprocessing.util import Finalize

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    Finalize(None, shutdown, exitpriority=10)
    probe_environment()
    if _zygote is None:
        _zygote = Zygote()
        _zygote.start()
