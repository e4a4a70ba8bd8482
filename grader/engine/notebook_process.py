"""The process that runs one student's notebook: forked from a pristine zygote, then sandboxed.

Its life, in order (:func:`grader.engine.fork_server.child`, then :func:`main`):

1. inherit nothing: a new session, every descriptor closed but the two it was handed (the job
   to read, the results pipe to write), standard input and output on ``/dev/null``
   (:func:`only_fds`);
2. read its job (JSON) from the job pipe: the configuration line first (:func:`read_config`;
   a judged job goes on in :mod:`grader.engine.judge.processes`), then the cells;
3. sandboxed: as root, join its cgroup, unshare PID/mount/network/IPC namespaces and fork the
   process that will be PID 1 there (everything it starts dies with it), which builds the
   allow-list root and drops to its own uid; without root, the same inside a user namespace of
   its own, dropping every capability instead of switching uid (:mod:`grader.engine.sandbox`);
4. prove the sandbox works (:func:`probe`): it can read the Python installation, import a
   module nobody imported yet, and report an exception — else it reports a *machinery* failure;
5. run the code cells in the IPython shell of :mod:`grader.engine.ipython_shell` and stream one
   JSON line per cell.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import sys
import time

from grader.engine import ipython_shell as sh
from grader.engine.ipython_shell import run_cell

PROBE_IMPORT = "colorsys"  # a stdlib module nothing preloads: proves lazy imports still work
PR_SET_PDEATHSIG = 1


class Machinery(Exception):
    """The sandbox or the shell is broken: no student gets points or blame for it."""


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


def only_fds(keep: set[int]) -> None:
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


def read_config(fd: int, limit: int = 1 << 20) -> dict:
    """The job's first line, read byte by byte: nothing after it is in this process yet."""
    data = bytearray()
    while len(data) < limit:
        b = os.read(fd, 1)
        if not b or b == b"\n":
            return json.loads(bytes(data))
        data += b
    raise Machinery("job configuration too large")


def read_job(fd: int, limit: int = 64 << 20) -> dict:
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
    from grader.engine import sandbox
    from grader.engine.job import Limits

    limits = Limits(**job["limits"])
    info = sandbox.enter(job["workdir"], job["root"], limits, uid, enabled=job["sandbox"],
                         protect=job["protect"], cgroups=job.get("cgroups", []),
                         mode=job.get("mode", sandbox.ROOT))
    emit({"sandbox": info})
    shell = sh.get_shell()
    signal.signal(signal.SIGALRM, sh.on_alarm(limits))
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
              "outputs": outputs, "seconds": time.perf_counter() - started,
              "job_full": info["isolated"] and sandbox.job_full(limits)})
    emit({"done": True})


def _init(job: dict, emit, uid: int) -> int:
    """PID 1 of the notebook's namespace: run the notebook in a child, reap every orphan, and
    return the notebook's exit code (when PID 1 exits, the kernel kills the rest)."""
    pid = os.fork()
    if pid == 0:
        try:
            _run(job, emit, uid)
        except BaseException as exc:  # noqa: BLE001
            emit({"machinery": f"{type(exc).__name__}: {sh.safe_str(exc)}"})
            os._exit(70)
        os._exit(0)
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: it keeps its capabilities
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


def main(config: dict, job_fd: int, out_fd: int) -> int:
    """A notebook run in this one process (no judge): read the cells, sandbox, run them all;
    return the exit code (the fork server's child, :func:`grader.engine.fork_server.child`)."""
    job = {**config, **read_job(job_fd)}
    emit = emitter(out_fd)
    uid = job["uid"]
    if not job["sandbox"]:
        _run(job, emit, uid)
        return 0
    from grader.engine import sandbox  # the worker checked that isolation is possible
    from grader.engine.sandbox import cgroups

    cgroups.join(job.get("cgroups", []))
    sandbox.unshare_for_notebook(job.get("mode", sandbox.ROOT), uid)
    pid = os.fork()
    if pid == 0:  # PID 1 of the new namespace: reaps, and takes everything down
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os._exit(_init(job, emit, uid))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) & 0xFF
