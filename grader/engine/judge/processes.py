"""A notebook run in two processes: the judge decides, the student process only answers.

The zygote's child reads the job's *configuration* (no cell in it), joins the notebook's cgroup
and forks the **student process** (sandboxed as in :mod:`grader.engine.notebook_process`: its own
namespaces and uid, the allow-list root). Only then does it read the cells, so the student's
memory never held a hidden test. It becomes the **judge**: it drops to a uid of its own (no
network, no root; without root: a user namespace of its own, every capability dropped,
non-dumpable, outside the student's PID namespace), and walks the notebook in order:

* an ordinary cell is sent to the student process, which runs it and answers with its outputs
  (parsed as bounded JSON and relayed to the worker: prints and plots land in the notebook);
* a graded test cell runs *in the judge* (:class:`grader.engine.judge.Judge`): student functions,
  classes and objects are reached through the narrow protocol of :mod:`grader.engine.judge`, and the
  cell passes only if it ran to its end in the judge.

The student process holds two sockets to the judge and nothing else: it cannot write to the
worker, and nothing it sends is executed or unpickled. A student process that hangs, dies or
breaks the protocol fails the cell it was in, and every later cell is reported as not run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

from grader.engine import ipython_shell as sh
from grader.engine import notebook_process as npx

JUDGE_UID_OFFSET = 50_000  # judge uids sit above the sandbox users' range
GRACE = 5.0  # seconds past the cell limit the judge waits for the student process


class Stop(Exception):
    """The student process can no longer be trusted to answer: end the notebook here."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


# ----------------------------------------------------------------------------- line channel


