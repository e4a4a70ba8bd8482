"""The student release: in sync with the source, clean, and free of solutions and hidden tests."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.course.release import (
    ASSIGNMENTS,
    notebooks_with_outputs,
    release_differences,
    release_notebook,
    source_notebook,
)
from grader.course.submissions import is_answer_cell

from .conftest import ASSIGNMENTS as AVAILABLE
from .conftest import ROOT

REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)


def test_foundation_assignment_present():
    assert "01_linear_regression" in AVAILABLE


def test_release_is_in_sync_with_source():
    assert release_differences(ROOT) == []


def test_committed_notebooks_have_no_outputs():
    paths = sorted((ROOT / "solutions").glob("*/*.ipynb")) + sorted(
        (ROOT / "notebooks").glob("*/*.ipynb")
    )
    assert paths
    assert notebooks_with_outputs(paths) == []


def test_release_check_command_detects_drift(tmp_path):
    """`python -m grader release --check` exits 0 in sync and 1 after an edit of the release."""
    import shutil

    for sub in ("solutions", "notebooks"):
        shutil.copytree(ROOT / sub, tmp_path / sub)
    cmd = [sys.executable, "-m", "grader", "release", "--root", str(tmp_path), "--check"]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    nb_path = release_notebook(tmp_path, AVAILABLE[0])
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[0].source += "\nedited by hand"
    nbformat.write(nb, nb_path)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1 and "differs" in proc.stderr


def _secret_lines(assignment: str, *, hidden_tests: bool = True) -> set[str]:
    """Non-trivial lines of solution regions, model answers and (optionally) hidden tests.

    Lines that also appear in public parts of the same notebook are not secrets.
    """
    nb = nbformat.read(source_notebook(ROOT, assignment), as_version=4)
    secret, public = set(), set()
    for cell in nb.cells:
        src = cell.source
        regions = [m.group(2) for m in REGION.finditer(src)
                   if hidden_tests or m.group(1) == "SOLUTION"]
        if cell.cell_type == "markdown" and is_answer_cell(cell):
            regions.append(src)  # a written answer: the whole cell is the model answer
        for region in regions:
            secret |= {ln.strip() for ln in region.splitlines()}
            src = src.replace(region, "")
        public |= {ln.strip() for ln in src.splitlines()}
    return {ln for ln in secret - public if len(ln) >= 16}


def _release_lines(assignment: str) -> set[str]:
    nb = nbformat.read(release_notebook(ROOT, assignment), as_version=4)
    return {ln.strip() for cell in nb.cells for ln in cell.source.splitlines()}


@pytest.mark.parametrize("assignment", AVAILABLE)
def test_release_contains_no_solution_or_hidden_test(assignment):
    """No release of this or an earlier assignment contains this assignment's secrets.

    (A later release may ship earlier solutions as locked cells, e.g. 04 builds on 03.) An
    earlier release is searched for this assignment's solutions and model answers only: a
    hidden test may reuse a line of data set-up that an earlier notebook shows openly.
    """
    secrets = _secret_lines(assignment)
    solutions = _secret_lines(assignment, hidden_tests=False)
    assert len(solutions) > 10  # the check has something to look for
    for other in AVAILABLE[: AVAILABLE.index(assignment) + 1]:
        leaked = (secrets if other == assignment else solutions) & _release_lines(other)
        assert not leaked, f"{other} release leaks {assignment}: {sorted(leaked)[:5]}"
    nb = nbformat.read(release_notebook(ROOT, assignment), as_version=4)
    for cell in nb.cells:
        assert "BEGIN SOLUTION" not in cell.source and "HIDDEN TESTS" not in cell.source
        if is_answer_cell(cell):
            stub = "raise NotImplementedError()" if cell.cell_type == "code" else "YOUR ANSWER"
            assert stub in cell.source, f"answer cell not stubbed: {cell.source[:80]}"


def test_grader_package_contains_no_solution_or_hidden_test():
    files = sorted((ROOT / "grader").rglob("*.py"))
    package_lines = {ln.strip() for path in files for ln in path.read_text().splitlines()}
    for assignment in AVAILABLE:
        leaked = _secret_lines(assignment) & package_lines
        assert not leaked, f"grader/ contains {assignment} secrets: {sorted(leaked)[:5]}"


def test_assignment_ids_are_the_designed_ones():
    assert set(AVAILABLE) <= set(ASSIGNMENTS)
    for a in AVAILABLE:
        assert Path(source_notebook(ROOT, a)).is_file()


def test_student_kit_holds_release_and_package_only(tmp_path):
    import zipfile

    from grader.course.student_kit import build_student_kit

    kit = build_student_kit(ROOT, tmp_path / "kit.zip")
    names = [n.removeprefix("student-kit/") for n in zipfile.ZipFile(kit).namelist()]
    assert "pyproject.toml" in names and "grader/checks.py" in names
    for a in AVAILABLE:
        assert f"notebooks/{a}/{a}.ipynb" in names
    assert not [n for n in names if n.startswith("solutions/") or n.endswith(".mutants.toml")]
