"""Worker side of class grading: run one notebook's code cells in a throw-away process.

The worker process imports the heavy libraries once (:func:`preload`) and then, for every
notebook, *forks* a child that runs the cells in a fresh IPython shell — no kernel to start or
stop, which is where nbgrader spends most of its time per notebook. The child is sandboxed
(:mod:`grader.sandbox`), enforces a per-cell time limit itself, and streams one JSON line per
finished cell to the worker through a pipe, so a child that dies (``os._exit``, a memory or
process limit, the whole-notebook time limit) still leaves the results of the cells before.

:func:`execute_job` is a plain picklable function: the local process pool and a Dask cluster
both call it. It never decides grades; the coordinator (:mod:`grader.classgrade`) does.
"""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

#: Libraries imported once per worker, before any fork.
PRELOAD = (
    "numpy",
    "matplotlib",
    "matplotlib.pyplot",
    "matplotlib_inline.backend_inline",
    "sklearn.datasets",
    "sklearn.linear_model",
    "sklearn.model_selection",
    "tqdm.auto",
    "grader.checks",
    "grader.gradcheck",
    "grader.datasets",
)


@dataclass
class Limits:
    """Resource limits for one notebook's process."""

    cell_timeout: float = 60.0  # seconds of wall time per cell
    notebook_timeout: float = 300.0  # seconds of wall time for the whole notebook
    memory_mb: int = 4096  # address space of the process
    max_processes: int = 64  # processes and threads of the sandbox user (fork bombs)
    max_output_chars: int = 200_000  # per stream per cell; the rest is cut
    max_file_mb: int = 200  # largest file the notebook may write


@dataclass
class Job:
    """One notebook to execute: code cells by index, plus files for its working directory."""

    key: str  # "student/assignment/notebook", for messages
    cells: dict[int, str]  # cell index -> source of a code cell
    files: dict[str, bytes] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    sandbox: bool = True
    hide: list[str] = field(default_factory=list)  # absolute paths the student may not see


HARD_CELL_GRACE = 3.0  # seconds past the per-cell limit before the process is killed

_preloaded = False
_shell = None
_job_area: str | None = None  # this worker's folder for job folders (covered in each child)


def _thread_env() -> None:
    # one BLAS thread per notebook: the parallelism is across notebooks
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")


def preload() -> None:
    """Import the heavy libraries and build a clean IPython shell, once per worker process."""
    global _preloaded, _shell
    if _preloaded:
        return
    _thread_env()
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    try:
        # The environment variables only reach a BLAS loaded after them; a worker whose parent
        # module imported numpy first (a script, a Dask worker) already has one thread per
        # core, and two spinning BLAS threads per notebook on a busy machine slow it 5x.
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    try:
        # tqdm makes a multiprocessing lock in the first process that draws a bar; made here,
        # every notebook's process inherits it instead of leaking one semaphore each
        import tqdm

        tqdm.tqdm.get_lock()
    except ImportError:
        pass
    _shell = _make_shell()
    _preloaded = True


# ----------------------------------------------------------------------------- the child


class CellTimeout(BaseException):
    """Raised inside a cell that outlives the per-cell limit (not an Exception: not caught
    by a student's ``except Exception``)."""


class _Capture(io.TextIOBase):
    def __init__(self, name: str, sink: list, limit: int):
        self.name, self.sink, self.limit, self.size, self.cut = name, sink, limit, 0, False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            text = str(text)
        room = self.limit - self.size
        if room > 0:
            piece = text[:room]
            self.size += len(piece)
            if self.sink and self.sink[-1].get("name") == self.name:
                self.sink[-1]["text"] += piece
            else:
                self.sink.append({"output_type": "stream", "name": self.name, "text": piece})
        if len(text) > max(room, 0) and not self.cut:
            self.cut = True
            self.sink.append(
                {
                    "output_type": "stream",
                    "name": self.name,
                    "text": f"\n[output cut at {self.limit} characters]\n",
                }
            )
        return len(text)

    def flush(self) -> None:
        pass


def _make_shell():
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False,
                    **kwargs):
            self.shell._dl_outputs.append(
                {"output_type": "display_data", "data": dict(data), "metadata": metadata or {}}
            )

        def clear_output(self, wait=False):
            self.shell._dl_outputs.clear()

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            self.shell._dl_outputs.append(
                {
                    "output_type": "execute_result",
                    "execution_count": self.shell.execution_count,
                    "data": dict(format_dict),
                    "metadata": md_dict or {},
                }
            )

        def finish_displayhook(self):
            pass

    class Shell(InteractiveShell):
        _dl_outputs: list = []

        def enable_gui(self, gui=None):  # inline figures need no event loop
            pass

        def _showtraceback(self, etype, evalue, stb):
            self._dl_outputs.append(
                {
                    "output_type": "error",
                    "ename": getattr(etype, "__name__", str(etype)),
                    "evalue": str(evalue),
                    "traceback": list(stb),
                }
            )

    shell = Shell.instance(colors="nocolor", history_length=0, cache_size=0)
    shell.history_manager.enabled = False
    shell.display_pub = Publisher(shell=shell)
    shell.displayhook = Hook(shell=shell, cache_size=0)
    shell.display_trap.hook = shell.displayhook
    shell._dl_outputs = []
    return shell


