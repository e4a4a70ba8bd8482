"""The same isolation in every account, or no grading (GRADING_INVARIANTS.md 9; issue 19).

* **Refusal:** where nothing isolates, ``grade`` and ``demo`` refuse, naming what was refused
  and the ways out; ``--unsandboxed`` grades, flagged. Proved for real, no flag: inside
  ``unshare -Ur`` with ``user.max_user_namespaces = 0`` the process is root in a user namespace
  where a further user namespace fails (ENOSPC) and so does root mode's switch to an unmapped
  uid: the capability probe must fail however ``geteuid()`` reads.
* **An ordinary account:** CI runs as root; this test creates an unprivileged user
  (``useradd``), clones the repository into its private (0700) home (the committed ``HEAD``,
  plus the working tree's uncommitted changes as a patch), makes a virtual environment there
  with ``/usr/bin/python3`` and runs, *as that user*, the fail-closed tests, the exploit corpus
  and the demo (one assignment: the same machinery as the whole demo, at a quarter of the
  cost): sandboxed through user namespaces, ada 100 %, ben 0 %, nothing UNSANDBOXED.

Both run only as root on Linux (skipped with a message otherwise).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from grader.course.authoring import save
from grader.course.submissions import fill
from grader.engine.configuration import write_course_config
from grader.engine.coordinator import ClassGrader
from grader.engine.job import Job, Limits
from grader.engine.sandbox import can_isolate
from grader.engine.worker import run_notebook

from .conftest import ROOT
from .test_classgrade import GOOD, SOURCE

A = "00_guard"
USER = "dlgrade-ci"
as_root = pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                             reason="needs root on Linux (it creates a user / namespaces)")
NO_NAMESPACES = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\""


def _tiny_course(base: Path) -> Path:
    course = base / "course"
    write_course_config(course)
    save(SOURCE, course / "solutions" / A / f"{A}.ipynb")
    ClassGrader(course, workers=0, progress=False).ensure_assignment(A)
    release = nbformat.read(course / "notebooks" / A / f"{A}.ipynb", as_version=4)
    for student, nb in (("ben", release), ("ada", fill(release, GOOD))):
        d = course / "submitted" / student / A
        d.mkdir(parents=True)
        nbformat.write(nb, d / f"{A}.ipynb")
    return course


def _without_namespaces(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-Ur", "sh", "-c", NO_NAMESPACES, "sh", *argv],
                          capture_output=True, text=True, timeout=600, cwd=cwd)


@as_root
def test_grade_refuses_where_nothing_isolates_unless_unsandboxed(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("util-linux's unshare is not installed")
    course = _tiny_course(tmp_path)
    probe = _without_namespaces(sys.executable, "-c", "from grader.engine import sandbox; "
                                "print(sandbox.probe())", cwd=tmp_path)
    if probe.returncode != 0 and probe.stderr.startswith(("unshare", "sh:")):
        pytest.skip(f"unshare -Ur is refused here: {probe.stderr[:200]}")
    assert "('none'," in probe.stdout, probe.stdout + probe.stderr
    grade = [sys.executable, "-m", "grader", "grade", "--course", str(course), "--no-progress"]
    refused = _without_namespaces(*grade, cwd=tmp_path)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    for words in ("REFUSED", "userns: unshare(user", "No space left on device",
                  "root: switch to uid", "user namespaces", "--unsandboxed"):
        assert words in refused.stderr, (words, refused.stderr)
    assert not (course / "autograded").exists()
    demo = _without_namespaces(sys.executable, "-m", "grader", "demo", "--out",
                               str(tmp_path / "demo"), cwd=tmp_path)
    assert demo.returncode == 3 and "REFUSED" in demo.stderr, demo.stderr
    assert not (tmp_path / "demo").exists()
    flagged = _without_namespaces(*grade, "--unsandboxed", cwd=tmp_path)
    assert flagged.returncode == 0, flagged.stdout + flagged.stderr
    assert "UNSANDBOXED" in flagged.stderr and "flagged ada/00_guard: UNSANDBOXED" in \
        flagged.stdout, flagged.stdout


@pytest.mark.skipif(not can_isolate(), reason="nothing isolates here")
def test_the_job_folder_is_a_bounded_tmpfs():
    cell = ("import os\nn = 0\ntry:\n    while n < 40:\n"
            "        open(f'f{n}', 'wb').write(b'x' * (4 << 20)); n += 1\n"
            "except OSError as e:\n    print('stopped', n, e.errno)\n")
    res = run_notebook(Job("t", {0: cell, 1: "print(os.getcwd(), sorted(os.listdir('.'))[:2])"},
                           {"data.csv": b"1,2\n"}, limits=Limits(job_mb=32, notebook_timeout=60),
                           judge=True))
    assert res.status == "ok", res.detail
    text = "".join(o.get("text", "") for c in res.cells.values() for o in c["outputs"])
    assert "stopped" in text and " 28" in text, text  # errno 28: ENOSPC, before 40 x 4 MB
    assert "/job ['data.csv', 'f0']" in text, text
    assert res.job_full and res.sandbox["job_mb"] == 32


@pytest.mark.skipif(not can_isolate(), reason="nothing isolates here")
def test_process_limit_lets_threads_run_and_stops_a_fork_bomb():
    """Without a cgroup RLIMIT_NPROC is the process limit; it counts per (user namespace, uid),
    so the notebook's own user namespace bounds its own processes only."""
    cells = {0: "import subprocess, threading, time\n"
                "ts = [threading.Thread(target=time.sleep, args=(0.3,)) for _ in range(16)]\n"
                "[t.start() for t in ts]; [t.join() for t in ts]\n"
                "print('ok', [subprocess.run(['true']).returncode for _ in range(4)])",
             1: "import os, time\nn = 0\ntry:\n    while n < 5000:\n"
                "        if os.fork() == 0:\n            time.sleep(30); os._exit(0)\n"
                "        n += 1\nexcept OSError as e:\n    print('stopped', n, e.errno)",
             2: "print('alive')"}
    res = run_notebook(Job("t", cells, limits=Limits(notebook_timeout=90, max_processes=64),
                           judge=True))
    assert res.status == "ok", res.detail
    text = [("".join(o.get("text", "") for o in res.cells[i]["outputs"])) for i in range(3)]
    assert text[0].strip() == "ok [0, 0, 0, 0]", text
    assert text[1].startswith("stopped") and int(text[1].split()[1]) < 64, text
    assert text[2].strip() == "alive", text


