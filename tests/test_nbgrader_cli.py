"""nbgrader's own command line works on this course directory unchanged (nbgrader_config.py)."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from grader.course.release import release_notebook, source_notebook
from grader.course.submissions import fill, reference_answers

from .conftest import ASSIGNMENTS, ROOT


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "nbgrader"
    proc = subprocess.run([str(exe), *args], cwd=course, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_generate_autograde_feedback_export_via_nbgrader_cli(tmp_path):
    a = ASSIGNMENTS[0]
    course = tmp_path / "course"
    shutil.copytree(ROOT / "solutions" / a, course / "solutions" / a)
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    nbgrader(course, "generate_assignment", a, "--force")
    produced = course / "notebooks" / a / f"{a}.ipynb"
    from grader.course.release import normalise

    normalise(produced)  # the kernel metadata `grader release` writes for JupyterLab
    assert produced.read_text() == release_notebook(ROOT, a).read_text()  # same release

    answers = reference_answers(nbformat.read(source_notebook(ROOT, a), as_version=4))
    sub = course / "submitted" / "zoe" / a
    sub.mkdir(parents=True)
    nbformat.write(fill(nbformat.read(produced, as_version=4), answers), sub / f"{a}.ipynb")
    nbgrader(course, "autograde", a)
    nbgrader(course, "generate_feedback", a)
    nbgrader(course, "export")
    html = (course / "feedback" / "zoe" / a / f"{a}.html").read_text()
    assert "hidden tests: not shown" in html and "BEGIN HIDDEN TESTS" not in html
    with open(course / "grades.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    points = nbformat.read(source_notebook(ROOT, a), as_version=4)
    autograded_max = sum(
        c.metadata["nbgrader"]["points"] for c in points.cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    )
    assert float(row["raw_score"]) == autograded_max
