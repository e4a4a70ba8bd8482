"""The process that runs one student's notebook: forked from a pristine zygote, then sandboxed.

Its life, in order (:func:`main`):

1. inherit nothing: a new session, every descriptor closed but the two it was handed (the job
   to read, the results pipe to write), standard input and output on ``/dev/null``;
2. read its job (JSON) from the job pipe;
3. with root: join its cgroup, unshare PID/mount/network/IPC namespaces and fork the process
   that will be PID 1 there (everything it starts dies with it), which builds the allow-list
   root and drops to its own uid (:mod:`grader.sandbox`);
4. prove the sandbox works (:func:`probe`): it can read the Python installation, import a
   module nobody imported yet, and report an exception — else it reports a *machinery* failure;
5. run the code cells in an IPython shell and stream one JSON line per cell.

**A cell that raised is a failed cell, whatever else breaks**: whether a cell raised is taken
from IPython's execution result (the exception object), and an ``error`` output is built from
that object when IPython's own traceback formatting failed or was bypassed.
"""

from __future__ import annotations

import ctypes
import importlib
import io
import json
import os
import signal
import sys
import time
import traceback

#: Modules imported by the zygote before any fork: the heavy ones, and the ones IPython loads
#: lazily when it first formats a traceback (a sandbox that cannot reach them must not matter).
PRELOAD = (
    "numpy",
    "matplotlib",
    "matplotlib.pyplot",
    "matplotlib_inline.backend_inline",
    "sklearn.datasets",
    "sklearn.linear_model",
    "sklearn.model_selection",
    "tqdm.auto",
    "IPython.core.interactiveshell",
    "IPython.core.ultratb",
    "IPython.core.logger",
    "stack_data",
    "executing",
    "pygments.lexers.python",
    "grader.checks",
    "grader.gradcheck",
    "grader.datasets",
)
PROBE_IMPORT = "colorsys"  # a stdlib module nothing preloads: proves lazy imports still work
PR_SET_PDEATHSIG = 1

_shell = None


class CellTimeout(BaseException):
    """Raised inside a cell that outlives the per-cell limit (not an Exception: not caught
    by a student's ``except Exception``)."""


class Machinery(Exception):
    """The sandbox or the shell is broken: no student gets points or blame for it."""


def preload() -> None:
    """Import the heavy libraries and build the shell (in the zygote, before any job)."""
    global _shell
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    if _shell is None:
        _shell = _make_shell()
        # format one traceback now: IPython's first one costs ~0.2 s, paid here once, not per
        # notebook (and what it imports lazily is then loaded before any sandbox)
        run_cell(_shell, "raise ValueError('warm-up')", [], _WarmLimits())
        _shell.execution_count = 1


# ----------------------------------------------------------------------------- the shell


class _WarmLimits:
    cell_timeout, max_output_chars, max_rich_chars = 60.0, 10_000, 10_000


class _Capture(io.TextIOBase):
    """sys.stdout / sys.stderr of a cell: stream outputs, cut at ``limit`` characters."""

    def __init__(self, name: str, sink: list, limit: int):
        self.name, self.sink, self.limit, self.size, self.cut = name, sink, limit, 0, False

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = text if isinstance(text, str) else str(text)
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
            self.sink.append({"output_type": "stream", "name": self.name,
                              "text": f"\n[output cut at {self.limit} characters]\n"})
        return len(text)

    def flush(self) -> None:
        pass


def _safe_str(obj, limit: int = 2000) -> str:
    try:
        text = str(obj)
    except BaseException:  # noqa: BLE001 - a student's __str__ may raise anything
        text = f"<{type(obj).__name__} whose str() raised>"
    return text[:limit]


def error_output(exc: BaseException) -> dict:
    """An ``error`` output built from the exception object alone (no IPython formatter)."""
    ename = getattr(type(exc), "__name__", "Exception")
    evalue = _safe_str(exc)
    try:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=20)
        lines = "".join(tb).splitlines()[-40:]
    except BaseException:  # noqa: BLE001
        lines = [f"{ename}: {evalue}"]
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": lines}


