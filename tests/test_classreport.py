"""The class report: counts of diagnosed causes, pass rates, missing work, flags, run time."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

from grader.course.class_report import (
    NOT_ATTEMPTED,
    class_data,
    diagnosed_cause,
    write_class_report,
)
from tests.test_reports import TESTS, fabricate_course, failure


def test_diagnosed_cause_reads_the_marker_else_the_first_line():
    err = {"output_type": "error", "ename": "GradientCheckError",
           "evalue": "dw differs\nlikely cause: the gradient has the wrong sign."}
    assert diagnosed_cause([{"output_type": "stream"}, err]) == "the gradient has the wrong sign"
    err = {"output_type": "error", "ename": "AssertionError", "evalue": "got 1\nexpected 2"}
    assert diagnosed_cause([err]) == "AssertionError: got 1"
    err = {"output_type": "error", "ename": "NotImplementedError", "evalue": ""}
    assert "not attempted" in diagnosed_cause([err])
    assert diagnosed_cause([{"output_type": "stream", "text": "hi"}]) is None


def test_one_cause_is_one_group_whatever_its_wording():
    def cause(evalue, ename="AssertionError"):
        return diagnosed_cause([{"output_type": "error", "ename": ename, "evalue": evalue}])

    same = [
        "this test uses Dropout, train_epoch: make their own tests pass first (the error was: "
        "ValueError: x)",
        "this test uses Dropout and train_epoch: make their own tests pass first",
        "this test uses train_epoch, Dropout: make their own tests pass first (KeyError)",
    ]
    assert {cause(m) for m in same} == {"an earlier exercise fails: Dropout and train_epoch"}
    # the new wording names the one exercise whose code raised
    m = ("this test uses Sequential, Linear: make Linear's own tests pass first (the error was: "
         "ValueError: matmul, in Linear.forward, line 12)")
    assert cause(m) == "an earlier exercise fails: Linear"
    # a stub, said by uses() or raised bare, is one group
    stub = "train_epoch is not written yet: it still raises NotImplementedError (line 9); ..."
    assert cause(stub) == cause("", "NotImplementedError") == NOT_ATTEMPTED
    # an exercise's own error: one group whatever the details
    assert cause("train_epoch raised ValueError: shapes (2,3) (4,) (in train_epoch, line 4)") \
        == cause("train_epoch raised ValueError: other (in train_epoch, line 7)") \
        == "train_epoch raised ValueError"
    # a named cause wins over everything
    assert cause("this test uses A: make their own tests pass first\nlikely cause: x") == "x"


@dataclass
class FakeOutcome:  # the fields of grader.engine.coordinator.Outcome the report reads
    student: str
    assignment: str
    status: str
    reason: str = ""
    flags: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("graded", "up to date")


def test_class_report_counts_what_the_class_got_wrong(tmp_path):
    students = [f"s{i:02d}" for i in range(12)]
    truth = fabricate_course(tmp_path, students, ["01_a", "02_b"], seed=3,
                             missing={"s00": "02_b", "s01": "02_b"})
    (tmp_path / "submitted" / "s01" / "02_b").mkdir(parents=True)  # handed in, not gradable
    outcomes = [FakeOutcome("s01", "02_b", "invalid", "not a notebook"),
                FakeOutcome("s02", "01_a", "graded", flags=["cell t: deleted; restored"]),
                FakeOutcome("s03", "01_a", "graded",
                            flags=["UNSANDBOXED: student code ran without isolation"])]
    html_path, json_path = write_class_report(tmp_path, outcomes, seconds=12.5)
    data = json.loads(json_path.read_text())
    b = data["assignments"]["02_b"]
    assert b["not_submitted"] == ["s00"] and b["submitted_not_graded"] == ["s01"]
    assert data["problems"] == [{"student": "s01", "assignment": "02_b", "status": "invalid",
                                 "reason": "not a notebook"}]
    for a in ("01_a", "02_b"):
        tests = {t["grade_id"]: t for t in data["assignments"][a]["tests"]}
        assert list(tests) == [gid for gid, _, _, _ in TESTS]  # notebook order
        for gid, _, _, cause in TESTS:
            failed = sorted(s for (s, aa), sc in truth.items() if aa == a and sc[gid] == 0)
            assert sorted(tests[gid]["failed"]) == failed
            expected = Counter(cause or failure(gid, None, s)[0] + ": "
                               + failure(gid, None, s)[1] for s in failed)
            assert dict(tests[gid]["top_causes"]) == dict(expected)
            n = len(failed) + len(tests[gid]["passed"])
            assert tests[gid]["pass_rate"] == (n - len(failed)) / n
    page = html_path.read_text()
    n_cause = len(tests["test_gradient"]["failed"])
    assert f"{n_cause} students: the gradient is not divided by the batch size n" in page
    assert "UNSANDBOXED: 1 submission(s)" in page and "s02/01_a: cell t: deleted" in page
    assert "last grade run: 12.5 s" in page
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 3
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_report_without_outcomes_keeps_the_last_runs_flags_and_time(tmp_path):
    fabricate_course(tmp_path, ["ada"], ["01_a"])
    write_class_report(tmp_path, [FakeOutcome("ada", "01_a", "graded", flags=["f1"])], 3.0)
    _, json_path = write_class_report(tmp_path)
    data = json.loads(json_path.read_text())
    assert data["flags"] == [{"student": "ada", "assignment": "01_a", "flag": "f1"}]
    assert data["run_seconds"] == 3.0



def test_histograms_count_every_student_whole_with_a_legend(tmp_path):
    """Issue 21 P6: each assignment's bars add up to the whole class (graded, plus those not
    handed in or ungradable), the y axis counts whole students, and a legend says which is
    which."""
    from grader.course.class_report import distribution_figure

    fabricate_course(tmp_path, ["ada", "ben", "mia"], ["01_a", "02_b"], missing={"mia": "02_b"})
    (tmp_path / "submitted" / "fay" / "01_a").mkdir(parents=True)  # ungradable, not in gradebook
    data = class_data(tmp_path)
    assert data["students"] == ["ada", "ben", "fay", "mia"]
    fig = distribution_figure(data)
    for ax in fig.axes:
        heights = sum(p.get_height() for p in ax.patches)
        assert heights == len(data["students"]), ax.get_title()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[0].startswith("graded") and labels[1].startswith("no grade")
        ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    graded = {ax.get_title(): ax.get_legend().get_texts()[1].get_text() for ax in fig.axes}
    assert graded == {"01_a (4 students)": "no grade: not handed in or ungradable (1)",
                      "02_b (4 students)": "no grade: not handed in or ungradable (2)"}
