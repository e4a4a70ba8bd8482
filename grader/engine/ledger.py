"""The private ledger of past runs, in ``.dlgrader/`` (outside every folder nbgrader copies to
students; student code never sees the course root).

* ``ledger/<student>/<assignment>.json``: what a submission scored, its fingerprint (a re-run
  skips it while the fingerprint and the gradebook still match:
  :func:`grader.engine.gradebook_writer.up_to_date`) and how long it ran (the order of the
  next run: :func:`longest_first`);
* ``forced.json``: the ``--force`` runs not yet finished (an interrupted one goes on forcing).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

LEDGER_DIR = ".dlgrader/ledger"
FORCED = ".dlgrader/forced.json"  # assignment -> when a --force run of it started (epoch)


def ledger_path(grader, student: str, assignment: str) -> Path:
    return grader.course / LEDGER_DIR / student / f"{assignment}.json"


def write_ledger(grader, prep, outcome) -> None:
    """Record ``outcome`` of the submission ``prep`` (atomically)."""
    path = ledger_path(grader, prep.student, prep.assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"fingerprint": prep.fingerprint, "score": outcome.score,
              "max_score": outcome.max_score, "flags": outcome.flags, "cells": outcome.cells,
              "seconds": outcome.worker_seconds,  # how long it ran: the next run's order
              "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "graded_epoch": time.time()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def longest_first(grader, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``pairs`` of (assignment, student) in the order to grade them: the longest first, as
    each took when last graded (the ledger), so that the last jobs, which leave workers idle
    while they finish, are short ones. The assignments stay together, ordered by their mean;
    a submission never graded comes first in its assignment, an assignment never graded first
    of all (either may be long); ties keep the given order."""
    def seconds(assignment: str, student: str) -> float | None:
        value = (read_ledger(grader, student, assignment) or {}).get("seconds")
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        return float(value) if ok else None

    known = {pair: seconds(*pair) for pair in pairs}
    by_assignment: dict[str, list[float]] = {}
    for (assignment, _), value in known.items():
        by_assignment.setdefault(assignment, [])
        if value is not None:
            by_assignment[assignment].append(value)
    mean = {a: sum(v) / len(v) if v else math.inf for a, v in by_assignment.items()}
    first = {a: i for i, a in enumerate(by_assignment)}
    return sorted(pairs, key=lambda pair: (
        -mean[pair[0]], first[pair[0]], -(math.inf if known[pair] is None else known[pair])))


def forced(grader) -> dict[str, float]:
    """The --force runs not yet finished: assignment -> when the run started (epoch)."""
    try:
        marks = json.loads((grader.course / FORCED).read_text())
    except (OSError, ValueError):
        return {}
    return {a: float(t) for a, t in marks.items()} if isinstance(marks, dict) else {}


def write_forced(grader, marks: dict[str, float]) -> None:
    """Record which assignments a --force run must regrade until it finishes (atomically)."""
    path = grader.course / FORCED
    if not marks:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(marks, indent=1))
    os.replace(tmp, path)


def read_ledger(grader, student: str, assignment: str) -> dict | None:
    """The ledger's record of one submission (None: none, or unreadable)."""
    try:
        record = json.loads(ledger_path(grader, student, assignment).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