def _make_shell():
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False,
                    **kwargs):
            outputs = self.shell._dl_outputs
            size = sum(len(v) if isinstance(v, str | bytes) else len(repr(v))
                       for v in dict(data).values())
            budget = self.shell._dl_rich_budget
            if size > budget[0]:
                if budget[0] >= 0:
                    outputs.append({"output_type": "stream", "name": "stdout",
                                    "text": "[rich output cut: over the per-cell limit]\n"})
                budget[0] = -1
                return
            budget[0] -= size
            outputs.append(
                {"output_type": "display_data", "data": dict(data), "metadata": metadata or {}})

        def clear_output(self, wait=False):
            self.shell._dl_outputs.clear()

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            size = sum(len(v) if isinstance(v, str) else 1000 for v in format_dict.values())
            if size > self.shell._dl_rich_budget[0]:
                self.shell._dl_outputs.append({"output_type": "stream", "name": "stdout",
                                               "text": "[result cut: over the per-cell limit]\n"})
                return
            self.shell._dl_rich_budget[0] -= size
            self.shell._dl_outputs.append({
                "output_type": "execute_result",
                "execution_count": self.shell.execution_count,
                "data": dict(format_dict),
                "metadata": md_dict or {},
            })

        def finish_displayhook(self):
            pass

    class Shell(InteractiveShell):
        _dl_outputs: list = []

        def enable_gui(self, gui=None):  # inline figures need no event loop
            pass

        def _showtraceback(self, etype, evalue, stb):
            self._dl_outputs.append({
                "output_type": "error",
                "ename": getattr(etype, "__name__", _safe_str(etype)),
                "evalue": _safe_str(evalue),
                "traceback": [_safe_str(line, 20000) for line in stb],
            })

    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no history database, open or inherited
    config.HistoryManager.hist_file = ":memory:"
    shell = Shell.instance(config=config, colors="nocolor", history_length=0, cache_size=0)
    shell.display_pub = Publisher(shell=shell)
    shell.displayhook = Hook(shell=shell, cache_size=0)
    shell.display_trap.hook = shell.displayhook
    shell._dl_outputs = []
    shell._dl_rich_budget = [0]
    return shell


def run_cell(shell, source: str, outputs: list, limits) -> bool:
    """Run one cell, outputs into ``outputs``; True when it raised (decided from the result)."""
    shell._dl_outputs = outputs
    shell._dl_rich_budget = [limits.max_rich_chars]
    sys.stdout = _Capture("stdout", outputs, limits.max_output_chars)
    sys.stderr = _Capture("stderr", outputs, limits.max_output_chars)
    exc = None
    signal.setitimer(signal.ITIMER_REAL, limits.cell_timeout)
    try:
        result = shell.run_cell(source, store_history=True)
        exc = result.error_before_exec or result.error_in_exec
    except BaseException as raised:  # noqa: BLE001 - CellTimeout outside the cell's code, ...
        exc = raised
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    if exc is not None and not any(o.get("output_type") == "error" for o in outputs):
        outputs.append(error_output(exc))
    return exc is not None


# ----------------------------------------------------------------------------- the probe


