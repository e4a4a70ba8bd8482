"""Issue 21 P1: registering an assignment (nbgrader generate_assignment) never rewrites the
committed release: a course root that is a git repository stays clean."""

from __future__ import annotations

import subprocess

import nbformat

from grader.course.authoring import answer, markdown, notebook, save
from grader.course.authoring import tests as grade_cell
from grader.engine.configuration import write_course_config
from grader.engine.coordinator import ClassGrader
from grader.engine.nbgrader_api import make_api, register_assignment

A = "00_tiny"
SOURCE = notebook(
    [
        markdown("# Tiny"),
        answer("double", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n"
                         "    ### END SOLUTION"),
        grade_cell("test_double", 2, "assert double(2) == 4"),
    ]
)


def git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout


def make_course(root):
    write_course_config(root)
    save(SOURCE, root / "solutions" / A / f"{A}.ipynb")
    make_api(root).generate_assignment(A, force=True, create=True)
    rel = root / "notebooks" / A / f"{A}.ipynb"
    nb = nbformat.read(rel, as_version=4)
    # as the committed release carries it (what nbgrader's converter rewrites)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.12.0",
                                    "mimetype": "text/x-python"}
    nbformat.write(nb, rel)
    (root / "notebooks" / A / "extra.txt").write_text("kept\n")
    (root / "gradebook.db").unlink()
    git(root, "init", "-q")
    git(root, "add", "solutions", "notebooks")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "course")
    return rel


def test_register_assignment_leaves_the_release_byte_identical(tmp_path):
    rel = make_course(tmp_path)
    before = rel.read_bytes()
    register_assignment(make_api(tmp_path), A)
    assert rel.read_bytes() == before
    assert git(tmp_path, "status", "--porcelain", "--", "notebooks", "solutions") == ""


def test_class_grader_leaves_the_release_byte_identical(tmp_path):
    rel = make_course(tmp_path)
    before = rel.read_bytes()
    ClassGrader(tmp_path, workers=1, progress=False).ensure_assignment(A)
    assert rel.read_bytes() == before
    assert git(tmp_path, "status", "--porcelain", "--", "notebooks", "solutions") == ""


def test_grade_at_a_cloned_course_root_leaves_git_clean(tmp_path):
    """`python -m grader grade` (canaries, autograde, feedback, reports) at a clone of this repo."""
    import shutil
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path / "course"
    subprocess.run(["git", "clone", "-q", str(repo), str(root)], check=True)
    a = "01_linear_regression"
    sub = root / "submitted" / "alice" / a
    sub.mkdir(parents=True)
    shutil.copy(root / "notebooks" / a / f"{a}.ipynb", sub)
    run = subprocess.run([sys.executable, "-m", "grader", "grade", a, "--no-sandbox"], cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert "graded 1" in run.stdout + run.stderr, run.stdout + run.stderr
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""


def test_unknown_assignment_names_the_known_ones(tmp_path):
    import sys

    make_course(tmp_path)
    run = subprocess.run([sys.executable, "-m", "grader", "grade", "nope"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == f"no assignment named nope; known: {A}"


def test_outside_a_course_says_so_and_names_course_option(tmp_path):
    import sys

    run = subprocess.run([sys.executable, "-m", "grader", "grade"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert "is not a course" in last and "--course" in last


def test_dlcheck_on_missing_or_corrupt_file_prints_one_line_and_exits_2(tmp_path):
    import sys

    (tmp_path / "bad.ipynb").write_text("{bad")
    for name in ("missing.ipynb", "bad.ipynb"):
        run = subprocess.run([sys.executable, "-c", "import sys; from grader.selfcheck import main;"
                              f" sys.exit(main(['{name}']))"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 2, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
