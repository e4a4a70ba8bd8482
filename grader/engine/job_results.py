"""Reading one notebook's results: the messages its process sends, and how it ended.

One JSON line per message from the results pipe — parsed, never unpickled, with a deadline on
every wait and a limit on every byte count — folded into an :class:`ExecResult`; then
:func:`settle` names how the process ended (stopped for time or output, died, or never reported
its sandbox).
"""

from __future__ import annotations

import json
import os
import select
import time
from dataclasses import asdict, dataclass, field

from grader.engine.job import Job

HARD_CELL_GRACE = 3.0  # seconds past the per-cell limit before the process is killed


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


def read_results(result: ExecResult, fd: int, job: Job, started: float) -> str | None:
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


def settle(result: ExecResult, job: Job, stopped: str | None, status: int) -> None:
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
