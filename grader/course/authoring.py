"""Cells with the right nbgrader metadata, for writing source notebooks from Python.

Equivalent to nbgrader's "Create Assignment" toolbar in JupyterLab::

    nb = notebook([
        markdown("# Title"),
        answer("predict", "def predict(X, w, b):\\n    ### BEGIN SOLUTION\\n ..."),
        tests("test_predict", 2, "assert ..."),
    ])
    save(nb, "solutions/01_x/01_x.ipynb")
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

SCHEMA = 3


def _meta(grade_id: str, *, grade: bool, solution: bool, locked: bool, points=None) -> dict:
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": SCHEMA,
        "solution": solution,
        "task": False,
    }
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def markdown(text: str) -> NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(source: str) -> NotebookNode:
    """An ordinary code cell the student may run and edit."""
    return new_code_cell(source.strip("\n"))


def locked(grade_id: str, source: str) -> NotebookNode:
    """Read-only code (restored from the source when grading)."""
    return new_code_cell(
        source.strip("\n"), metadata=_meta(grade_id, grade=False, solution=False, locked=True)
    )


def answer(grade_id: str, source: str) -> NotebookNode:
    """A code cell the student completes; the ``### BEGIN/END SOLUTION`` region becomes a stub."""
    return new_code_cell(
        source.strip("\n"), metadata=_meta(grade_id, grade=False, solution=True, locked=False)
    )


HIDDEN_NOTE = "# More tests of this cell are hidden; they run when your notebook is graded."


def tests(grade_id: str, points: float, source: str) -> NotebookNode:
    """An autograded test cell worth ``points``; may hold a hidden-tests region.

    A comment announcing the hidden tests is inserted above the region, so the student sees it.
    """
    source = source.strip("\n")
    if "### BEGIN HIDDEN TESTS" in source and HIDDEN_NOTE not in source:
        marker = "### BEGIN HIDDEN TESTS"
        source = source.replace(marker, HIDDEN_NOTE + "\n" + marker, 1)
    return new_code_cell(
        source,
        metadata=_meta(grade_id, grade=True, solution=False, locked=True, points=points),
    )


def written_answer(grade_id: str, points: float, model_answer: str) -> NotebookNode:
    """A manually graded markdown answer; the model answer is replaced by "YOUR ANSWER HERE"."""
    return new_markdown_cell(
        model_answer.strip("\n"),
        metadata=_meta(grade_id, grade=True, solution=True, locked=False, points=points),
    )


def notebook(cells: list[NotebookNode]) -> NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"c{i:03d}"
    return nb


def save(nb: NotebookNode, path: str | Path) -> None:
    """Validate and write as nbformat (and nbgrader) write notebooks."""
    nbformat.validate(nb)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
