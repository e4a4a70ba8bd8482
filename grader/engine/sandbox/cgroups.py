"""Where a notebook's process tree can get a cgroup of its own: decided once per process, by trying.

* **Root:** the top of the cgroup v2 hierarchy (``/sys/fs/cgroup``) or of the v1 ``memory`` and
  ``pids`` hierarchies.
* **An ordinary account:** the group this process is in, where it was *delegated* to the account
  (systemd's ``Delegate=yes``, or an administrator's ``chown``): v2 (``0::/path`` under the
  cgroup2 mount) when that group has the ``memory`` and ``pids`` controllers, else v1 (the
  ``memory`` and ``pids`` lines of ``/proc/self/cgroup``). cgroup v2 lets a group hand
  controllers to its children only when it holds no process itself, so this process (and what
  shares its group) first moves into a leaf, :data:`LEAF`, which stays for the group's life;
  the controllers are then enabled in the group's ``cgroup.subtree_control``.

Either way, :func:`placement` only answers after a **trial**: a child group made, its limits
written and read back, a process moved in and found there, the group removed. Nothing is
written outside the group found. Where any step fails the answer is ``None`` with the reason,
and memory and processes are limited per process (rlimits) instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from .syscalls import CGROUP_ROOT

LEAF = "dlgrader-leaf"  # cgroup v2: the grader's own processes, so the group may have children
CONTROLLERS = ("memory", "pids")
_cached: tuple[Placement | None, str] | None = None


@dataclass(frozen=True)
class Placement:
    """Where the groups go: ``bases`` maps each controller to the folder its groups are made in
    (one folder for both with v2)."""

    version: int
    bases: dict[str, str]
    delegated: bool

    def where(self) -> str:
        return " and ".join(sorted(set(self.bases.values())))

    def label(self) -> str:
        """What the run's summary says: ``cgroup v2`` (root), ``delegated cgroup v1 at ...``."""
        if not self.delegated:
            return f"cgroup v{self.version}"
        return f"delegated cgroup v{self.version} at {self.where()}"


def placement(refresh: bool = False) -> tuple[Placement | None, str]:
    """``(where tree limits go, "")``, or ``(None, why there are none)``. Cached."""
    global _cached
    if _cached is None or refresh:
        try:
            _cached = _find()
        except (OSError, ValueError) as exc:
            _cached = (None, f"{type(exc).__name__}: {exc}")
    return _cached


def _find() -> tuple[Placement | None, str]:
    if os.geteuid() == 0:
        if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
            candidates = [Placement(2, dict.fromkeys(CONTROLLERS, CGROUP_ROOT), False)]
        else:
            candidates = [Placement(1, {c: os.path.join(CGROUP_ROOT, c) for c in CONTROLLERS},
                                    False)]
    else:
        candidates = []
    why: list[str] = []
    if not candidates:
        found, reasons = _delegated()
        candidates, why = [found] if found else [], reasons
    for place in candidates:
        reason = trial(place)
        if reason is None:
            return place, ""
        why.append(f"cgroup v{place.version} at {place.where()}: {reason}")
    return None, "; ".join(why) or "no cgroup hierarchy found"


# ----------------------------------------------------------------------------- delegation