def test_a_worker_that_cannot_isolate_runs_nothing(monkeypatch):
    from grader.engine import sandbox

    monkeypatch.setattr(sandbox.modes, "_probed", (sandbox.NONE, {"userns": "refused (test)"}))
    res = run_notebook(Job("t", {0: "open('/tmp/ran-unsandboxed', 'w')"}))
    assert res.status == "machinery" and "cannot isolate" in res.detail, res.detail
    assert "refused (test)" in res.detail and not res.cells


@pytest.mark.skipif(not can_isolate(), reason="nothing isolates here")
def test_dask_workers_isolate_the_same_way():
    """A Dask worker runs jobs through the same executor: same probe, same mode, and it
    refuses (a machinery failure, never an unsandboxed run) where it cannot isolate."""
    from distributed import Client, LocalCluster

    from grader.engine import sandbox
    from grader.engine.worker import execute_job

    secret, git = str(ROOT / "solutions"), str(ROOT / ".git")
    job = Job("t", {0: f"import os\nprint(os.getcwd(), os.path.exists({secret!r}), "
                       f"os.path.exists({git!r}))"},
              limits=Limits(notebook_timeout=60), judge=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        res = client.submit(execute_job, job, pure=False).result(timeout=300)
    assert res["status"] == "ok", res["detail"]
    assert res["sandbox"]["isolated"] is True and res["sandbox"]["mode"] == sandbox.mode()
    text = "".join(o.get("text", "") for o in res["cells"][0]["outputs"])
    assert text.strip() == "/job False False", text


# ----------------------------------------------------------------------------- as a user


def _run_as(user: str, cmd: str, cwd: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    home = pwd.getpwnam(user).pw_dir
    env = {"HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "USER": user, "LOGNAME": user}
    for key in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT",
                "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK"):
        if key in os.environ:
            env[key] = os.environ[key]
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return subprocess.run([runuser, "-u", user, "--", "sh", "-c", cmd], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def system_python() -> str:
    """``/usr/bin/python3`` (>= 3.11, with venv), the interpreter a user's venv is made with;
    skip the test without it."""
    python = "/usr/bin/python3"
    check = subprocess.run([python, "-c", "import sys, venv; assert sys.version_info >= (3, 11)"],
                           capture_output=True) if os.path.exists(python) else None
    if check is None or check.returncode != 0:
        pytest.skip(f"{python} (>= 3.11, with venv) is needed for the user's environment")
    return python


def ensure_user(name: str) -> Path:
    """An unprivileged user ``name`` (made with useradd if missing) with a private (0700)
    home; return the home. Skips the test where that is not possible (not root on Linux)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("needs root on Linux to create a user")
    for tool in ("useradd", "runuser"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    try:
        pwd.getpwnam(name)
    except KeyError:
        made = subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name],
                              capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot create a user: {made.stderr.strip()}")
    home = Path(pwd.getpwnam(name).pw_dir)
    os.chmod(home, 0o700)
    return home


@pytest.fixture(scope="module")
def user_clone():
    """An unprivileged user with the repository cloned into its 0700 home and a venv there
    (reused across runs while ``pyproject.toml`` is unchanged)."""
    home = ensure_user(USER)
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    python = system_python()
    share = Path(tempfile.mkdtemp(prefix="dlgrade-share-"))
    os.chmod(share, 0o755)
    try:
        bundle, patch = share / "repo.bundle", share / "work.patch"
        subprocess.run(["git", "-c", f"safe.directory={ROOT}", "bundle", "create", str(bundle),
                        "HEAD"], cwd=ROOT, check=True, capture_output=True)
        diff = subprocess.run(["git", "-c", f"safe.directory={ROOT}", "diff", "HEAD",
                               "--binary"], cwd=ROOT, check=True, capture_output=True).stdout
        patch.write_bytes(diff)
        for f in (bundle, patch):
            os.chmod(f, 0o644)
        repo = home / "repo"
        sync = (f"set -e; if [ ! -d {repo}/.git ]; then git clone -q {bundle} {repo}; fi; "
                f"cd {repo}; git fetch -q {bundle} HEAD; git checkout -q -f FETCH_HEAD; "
                "git clean -q -fdx -e .venv; "
                f"if [ -s {patch} ]; then git apply {patch}; fi")
        done = _run_as(USER, sync, cwd=str(home))
        assert done.returncode == 0, done.stderr
    finally:
        shutil.rmtree(share, ignore_errors=True)
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    venv_stamp = repo / ".venv" / "dlgrade-stamp"
    if not venv_stamp.is_file() or venv_stamp.read_text().strip() != stamp:
        made = _run_as(USER, f"rm -rf .venv && {python} -m venv .venv && .venv/bin/pip install "
                       f"-q -e '.[test]' && echo {stamp} > .venv/dlgrade-stamp", cwd=str(repo))
        if made.returncode != 0:
            pytest.skip(f"cannot install the project as {USER}: {made.stderr[-500:]}")
    return repo


@as_root
def test_as_an_ordinary_user_the_fail_closed_tests_and_exploits_hold(user_clone):
    res = _run_as(USER, ".venv/bin/python -m pytest -q -rs -p no:cacheprovider -n0 -x "
                  "tests/test_failclosed.py tests/test_exploits.py "
                  "tests/test_isolation.py::test_dask_workers_isolate_the_same_way "
                  "tests/test_isolation.py::test_the_job_folder_is_a_bounded_tmpfs "
                  "tests/test_isolation.py::test_process_limit_lets_threads_run_and_stops_a_fork_bomb",
                  cwd=str(user_clone))
    tail = res.stdout[-4000:] + res.stderr[-2000:]
    assert res.returncode == 0, tail
    assert " passed" in res.stdout and "failed" not in res.stdout.splitlines()[-1], tail
    skipped = [ln for ln in res.stdout.splitlines() if ln.startswith("SKIPPED")]
    # only what needs root itself: a cgroup for the whole tree, a sandbox uid that is not yours
    assert all("without root" in ln for ln in skipped), skipped


@as_root
def test_as_an_ordinary_user_the_demo_runs_sandboxed(user_clone):
    res = _run_as(USER, ".venv/bin/python -m grader demo --no-progress --assignments "
                  "01_linear_regression --out demo_class", cwd=str(user_clone))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "UNSANDBOXED" not in out, out[-4000:]
    assert "sandboxed without root (user namespaces)" in out, out[-2000:]
    rows = {ln.split()[0]: ln for ln in res.stdout.splitlines() if ln[:3] in ("ada", "ben")}
    assert rows["ada"].rstrip().endswith("(100%)"), rows
    assert rows["ben"].rstrip().endswith("(0%)"), rows
