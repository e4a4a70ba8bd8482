"""Which isolation this process can give a notebook: decided by a probe, never by ``geteuid()``;
and what a run says about it (its summary line, or why grading refuses)."""

from __future__ import annotations

import os
import subprocess
import sys

from .cgroups import placement
from .syscalls import BWRAP, DESCRIBE, NONE, ROOT, UID_BASE, USERNS

FORCE_ENV = "DLGRADE_SANDBOX"  # root, userns or bwrap: only that mode is tried (tests, admins)

# ----------------------------------------------------------------------------- which mode

# Run by the probe in a fresh interpreter (``-I -S``: nothing of ours imported): tries exactly
# what the mode needs and prints why it could not.
_PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
mode, inner = sys.argv[1], int(sys.argv[2])
def chk(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        print(f"{what}: {os.strerror(err)}", flush=True)
        os._exit(1)
try:
    ns = 0x20000 | 0x20000000 | 0x40000000 | 0x08000000
    if mode == "root":
        if os.geteuid() != 0:
            print("not root", flush=True)
            os._exit(1)
        chk(libc.unshare(ns), "unshare(mount, pid, network, ipc)")
    else:
        uid, gid = os.geteuid(), os.getegid()
        chk(libc.unshare(ns | 0x10000000), "unshare(user, mount, pid, network, ipc)")
        for name, value in (("setgroups", "deny"), ("uid_map", f"{inner} {uid} 1"),
                            ("gid_map", f"{inner} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as fh:
                fh.write(value)
    chk(libc.mount(b"none", b"/", None, 0x4000 | (1 << 18), None), "make / private")
    pid = os.fork()
    if pid == 0:
        chk(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0x6, b"size=1m,mode=0755"), "mount a tmpfs")
        os.mkdir("/tmp/proc")
        chk(libc.mount(b"proc", b"/tmp/proc", b"proc", 0xE, None), "mount /proc")
        os.mkdir("/tmp/usr")
        chk(libc.mount(b"/usr", b"/tmp/usr", None, 0x1000 | 0x4000, None), "bind-mount /usr")
        flags = 0x20 | 0x1000 | 0x1 | 0x2 | 0x4
        f = os.statvfs("/usr").f_flag
        flags |= (f & 8) | (f & 1024) | (f & 2048) | ((1 << 21) if f & 4096 else 0)
        chk(libc.mount(None, b"/tmp/usr", None, flags, None), "read-only bind mount")
        if mode == "root":
            try:
                os.setgroups([])
                os.setgid(inner)
                os.setuid(inner)
            except OSError as exc:
                print(f"switch to uid {inner}: {exc.strerror}", flush=True)
                os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
except OSError as exc:
    print(f"{exc}", flush=True)
    os._exit(1)
"""


_probed: tuple[str, dict[str, str]] | None = None


class Refused(RuntimeError):
    """Nothing here can isolate student code and the instructor did not accept the risk."""


def _try(mode: str) -> str | None:
    """Why ``mode`` cannot isolate here (None: it can), from a child that tries it."""
    if mode == BWRAP:
        from .bwrap import trial

        return trial(UID_BASE)
    try:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", _PROBE, mode, str(UID_BASE)],
                              capture_output=True, text=True, timeout=30, cwd="/",
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the probe could not run: {exc}"
    if proc.returncode == 0:
        return None
    return (proc.stdout.strip() or proc.stderr.strip()[-300:] or
            f"the probe exited with code {proc.returncode}")


def probe(refresh: bool = False) -> tuple[str, dict[str, str]]:
    """The isolation this process can give a notebook: ``(mode, {mode tried: why not})``.

    Decided by trying, in a child process, what each mode needs (root: namespaces, mounts and
    a switch to an unmapped uid; ``userns``: an unprivileged user namespace with mounts and a
    PID namespace; ``bwrap``: bubblewrap started with the mode's arguments, checked from
    inside), in that order, or only the mode :data:`FORCE_ENV` names. Root inside a
    restricted user namespace, or a container whose seccomp
    profile refuses namespaces, fails the probe however ``geteuid()`` reads. Cached.
    """
    global _probed
    if _probed is not None and not refresh:
        return _probed
    why: dict[str, str] = {}
    mode = NONE
    forced = os.environ.get(FORCE_ENV, "").strip().lower()
    order = ((ROOT,) if os.geteuid() == 0 else ()) + (USERNS, BWRAP)
    if forced:
        order = (forced,) if forced in (ROOT, USERNS, BWRAP) else ()
        if not order:
            why[FORCE_ENV] = f"{forced!r} is not a mode (root, userns or bwrap)"
    if not sys.platform.startswith("linux"):
        why["linux"] = f"namespaces need Linux (this is {sys.platform})"
    else:
        for candidate in order:
            reason = _try(candidate)
            if reason is None:
                mode = candidate
                break
            why[candidate] = reason + (f" ({FORCE_ENV}={forced})" if forced else "")
    _probed = (mode, why)
    return _probed


def mode() -> str:
    """``root``, ``userns``, ``bwrap`` or ``none`` (see :func:`probe`)."""
    return probe()[0]


def can_isolate() -> bool:
    """True when this process can sandbox a notebook (as root, or with user namespaces)."""
    return mode() != NONE


def describe(limits=None) -> str:
    """One line for the run's summary: the mode and how memory and processes are limited."""
    m = mode()
    text = DESCRIBE[m]
    if m == NONE:
        return text + " (student code runs with your rights)"
    place, why = placement()
    how = (f"memory and processes limited per process tree ({place.label()})" if place else
           f"memory and processes limited per process (rlimits: no cgroup for this account: "
           f"{why})")
    job = f"; job folder limited to {limits.job_mb} MB" if limits is not None else ""
    return f"{text}; {how}{job}"


def refusal() -> str:
    """Why grading refuses to run here, what was refused, and the ways out."""
    _, why = probe()
    tried = "\n".join(f"  - {k}: {v}" for k, v in why.items())
    return (
        "REFUSED: nothing on this machine can isolate student code, and a notebook run with "
        "your rights could read the course's solutions, its .git and the gradebook.\n"
        f"What was tried:\n{tried}\n"
        "Ways out:\n"
        "  - enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
        "user.max_user_namespaces > 0; on Ubuntu >= 23.10 "
        "kernel.apparmor_restrict_unprivileged_userns=0), or\n"
        "  - install bubblewrap (`apt-get install -y bubblewrap`): its AppArmor profile allows "
        "the namespaces the grader then runs each notebook in, or\n"
        "  - grade as root in a VM or a container started with namespaces allowed (e.g. "
        "`docker run --cap-add SYS_ADMIN --security-opt seccomp=unconfined "
        "--security-opt apparmor=unconfined ...`), or\n"
        "  - accept the risk explicitly: `grader grade --unsandboxed` (every grade is flagged "
        "UNSANDBOXED).")
