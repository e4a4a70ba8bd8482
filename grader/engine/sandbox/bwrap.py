"""Mode ``bwrap``: every sandboxed process is *started by* ``bwrap`` (bubblewrap), with the
allow-list of :mod:`.root_fs` given as its arguments (:func:`arguments`, the one place that
builds them).

Where a user namespace may be created but gets no capabilities (Ubuntu >= 23.10: AppArmor
allows it only to programs with a profile, such as ``/usr/bin/bwrap``), the grader cannot mount
the allow-list root itself; ``bwrap`` can. Its child gets new user, PID, mount, network, IPC,
UTS and cgroup namespaces, the same read-only allow-list root, size-limited ``/tmp``,
``/home``, ``/dev/shm`` and ``/job``, a uid of its own inside, every capability dropped and
(where bwrap supports it) no further user namespace. As root, ``bwrap`` is started as the
notebook's own unprivileged uid, so nothing inside maps to root.

The process that starts ``bwrap`` (the zygote's child: already clean, two descriptors) stays
outside; the sandboxed side runs ``python -I`` with :func:`grader.engine.sandboxed.main`
(:func:`command`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys

from .root_fs import exposed_paths
from .syscalls import DEVICES

JOB_SOURCE = "/dev/.job-in"  # the job's own folder, read-only: copied into /job at start
# ``python -I`` ignores PYTHONPATH: the entry point gets the outside's ``sys.path`` (only what
# the allow-list exposes exists inside), then runs :func:`grader.engine.sandboxed.main`
BOOT = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
        "from grader.engine.sandboxed import main; sys.exit(main(sys.argv[2:]))")
# as root, what the sandboxed side keeps until it has switched to its own uid
# (:func:`grader.engine.sandbox.confine.become`): give its files to it, then drop everything
ROOT_CAPS = ("CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "MPLBACKEND", "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def executable() -> str | None:
    return shutil.which("bwrap") or (
        "/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None)


@functools.lru_cache(maxsize=1)
def disable_userns() -> bool:
    """Whether this bwrap has ``--disable-userns`` (0.8.0 and later)."""
    try:
        out = subprocess.run([executable() or "bwrap", "--help"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--disable-userns" in out.stdout + out.stderr


def _mb(n) -> str:
    return str(int(n) * 1024 * 1024)


def arguments(limits, uid: int, protect: list[str] = (), *, job_fd: int | None = None,
              home: str = "/home/student") -> list[str]:
    """The bwrap options for one sandboxed process: namespaces, identity, the allow-list root
    (same lists as :func:`.root_fs.build_root`), scratch, and ``/job`` when ``job_fd`` (an open
    descriptor of the job's folder) is given; then a clean environment. As root (a user
    namespace of root's would map the sandbox to root): no user namespace, and four
    capabilities kept for the entry point to switch to ``uid``."""
    # --as-pid-1: our entry point is PID 1 (it reaps, and is non-dumpable), not bwrap's
    args = ["--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL"]
    if os.geteuid() == 0:  # no user namespace: the sandboxed side switches to ``uid`` itself
        args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                 "--unshare-cgroup-try"] + [
            a for cap in ROOT_CAPS for a in ("--cap-add", cap)]
    else:
        args += ["--unshare-all", "--unshare-user", "--uid", str(uid), "--gid", str(uid)]
        if disable_userns():
            args.append("--disable-userns")
    # private, size-limited scratch first: allowed paths below /tmp or /home go on top
    args += ["--size", _mb(limits.tmp_mb), "--perms", "1777", "--tmpfs", "/tmp",
             "--size", _mb(limits.tmp_mb), "--perms", "0755", "--tmpfs", "/home",
             "--perms", "0700", "--dir", home]
    links, exposed = exposed_paths(protect)
    for path in links:  # merged /usr: /bin -> usr/bin
        args += ["--symlink", os.readlink(path), path]
    made = {"/", "/tmp", "/home", home}
    for path in exposed:  # the folders on the way: fresh and traversable (bwrap would copy
        parts = path.strip("/").split("/")[:-1]  # the host's modes: /root stays 0700)
        for i in range(1, len(parts) + 1):
            folder = "/" + "/".join(parts[:i])
            if folder not in made:
                args += ["--perms", "0755", "--dir", folder]
                made.add(folder)
        args += ["--ro-bind", path, path]
    args += ["--perms", "0755", "--dir", "/dev"]
    for dev in DEVICES:
        if os.path.exists(f"/dev/{dev}"):
            args += ["--dev-bind", f"/dev/{dev}", f"/dev/{dev}"]
    args += ["--size", _mb(limits.tmp_mb), "--perms", "1777", "--tmpfs", "/dev/shm",
             "--proc", "/proc"]
    if job_fd is not None:
        args += ["--ro-bind-fd", str(job_fd), JOB_SOURCE,
                 "--size", _mb(limits.job_mb), "--perms", "0755", "--tmpfs", "/job"]
    args += ["--chdir", "/job" if job_fd is not None else "/", "--clearenv"]
    env = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
    env.update(HOME=home, MPLCONFIGDIR=home, TMPDIR="/tmp")
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    return args


def command(role: str, config: dict, limits, uid: int, fds: list[int],
            job_fd: int | None = None) -> list[str]:
    """``bwrap ... -- python -I -c BOOT SYS_PATH ROLE CONFIG FD...``."""
    path = [p for p in sys.path if p and os.path.isabs(p)]  # as the other modes' (PYTHONPATH)
    return ([executable() or "bwrap"] + arguments(limits, uid, config["protect"], job_fd=job_fd)
            + ["--", sys.executable, "-I", "-c", BOOT, json.dumps(path), role,
               json.dumps(config)] + [str(fd) for fd in fds])


def spawn(argv: list[str], fds: list[int], stdout=subprocess.DEVNULL) -> subprocess.Popen:
    """Start ``bwrap`` with only ``fds`` (same numbers) and a pipe for its own errors."""
    return subprocess.Popen(argv, pass_fds=fds, close_fds=True, stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=subprocess.PIPE, cwd="/")


def finish(proc: subprocess.Popen, emit_fd: int | None, what: str) -> int:
    """Wait for ``proc``; where bwrap (or Python before our entry point) said anything on its
    error pipe, report it as a machinery failure on ``emit_fd``. Returns the exit code."""
    err = proc.stderr.read(1 << 16) if proc.stderr else b""
    code = proc.wait()
    if err.strip() and emit_fd is not None:
        text = err.decode(errors="replace").strip()[-1500:]
        msg = {"machinery": f"bubblewrap could not start the {what} (exit {code}): {text}"}
        try:
            os.write(emit_fd, (json.dumps(msg) + "\n").encode())
        except OSError:
            pass
    return code


def job_folder(workdir: str) -> int:
    """An ``O_PATH`` descriptor of the job's folder for ``--ro-bind-fd`` (bwrap need not be
    able to walk the path to it)."""
    return os.open(workdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


# ----------------------------------------------------------------------------- the trial

# Run by the probe inside bwrap (``-I``; as root it imports :func:`.confine.become`, what the
# entry point does): proves what the mode promises, and prints what did not hold.
_TRIAL = r"""
import ctypes, os, socket, sys
secret, disabled = sys.argv[1], sys.argv[2] == "1"
bad = []
libc = ctypes.CDLL(None, use_errno=True)
if os.getuid() == 0:  # bwrap started by root: what the entry point does
    import json
    sys.path[:] = json.loads(sys.argv[4])
    from grader.engine.sandbox.confine import become
    become(libc, int(sys.argv[3]))
    disabled = True  # by become's seccomp filter
