"""Tree-wide limits without root, through a cgroup delegated to the account (issue 19).

As root this test does what systemd's ``Delegate=yes`` (or an administrator) does: it makes a
group under its own (v2 where its group hands out ``memory`` and ``pids``, else the v1
``memory`` and ``pids`` hierarchies), gives it to an ordinary user (``chown``: the folder,
``cgroup.procs``, ``cgroup.subtree_control``) and starts that user's shell in it. As that user,
from a clone in its 0700 home (:func:`tests.test_isolation.user_clone`), the ``inner`` tests
then run: the grader finds the group by trying, says so in the run's summary line, and a
notebook whose child processes together allocate twice the memory limit, or that forks past
the process limit, is stopped by the tree's limit (the per-process ones, printed by the
notebook, are twice and four times looser). A half-delegated group (``pids`` not given) gives
per-process limits, and the summary says why. Every group made here is removed.

Runs only as root on Linux where a group can be made and delegated (skipped, saying why,
otherwise); the inner tests are skipped unless started by it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from grader.engine import sandbox
from grader.engine.job import Job, Limits
from grader.engine.sandbox import cgroups
from grader.engine.worker import run_notebook

from .test_isolation import USER, as_root, user_clone  # noqa: F401 (a fixture)

EXPECT = "DLGRADE_DELEGATED"  # set for the inner tests: the summary they must print
inner = pytest.mark.skipif(EXPECT not in os.environ or os.geteuid() == 0,
                           reason="run by test_a_delegated_cgroup_* as an ordinary user")


def test_own_groups_and_mounts_are_parsed():
    own = cgroups.own_groups("12:pids:/a/b\n4:memory:/a/m\n1:name=systemd:/s\n0::/user/x\n")
    assert own == {"pids": "/a/b", "memory": "/a/m", "name=systemd": "/s", "": "/user/x"}
    info = ("41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
            "35 31 0:32 /lxc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
            "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
            "23 1 0:21 / /sys rw - sysfs sysfs rw\n")
    assert cgroups.mounts(info) == {"": ("/", "/sys/fs/cgroup/unified"),
                                    "memory": ("/lxc", "/sys/fs/cgroup/memory"),
                                    "pids": ("/", "/sys/fs/cgroup/pids")}


# ----------------------------------------------------------------------------- as root


def _delegate(user: str, tag: str, give: tuple[str, ...] = ("memory", "pids")) -> list[str]:
    """Make group ``tag`` under this process's own, hand the controllers in ``give`` to
    ``user``; return its folders (skip where this machine cannot)."""
    with open("/proc/self/cgroup") as fh:
        own = cgroups.own_groups(fh.read())
    with open("/proc/self/mountinfo") as fh:
        where = cgroups.mounts(fh.read())
    pw = pwd.getpwnam(user)
    v2 = cgroups._folder(where[""], own[""]) if "" in own and "" in where else None
    if v2 and {"memory", "pids"} <= set(Path(v2, "cgroup.subtree_control").read_text().split()):
        dirs = {"memory": os.path.join(v2, tag)}  # one group for both
        files = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")
    elif all(c in own and c in where for c in ("memory", "pids")):
        dirs = {c: os.path.join(cgroups._folder(where[c], own[c]), tag) for c in ("memory", "pids")}
        files = ("cgroup.procs", "tasks")
    else:
        pytest.skip("cgroups cannot be delegated here: no v2 group handing out memory and "
                    "pids, no v1 memory and pids hierarchies")
    made = []
    try:
        for controller, d in dirs.items():
            os.mkdir(d)
            made.append(d)
            if controller in give:
                for path in [d] + [os.path.join(d, f) for f in files]:
                    if os.path.exists(path):
                        os.chown(path, pw.pw_uid, pw.pw_gid)
    except OSError as exc:
        _remove(made)
        pytest.skip(f"cgroups cannot be delegated here: {exc}")
    return made


def _remove(dirs: list[str]) -> None:
    """Kill what is left in the groups, then remove them, deepest first."""
    for d in dirs:
        for sub, _, _ in sorted(os.walk(d), key=lambda w: -w[0].count("/")):
            for pid in Path(sub, "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), 9)
                except OSError:
                    pass
    for d in dirs:
        for sub, _, _ in sorted(os.walk(d), key=lambda w: -w[0].count("/")):
            for _ in range(100):
                try:
                    os.rmdir(sub)
                    break
                except OSError:
                    subprocess.run(["sleep", "0.05"])


def _inner_as(user: str, repo: Path, dirs: list[str], expect: str, k: str):
    """The inner tests, as ``user``, started inside ``dirs`` (as systemd starts a unit)."""
    def join() -> None:
        for d in dirs:
            with open(os.path.join(d, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))

    home = pwd.getpwnam(user).pw_dir
    env = {"HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "USER": user, "LOGNAME": user, EXPECT: expect}
    cmd = (".venv/bin/python -m pytest -q -rs -p no:cacheprovider -n0 "
           f"tests/test_cgroup_delegation.py -k {k}")
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return subprocess.run([runuser, "-u", user, "--", "sh", "-c", cmd], cwd=str(repo), env=env,
                          capture_output=True, text=True, timeout=900, preexec_fn=join)


@as_root
def test_a_delegated_cgroup_limits_the_tree_as_an_ordinary_user(user_clone):  # noqa: F811
    dirs = _delegate(USER, f"dlgrade-deleg-{os.getpid()}")
    try:
        res = _inner_as(USER, user_clone, dirs, " and ".join(sorted(dirs)), "inner_delegated")
    finally:
        _remove(dirs)
    tail = res.stdout[-4000:] + res.stderr[-2000:]
    assert res.returncode == 0, tail
    assert "3 passed" in res.stdout and "skipped" not in res.stdout, tail
    assert not any(os.path.exists(d) for d in dirs)


@as_root
def test_a_half_delegated_cgroup_falls_back_to_rlimits_and_says_so(user_clone):  # noqa: F811
    dirs = _delegate(USER, f"dlgrade-half-{os.getpid()}", give=("memory",))
    if len(dirs) == 1:
        pytest.skip("cgroup v2 here: a group is delegated whole")
    try:
        res = _inner_as(USER, user_clone, dirs, "", "inner_half")
    finally:
        _remove(dirs)
    tail = res.stdout[-4000:] + res.stderr[-2000:]
    assert res.returncode == 0 and "1 passed" in res.stdout, tail


# ----------------------------------------------------------------------------- as the user


@inner
def test_inner_delegated_summary_names_the_group():
    assert sandbox.mode() == sandbox.USERNS
    place, why = cgroups.placement()
    assert place is not None and place.delegated, why
    version = place.version
    line = sandbox.describe(Limits())
    assert (f"memory and processes limited per process tree (delegated cgroup v{version} at "
            f"{os.environ[EXPECT]})") in line, line


def _text(res, index: int) -> str:
    return "".join(o.get("text", "") for o in res.cells[index]["outputs"])


def _leftovers() -> list[str]:
    place, _ = cgroups.placement()
    return [n for b in set(place.bases.values()) for n in os.listdir(b)
            if n.startswith("dlgrader-") and n != cgroups.LEAF]


@inner
def test_inner_delegated_memory_counts_for_the_whole_tree():
    """Three children of 512 MB (twice the 768 MB limit in all): each alone is far under the
    per-process limit (4 x 768 MB, printed), two never fit in the tree: at 3 s, at most one has
    its 512 MB and is alive (the OOM killer may kill one that finished and let the next finish,
    so finishing is not holding)."""
    cell = ("import os, resource, time\nprint('AS', resource.getrlimit(resource.RLIMIT_AS)[0])\n"
            "r, w = os.pipe()\nkids = []\n"
            "for i in range(3):\n    pid = os.fork()\n    if pid == 0:\n"
            "        hog = bytearray(512 << 20); os.write(w, bytes([i])); time.sleep(4)\n"
            "        os._exit(0)\n    kids.append(pid)\n"
            "time.sleep(3)\nos.set_blocking(r, False)\n"
            "try:\n    done = set(os.read(r, 10))\nexcept BlockingIOError:\n    done = set()\n"
            "alive = {i for i, pid in enumerate(kids) if os.waitpid(pid, os.WNOHANG) == (0, 0)}\n"
            "print('held', len(done & alive))")
    res = run_notebook(Job("t", {0: cell, 1: "print('alive')"},
                           limits=Limits(memory_mb=768, notebook_timeout=90), judge=True))
    assert res.status == "ok", res.detail
    assert res.sandbox["tree_limit"] == "cgroup", res.sandbox
    out = _text(res, 0).split()
    assert int(out[out.index("AS") + 1]) == 4 * 768 << 20, out
    assert int(out[out.index("held") + 1]) <= 1, out
    assert _text(res, 1).strip() == "alive"
    assert _leftovers() == []


@inner
def test_inner_delegated_a_fork_bomb_is_stopped_by_the_tree():
    cell = ("import os, resource, time\n"
            "print('NPROC', resource.getrlimit(resource.RLIMIT_NPROC)[0])\n"
            "n = 0\ntry:\n    while n < 500:\n"
            "        if os.fork() == 0:\n            time.sleep(60); os._exit(0)\n"
            "        n += 1\nexcept OSError as e:\n    print('stopped', n, e.errno)")
    res = run_notebook(Job("t", {0: cell, 1: "print('alive')"},
                           limits=Limits(notebook_timeout=90, max_processes=24), judge=True))
    assert res.status == "ok", res.detail
    out = _text(res, 0).split()
    assert int(out[out.index("NPROC") + 1]) == 48, out  # the rlimit is not what stops it
    assert out[out.index("stopped") + 2] == "11" and int(out[out.index("stopped") + 1]) < 24
    assert _text(res, 1).strip() == "alive"
    assert _leftovers() == []


@inner
def test_inner_half_delegated_gives_rlimits_and_says_why():
    place, why = cgroups.placement()
    assert place is None and "pids" in why, why
    assert "dlgrader-trial-" not in why, why  # the same words in every process
    line = sandbox.describe(Limits())
    assert "memory and processes limited per process (rlimits: no cgroup for this account" \
        in line and "pids" in line, line
    assert sandbox.TreeLimit("dlgrader-x", 256, 16).dirs == []
