"""Isolation of the process that runs a student's notebook: an allow-list, not a block-list.

With root rights (a grading machine or container), before any student code the process gets:

* new PID, mount, network and IPC namespaces: it sees no other process, has no network (not even
  the host's loopback or abstract Unix sockets), and everything it starts dies with it;
* a **new root file system** holding only what a notebook needs: the Python installation and
  its site-packages (read-only), the ``grader`` package (read-only), ``/usr``, ``/etc`` and the
  shared libraries (read-only), a few device nodes, a fresh ``/proc``, and size-limited, private
  ``/tmp``, ``/dev/shm`` and home. Its job folder is at ``/job``. Nothing else exists there: not
  the course, not other copies of it, not ``.git``, the gradebook, other jobs or host sockets.
  Every path keeps its name, and the folders on the way are fresh and traversable, so a course
  or an environment under a private (0700) home, ``/root`` or a ``mktemp -d`` folder works;
* its memory and process count limited **as a tree** (a cgroup: children count too);
* an unprivileged user of its own (one uid per notebook), so it can undo none of this.

Without root none of this is possible; the result says so and the coordinator flags the grade
``UNSANDBOXED``. Resource limits per process (address space, file size, CPU) apply either way.
Uses only Linux system calls (ctypes): nothing to install.
"""

from __future__ import annotations

