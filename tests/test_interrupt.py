"""Issue 21 P3: Ctrl-C during `grader grade`, by interrupting real runs with SIGINT.

The process group gets SIGINT, as a terminal's Ctrl-C sends it. The run must print one line
("interrupted: N of M graded; run the same command again to continue"), exit 130, and leave
no process (worker, zygote, notebook, judge) and no sandbox (cgroup, job folders) behind. An
interrupted ``--force`` run goes on forcing in the next plain run: what it had not reached is
regraded, never reported "up to date" with its old grade.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from grader.course.submissions import fill, write_submission
from grader.engine.ledger import LEDGER_DIR
from tests.test_release_untouched import A, make_course

LINE = re.compile(r"^interrupted: (\d+) of (\d+) graded; run the same command again to continue$")


def _course(root: Path, slow: dict[str, float]) -> None:
    """The tiny course; each student's answer sleeps ``slow[student]`` seconds first."""
    rel = make_course(root)
    release = nbformat.read(rel, as_version=4)
    for student, seconds in slow.items():
        answer = f"import time\ntime.sleep({seconds})\ndef double(x):\n    return 2 * x"
        write_submission(root, student, A, {A: fill(release, {"double": answer})})


def _start(root: Path, tmp: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.Popen(
        [sys.executable, "-m", "grader", "grade", "--no-progress", "--workers", "2",
         "--cell-timeout", "200", *extra], cwd=root, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)


def _run(root: Path, tmp: Path, *extra: str) -> str:
    proc = _start(root, tmp, *extra)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    return out + err


def _epoch(root: Path, student: str) -> float:
    try:
        record = json.loads((root / LEDGER_DIR / student / f"{A}.json").read_text())
    except (OSError, ValueError):
        return 0.0
    return float(record.get("graded_epoch", 0.0))


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _interrupt_when(proc: subprocess.Popen, ready, timeout: float = 300) -> tuple[str, str, set]:
    """Send SIGINT to the run's process group once ``ready()``; return stdout, stderr and
    every process the run had started when it was interrupted."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.2)
    time.sleep(1.0)  # the slow students' notebooks are running now
    started = _descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return out, err, started


def test_ctrl_c_one_line_exit_130_nothing_left(tmp_path):
    root, tmp = tmp_path / "course", tmp_path / "tmp"
    tmp.mkdir()
    _course(root, {"ada": 0, "ben": 120, "cleo": 120, "dev": 120})
    proc = _start(root, tmp)
    out, err, started = _interrupt_when(proc, lambda: _epoch(root, "ada") > 0)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, out + err
    last = err.strip().splitlines()[-1]
    assert LINE.match(last), err
    assert LINE.match(last).groups() == ("1", "4"), last
    assert len(started) >= 4  # two workers, their zygotes, notebooks: all gone now
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in started if _alive(p)]
    assert list(tmp.iterdir()) == []  # no job folder of any worker
    cgroups = [p for p in Path("/sys/fs/cgroup").rglob("dlgrader-*")
               if any(p.name.endswith(f"-{pid}") for pid in started)]
    assert cgroups == []


def test_interrupted_force_run_goes_on_forcing(tmp_path):
    root, tmp = tmp_path / "course", tmp_path / "tmp"
    tmp.mkdir()
    students = ["ada", "ben", "cleo"]
    # cleo, the slowest, is still running when ben's regrade is recorded (in either order:
    # the given one, or the ledger's longest first)
    _course(root, {"ada": 0, "ben": 6, "cleo": 12})
    assert "graded 3," in _run(root, tmp)
    first = {s: _epoch(root, s) for s in students}
    proc = _start(root, tmp, "--force")
    out, err, _ = _interrupt_when(proc, lambda: _epoch(root, "ben") > first["ben"])
    assert proc.returncode == 130 and LINE.match(err.strip().splitlines()[-1]), out + err
    reached = {s for s in students if _epoch(root, s) > first[s]}
    assert "ben" in reached and "cleo" not in reached, reached
    again = _run(root, tmp)
    assert "continuing an interrupted --force run" in again
    assert f"graded {3 - len(reached)}, up to date {len(reached)}," in again, again
    assert all(_epoch(root, s) > first[s] for s in students)
    assert "graded 0, up to date 3," in _run(root, tmp)  # the forced run is over
