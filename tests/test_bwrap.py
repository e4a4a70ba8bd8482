"""Mode ``bwrap`` (issue 19): each sandboxed process started by bubblewrap, for machines where
only ``/usr/bin/bwrap`` may set up namespaces (Ubuntu >= 23.10). Forced here with
``DLGRADE_SANDBOX=bwrap``, where userns and root would work too: the probe's order and
refusals, what a notebook sees, a failing bwrap, the exploits that read the solutions from
disk or git and walk the disk, and the demo. The whole isolation suite runs in this mode with
``DLGRADE_SANDBOX=bwrap python -m pytest tests/test_failclosed.py tests/test_exploits.py
tests/test_judge.py tests/test_bwrap.py`` (as root and as an ordinary user)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from grader.engine import environment, sandbox
from grader.engine.job import Job, Limits
from grader.engine.sandbox import bwrap, modes
from grader.engine.worker import run_notebook

from .conftest import ROOT

BWRAP = shutil.which("bwrap")
needs_bwrap = pytest.mark.skipif(
    BWRAP is None or not sys.platform.startswith("linux"),
    reason="bubblewrap is not installed: apt-get install -y bubblewrap")


@pytest.fixture(autouse=True)
def fresh_probe():
    """Each test probes afresh, and leaves no cached mode behind for the tests after it: the
    probe's and the environment's (the canaries' key names the sandbox mode; an earlier test
    in this process may have described the default mode)."""
    modes._probed = None
    environment.describe.cache_clear()
    yield
    modes._probed = None
    environment.describe.cache_clear()


@pytest.fixture
def forced(monkeypatch):
    """This process (and the workers it starts) in bwrap mode."""
    monkeypatch.setenv(sandbox.FORCE_ENV, "bwrap")
    return sandbox.probe()


@needs_bwrap
def test_forcing_bwrap_probes_it_for_real(forced):
    assert forced == (sandbox.BWRAP, {}), forced
    assert "bubblewrap" in sandbox.describe()


@needs_bwrap
def test_the_probe_falls_to_bwrap_when_userns_is_refused(monkeypatch):
    monkeypatch.delenv(sandbox.FORCE_ENV, raising=False)
    real = modes._try
    monkeypatch.setattr(modes, "_try", lambda m: "refused (test)" if m != "bwrap" else real(m))
    mode, why = sandbox.probe(refresh=True)
    assert mode == sandbox.BWRAP, why
    assert why.get("userns") == "refused (test)", why


def test_forcing_a_mode_that_fails_refuses_never_falls_back(monkeypatch):
    monkeypatch.setenv(sandbox.FORCE_ENV, "bwrap")
    monkeypatch.setattr(bwrap, "executable", lambda: None)
    mode, why = sandbox.probe(refresh=True)
    assert mode == sandbox.NONE and list(why) == ["bwrap"], why
    assert "apt-get install -y bubblewrap" in why["bwrap"] and "DLGRADE_SANDBOX" in why["bwrap"]
    assert "install bubblewrap" in sandbox.refusal()
    monkeypatch.setenv(sandbox.FORCE_ENV, "chroot")
    mode, why = sandbox.probe(refresh=True)
    assert mode == sandbox.NONE and "not a mode" in why[sandbox.FORCE_ENV], why


@needs_bwrap
def test_the_trial_refuses_a_bwrap_that_shares_the_network(monkeypatch):
    """The trial checks from inside: arguments that leave the host's network refuse the mode."""
    import socket

    if [n for _, n in socket.if_nameindex()] == ["lo"]:
        pytest.skip("this host has no network interface but lo: a shared network looks private")
    real = bwrap.arguments

    def leaky(*a, **k):
        args = [x for x in real(*a, **k) if x != "--unshare-net"]
        return args + (["--share-net"] if "--unshare-all" in args else [])

    monkeypatch.setattr(bwrap, "arguments", leaky)
    reason = bwrap.trial(sandbox.UID_BASE)
    assert reason is not None and "network interfaces" in reason, reason


PROBE_CELL = (
    "import os, socket, ctypes\n"
    "print('uid', os.getuid(), 'cwd', os.getcwd(), 'files', sorted(os.listdir('.')))\n"
    "print('course', os.path.exists({course!r}), 'git', os.path.exists({git!r}))\n"
    "print('nets', [n for _, n in socket.if_nameindex()])\n"
    "print('pids', len([p for p in os.listdir('/proc') if p.isdigit()]))\n"
    "print('caps', open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "try:\n    os.listdir('/proc/1/root'); root1 = True\nexcept OSError:\n    root1 = False\n"
    "print('pid1', libc.ptrace(16, 1, None, None) == 0, root1, "
    "libc.unshare(0x10000000) == 0)\n"
    "print('home', oct(os.stat(os.environ['HOME']).st_mode & 0o777), "
    "os.stat(os.environ['HOME']).st_uid == os.getuid())\n")


