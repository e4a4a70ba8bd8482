"""The README's main job: the demo class graded end to end through nbgrader."""

import csv

import pytest

from grader.course.demo import STUDENTS, build_class, run
from grader.engine.nbgrader_api import autograde, make_api

from .conftest import ASSIGNMENTS, ROOT


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "class"
    results = run(ROOT, out, progress=False)
    return out, {(r.student, r.assignment): r for r in results}


def test_every_submission_graded(demo):
    _, results = demo
    assert set(results) == {(s, a) for s in STUDENTS for a in ASSIGNMENTS}
    assert all(r.success for r in results.values()), [r.error for r in results.values()]


def test_grades_follow_the_students(demo):
    _, results = demo
    for a in ASSIGNMENTS:
        full = results["ada", a].auto_max
        assert results["ada", a].auto_score == full > 0
        assert results["ben", a].auto_score == 0
        assert 0 < results["cleo", a].auto_score < full
        assert 0 < results["dev", a].auto_score < full
        # warnings and stderr from correct code must not cost a point
        assert results["eve", a].auto_score == full


def test_grades_csv_and_feedback_written(demo):
    out, results = demo
    with open(out / "class_grades.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["assignment"] != "TOTAL"]
    assert {(r["student_id"], r["assignment"]) for r in rows} == set(results)
    by_key = {(r["student_id"], r["assignment"]): float(r["raw_score"]) for r in rows}
    for key, res in results.items():
        assert by_key[key] == res.score
    hidden = {a: _hidden_lines(a) for _, a in results}
    for student, assignment in results:
        html = out / "feedback" / student / assignment / f"{assignment}.html"
        text = html.read_text()
        assert "hidden tests: not shown" in text
        assert "BEGIN HIDDEN TESTS" not in text
        leaked = [line for line in hidden[assignment] if line in text]
        assert not leaked, leaked[:3]


def _hidden_lines(assignment: str) -> set[str]:
    """Distinctive lines of the hidden tests (as the HTML escapes them) of ``assignment``."""
    import html

    import nbformat

    from grader.course.release import source_notebook

    nb = nbformat.read(source_notebook(ROOT, assignment), as_version=4)
    lines = set()
    for cell in nb.cells:
        src = cell.source
        while "### BEGIN HIDDEN TESTS" in src:
            start = src.index("### BEGIN HIDDEN TESTS")
            end = src.find("### END HIDDEN TESTS", start)
            block, src = src[start:end], src[end + 1:]
            lines |= {html.escape(ln.strip(), quote=True) for ln in block.splitlines()
                      if len(ln.strip()) > 30}
    visible = "\n".join(c.source.split("### BEGIN HIDDEN TESTS")[0] for c in nb.cells)
    return {ln for ln in lines if html.unescape(ln) not in visible}


def test_demo_refuses_to_delete_a_foreign_directory(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build_class(ROOT, tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_without_the_kit_settings_nbgrader_would_zero_the_noisy_student(demo, tmp_path):
    """Control experiment: the stderr guard is what saves eve's marks."""
    out, results = demo
    api = make_api(out)
    assert api.config.IgnorePattern.enabled
    import grader.engine.configuration as settings

    original = settings.configure

    def without_guard(c, root=None):
        original(c, root)
        c.IgnorePattern.enabled = False
        return c

    settings.configure = without_guard
    try:
        (res,) = autograde(out, ASSIGNMENTS[0], ["eve"], progress=False)
    finally:
        settings.configure = original
    assert res.success
    assert res.auto_score < results["eve", ASSIGNMENTS[0]].auto_score


def test_class_grading_agrees_with_nbgrader_autograde(demo, tmp_path):
    """Independent check of the fast engine the demo uses: nbgrader's own autograde (a kernel
    per notebook) gives the same score on every cell, for the complete and the buggy student
    in every assignment. (Each assignment in a course of its own, two at a time: nbgrader's
    autograde is serial, and its kernels would leave one of two cores idle.)"""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    out, results = demo
    students = ["ada", "dev"]
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
        graded = pool.map(_autograde_copy, [out] * len(ASSIGNMENTS), [tmp_path] * len(ASSIGNMENTS),
                          ASSIGNMENTS, [students] * len(ASSIGNMENTS))
        for a, rows in zip(ASSIGNMENTS, graded, strict=True):
            assert [r.student for r in rows] == students, (a, rows)
            for r in rows:
                assert r.success, (r.student, a, r.error)
                assert r.cells == results[r.student, a].cells, (r.student, a)


def _autograde_copy(out, tmp_path, assignment, students):
    """nbgrader's autograde of ``students``' ``assignment``, in a copy of the demo course."""
    import shutil

    course = tmp_path / assignment
    course.mkdir()
    shutil.copytree(out / "solutions" / assignment, course / "solutions" / assignment)
    shutil.copy(out / "nbgrader_config.py", course / "nbgrader_config.py")
    for student in students:
        shutil.copytree(out / "submitted" / student / assignment,
                        course / "submitted" / student / assignment)
    return autograde(course, assignment, students, progress=False)
