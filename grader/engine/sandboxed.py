"""Mode ``bwrap`` (:mod:`grader.engine.sandbox.bwrap`): the process topology, both sides.

Outside (the zygote's child, already clean: two descriptors): it joins the job's cgroups
(children inherit them) and starts ``bwrap`` — for an unjudged job once (:func:`notebook`),
for a judged job twice (:func:`judged`): the **student process** (with ``/job``, only its two
sockets to the judge) and the **judge** (no ``/job``; the job pipe with the hidden tests, the
results pipe, its two sockets), each in PID, user and network namespaces of its own, so student
code can neither see, signal nor ptrace the judge. It waits, and reports anything bwrap said on
its error pipe as a machinery failure (fail closed).

Inside (``python -I``, :func:`main` with ``ROLE CONFIG FD...``): what the
sandboxed processes of the other modes do after entering their sandbox — the same functions
(:func:`grader.engine.notebook_process._init`, :func:`grader.engine.judge.processes.student_init`
and ``judge_main``), with ``sandbox.enter`` doing bwrap's part (fill ``/job``, limits, drop).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

from grader.engine.sandbox import cgroups


def _start(role: str, config: dict, uid: int, fds: list[int], workdir: str | None):
    """Start one bwrap running ``role`` with only ``fds``; close what only it needed."""
    from grader.engine.job import Limits
    from grader.engine.sandbox import bwrap

    limits = Limits(**config["limits"])
    src = bwrap.job_folder(workdir) if workdir else None
    try:
        extra = [src] if src is not None else []
        return bwrap.spawn(bwrap.command(role, config, limits, uid, fds, job_fd=src),
                           fds + extra)
    finally:
        if src is not None:
            os.close(src)


def notebook(config: dict, job_fd: int, out_fd: int) -> int:
    """An unjudged job: one bwrap, handed the job pipe (cells) and the results pipe."""
    from grader.engine.sandbox import bwrap

    cgroups.join(config.get("cgroups", []))
    proc = _start("notebook", config, config["uid"], [job_fd, out_fd], config["workdir"])
    os.close(job_fd)
    return bwrap.finish(proc, out_fd, "notebook's process") & 0xFF


def judged(config: dict, job_fd: int, out_fd: int) -> int:
    """A judged job: the student's bwrap first (it never holds the job pipe), then the
    judge's; the student's goes down when the judge is done."""
    from grader.engine.judge.processes import JUDGE_UID_OFFSET
    from grader.engine.sandbox import bwrap

    rpc_j, rpc_s = socket.socketpair()
    cmd_j, cmd_s = socket.socketpair()
    cgroups.join(config.get("cgroups", []))
    student = _start("student", config, config["uid"], [rpc_s.fileno(), cmd_s.fileno()],
                     config["workdir"])
    rpc_s.close()
    cmd_s.close()
    try:
        judge = _start("judge", config, config["uid"] + JUDGE_UID_OFFSET,
                       [job_fd, out_fd, rpc_j.fileno(), cmd_j.fileno()], None)
        os.close(job_fd)
        rpc_j.close()
        cmd_j.close()
        bwrap.finish(judge, out_fd, "judge")
    finally:
        student.kill()
        bwrap.finish(student, out_fd, "student's process")
    return 0


# ----------------------------------------------------------------------------- inside


def _quiet() -> None:
    """Standard streams on /dev/null: from here on nothing reaches bwrap's error pipe, so
    what does came from bwrap or from Python before this entry point."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def main(argv: list[str]) -> int:
    role, config, fds = argv[0], json.loads(argv[1]), [int(a) for a in argv[2:]]
    _quiet()
    from grader.engine import ipython_shell as sh
    from grader.engine import notebook_process as npx
    from grader.engine.judge import processes

    signal.signal(signal.SIGINT, signal.default_int_handler)
    if role == "student":
        sh.preload()
        rpc, cmd = (socket.socket(fileno=fd) for fd in fds)
        return processes.student_init(config, rpc, cmd)
    emit = npx.emitter(fds[1])
    try:
        if role == "notebook":
            sh.preload()
            return npx._init({**config, **npx.read_job(fds[0])}, emit, config["uid"])
        if role == "judge":  # no shell of its own: hidden tests import what they use
            rpc, cmd = (socket.socket(fileno=fd) for fd in fds[2:4])
            processes.judge_main(config, fds[0], emit, rpc, cmd)
            return 0
        raise ValueError(f"unknown role {role!r}")
    except BaseException as exc:  # noqa: BLE001 - report anything, then die quietly
        emit({"machinery": f"{type(exc).__name__}: {sh.safe_str(exc)}"})
        return 70


if __name__ == "__main__":  # pragma: no cover - started by bwrap
    sys.exit(main(sys.argv[1:]))