def _child(job: Job, workdir: str, out_fd: int) -> None:
    """Runs in the forked child: sandbox, then every cell; never returns."""
    code = 0
    try:
        os.setsid()
        from grader import sandbox

        info = sandbox.enter(workdir, job.limits, enabled=job.sandbox, hide=job.hide)
        out = os.fdopen(out_fd, "w", buffering=1)

        def emit(obj) -> None:
            out.write(json.dumps(obj) + "\n")
            out.flush()

        emit({"sandbox": info})
        shell = _shell or _make_shell()
        limit = job.limits.max_output_chars

        def on_alarm(signum, frame):
            raise CellTimeout(f"cell exceeded its time limit of {job.limits.cell_timeout:g} s")

        signal.signal(signal.SIGALRM, on_alarm)
        for index in sorted(job.cells):
            emit({"start": index})
            outputs: list = []
            shell._dl_outputs = outputs
            sys.stdout = _Capture("stdout", outputs, limit)
            sys.stderr = _Capture("stderr", outputs, limit)
            started = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, job.limits.cell_timeout)
            try:
                shell.run_cell(job.cells[index], store_history=True)
            except CellTimeout as exc:  # raised outside the cell's own code
                outputs.append({"output_type": "error", "ename": "CellTimeout",
                                "evalue": str(exc), "traceback": [f"CellTimeout: {exc}"]})
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            emit(
                {
                    "index": index,
                    "execution_count": shell.execution_count - 1,
                    "outputs": outputs,
                    "seconds": time.perf_counter() - started,
                }
            )
        emit({"done": True})
    except BaseException as exc:  # noqa: BLE001 - report anything, then die quietly
        code = 70
        try:
            msg = json.dumps({"crash": f"{type(exc).__name__}: {exc}"}) + "\n"
            os.write(out_fd, msg.encode())
        except OSError:
            pass
    finally:
        os._exit(code)


# ----------------------------------------------------------------------------- the worker


@dataclass
class ExecResult:
    """What came back from one notebook's process."""

    key: str
    status: str  # "ok", "died", "timeout", "crash"
    cells: dict[int, dict] = field(default_factory=dict)  # index -> outputs, execution_count
    running: int | None = None  # the cell that was running when the process ended early
    detail: str = ""
    sandbox: dict = field(default_factory=dict)
    cell_seconds: float = 0.0
    total_seconds: float = 0.0
    worker: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _kill_group(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def _absorb(result: ExecResult, msg: dict) -> bool:
    """Fold one message from the child into ``result``; True once the child says it is done."""
    if "sandbox" in msg:
        result.sandbox = msg["sandbox"]
    elif "start" in msg:
        result.running = msg["start"]
    elif "index" in msg:
        result.cells[msg["index"]] = {
            "outputs": msg["outputs"],
            "execution_count": msg["execution_count"],
        }
        result.cell_seconds += msg["seconds"]
        result.running = None
    elif "crash" in msg:
        result.status, result.detail = "crash", msg["crash"]
        return True
    return bool(msg.get("done"))


def execute_job(job: Job) -> dict:
    """Run ``job`` in a forked, sandboxed child; return :class:`ExecResult` as a dict.

    Raises only for failures of the worker itself (the caller retries those elsewhere).
    """
    global _job_area
    preload()
    started = time.perf_counter()
    if _job_area is None or not os.path.isdir(_job_area):
        _job_area = tempfile.mkdtemp(prefix="dlgrade-jobs-")
    workdir = tempfile.mkdtemp(prefix="job-", dir=_job_area)
    try:
        for name, data in job.files.items():
            path = os.path.join(workdir, name)
            if os.path.dirname(name):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(data)
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os.close(read_fd)
            _child(job, workdir, write_fd)
        os.close(write_fd)
        result = ExecResult(job.key, "ok", worker=f"{os.uname().nodename}:{os.getpid()}")
        deadline = started + job.limits.notebook_timeout
        hard_cell = job.limits.cell_timeout + HARD_CELL_GRACE  # if the in-cell alarm fails
        buffer, done, timed_out, eof, cell_killed = b"", False, False, False, False
        cell_started = None
        while not (done or eof):
            now = time.perf_counter()
            if now >= deadline:
                timed_out = True
                break
            if cell_started is not None and now - cell_started >= hard_cell:
                cell_killed = True
                break
            wait = deadline - now
            if cell_started is not None:
                wait = min(wait, cell_started + hard_cell - now)
            ready, _, _ = select.select([read_fd], [], [], min(wait, 1.0))
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 16)
            eof = not chunk
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                done |= _absorb(result, json.loads(raw))
                cell_started = time.perf_counter() if result.running is not None else None
        # stop the child's whole session, stray processes (fork bombs, background jobs) too
        _kill_group(pid)
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        if timed_out:
            result.status = "timeout"
            limit = job.limits.notebook_timeout
            result.detail = f"the notebook exceeded its time limit of {limit:g} s"
        elif cell_killed:
            result.status = "timeout"
            limit = job.limits.cell_timeout
            result.detail = f"a cell exceeded its time limit of {limit:g} s and was killed"
        elif not done and result.status == "ok":
            result.status = "died"
            if os.WIFSIGNALED(status):
                result.detail = f"the process was killed by signal {os.WTERMSIG(status)}"
            else:
                result.detail = f"the process exited with code {os.WEXITSTATUS(status)}"
        result.total_seconds = time.perf_counter() - started
        return result.to_dict()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
