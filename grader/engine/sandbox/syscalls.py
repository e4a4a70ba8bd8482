"""The Linux calls the sandbox makes (ctypes: nothing to install), and its constants."""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWPID = 0x20000, 0x40000000, 0x08000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 1 << 18
UID_BASE, UID_SPAN = 200_000, 50_000  # one uid per notebook process
SYSTEM_PATHS = ("/usr", "/etc", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt/conda")
DEVICES = ("null", "zero", "full", "random", "urandom")
CGROUP_ROOT = "/sys/fs/cgroup"
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
ROOT, USERNS, BWRAP, NONE = "root", "userns", "bwrap", "none"  # isolation modes (see probe)
DESCRIBE = {
    ROOT: "sandboxed as root: namespaces, allow-list root, a uid per notebook",
    USERNS: "sandboxed without root (user namespaces): namespaces, allow-list root, "
            "capabilities dropped",
    BWRAP: "sandboxed through bubblewrap (bwrap): namespaces, allow-list root, "
           "capabilities dropped",
    NONE: "UNSANDBOXED",
}


def libc_handle():
    return ctypes.CDLL(None, use_errno=True)


def check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def drop_capabilities(libc=None) -> None:
    """Give up every capability for good (bounding set, capset, no_new_privs): no mount, no
    chroot, no namespace, no uid change after this, in this process and what it starts."""
    libc = libc or libc_handle()
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    check(libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()), "capset")
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def unshare_user(inner: int, flags: int) -> None:
    """A user namespace of this process's own (plus ``flags``), mapping only ``inner`` (uid
    and gid inside) to this account: full capabilities inside, none outside."""
    libc = libc_handle()
    uid, gid = os.geteuid(), os.getegid()
    check(libc.unshare(CLONE_NEWUSER | flags), "unshare(user namespace)")
    for name, value in (("setgroups", "deny"), ("uid_map", f"{inner} {uid} 1"),
                        ("gid_map", f"{inner} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(value)


def drop_privileges(libc, uid: int, mode: str) -> None:
    """The last step of either confinement: root mode switches to the process's own uid; in a
    user namespace (one mapped uid) every capability is dropped instead."""
    if mode == USERNS:
        drop_capabilities(libc)
    else:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)



# (architecture as seccomp names it, unshare, clone, clone3, x32 bit) for the filter below
_SECCOMP_ARCH = {"x86_64": (0xC000003E, 272, 56, 435, 0x40000000),
                 "aarch64": (0xC00000B7, 97, 220, 435, 0)}


def deny_user_namespaces(libc=None) -> None:
    """A seccomp filter: ``unshare`` and ``clone`` with ``CLONE_NEWUSER`` fail (EPERM),
    ``clone3`` reports ENOSYS (the C library falls back to ``clone``), other architectures'
    calls fail. For a process with no user namespace of its own to disable them in (bwrap
    started by root); needs ``no_new_privs``. Raises OSError on an architecture it does not
    know."""
    libc = libc or libc_handle()
    machine = os.uname().machine
    if machine not in _SECCOMP_ARCH:
        raise OSError(f"no seccomp filter for {machine}")
    arch, unshare, clone, clone3, x32 = _SECCOMP_ARCH[machine]
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, eperm),  # another ABI: refused
            (ld, 0, 0, 0), (jge, 6, 0, x32 or 0xFFFFFFFF),
            (jeq, 3, 0, unshare), (jeq, 2, 0, clone), (jeq, 5, 0, clone3),
            (ret, 0, 0, allow),
            (ld, 0, 0, 16), (jset, 0, 1, CLONE_NEWUSER), (ret, 0, 0, eperm), (ret, 0, 0, allow),
            (ret, 0, 0, enosys)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*[Filter(*f) for f in prog])
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    check(libc.prctl(22, 2, ctypes.byref(Prog(len(prog), filters)), 0, 0), "seccomp filter")