class Lines:
    """JSON lines over a socket, with a deadline on every read and a bound on every line."""

    def __init__(self, sock: socket.socket, limit: int):
        self.sock, self.limit, self.buf = sock, limit, b""

    def send(self, obj) -> None:
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv(self, timeout: float | None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError
            self.buf += chunk
            if len(self.buf) > self.limit:
                raise ValueError(f"a message over {self.limit >> 20} MB")
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        if not isinstance(msg, dict):
            raise ValueError("a message that is not an object")
        return msg


# ----------------------------------------------------------------------------- student side


def student_main(config: dict, rpc: socket.socket, cmd: socket.socket) -> None:
    """The student process: sandbox, probe, then run cells and serve the judge on command."""
    from grader.engine import sandbox
    from grader.engine.job import Limits
    from grader.engine.judge import ProtocolError, serve_student, student_endpoint

    limits = Limits(**config["limits"])
    lines = Lines(cmd, limits.max_result_mb << 20)
    info = sandbox.enter(config["workdir"], config["root"], limits, config["uid"],
                         enabled=config["sandbox"], protect=config["protect"],
                         cgroups=config.get("cgroups", []), mode=config.get("mode", sandbox.ROOT))
    shell = sh.get_shell()
    signal.signal(signal.SIGALRM, sh.on_alarm(limits))
    try:
        npx.probe(shell, info, limits)
    except npx.Machinery as exc:
        lines.send({"machinery": str(exc)})
        return
    lines.send({"sandbox": info})
    endpoint = student_endpoint(rpc)
    while True:
        order = lines.recv(None)
        if "run" in order:
            outputs: list = []
            started = time.perf_counter()
            raised = sh.run_cell(shell, str(order.get("source", "")), outputs, limits)
            lines.send({"index": order["run"], "raised": raised, "outputs": outputs,
                        "execution_count": shell.execution_count - 1,
                        "seconds": time.perf_counter() - started,
                        "job_full": info["isolated"] and sandbox.job_full(limits)})
        elif "test" in order:
            try:
                serve_student(endpoint, shell.user_ns)
            except ProtocolError as exc:
                lines.send({"broken": str(exc)[:500]})
                return
            lines.send({"served": order["test"]})
        else:
            return


def student_init(config: dict, rpc: socket.socket, cmd: socket.socket) -> int:
    """Parent of the student process (PID 1 of its namespace when sandboxed): reaps orphans,
    and tells the judge how the student process ended."""
    pid = os.fork()
    if pid == 0:
        try:
            student_main(config, rpc, cmd)
        except BaseException:  # noqa: BLE001 - the judge sees the socket close
            os._exit(70)
        os._exit(0)
    rpc.close()
    if config["sandbox"]:  # it keeps its capabilities (user namespace): nobody may ptrace it
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0, after the fork
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 70
        if done == pid:
            ended = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {
                "code": os.waitstatus_to_exitcode(status) & 0xFF}
            try:
                Lines(cmd, 1 << 16).send({"ended": ended})
            except OSError:
                pass
            return 0


# ----------------------------------------------------------------------------- judge side


def _student_cell(lines: Lines, index: int, source: str, limits) -> dict:
    lines.send({"run": index, "source": source})
    try:
        reply = lines.recv(limits.cell_timeout + GRACE)
    except TimeoutError:
        raise Stop("timeout", f"a cell exceeded its time limit of {limits.cell_timeout:g} s "
                              "and was killed") from None
    except EOFError:
        raise Stop("died", "the student's process ended") from None
    except ValueError as exc:
        raise Stop("output", f"the student's process sent a malformed message ({exc})") from None
    if isinstance(reply.get("ended"), dict):
        raise Stop("died", _ended(reply["ended"]))
    outputs = reply.get("outputs")
    if reply.get("index") != index or not isinstance(outputs, list) or \
            not all(isinstance(o, dict) for o in outputs):
        raise Stop("output", "the student's process sent a malformed answer")
    return {"index": index, "raised": reply.get("raised") is not False, "outputs": outputs,
            "execution_count": reply.get("execution_count"),
            "seconds": float(reply.get("seconds", 0.0)), "job_full": reply.get("job_full") is True}


def _ended(ended: dict) -> str:
    if "signal" in ended:
        return f"the process was killed by signal {int(ended['signal'])}"
    return f"the process exited with code {int(ended.get('code', -1))}"


def _student_error(exc: BaseException) -> dict:
    """The ``error`` output of a failed test cell, in the student's words: no frame of the
    grader's machinery, no internal name (a student's object in the judge is a ``Remote``)."""
    import traceback

    from grader.diagnose import student_words

    out = sh.error_output(exc)
    if type(exc).__name__ == "StudentError":  # the student's own exception class
        out["ename"] = str(getattr(exc, "name", "Exception"))
        out["evalue"] = str(getattr(exc, "message", ""))
    out["evalue"] = student_words(out["evalue"])
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if f.filename == "<test cell>"]
        out["traceback"] = [student_words(line) for line in traceback.format_list(frames)] + [
            f"{out['ename']}: {out['evalue']}" if out["evalue"] else out["ename"]]
    except BaseException:  # noqa: BLE001 - keep the plain output
        out["traceback"] = [student_words(line) for line in out["traceback"]]
    return out


def _test_cell(judge, lines: Lines, index: int, source: str, limits) -> dict:
    """Run one graded test cell in this process; its outcome is decided here."""
    from grader.engine.judge import ProtocolError

    lines.send({"test": index})
    outputs: list = []
    started = time.perf_counter()
    sys.stdout = sh.Capture("stdout", outputs, limits.max_output_chars)
    sys.stderr = sh.Capture("stderr", outputs, limits.max_output_chars)
    signal.setitimer(signal.ITIMER_REAL, limits.cell_timeout)
    stop = None
    try:
        judge.run_test_cell(source)  # the alarm above bounds every wait on the student
        raised = False
    except BaseException as exc:  # noqa: BLE001 - whatever it was, the cell failed
        raised = True
        outputs.append(_student_error(exc))
        if isinstance(exc, ProtocolError | OSError | sh.CellTimeout):
            stop = Stop("timeout" if isinstance(exc, TimeoutError | sh.CellTimeout)
                        else "output", f"the test cell could not finish: {sh.safe_str(exc)}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    result = {"index": index, "raised": raised, "outputs": outputs, "execution_count": None,
              "seconds": time.perf_counter() - started}
    if stop is None:
        try:
            reply = lines.recv(GRACE)
            if isinstance(reply.get("ended"), dict):
                stop = Stop("died", _ended(reply["ended"]))
            elif reply.get("served") != index:
                stop = Stop("output", "the student's process broke the protocol")
        except (TimeoutError, EOFError, ValueError, OSError):
            stop = Stop("died", "the student's process stopped answering")
    if stop is not None:
        stop.result = result
        raise stop
    return result


