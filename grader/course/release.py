"""Student release: ``notebooks/`` generated from ``solutions/`` by nbgrader.

``python -m grader release`` regenerates the release; ``python -m grader release --check``
regenerates it into a temporary directory and fails when the committed one differs, or when
a committed notebook carries outputs.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from pathlib import Path

import nbformat

from grader.engine.configuration import RELEASE_DIR, SOURCE_DIR, make_config

#: The course's assignments, in course order.
ASSIGNMENTS = (
    "01_linear_regression",
    "02_softmax_regression",
    "03_mlp_backprop",
    "04_dropout",
)


def repo_root() -> Path:
    """The course root this package lives in (the repository checkout)."""
    return Path(__file__).resolve().parents[2]


def available_assignments(root: str | Path) -> list[str]:
    """The course's assignments that have a source notebook, in course order."""
    src = Path(root) / SOURCE_DIR
    return [a for a in ASSIGNMENTS if (src / a / f"{a}.ipynb").is_file()]


def source_notebook(root: str | Path, assignment: str) -> Path:
    return Path(root) / SOURCE_DIR / assignment / f"{assignment}.ipynb"


def release_notebook(root: str | Path, assignment: str) -> Path:
    return Path(root) / RELEASE_DIR / assignment / f"{assignment}.ipynb"


def generate_release(
    root: str | Path, assignments: list[str] | None = None, dest: str | Path | None = None
) -> Path:
    """Run nbgrader's GenerateAssignment for each assignment; return the release directory.

    ``dest`` (default ``<root>/notebooks``) receives ``<assignment>/<assignment>.ipynb``.
    No gradebook is touched.
    """
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    root = Path(root).resolve()
    assignments = assignments or available_assignments(root)
    dest = Path(dest).resolve() if dest else root / RELEASE_DIR
    config = make_config(root)
    config.CourseDirectory.release_directory = str(dest)
    config.GenerateAssignment.no_database = True
    config.SaveCells.enabled = False
    config.Application.log_level = "WARN"
    for assignment in assignments:
        if not source_notebook(root, assignment).is_file():
            raise FileNotFoundError(f"no source notebook {source_notebook(root, assignment)}")
        config.CourseDirectory.assignment_id = assignment
        converter = GenerateAssignment(coursedir=CourseDirectory(config=config), config=config)
        converter.force = True
        converter.start()
        normalise(dest / assignment / f"{assignment}.ipynb")
    return dest


def normalise(path: Path) -> None:
    """Rewrite ``path`` as nbformat (and so nbgrader's own CLI) writes it: stable diffs.

    The kernel metadata is written as JupyterLab's Python kernel reports it, so opening a
    notebook does not mark it modified (a different Python version still does).
    """
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {
        "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
        "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3", "version": platform.python_version()}
    nbformat.write(nb, path)


def _comparable(path: Path) -> dict:
    """A release notebook without what depends on the Python that generated it."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb.get("metadata", {}).get("language_info", {}).pop("version", None)
    return nb


def notebooks_with_outputs(paths: list[Path]) -> list[str]:
    """Names ``file: cell i`` of committed cells that carry outputs or execution counts."""
    bad = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
                bad.append(f"{path}: cell {i}")
    return bad


def release_differences(root: str | Path) -> list[str]:
    """What differs between the committed release and one freshly generated from the source."""
    root = Path(root).resolve()
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate_release(root, dest=Path(tmp) / "release")
        for assignment in available_assignments(root):
            committed = release_notebook(root, assignment)
            regenerated = fresh / assignment / f"{assignment}.ipynb"
            if not committed.is_file():
                problems.append(f"{committed} is missing")
            elif _comparable(committed) != _comparable(regenerated):
                problems.append(f"{committed} differs from what {SOURCE_DIR}/ generates")
        stale = sorted(
            p.parent.name
            for p in (root / RELEASE_DIR).glob("*/*.ipynb")
            if p.parent.name not in available_assignments(root)
        )
        problems += [f"{RELEASE_DIR}/{a} has no source in {SOURCE_DIR}/" for a in stale]
    return problems


def sync_release(root: str | Path) -> Path:
    """Regenerate the committed release from scratch (removes stale files)."""
    root = Path(root).resolve()
    for assignment in available_assignments(root):
        shutil.rmtree(root / RELEASE_DIR / assignment, ignore_errors=True)
    return generate_release(root)