def own_groups(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as ``{controller: path}``; the v2 group under the key ``""``."""
    groups: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for name in parts[1].split(",") if parts[1] else [""]:
                groups[name] = parts[2]
    return groups


def mounts(text: str) -> dict[str, tuple[str, str]]:
    """``/proc/self/mountinfo``'s cgroup mounts as ``{controller or "": (mount root, point)}``."""
    found: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        head, _, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        root, point = fields[3], fields[4].replace("\\040", " ")
        if rest[0] == "cgroup2":
            found.setdefault("", (root, point))
        elif rest[0] == "cgroup":
            for opt in rest[2].split(","):
                if opt in CONTROLLERS:
                    found.setdefault(opt, (root, point))
    return found


def _folder(mount: tuple[str, str], path: str) -> str | None:
    root, point = mount
    if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
        return None  # this group is not visible through that mount
    rel = path[len(root):] if root != "/" else path
    return os.path.normpath(point + "/" + rel.lstrip("/"))


def _delegated() -> tuple[Placement | None, list[str]]:
    """The group delegated to this account, if one is: v2 first, then v1."""
    with open("/proc/self/cgroup") as fh:
        groups = own_groups(fh.read())
    with open("/proc/self/mountinfo") as fh:
        where = mounts(fh.read())
    why = []
    if "" in groups and "" in where:
        base = _folder(where[""], groups[""])
        try:
            reason = "not visible through the cgroup2 mount" if base is None else \
                _prepare_v2(base)
        except OSError as exc:
            reason = f"{exc.strerror or exc} ({exc.filename or 'a cgroup file'})"
        if reason is None:
            return Placement(2, dict.fromkeys(CONTROLLERS, _base_v2(base)), True), why
        why.append(f"cgroup v2 {base or groups['']}: {reason}")
    bases = {c: _folder(where[c], groups[c]) for c in CONTROLLERS if c in groups and c in where}
    if len(bases) == len(CONTROLLERS) and None not in bases.values():
        return Placement(1, bases, True), why
    why.append("cgroup v1: no memory and pids hierarchy with this process's groups")
    return None, why


def _base_v2(own: str) -> str:
    return os.path.dirname(own) if os.path.basename(own) == LEAF else own


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def write(d: str, name: str, value: str) -> None:
    with open(os.path.join(d, name), "w") as fh:
        fh.write(value)


def join(dirs) -> None:
    """Move this process into each of ``dirs`` (its job's groups); its children follow."""
    for d in dirs:
        write(d, "cgroup.procs", str(os.getpid()))


def _systemd_delegated(d: str) -> bool:
    try:
        return os.getxattr(d, "user.delegate") == b"1"
    except OSError:
        return False


def _prepare_v2(own: str) -> str | None:
    """Make the v2 group ``own`` (or the group above this process's leaf) able to hold the
    notebooks' groups; return why not. Writes only inside it."""
    base = _base_v2(own)
    if base.endswith((".scope", ".service", ".slice")) and not _systemd_delegated(base):
        return "a systemd unit not delegated to this account (Delegate=yes)"
    have = _read(os.path.join(base, "cgroup.controllers")).split()
    missing = [c for c in CONTROLLERS if c not in have]
    if missing:
        return f"{' and '.join(missing)} not among its controllers"
    enabled = _read(os.path.join(base, "cgroup.subtree_control")).split()
    todo = [c for c in CONTROLLERS if c not in enabled]
    if not todo:
        return None
    if not os.access(os.path.join(base, "cgroup.subtree_control"), os.W_OK) or \
            not os.access(os.path.join(base, "cgroup.procs"), os.W_OK):
        return "its cgroup.procs and cgroup.subtree_control are not writable by this account"
    leaf = os.path.join(base, LEAF)
    os.makedirs(leaf, exist_ok=True)
    for _ in range(3):  # processes may start meanwhile: move what is there, then check again
        pids = _read(os.path.join(base, "cgroup.procs")).split()
        if not pids:
            break
        for pid in pids:
            try:
                write(leaf, "cgroup.procs", pid)
            except ProcessLookupError:
                pass
    write(base, "cgroup.subtree_control", " ".join(f"+{c}" for c in todo))
    return None


# ----------------------------------------------------------------------------- the trial


def trial(place: Placement) -> str | None:
    """Make a group, limit it, move a process in, read it back, remove it; why not, or None."""
    name = f"dlgrader-trial-{os.getpid()}"
    groups = group_dirs(place, name)
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd="/")
    made: list[str] = []
    try:
        for d in sorted(set(groups.values())):
            os.mkdir(d)
            made.append(d)
        limits = apply_limits(place.version, groups, 64 << 20, 16)
        for d in made:
            write(d, "cgroup.procs", str(proc.pid))
        for d in made:
            if str(proc.pid) not in _read(os.path.join(d, "cgroup.procs")).split():
                return f"a process moved into {d} is not there"
        for path, value in limits:
            if _read(path).strip() != value:
                return f"{path} reads {_read(path).strip()!r}, not {value!r}"
        return None
    except OSError as exc:  # the same words in every process (the environment's key)
        return f"{exc.strerror or exc} ({exc.filename or 'a cgroup file'})".replace(
            name, "dlgrader-trial")
    finally:
        proc.kill()
        proc.stdin.close()
        proc.wait()
        for d in reversed(made):
            try:
                os.rmdir(d)
            except OSError:
                pass


def group_dirs(place: Placement, name: str) -> dict[str, str]:
    """The folders of group ``name``, per controller (the same one for both with v2)."""
    return {c: os.path.join(base, name) for c, base in place.bases.items()}


def apply_limits(version: int, groups: dict[str, str], memory: int, processes: int) -> list:
    """Write the memory and process limits into fresh groups; return ``[(file, value)]``."""
    mdir, pdir = groups["memory"], groups["pids"]
    if version == 2:
        todo = [(mdir, "memory.max", str(memory))]
        if os.path.exists(os.path.join(mdir, "memory.swap.max")):
            todo.append((mdir, "memory.swap.max", "0"))
    else:
        todo = [(mdir, "memory.limit_in_bytes", str(memory))]
        if os.path.exists(os.path.join(mdir, "memory.memsw.limit_in_bytes")):
            todo.append((mdir, "memory.memsw.limit_in_bytes", str(memory)))
    todo.append((pdir, "pids.max", str(processes)))
    for d, name, value in todo:
        write(d, name, value)
    return [(os.path.join(d, name), value) for d, name, value in todo]