@needs_bwrap
@pytest.mark.parametrize("judge", [False, True], ids=["unjudged", "judged"])
def test_a_notebook_in_bwrap_sees_only_the_allow_list(forced, judge):
    root = os.path.dirname(os.path.dirname(os.path.abspath(sandbox.__file__)))
    course = os.path.dirname(os.path.dirname(root))  # the repository
    cell = PROBE_CELL.replace("{course!r}", repr(os.path.join(course, "solutions"))).replace(
        "{git!r}", repr(os.path.join(course, ".git")))
    res = run_notebook(Job("t", {0: cell}, {"data.csv": b"1\n"},
                           limits=Limits(job_mb=16, notebook_timeout=60), judge=judge,
                           protect=[course]))
    assert res.status == "ok", res.detail
    assert res.sandbox["mode"] == "bwrap" and res.sandbox["isolated"] is True, res.sandbox
    text = "".join(o.get("text", "") for c in res.cells.values() for o in c["outputs"])
    assert f"uid {res.sandbox['user']} cwd /job files ['data.csv']" in text, text
    assert "course False git False" in text, text
    assert "nets ['lo']" in text and "caps 0000000000000000" in text, text
    assert "home 0o700 True" in text, text
    assert "pid1 False False False" in text, text  # no ptrace, no PID 1's root, no userns
    pids = int(text.split("pids ")[1].split()[0])
    assert pids <= 2, text  # the notebook's init (PID 1) and itself: not the judge


@needs_bwrap
def test_a_bwrap_that_fails_is_a_machinery_failure(forced, monkeypatch, tmp_path):
    """Fail closed: whatever bwrap says on its error pipe reaches the instructor, no points."""
    from grader.engine import job_lifecycle

    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: fake failure (test)' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    job_lifecycle.shutdown()  # a fresh zygote, with this PATH
    try:
        res = run_notebook(Job("t", {0: "print('ran')"}, judge=True))
    finally:
        job_lifecycle.shutdown()
    assert res.status == "machinery", (res.status, res.detail)
    assert "bubblewrap could not start" in res.detail and "fake failure" in res.detail, res.detail
    assert not any(c["outputs"] for c in res.cells.values())


DISK_EXPLOITS = ("solutions_reader", "disk_walk")


@needs_bwrap
def test_exploits_that_read_the_disk_earn_nothing_in_bwrap(forced, tmp_path):
    """``../solutions``, ``git show``, a walk of the disk: 0, as the untouched
    release (the rest of the corpus: tests/test_exploits.py with DLGRADE_SANDBOX=bwrap)."""
    from grader.engine.coordinator import ClassGrader

    from .exploit_corpus import FULL, A, build_course

    course = build_course(tmp_path / "course")
    keep = {"untouched", "bystander", *DISK_EXPLOITS}
    for student in (course / "submitted").iterdir():
        if student.name not in keep:
            shutil.rmtree(student)
    outcomes = {o.student: o for o in ClassGrader(course, workers=2, progress=False).grade([A])}
    assert set(outcomes) == keep, sorted(outcomes)
    assert outcomes["bystander"].auto_score == FULL, outcomes["bystander"].cells
    for name in DISK_EXPLOITS + ("untouched",):
        o = outcomes[name]
        assert o.status == "graded" and o.auto_score == 0, (name, o.status, o.reason, o.cells)


@needs_bwrap
def test_the_demo_runs_in_bwrap(tmp_path):
    env = dict(os.environ, **{sandbox.FORCE_ENV: "bwrap"})
    res = subprocess.run([sys.executable, "-m", "grader", "demo", "--no-progress",
                          "--assignments", "01_linear_regression", "--out", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "sandbox: sandboxed through bubblewrap (bwrap)" in out and "UNSANDBOXED" not in out
    rows = {ln.split()[0]: ln for ln in res.stdout.splitlines() if ln[:3] in ("ada", "ben")}
    assert rows["ada"].rstrip().endswith("(100%)"), rows
    assert rows["ben"].rstrip().endswith("(0%)"), rows
