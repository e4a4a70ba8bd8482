"""Isolation for the process that runs a student's notebook (called in the forked child).

With root rights (a grading machine or container) the child gets, before any student code:

* its own network namespace: no network at all, not even loopback services of the host;
* its own mount namespace: a fresh tmpfs over the grading job area (so the other students'
  notebooks and their throw-away folders are invisible), over the course directory (source
  notebooks, gradebook, submissions) and over ``/root``; a throw-away ``HOME``;
* an unprivileged user of its own (a uid with no account, one per notebook process), so it can
  neither undo the above nor signal the grader, and its process limit is shared with no
  other notebook;

and always, with or without root: resource limits on address space (memory bombs), process
count (fork bombs), file size and core dumps, plus its own session so every process it starts
is killed with it. Without root the namespaces and the user switch are skipped and the result
says so: the caller prints a loud warning that grading is unsandboxed.

Uses only the Linux system calls (via ctypes): nothing to install.
"""

from __future__ import annotations

import ctypes
import os
import resource
import stat
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV, MS_BIND = 0x4000, 1 << 18, 0x2, 0x4, 0x1000
UID_BASE = 200_000  # sandbox users: one uid per notebook process, so a fork bomb exhausts only
UID_SPAN = 50_000  # its own process count (RLIMIT_NPROC counts per uid), not its neighbours'


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount_tmpfs(libc, path: str) -> None:
    _check(
        libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64m,mode=0755"),
        f"mount tmpfs on {path}",
    )


def can_isolate() -> bool:
    """True when namespaces and the user switch are available (root on Linux)."""
    return sys.platform.startswith("linux") and os.geteuid() == 0


def set_limits(limits) -> None:
    mem = int(limits.memory_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    fsize = int(limits.max_file_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cpu = int(limits.notebook_timeout) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    nproc = int(limits.max_processes)
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard == resource.RLIM_INFINITY or nproc <= hard:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _hide(libc, path: str) -> bool:
    """Cover a directory with an empty tmpfs, or a file with /dev/null."""
    if os.path.isdir(path):
        _mount_tmpfs(libc, path)
        return True
    if os.path.exists(path):
        _check(libc.mount(b"/dev/null", path.encode(), None, MS_BIND, None), f"hide {path}")
        return True
    return False


def _needed_paths() -> list[str]:
    """Folders the notebook's Python must still read: its installation and site-packages."""
    import site

    import grader

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(grader.__path__[0])}
    paths.update(p for p in site.getsitepackages() if os.path.isdir(p))
    return sorted(os.path.realpath(p) for p in paths)


def _first_closed_ancestor(path: str) -> str | None:
    """The first folder on the way to ``path`` that other users may not traverse (or /root)."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        anc = "/" + "/".join(parts[:i])
        if anc == "/root" or not os.stat(anc).st_mode & stat.S_IXOTH:
            return anc
    return None


def _stage_needed_paths(libc, staging: str) -> list[tuple[str, str]]:
    """Bind every needed path below a closed folder to ``staging`` before that folder is
    covered; return ``(path, staged copy)`` pairs to bind back afterwards."""
    staged = []
    for k, path in enumerate(_needed_paths()):
        if _first_closed_ancestor(path) is None:
            continue
        stage = os.path.join(staging, f"expose-{k}")
        os.makedirs(stage)
        _check(libc.mount(path.encode(), stage.encode(), None, MS_BIND | MS_REC, None),
               f"stage {path}")
        staged.append((path, stage))
    return staged


def enter(workdir: str, limits, *, enabled: bool = True, hide: list[str] | None = None) -> dict:
    """Isolate the current (child) process and ``chdir`` into ``workdir``; describe what held.

    ``workdir``'s parent is the worker's job area (every job's folder): it is covered, and the
    process keeps reaching its own folder through its working directory only. ``hide`` lists
    more paths to cover (the course's gradebook, sources and submissions).
    """
    info = {"isolated": False, "network": "host", "user": os.geteuid(), "hidden": []}
    os.chdir(workdir)
    if enabled and can_isolate():
        libc = _libc()
        _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC), "unshare")
        _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
        info["network"] = "none"
        job_area = os.path.dirname(os.path.abspath(workdir))
        uid = UID_BASE + os.getpid() % UID_SPAN  # per notebook process
        for name in os.listdir(workdir):
            os.chown(os.path.join(workdir, name), uid, uid)
        os.chown(workdir, uid, uid)
        _hide(libc, job_area)
        info["hidden"].append(job_area)
        staged = _stage_needed_paths(libc, job_area)
        for path in dict.fromkeys(["/root", *map(os.path.abspath, hide or [])]):
            if _hide(libc, path):
                info["hidden"].append(path)
        for target, stage in staged:  # put back what Python itself needs under covered dirs
            os.makedirs(target, exist_ok=True)
            _check(libc.mount(stage.encode(), target.encode(), None, MS_BIND | MS_REC, None),
                   f"expose {target}")
        home = os.path.join(job_area, "home")  # on the fresh tmpfs: throw-away
        os.makedirs(home, exist_ok=True)
        os.chown(home, uid, uid)
        set_limits(limits)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        info.update(isolated=True, user=uid)
    else:
        home = workdir
        set_limits(limits)
    os.environ["HOME"] = home
    os.environ["MPLCONFIGDIR"] = home
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR"):
        os.environ.pop(var, None)
    return info
