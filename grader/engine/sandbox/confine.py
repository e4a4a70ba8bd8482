"""Entering the sandbox: the namespaces, then the new root, the limits and the dropped privileges,
for the notebook's process and for the judge."""

from __future__ import annotations

import os
import sys

from .limits import set_limits
from .root_fs import build_root, copy_in, exposed_paths
from .syscalls import (
    BWRAP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    MS_PRIVATE,
    MS_REC,
    NONE,
    PR_CAPBSET_DROP,
    PR_SET_DUMPABLE,
    ROOT,
    USERNS,
    check,
    deny_user_namespaces,
    drop_capabilities,
    drop_privileges,
    libc_handle,
    unshare_user,
)


def enter_judge(root: str, limits, uid: int, protect: list[str] = (),
                mode: str = ROOT, tree: bool = False) -> None:
    """The judge's confinement: its own allow-list root (no job folder: nothing the student
    can write), a uid of its own, no network (root: already unshared by its parent; userns:
    a user namespace of its own, capabilities dropped, non-dumpable)."""
    libc = libc_handle()
    if mode == BWRAP:  # already in bwrap's namespaces and root (:mod:`.bwrap`)
        if os.getuid() == 0:
            os.chown("/home/student", uid, uid)
        os.chdir("/")
        set_limits(limits, tree=tree)
        become(libc, uid)
        check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "non-dumpable")
        os.environ["HOME"] = "/home/student"
        return
    if mode == USERNS:
        unshare_user(uid, CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID)
        check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "non-dumpable")
    check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    build_root(libc, root, None, uid, limits, protect, proc=mode != USERNS)
    os.chroot(root)
    os.chdir("/")
    sys.path[:] = [p for p in sys.path if p and os.path.isabs(p)]  # never the cwd
    set_limits(limits, tree=tree)
    drop_privileges(libc, uid, mode)
    os.environ["HOME"] = "/home/student"


def enter(workdir: str, root: str, limits, uid: int, *, enabled: bool = True,
          protect: list[str] = (), cgroups: list[str] = (), mode: str = ROOT) -> dict:
    """Isolate the current process and ``chdir`` into its job folder; describe what held.

    Call in a process that is already PID 1 of a new PID namespace, or its child (see
    :mod:`grader.engine.notebook_process`), already in its cgroup (where it has one) and,
    without root, its user namespace.
    """
    info = {"isolated": False, "network": "host", "user": os.geteuid(), "root": "host",
            "cwd": workdir, "mode": NONE}
    if enabled and mode == BWRAP:  # bwrap built the root: fill /job, then drop everything
        from .bwrap import JOB_SOURCE

        copy_in(JOB_SOURCE, "/job", uid)
        if os.getuid() == 0:  # bwrap started by root: no user namespace, files are root's
            os.chown("/job", uid, uid)
            os.chown("/home/student", uid, uid)
        os.chdir("/job")
        set_limits(limits, tree=bool(cgroups))
        become(libc_handle(), uid)
        info.update(isolated=True, network="none", user=uid, root="allow-list",
                    exposed=exposed_paths(protect)[1], cwd="/job", mode=mode,
                    job_mb=limits.job_mb, tree_limit="cgroup" if cgroups else "per process")
        home = "/home/student"
    elif enabled:  # decided by the worker (probe)
        libc = libc_handle()
        check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
        exposed = build_root(libc, root, workdir, uid, limits, protect)
        os.chroot(root)
        os.chdir("/job")
        set_limits(limits, tree=bool(cgroups))
        drop_privileges(libc, uid, mode)
        home = "/home/student"
        info.update(isolated=True, network="none", user=uid, root="allow-list",
                    exposed=exposed, cwd="/job", mode=mode, job_mb=limits.job_mb,
                    tree_limit="cgroup" if cgroups else "per process")
    else:
        os.chdir(workdir)
        home = workdir
        set_limits(limits)
    os.environ["HOME"] = home
    os.environ["MPLCONFIGDIR"] = home
    os.environ["TMPDIR"] = "/tmp" if info["isolated"] else os.environ.get("TMPDIR", "/tmp")
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR", "PYTHONSTARTUP"):
        os.environ.pop(var, None)
    return info


def become(libc, uid: int) -> None:
    """Bwrap mode's last step: started by root (no user namespace), drop the bounding set,
    switch to ``uid`` and refuse user namespaces by a seccomp filter (no user namespace of its
    own to disable them in); then, either way, no capability and ``no_new_privs`` for good."""
    as_root = os.getuid() == 0
    if as_root:
        for cap in range(64):
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    drop_capabilities(libc)
    if as_root:
        deny_user_namespaces(libc)


def unshare_for_notebook(mode: str = ROOT, uid: int = 0) -> None:
    """New PID, mount, network and IPC namespaces (the next child is PID 1 of the new one);
    with ``mode="userns"`` in a user namespace of their own where ``uid`` is the only user."""
    flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC
    if mode == USERNS:
        unshare_user(uid, flags)
        return
    libc = libc_handle()
    check(libc.unshare(flags), "unshare")