import ctypes
import os
import resource
import site
import sys

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWPID = 0x20000, 0x40000000, 0x08000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 1 << 18
UID_BASE, UID_SPAN = 200_000, 50_000  # one uid per notebook process
SYSTEM_PATHS = ("/usr", "/etc", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt/conda")
DEVICES = ("null", "zero", "full", "random", "urandom")
CGROUP_ROOT = "/sys/fs/cgroup"


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def can_isolate() -> bool:
    """True when namespaces, cgroups and the user switch are available (root on Linux)."""
    return sys.platform.startswith("linux") and os.geteuid() == 0


def set_limits(limits, tree: bool = False) -> None:
    """Per-process limits (apply with or without root). With a tree limit (a cgroup) the
    address space only guards against absurd allocations; memory is limited by the tree."""
    mem = int(limits.memory_mb) * 1024 * 1024 * (4 if tree else 1)
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    fsize = int(limits.max_file_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cpu = int(limits.notebook_timeout) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    nproc = int(limits.max_processes)
    _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard == resource.RLIM_INFINITY or nproc <= hard:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


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


# ----------------------------------------------------------------------------- cgroups


class TreeLimit:
    """Memory and process limits for a whole process tree (a cgroup v1 or v2 group)."""

    def __init__(self, name: str, memory_mb: int, max_processes: int):
        self.dirs: list[str] = []
        self.kind = "none"
        mem = str(int(memory_mb) * 1024 * 1024)
        v2 = os.path.join(CGROUP_ROOT, "cgroup.controllers")
        try:
            if os.path.exists(v2):
                d = os.path.join(CGROUP_ROOT, name)
                os.mkdir(d)
                self.dirs.append(d)
                self._write(d, "memory.max", mem)
                self._write(d, "pids.max", str(max_processes))
                self.kind = "cgroup v2"
            else:
                mdir, pdir = (os.path.join(CGROUP_ROOT, c, name) for c in ("memory", "pids"))
                os.mkdir(mdir)
                self.dirs.append(mdir)
                self._write(mdir, "memory.limit_in_bytes", mem)
                if os.path.exists(os.path.join(mdir, "memory.memsw.limit_in_bytes")):
                    self._write(mdir, "memory.memsw.limit_in_bytes", mem)
                os.mkdir(pdir)
                self.dirs.append(pdir)
                self._write(pdir, "pids.max", str(max_processes))
                self.kind = "cgroup v1"
        except OSError:
            self.remove()
            self.kind = "none"

    @staticmethod
    def _write(d: str, name: str, value: str) -> None:
        with open(os.path.join(d, name), "w") as fh:
            fh.write(value)

    def join(self, pid: int = 0) -> None:
        for d in self.dirs:
            self._write(d, "cgroup.procs", str(pid or os.getpid()))

    def pids(self) -> list[int]:
        found = []
        for d in self.dirs:
            try:
                with open(os.path.join(d, "cgroup.procs")) as fh:
                    found += [int(line) for line in fh if line.strip()]
            except OSError:
                pass
        return found

    def kill_all(self) -> None:
        """Kill every process of the tree (it may have left its session or PID namespace)."""
        import signal
        import time

        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill_all()
        for d in reversed(self.dirs):
            try:
                os.rmdir(d)
            except OSError:
                pass
        self.dirs = []


# ----------------------------------------------------------------------------- the new root


def _bind(libc, src: str, dst: str, *, readonly: bool) -> None:
    if os.path.isdir(src):
        os.makedirs(dst, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
        open(dst, "a").close()
    _check(libc.mount(src.encode(), dst.encode(), None, MS_BIND | MS_REC, None), f"bind {src}")
    if readonly:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
        _check(libc.mount(None, dst.encode(), None, flags, None), f"read-only {src}")


def _tmpfs(libc, path: str, size_mb: int, mode: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)
    opts = f"size={int(size_mb)}m,mode={mode}".encode()
    _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts),
           f"tmpfs on {path}")


def build_root(libc, root: str, workdir: str | None, uid: int, limits,
               protect: list[str]) -> list[str]:
    """Mount the allow-listed file system under ``root``; return the read-only paths in it."""
    _tmpfs(libc, root, 16, "0755")
    # private, size-limited scratch first: allowed paths below /tmp or /home go on top
    _tmpfs(libc, root + "/tmp", limits.tmp_mb, "1777")
    _tmpfs(libc, root + "/home", limits.tmp_mb, "0755")
    os.makedirs(root + "/home/student", mode=0o700)
    os.chown(root + "/home/student", uid, uid)
    exposed = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            _bind(libc, path, root + path, readonly=True)
            exposed.append(path)
    for path in allowed_paths(protect):
        if not any(path == p or path.startswith(p + "/") for p in exposed):
            _bind(libc, path, root + path, readonly=True)
            exposed.append(path)
    os.makedirs(root + "/dev", mode=0o755, exist_ok=True)
    for dev in DEVICES:
        if os.path.exists(f"/dev/{dev}"):
            _bind(libc, f"/dev/{dev}", f"{root}/dev/{dev}", readonly=False)
    _tmpfs(libc, root + "/dev/shm", limits.tmp_mb, "1777")
    os.makedirs(root + "/proc", mode=0o555, exist_ok=True)
    _check(libc.mount(b"proc", (root + "/proc").encode(), b"proc",
                      MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount /proc")
    if workdir is not None:
        _bind(libc, workdir, root + "/job", readonly=False)
    return exposed


def enter_judge(root: str, limits, uid: int, protect: list[str] = ()) -> None:
    """The judge's confinement: its own allow-list root (no job folder: nothing the student
    can write), a uid of its own, no network (already unshared by its parent)."""
    libc = _libc()
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    build_root(libc, root, None, uid, limits, protect)
    os.chroot(root)
    os.chdir("/")
    sys.path[:] = [p for p in sys.path if p and os.path.isabs(p)]  # never the cwd
    set_limits(limits, tree=True)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    os.environ["HOME"] = "/home/student"


def enter(workdir: str, root: str, limits, uid: int, *, enabled: bool = True,
          protect: list[str] = (), cgroups: list[str] = ()) -> dict:
    """Isolate the current process and ``chdir`` into its job folder; describe what held.

    Call in a process that is already PID 1 of a new PID namespace (see
    :mod:`grader.notebook_process`) and already in its cgroup.
    """
    info = {"isolated": False, "network": "host", "user": os.geteuid(), "root": "host",
            "cwd": workdir}
    if enabled:  # decided by the worker (can_isolate)
        libc = _libc()
        for dirpath, dirnames, filenames in os.walk(workdir):
            for name in [*dirnames, *filenames]:
                os.lchown(os.path.join(dirpath, name), uid, uid)
        os.chown(workdir, uid, uid)
        _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
        exposed = build_root(libc, root, workdir, uid, limits, protect)
        os.chroot(root)
        os.chdir("/job")
        set_limits(limits, tree=bool(cgroups))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        home = "/home/student"
        info.update(isolated=True, network="none", user=uid, root="allow-list",
                    exposed=exposed, cwd="/job",
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


def unshare_for_notebook() -> None:
    """New PID, mount, network and IPC namespaces (the next child is PID 1 of the new one)."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC), "unshare")
