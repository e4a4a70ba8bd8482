"""Which cells of a notebook can change a score: nbgrader's metadata, read in one place for the
engine and the instructor's tools (the student kit, which has neither, reads its own in
:mod:`grader.selfcheck`).

A test cell's points, and the message of a failing graded cell, are settled when that cell has
run: no later cell can change them. So the plain code cells after the last autograded test (the
notebooks' closing experiments: no nbgrader metadata, a student may delete them) cannot change
any score, and a run whose only output is scores may skip them: the known-answer canaries
(:mod:`grader.engine.canary`), the gates in ``tests/`` and
:mod:`grader.course.selfcheck_agreement`. A student's own notebook always runs in full.
"""

from __future__ import annotations

import nbformat
from nbformat import NotebookNode


def nbgrader_meta(cell: NotebookNode | dict) -> dict:
    """A cell's nbgrader metadata (``{}`` when it has none, or a student blanked it)."""
    return cell.get("metadata", {}).get("nbgrader") or {}


def is_autograded_test(cell: NotebookNode) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.cell_type == "code"


def without_trailing_experiments(nb: NotebookNode) -> NotebookNode:
    """A copy of ``nb`` without the plain code cells after its last autograded test cell
    (cells with nbgrader metadata, markdown and raw cells are kept wherever they are)."""
    tests = [i for i, c in enumerate(nb.cells) if is_autograded_test(c)]
    out = nbformat.from_dict(nb)  # deep copy
    if tests:
        out.cells = [c for i, c in enumerate(out.cells)
                     if i <= tests[-1] or c.cell_type != "code" or nbgrader_meta(c)]
    return out
