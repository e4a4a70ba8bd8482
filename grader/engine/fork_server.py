"""A pristine fork server: every notebook's process is forked from it, never from a worker.

A worker (a pool process, a Dask worker, the coordinator with ``--workers 0``) has held other
students' jobs in its memory; a process forked from it could read them back. The zygote is a
*freshly started* interpreter that imports the heavy libraries and builds the shell, and then
only ever receives two descriptors per request (the job pipe to read, the results pipe to
write) — never a job's content. Each child it forks is :func:`child`.

Protocol on its socket (one request at a time): the worker sends ``b"run"`` with the two
descriptors attached; the zygote answers ``{"pid": ...}`` once forked and ``{"exit": status}``
once the child has ended.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading


def serve(sock: socket.socket) -> None:
    from grader.engine import ipython_shell as shell

    shell.preload()
    sock.sendall(b'{"ready": true}\n')
    while True:
        msg, fds, _, _ = socket.recv_fds(sock, 16, 2)
        if not msg or len(fds) != 2:
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the notebook's process
            sock.close()
            child(fds[0], fds[1])
        for fd in fds:
            os.close(fd)
        sock.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        sock.sendall(json.dumps({"exit": status}).encode() + b"\n")


def child(job_fd: int, out_fd: int) -> None:
    """A fresh child of the fork server: keep only its two descriptors, read the job's
    configuration, and run the notebook in one process (:mod:`grader.engine.notebook_process`)
    or judged, in two (:mod:`grader.engine.judge.processes`); in mode ``bwrap`` each sandboxed
    process is started by bubblewrap (:mod:`grader.engine.sandboxed`). Never returns."""
    from grader.engine import ipython_shell as sh
    from grader.engine import notebook_process, sandboxed
    from grader.engine.judge import processes as judged

    code = 0
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the zygote ignores it
        _die_with_parent()
        os.setsid()
        notebook_process.only_fds({job_fd, out_fd})
        config = notebook_process.read_config(job_fd)
        if config.get("sandbox") and config.get("mode") == "bwrap":  # started by bwrap
            run = sandboxed.judged if config.get("judge") else sandboxed.notebook
        else:
            run = judged.main if config.get("judge") else notebook_process.main
        code = run(config, job_fd, out_fd)
    except BaseException as exc:  # noqa: BLE001 - report anything, then die quietly
        code = 70
        try:
            msg = {"machinery": f"{type(exc).__name__}: {sh.safe_str(exc)}"}
            os.write(out_fd, (json.dumps(msg) + "\n").encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def _die_with_parent(parent: int | None = None) -> None:
    """SIGKILL this process when its parent (thread) ends: nothing outlives a killed worker."""
    import ctypes

    parent = os.getppid() if parent is None else parent
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


class Zygote:
    """The worker's handle on its zygote process (started lazily, restarted when it dies)."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self._buf = b""

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "JPY_"))}
        # tied to its parent's life unless started from a thread that may end first (Dask)
        parent = os.getpid() if threading.current_thread() is threading.main_thread() else 0
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import grader.engine.fork_server as z; z._main()",
             str(theirs.fileno()), str(parent)],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd="/", env=env, close_fds=True)
        theirs.close()
        self.sock, self._buf = ours, b""
        if self.read(timeout=120).get("ready") is not True:
            raise RuntimeError("the zygote did not start")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def read(self, timeout: float) -> dict:
        self.sock.settimeout(timeout)
        while b"\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("the zygote closed its socket")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def fork(self, job_fd: int, out_fd: int) -> int:
        if not self.alive():
            self.start()
        socket.send_fds(self.sock, [b"run"], [job_fd, out_fd])
        return int(self.read(timeout=30)["pid"])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        if self.sock is not None:
            self.sock.close()
        self.proc = self.sock = None


def _main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    fd, parent = int(sys.argv[1]), int(sys.argv[2])
    if parent:
        _die_with_parent(parent)
    serve(socket.socket(fileno=fd))


if __name__ == "__main__":  # pragma: no cover
    _main()
