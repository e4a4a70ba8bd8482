"""The new root file system: an allow-list of read-only paths (system, the Python installation,
``grader``), private size-limited scratch, devices, ``/proc`` and the job folder."""

from __future__ import annotations

import os
import shutil
import site
import sys

from .syscalls import (
    DEVICES,
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    SYSTEM_PATHS,
    check,
)

# ----------------------------------------------------------------------------- what is allowed


def python_paths() -> list[str]:
    """Folders the notebook's Python reads: its installation, site-packages, ``sys.path``,
    ``grader``."""
    import grader

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, grader.__path__[0],
             os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in site.getsitepackages() if os.path.isdir(p))
    user_site = site.getusersitepackages()
    if isinstance(user_site, str) and os.path.isdir(user_site) and user_site in sys.path:
        paths.add(user_site)
    paths.update(p for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p))
    stdlib = os.path.dirname(os.__file__)
    paths.update({stdlib, os.path.join(stdlib, "lib-dynload")})
    return sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})


def allowed_paths(protect: list[str] = ()) -> list[str]:
    """Read-only paths of the new root; none of them may expose a protected path.

    A path that contains a protected one (a ``sys.path`` entry that is the course directory) is
    left out; paths inside one (a virtual environment or the ``grader`` package inside the
    course directory) go in by themselves, without their parent.
    """
    protect = [os.path.realpath(p) for p in protect]
    keep = [path for path in python_paths()
            if not any(p == path or p.startswith(path.rstrip("/") + "/") for p in protect)]
    # drop paths covered by a parent already in the list
    keep.sort()
    out: list[str] = []
    for path in keep:
        if not any(path.startswith(p.rstrip("/") + "/") for p in out):
            out.append(path)
    return out


def exposed_paths(protect: list[str] = ()) -> tuple[list[str], list[str]]:
    """What the new root holds of the host: the system paths that are symbolic links (merged
    ``/usr``: recreated as links), and the read-only paths (system, then :func:`allowed_paths`
    not already inside one), in mount order."""
    links = [p for p in SYSTEM_PATHS if os.path.islink(p)]
    exposed = [p for p in SYSTEM_PATHS if not os.path.islink(p) and os.path.isdir(p)]
    for path in allowed_paths(protect):
        if not any(path == p or path.startswith(p + "/") for p in exposed):
            exposed.append(path)
    return links, exposed


# ----------------------------------------------------------------------------- the new root


def _bind(libc, src: str, dst: str, *, readonly: bool) -> None:
    if os.path.isdir(src):
        os.makedirs(dst, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
        open(dst, "a").close()
    check(libc.mount(src.encode(), dst.encode(), None, MS_BIND | MS_REC, None), f"bind {src}")
    if readonly:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
        # in a user namespace a remount may not clear the source's flags: keep them
        f = os.statvfs(src).f_flag
        flags |= (f & MS_NOEXEC) | (f & MS_NOATIME) | (f & MS_NODIRATIME) | (
            MS_RELATIME if f & 4096 else 0)
        check(libc.mount(None, dst.encode(), None, flags, None), f"read-only {src}")


def _tmpfs(libc, path: str, size_mb: int, mode: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)
    opts = f"size={int(size_mb)}m,mode={mode}".encode()
    check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts),
           f"tmpfs on {path}")


def copy_in(src: str, dst: str, uid: int) -> None:
    """Copy the job's files into its (size-limited) folder, owned by the notebook's uid."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = dst if rel == "." else os.path.join(dst, rel)
        for name in dirnames:
            os.makedirs(os.path.join(target, name), mode=0o755, exist_ok=True)
            os.chown(os.path.join(target, name), uid, uid)
        for name in filenames:
            if os.path.islink(os.path.join(dirpath, name)):
                continue
            shutil.copyfile(os.path.join(dirpath, name), os.path.join(target, name))
            os.chown(os.path.join(target, name), uid, uid)


def build_root(libc, root: str, workdir: str | None, uid: int, limits,
               protect: list[str], *, proc: bool = True) -> list[str]:
    """Mount the allow-listed file system under ``root``; return the read-only paths in it.

    The job folder is a tmpfs of ``limits.job_mb`` at ``/job`` with the job's files copied in
    (results go back through the results pipe, never through files).
    """
    _tmpfs(libc, root, 16, "0755")
    # private, size-limited scratch first: allowed paths below /tmp or /home go on top
    _tmpfs(libc, root + "/tmp", limits.tmp_mb, "1777")
    _tmpfs(libc, root + "/home", limits.tmp_mb, "0755")
    os.makedirs(root + "/home/student", mode=0o700)
    os.chown(root + "/home/student", uid, uid)
    links, exposed = exposed_paths(protect)
    for path in links:
        os.symlink(os.readlink(path), root + path)
    for path in exposed:
        _bind(libc, path, root + path, readonly=True)
    os.makedirs(root + "/dev", mode=0o755, exist_ok=True)
    for dev in DEVICES:
        if os.path.exists(f"/dev/{dev}"):
            _bind(libc, f"/dev/{dev}", f"{root}/dev/{dev}", readonly=False)
    _tmpfs(libc, root + "/dev/shm", limits.tmp_mb, "1777")
    if proc:  # (a process outside the PID namespace of a user namespace may not mount it)
        os.makedirs(root + "/proc", mode=0o555, exist_ok=True)
        check(libc.mount(b"proc", (root + "/proc").encode(), b"proc",
                          MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount /proc")
    if workdir is not None:
        _tmpfs(libc, root + "/job", limits.job_mb, "0755")
        os.chown(root + "/job", uid, uid)
        copy_in(workdir, root + "/job", uid)
    return exposed
