"""Resource limits: per process (rlimits, in every mode), per process tree (cgroups, as root or
delegated: :mod:`.cgroups`), and the job folder's size."""

from __future__ import annotations

import os
import resource

from .cgroups import apply_limits, group_dirs, placement


def set_limits(limits, tree: bool = False) -> None:
    """Per-process limits (apply with or without root). With a tree limit (a cgroup) the
    address space and the process count only guard against the absurd (4x and 2x): memory and
    processes are limited by the tree."""
    mem = int(limits.memory_mb) * 1024 * 1024 * (4 if tree else 1)
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    fsize = int(limits.max_file_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cpu = int(limits.notebook_timeout) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    nproc = int(limits.max_processes) * (2 if tree else 1)
    _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard == resource.RLIM_INFINITY or nproc <= hard:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


# ----------------------------------------------------------------------------- cgroups


class TreeLimit:
    """Memory and process limits for a whole process tree: a cgroup (v1 or v2) where
    :func:`.cgroups.placement` found one, as root or delegated to this account."""

    def __init__(self, name: str, memory_mb: int, max_processes: int):
        self.dirs: list[str] = []
        self.kind = "none"
        self.error = ""  # why a tree limit that should be there is not
        place, _ = placement()
        if place is None:
            return
        groups = group_dirs(place, name)
        try:
            for d in sorted(set(groups.values())):
                os.mkdir(d)
                self.dirs.append(d)
            apply_limits(place.version, groups, int(memory_mb) * 1024 * 1024,
                         int(max_processes))
            self.kind = place.label()
        except OSError as exc:
            self.remove()
            self.kind = "none"
            self.error = f"{place.label()}: {exc.strerror or exc} ({exc.filename or name})"

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


def job_full(limits) -> bool:
    """Whether the job folder (``/job`` in the sandbox) is full: less than 1 MB or 1 % left."""
    try:
        st = os.statvfs("/job")
    except OSError:
        return False
    free, size = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    return size > 0 and free < max(1 << 20, size // 100)
