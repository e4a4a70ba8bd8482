"""What a grading environment is: everything a canary's verdict depends on besides the notebook.

A known-answer canary (:mod:`grader.engine.canary`) vouches for the *environment* it ran in: the
host and its kernel, the Python interpreter and every installed package, the grader's own code
and the isolation the sandbox gives here. :func:`describe` names them and :func:`key` hashes
them; a worker computes its own (its *probe*) and reports it with every result, so the
coordinator records nothing from a worker whose environment no passed canary vouches for.

Computed once per process, at first use: what is hashed is what the process runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys

VERSION = 1  # bump when what is hashed here changes meaning


def _digest(chunks) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(hashlib.sha256(chunk).digest())
    return h.hexdigest()


def search_path() -> list[str]:
    """``sys.path`` as folders, each once (how a process was started may repeat some)."""
    seen: list[str] = []
    for entry in sys.path:
        path = os.path.realpath(entry or os.getcwd())
        if os.path.isdir(path) and path not in seen:
            seen.append(path)
    return seen


@functools.cache
def packages() -> str:
    """Every distribution an import would find (the first of each name on the search path):
    name, version and its file list with their hashes (RECORD), so a package reinstalled with
    other content changes it too. Not the path itself: a Dask worker puts a scratch folder of
    its own there, and the host's workers share one environment."""
    from importlib import metadata

    rows: dict[str, bytes] = {}
    for dist in metadata.distributions(path=search_path()):
        name = (dist.metadata.get("Name") or "").lower().replace("_", "-")
        if name in rows:
            continue
        try:
            record = dist.read_text("RECORD") or ""
        except OSError:
            record = ""
        rows[name] = f"{name}\0{dist.version}\0{record}".encode()
    return _digest([rows[k] for k in sorted(rows)])


@functools.cache
def grader_code() -> str:
    """Every file of the ``grader`` package (its path and content)."""
    import grader

    top = os.path.realpath(grader.__path__[0])
    chunks = []
    for folder, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                chunks += [os.path.relpath(path, top).encode(), fh.read()]
    return _digest(chunks)


@functools.cache
def describe() -> dict[str, str]:
    """This process's environment, part by part (see the module's docstring)."""
    from grader.engine import sandbox

    uname = os.uname()
    return {
        "version": str(VERSION),
        "host": uname.nodename,
        "kernel": f"{uname.sysname} {uname.release} {uname.machine}",
        "python": f"{os.path.realpath(sys.executable)} {sys.version}",
        "packages": packages(),
        "grader": grader_code(),
        "sandbox": sandbox.describe(),
    }


def key(parts: dict[str, str] | None = None) -> str:
    """The hash of :func:`describe` (or of ``parts``)."""
    parts = describe() if parts is None else parts
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def differs(mine: dict[str, str], theirs: dict[str, str]) -> str:
    """Which parts of two environments differ, for a message (empty when none)."""
    return ", ".join(sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)))
