"""Issue 21 P1: registering an assignment (nbgrader generate_assignment) never rewrites the
committed release: a course root that is a git repository stays clean."""

from __future__ import annotations

import subprocess

import nbformat

from grader.authoring import answer, markdown, notebook, save
from grader.authoring import tests as grade_cell
from grader.autograde import make_api, register_assignment
from grader.classgrade import ClassGrader
from grader.settings import write_course_config

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