names = [n for _, n in socket.if_nameindex()]
if names != ["lo"]:
    bad.append(f"network interfaces {names}")
pids = [p for p in os.listdir("/proc") if p.isdigit()]
if os.getpid() > 5 or len(pids) > 4:
    bad.append(f"not its own PID namespace (pid {os.getpid()}, {len(pids)} processes seen)")
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
    if int(status[key].strip(), 16):
        bad.append(f"{key} is {status[key].strip()}")
if status["NoNewPrivs"].strip() != "1":
    bad.append("no_new_privs is not set")
try:
    os.setuid(0)
    bad.append("setuid(0) worked")
except OSError:
    pass
if disabled and libc.unshare(0x10000000) == 0:
    bad.append("a nested user namespace could be created")
if os.getuid() != int(sys.argv[3]):
    bad.append(f"uid {os.getuid()} inside ({open('/proc/self/uid_map').read().split()})")
print("; ".join(bad), flush=True)
os._exit(1 if bad else 0)
"""


def trial(uid: int) -> str | None:
    """Why bwrap cannot isolate here (None: it can): run it with the arguments the mode uses
    (with a job folder) and check, inside, what it must give."""
    import tempfile
    from types import SimpleNamespace

    if executable() is None:
        return "bubblewrap (bwrap) is not installed (apt-get install -y bubblewrap)"
    limits = SimpleNamespace(tmp_mb=8, job_mb=8)
    area = tempfile.mkdtemp(prefix="dlgrade-bwrap-probe-")
    fd = None
    try:
        os.chmod(area, 0o755)
        secret = os.path.join(area, "secret")
        os.mkdir(os.path.join(area, "job"))
        with open(os.path.join(area, "job", "job.txt"), "w") as fh:
            fh.write("x")
        open(secret, "w").close()
        fd = job_folder(os.path.join(area, "job"))
        argv = ([executable()] + arguments(limits, uid, [area], job_fd=fd)
                + ["--", sys.executable, "-I", "-c", _TRIAL, secret,
                   "1" if disable_userns() else "0", str(uid),
                   json.dumps([p for p in sys.path if p and os.path.isabs(p)])])
        proc = spawn(argv, [fd], stdout=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return "the bwrap trial did not finish in 30 s"
    except OSError as exc:
        return f"the bwrap trial could not run: {exc}"
    finally:
        if fd is not None:
            os.close(fd)
        shutil.rmtree(area, ignore_errors=True)
    if proc.returncode == 0:
        return None
    return (out.decode(errors="replace").strip()[-300:] or
            err.decode(errors="replace").strip()[-300:] or
            f"the bwrap trial exited with code {proc.returncode}")