def probe(shell, info: dict, limits) -> None:
    """Prove the sandboxed process can do what grading relies on; raise :class:`Machinery`."""
    uid = os.geteuid()
    for path in info.get("exposed", []):
        try:
            os.listdir(path)
        except OSError as exc:
            raise Machinery(f"the sandbox user (uid {uid}) cannot list {path}: {exc.strerror}. "
                            "Make it readable by other users (chmod -R o+rX)") from None
    for base in [p for p in sys.path if p and os.path.isdir(p)]:  # what imports search
        for name in os.listdir(base):
            path = os.path.join(base, name)
            need = os.R_OK | (os.X_OK if os.path.isdir(path) else 0)
            if not name.startswith(".") and not os.access(path, need):
                raise Machinery(
                    f"the sandbox user (uid {uid}) cannot read {path}. Make the Python "
                    "environment readable by other users (chmod -R o+rX on it), or create it "
                    "with umask 022")
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if isinstance(path, str) and os.path.isabs(path) and not os.access(path, os.R_OK):
            raise Machinery(
                f"the sandbox user (uid {uid}) cannot read {path} (module {name}). Make the "
                "Python environment readable by other users (chmod -R o+rX on it), or create "
                "it with umask 022")
    try:
        sys.modules.pop(PROBE_IMPORT, None)
        importlib.import_module(PROBE_IMPORT)
    except Exception as exc:  # noqa: BLE001
        raise Machinery(f"importing the standard library fails in the sandbox: {exc!r}") from None
    outputs: list = []
    raised = run_cell(shell, "raise ValueError('dlgrader probe')", outputs, limits)
    errors = [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps(outputs)
    if not raised or not errors or errors[0].get("ename") != "ValueError":
        raise Machinery(f"the sandboxed shell does not report exceptions: {text[:300]}")
    if "Unexpected exception formatting" in text:
        raise Machinery(f"the sandboxed shell cannot format a traceback: {text[:300]}")
    shell.execution_count = 1


# ----------------------------------------------------------------------------- the process


def emitter(fd: int):
    out = os.fdopen(fd, "w", buffering=1)

    def emit(obj) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    return emit


def _only_fds(keep: set[int]) -> None:
    """Close every inherited descriptor but ``keep``; 0, 1, 2 point to /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for fd in sorted(int(f) for f in os.listdir("/proc/self/fd")) if os.path.isdir(
            "/proc/self/fd") else range(3, 1024):
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _read_job(fd: int, limit: int = 64 << 20) -> dict:
    chunks, size = [], 0
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise Machinery("job larger than the limit")
        chunks.append(chunk)
    os.close(fd)
    return json.loads(b"".join(chunks))


def _run(job: dict, emit, uid: int) -> None:
    """Sandbox, probe, then every cell (runs as the process that will execute student code)."""
    from grader import sandbox
    from grader.executor import Limits

    limits = Limits(**job["limits"])
    info = sandbox.enter(job["workdir"], job["root"], limits, uid, enabled=job["sandbox"],
                         protect=job["protect"], cgroups=job.get("cgroups", []))
    emit({"sandbox": info})
    shell = _shell or _make_shell()
    signal.signal(signal.SIGALRM, _on_alarm(limits))
    try:
        probe(shell, info, limits)
    except Machinery as exc:
        emit({"machinery": str(exc)})
        return
    for index, source in sorted((int(k), v) for k, v in job["cells"].items()):
        emit({"start": index})
        outputs: list = []
        started = time.perf_counter()
        raised = run_cell(shell, source, outputs, limits)
        emit({"index": index, "raised": raised, "execution_count": shell.execution_count - 1,
              "outputs": outputs, "seconds": time.perf_counter() - started})
    emit({"done": True})


def _on_alarm(limits):
    def handler(signum, frame):
        raise CellTimeout(f"cell exceeded its time limit of {limits.cell_timeout:g} s")

    return handler


def _init(job: dict, emit, uid: int) -> int:
    """PID 1 of the notebook's namespace: run the notebook in a child, reap every orphan, and
    return the notebook's exit code (when PID 1 exits, the kernel kills the rest)."""
    pid = os.fork()
    if pid == 0:
        try:
            _run(job, emit, uid)
        except BaseException as exc:  # noqa: BLE001
            emit({"machinery": f"{type(exc).__name__}: {_safe_str(exc)}"})
            os._exit(70)
        os._exit(0)
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 70
        if done == pid:  # how it ended, for the instructor's message
            if os.WIFSIGNALED(status):
                emit({"ended": {"signal": os.WTERMSIG(status)}})
                return 1
            code = os.waitstatus_to_exitcode(status) & 0xFF
            emit({"ended": {"code": code}})
            return code


def main(job_fd: int, out_fd: int) -> None:
    """Entry point in the zygote's fresh child; never returns."""
    code = 0
    try:
        os.setsid()
        _only_fds({job_fd, out_fd})
        from grader import judged

        config = judged.read_config(job_fd)
        if config.get("judge"):
            os._exit(judged.main(config, job_fd, out_fd))
        job = {**config, **_read_job(job_fd)}
        emit = emitter(out_fd)
        uid = job["uid"]
        if job["sandbox"]:  # the worker checked that isolation is possible
            from grader import sandbox

            for d in job.get("cgroups", []):
                with open(os.path.join(d, "cgroup.procs"), "w") as fh:
                    fh.write(str(os.getpid()))
            sandbox.unshare_for_notebook()
            pid = os.fork()
            if pid == 0:  # PID 1 of the new namespace: reaps, and takes everything down
                ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                os._exit(_init(job, emit, uid))
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status) & 0xFF
        else:
            _run(job, emit, uid)
    except BaseException as exc:  # noqa: BLE001 - report anything, then die quietly
        code = 70
        try:
            msg = {"machinery": f"{type(exc).__name__}: {_safe_str(exc)}"}
            os.write(out_fd, (json.dumps(msg) + "\n").encode())
        except OSError:
            pass
    finally:
        os._exit(code)
