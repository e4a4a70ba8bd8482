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

Without root, where the kernel lets an ordinary user create **user namespaces** (most
distributions), the same holds (mode ``userns``): the notebook's side and the judge each get a
user namespace of their own (one uid inside, mapped to the grading account's), new PID, mount,
network and IPC namespaces, the same allow-list root, then every capability dropped
(bounding set, ``capset`` to nothing, ``no_new_privs``): they can no longer mount, ``chroot``,
reach the network or create namespaces (a chrooted process may not). The judge is
non-dumpable and lives outside the notebook's PID namespace, so student code can neither see,
signal nor ptrace it or the grader. Without a cgroup (no root, no delegation) memory and
processes are limited per process (rlimits; ``RLIMIT_NPROC`` counts the notebook's own user
namespace), and the run says so.

Which mode works is decided by a **probe** (:func:`probe`), a child process that tries what
the mode needs, never by ``geteuid()``; where nothing works, grading refuses
(:func:`refusal`) unless the instructor passes ``--unsandboxed``. Resource limits per process
(address space, file size, CPU) apply in every mode; the job folder is a size-limited tmpfs.
Uses only Linux system calls (ctypes): nothing to install.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import site
import subprocess
import sys

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
ROOT, USERNS, NONE = "root", "userns", "none"  # isolation modes (see probe)
DESCRIBE = {
    ROOT: "sandboxed as root: namespaces, allow-list root, a uid per notebook",
    USERNS: "sandboxed without root (user namespaces): namespaces, allow-list root, "
            "capabilities dropped",
    NONE: "UNSANDBOXED",
}


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


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
    PID namespace): root inside a restricted user namespace, or a container whose seccomp
    profile refuses namespaces, fails the probe however ``geteuid()`` reads. Cached.
    """
    global _probed
    if _probed is not None and not refresh:
        return _probed
    why: dict[str, str] = {}
    mode = NONE
    if not sys.platform.startswith("linux"):
        why["linux"] = f"namespaces need Linux (this is {sys.platform})"
    else:
        for candidate in ((ROOT,) if os.geteuid() == 0 else ()) + (USERNS,):
            reason = _try(candidate)
            if reason is None:
                mode = candidate
                break
            why[candidate] = reason
        if mode == NONE:
            bwrap = shutil.which("bwrap")
            why["bwrap"] = (f"bubblewrap ({bwrap}) is installed, but this grader cannot run "
                            "notebooks through it yet" if bwrap else "bubblewrap (bwrap) is "
                            "not installed")
    _probed = (mode, why)
    return _probed


def mode() -> str:
    """``root``, ``userns`` or ``none`` (see :func:`probe`)."""
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
    tree = m == ROOT and (os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) or
                          os.path.isdir(os.path.join(CGROUP_ROOT, "memory")))
    how = ("memory and processes limited per process tree (cgroup)" if tree else
           "memory and processes limited per process (rlimits: no cgroup for this account)")
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
        "  - grade as root in a VM or a container started with namespaces allowed (e.g. "
        "`docker run --cap-add SYS_ADMIN --security-opt seccomp=unconfined "
        "--security-opt apparmor=unconfined ...`), or\n"
        "  - accept the risk explicitly: `grader grade --unsandboxed` (every grade is flagged "
        "UNSANDBOXED).")


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
        # in a user namespace a remount may not clear the source's flags: keep them
        f = os.statvfs(src).f_flag
        flags |= (f & MS_NOEXEC) | (f & MS_NOATIME) | (f & MS_NODIRATIME) | (
            MS_RELATIME if f & 4096 else 0)
        _check(libc.mount(None, dst.encode(), None, flags, None), f"read-only {src}")


def _tmpfs(libc, path: str, size_mb: int, mode: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)
    opts = f"size={int(size_mb)}m,mode={mode}".encode()
    _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts),
           f"tmpfs on {path}")


def _copy_in(src: str, dst: str, uid: int) -> None:
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
    if proc:  # (a process outside the PID namespace of a user namespace may not mount it)
        os.makedirs(root + "/proc", mode=0o555, exist_ok=True)
        _check(libc.mount(b"proc", (root + "/proc").encode(), b"proc",
                          MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount /proc")
    if workdir is not None:
        _tmpfs(libc, root + "/job", limits.job_mb, "0755")
        os.chown(root + "/job", uid, uid)
        _copy_in(workdir, root + "/job", uid)
    return exposed


def drop_capabilities(libc=None) -> None:
    """Give up every capability for good (bounding set, capset, no_new_privs): no mount, no
    chroot, no namespace, no uid change after this, in this process and what it starts."""
    libc = libc or _libc()
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    _check(libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()), "capset")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def unshare_user(inner: int, flags: int) -> None:
    """A user namespace of this process's own (plus ``flags``), mapping only ``inner`` (uid
    and gid inside) to this account: full capabilities inside, none outside."""
    libc = _libc()
    uid, gid = os.geteuid(), os.getegid()
    _check(libc.unshare(CLONE_NEWUSER | flags), "unshare(user namespace)")
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


def enter_judge(root: str, limits, uid: int, protect: list[str] = (),
                mode: str = ROOT) -> None:
    """The judge's confinement: its own allow-list root (no job folder: nothing the student
    can write), a uid of its own, no network (root: already unshared by its parent; userns:
    a user namespace of its own, capabilities dropped, non-dumpable)."""
    libc = _libc()
    if mode == USERNS:
        unshare_user(uid, CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID)
        _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "non-dumpable")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    build_root(libc, root, None, uid, limits, protect, proc=mode != USERNS)
    os.chroot(root)
    os.chdir("/")
    sys.path[:] = [p for p in sys.path if p and os.path.isabs(p)]  # never the cwd
    set_limits(limits, tree=mode == ROOT)
    drop_privileges(libc, uid, mode)
    os.environ["HOME"] = "/home/student"


def enter(workdir: str, root: str, limits, uid: int, *, enabled: bool = True,
          protect: list[str] = (), cgroups: list[str] = (), mode: str = ROOT) -> dict:
    """Isolate the current process and ``chdir`` into its job folder; describe what held.

    Call in a process that is already PID 1 of a new PID namespace, or its child (see
    :mod:`grader.engine.notebook_process`), already in its cgroup (root) or its user namespace.
    """
    info = {"isolated": False, "network": "host", "user": os.geteuid(), "root": "host",
            "cwd": workdir, "mode": NONE}
    if enabled:  # decided by the worker (probe)
        libc = _libc()
        _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
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


def job_full(limits) -> bool:
    """Whether the job folder (``/job`` in the sandbox) is full: less than 1 MB or 1 % left."""
    try:
        st = os.statvfs("/job")
    except OSError:
        return False
    free, size = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    return size > 0 and free < max(1 << 20, size // 100)


def unshare_for_notebook(mode: str = ROOT, uid: int = 0) -> None:
    """New PID, mount, network and IPC namespaces (the next child is PID 1 of the new one);
    with ``mode="userns"`` in a user namespace of their own where ``uid`` is the only user."""
    flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC
    if mode == USERNS:
        unshare_user(uid, flags)
        return
    libc = _libc()
    _check(libc.unshare(flags), "unshare")
