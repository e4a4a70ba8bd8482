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
signal nor ptrace it or the grader. Where a cgroup is delegated to the account (systemd's
``Delegate=yes``, an administrator's ``chown``), memory and processes are limited per tree as
root does, in groups under it (:mod:`.cgroups`, decided by a trial); without one, or where any
step of that fails, they are limited per process (rlimits; ``RLIMIT_NPROC`` counts the
notebook's own user namespace). The run's summary says which (:func:`describe`).

Where a user namespace may be created but gets no capabilities (Ubuntu >= 23.10: AppArmor
allows them in full only to ``/usr/bin/bwrap``), each sandboxed process is *started by*
bubblewrap (mode ``bwrap``, :mod:`.bwrap`, :mod:`grader.engine.sandboxed`): the same
allow-list root given as bwrap's arguments, new user, PID, mount, network and IPC namespaces,
every capability dropped and no further user namespace; the judge in a bwrap of its own.

Which mode works is decided by a **probe** (:func:`probe`), a child process that tries what
the mode needs, never by ``geteuid()``, in the order root, ``userns``, ``bwrap``; the
environment variable ``DLGRADE_SANDBOX=root|userns|bwrap`` forces one (a forced mode that
fails its probe refuses, never falls back); where nothing works, grading refuses
(:func:`refusal`) unless the instructor passes ``--unsandboxed``. Resource limits per process
(address space, file size, CPU) apply in every mode; the job folder is a size-limited tmpfs.
Uses only Linux system calls (ctypes): nothing to install.
"""

from __future__ import annotations

from .confine import enter, enter_judge, unshare_for_notebook
from .limits import TreeLimit, job_full, set_limits
from .modes import FORCE_ENV, Refused, can_isolate, describe, mode, probe, refusal
from .root_fs import allowed_paths, python_paths
from .syscalls import (
    BWRAP,
    NONE,
    ROOT,
    UID_BASE,
    UID_SPAN,
    USERNS,
    drop_capabilities,
    drop_privileges,
)

__all__ = [
    "BWRAP", "FORCE_ENV", "NONE", "ROOT", "UID_BASE", "UID_SPAN", "USERNS", "Refused",
    "TreeLimit", "allowed_paths",
    "can_isolate", "describe", "drop_capabilities", "drop_privileges", "enter", "enter_judge",
    "job_full", "mode", "probe", "python_paths", "refusal", "set_limits", "unshare_for_notebook",
]