def judge_main(config: dict, job_fd: int, emit, rpc: socket.socket, cmd: socket.socket) -> None:
    """The judge: read the cells, drop privileges, walk the notebook."""
    from grader.engine.job import Limits
    from grader.engine.judge import Judge, judge_endpoint

    work = npx.read_job(job_fd)
    limits = Limits(**config["limits"])
    if config["sandbox"]:  # its own allow-list root, its own uid, no network
        from grader.engine import sandbox

        sandbox.enter_judge(config["judge_root"], limits, config["uid"] + JUDGE_UID_OFFSET,
                            config["protect"], mode=config.get("mode", sandbox.ROOT),
                            tree=bool(config.get("cgroups")))
    lines = Lines(cmd, limits.max_result_mb << 20)
    try:
        first = lines.recv(limits.notebook_timeout)
    except (TimeoutError, EOFError, ValueError, OSError) as exc:
        emit({"machinery": f"the student's process did not start: {exc!r}"})
        return
    if "machinery" in first:
        emit({"machinery": str(first["machinery"])[:2000]})
        return
    emit({"sandbox": first.get("sandbox", {})})
    signal.signal(signal.SIGALRM, sh.on_alarm(limits))
    cells = {int(k): v for k, v in work["cells"].items()}
    tests = set(work["tests"])
    sources = {str(i): src for i, src in cells.items() if i not in tests}
    judge = Judge(judge_endpoint(rpc), work["setup"], sources=sources)
    for index in sorted(cells):
        emit({"start": index})
        try:
            if index in tests:
                emit(_test_cell(judge, lines, index, cells[index], limits))
            else:
                emit(_student_cell(lines, index, cells[index], limits))
        except Stop as stop:
            if getattr(stop, "result", None) is not None:
                emit(stop.result)
            emit({"stopped": stop.detail, "kind": stop.kind})
            return
    try:
        lines.send({"end": True})
    except OSError:
        pass
    emit({"done": True})


def main(config: dict, job_fd: int, out_fd: int) -> int:
    """In the zygote's child, after it kept only its two descriptors: returns an exit code."""
    from grader.engine import sandbox
    from grader.engine.sandbox import cgroups

    rpc_j, rpc_s = socket.socketpair()
    cmd_j, cmd_s = socket.socketpair()
    userns = config["sandbox"] and config.get("mode") == sandbox.USERNS
    if config["sandbox"]:  # judge and student
        cgroups.join(config.get("cgroups", []))
    if config["sandbox"] and not userns:  # root: namespaces shared by judge and student
        sandbox.unshare_for_notebook()
    pid = os.fork()
    if pid == 0:  # the student's side: it never sees the cells' sources but its own
        import ctypes

        os.close(job_fd)
        os.close(out_fd)
        rpc_j.close()
        cmd_j.close()
        if userns:  # its own user, PID, mount, network and IPC namespaces; PID 1 below
            sandbox.unshare_for_notebook(sandbox.USERNS, config["uid"])
            ctypes.CDLL(None).prctl(npx.PR_SET_PDEATHSIG, signal.SIGKILL)
            init = os.fork()
            if init != 0:
                rpc_s.close()
                cmd_s.close()
                _, status = os.waitpid(init, 0)
                os._exit(0)
        if config["sandbox"]:
            ctypes.CDLL(None).prctl(npx.PR_SET_PDEATHSIG, signal.SIGKILL)
        os._exit(student_init(config, rpc_s, cmd_s))
    rpc_s.close()
    cmd_s.close()
    try:
        judge_main(config, job_fd, npx.emitter(out_fd), rpc_j, cmd_j)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return 0
