"""Grading a whole class: a corpus of hostile and broken submissions, each outcome asserted.

A tiny assignment (two functions, two test cells, one written answer) keeps this fast; the
same engine grades the real notebooks in tests/test_classgrade_course.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.course.authoring import answer, markdown, notebook, save, written_answer
from grader.course.authoring import tests as grade_cell
from grader.course.submissions import fill, reference_answers
from grader.engine import backends
from grader.engine import gradebook_writer as record
from grader.engine.configuration import write_course_config
from grader.engine.coordinator import ClassGrader, repair_grade_cells
from grader.engine.interrupt import Interrupted
from grader.engine.job import Limits
from grader.engine.sandbox import can_isolate

A = "00_tiny"
FULL = 5.0  # test_double 2 + test_mean 3

SOURCE = notebook(
    [
        markdown("# Tiny"),
        answer("double", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n"
                         "    ### END SOLUTION"),
        grade_cell("test_double", 2, "assert double(2) == 4\n### BEGIN HIDDEN TESTS\n"
                                     "assert double(-1) == -2\n### END HIDDEN TESTS"),
        answer("mean", "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n"
                       "    ### END SOLUTION"),
        grade_cell("test_mean", 3, "assert mean([1, 2, 3]) == 2"),
        written_answer("why", 1, "Because."),
    ]
)
GOOD = reference_answers(SOURCE)
LIMITS = Limits(cell_timeout=2.0, notebook_timeout=20.0, memory_mb=2048)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    write_course_config(root)
    save(SOURCE, root / "solutions" / A / f"{A}.ipynb")
    grader = ClassGrader(root, workers=2, limits=LIMITS, progress=False)
    grader.ensure_assignment(A)  # generate_assignment: gradebook + release
    return root


def release(course) -> nbformat.NotebookNode:
    return nbformat.read(course / "notebooks" / A / f"{A}.ipynb", as_version=4)


def submit(course, student, nb=None, *, name=f"{A}.ipynb", raw: bytes | None = None,
           extra: dict | None = None) -> Path:
    d = course / "submitted" / student / A
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    if raw is not None:
        (d / name).write_bytes(raw)
    elif nb is not None:
        nbformat.write(nb, d / name)
    for rel, data in (extra or {}).items():
        (d / rel).write_bytes(data)
    return d


def solved(course, **changes) -> nbformat.NotebookNode:
    answers = dict(GOOD)
    answers.update(changes)
    return fill(release(course), answers)


def cell_index(nb, gid):
    return next(i for i, c in enumerate(nb.cells)
                if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def build_corpus(course):
    """One submission per kind; returns {student: expected}."""
    expected = {}

    def add(student, nb=None, exp=None, **kw):
        submit(course, student, nb, **kw)
        expected[student] = exp

    add("complete", solved(course), ("graded", FULL, None))
    add("empty", release(course), ("graded", 0.0, None))
    add("malformed_json", raw=b'{"cells": [', exp=("invalid", None, "not a readable notebook"))
    add("not_utf8", raw=b"\xff\xfe\x00garbage", exp=("invalid", None, "UTF-8"))
    add("wrong_name", solved(course), ("graded", FULL, "notebook named"), name="my_work.ipynb")
    add("no_notebook", None, ("invalid", None, "no notebook to grade"), extra={"notes.txt": b"x"})
    add("extra_files", solved(course), ("graded", FULL, "extra files"),
        extra={"helper.py": b"X = 1\n", "big.bin": b"\0" * 1000})

    nb = solved(course)
    del nb.cells[cell_index(nb, "test_mean")]
    add("deleted_test", nb, ("graded", FULL, "deleted by the student"))

    nb = release(course)  # stubs, and the failing test deleted: must not gain its points
    del nb.cells[cell_index(nb, "test_double")]
    add("deleted_test_on_stub", nb, ("graded", 0.0, "deleted by the student"))

    nb = solved(course)
    i = cell_index(nb, "test_double")
    nb.cells.insert(i + 1, nbformat.from_dict(nb.cells[i]))
    add("duplicated_test", nb, ("graded", FULL, "duplicated"))

    nb = solved(course)
    i = cell_index(nb, "test_mean")
    md = nbformat.v4.new_markdown_cell(nb.cells[i].source)
    md.metadata = nb.cells[i].metadata
    nb.cells[i] = md
    add("retyped_test", nb, ("graded", FULL, "type changed"))

    nb = solved(course)
    nb.cells[cell_index(nb, "test_mean")].metadata = {}
    add("stripped_metadata", nb, ("graded", FULL, "metadata was stripped"))

    add("infinite_loop", solved(course, mean="def mean(xs):\n    while True:\n        pass"),
        ("graded", 2.0, None))
    add("unstoppable_loop", solved(course, mean=(
        "def mean(xs):\n    while True:\n        try:\n            while True:\n"
        "                pass\n        except BaseException:\n            pass")),
        ("graded", 2.0, "time limit"))
    add("memory_bomb", solved(course, mean=(
        "def mean(xs):\n    hog = []\n    while True:\n        hog.append(bytearray(10**8))")),
        ("graded", 2.0, None))
    add("fork_bomb", solved(course, mean=(
        "import os\n\ndef mean(xs):\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass")),
        ("graded", 2.0, None))
    add("os_exit", solved(course, mean="import os\nos._exit(0)\n\ndef mean(xs):\n    return 2"),
        ("graded", 2.0, "exited with code 0"))
    add("kills_itself", solved(course, mean="import os\nos.kill(os.getpid(), 9)"),
        ("graded", 2.0, "signal 9"))
    add("gigantic_output", solved(course, double="print('x' * 10**8)\n" + GOOD["double"]),
        ("graded", FULL, None))
    add("warnings_on_stderr", solved(course, double=(
        "import sys, warnings\n\ndef double(x):\n    warnings.warn('noisy')\n"
        "    print('debug', file=sys.stderr)\n    return 2 * x")),
        ("graded", FULL, None))
    add("syntax_error", solved(course, mean="def mean(xs)\n    return 0"), ("graded", 2.0, None))
    return expected


@pytest.fixture(scope="module")
def graded(course):
    expected = build_corpus(course)
    outcomes = ClassGrader(course, workers=2, limits=LIMITS, progress=False).grade([A])
    return expected, {o.student: o for o in outcomes}


def test_corpus_has_at_least_15_kinds(graded):
    expected, outcomes = graded
    assert len(expected) >= 15
    assert set(outcomes) == set(expected)


@pytest.mark.parametrize("student", [
    "complete", "empty", "malformed_json", "not_utf8", "wrong_name", "no_notebook",
    "extra_files", "deleted_test", "deleted_test_on_stub", "duplicated_test", "retyped_test",
    "stripped_metadata", "infinite_loop", "unstoppable_loop", "memory_bomb", "fork_bomb",
    "os_exit", "kills_itself", "gigantic_output", "warnings_on_stderr", "syntax_error",
])
def test_corpus_outcome(graded, student):
    expected, outcomes = graded
    status, score, text = expected[student]
    o = outcomes[student]
    assert o.status == status, (o.status, o.reason, o.flags)
    if score is not None:
        assert o.auto_score == score, (o.cells, o.flags)
        assert o.auto_max == FULL
    if text is not None:
        assert text in (o.reason + " ".join(o.flags)), (o.reason, o.flags)


def test_gigantic_output_is_cut_in_the_graded_notebook(graded, course):
    path = course / "autograded" / "gigantic_output" / A / f"{A}.ipynb"
    assert path.stat().st_size < 2_000_000


def test_problems_reach_the_gradebook_only_when_graded(graded, course):
    from nbgrader.api import Gradebook, MissingEntry

    expected, outcomes = graded
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        for student, o in outcomes.items():
            if o.status == "graded":
                assert gb.find_submission(A, student).score == o.score
            else:  # an unusable file is reported, never silently recorded as 0
                with pytest.raises(MissingEntry):
                    gb.find_submission(A, student)


def test_rerun_is_idempotent_and_resumes(course, graded):
    again = ClassGrader(course, workers=2, limits=LIMITS, progress=False).grade([A])
    by = {o.student: o for o in again}
    _, first = graded
    for student, o in first.items():
        if o.status == "graded":
            assert by[student].status == "up to date"
            assert by[student].auto_score == o.auto_score
    submit(course, "complete", solved(course, mean="def mean(xs):\n    return 0"))
    third = {o.student: o for o in
             ClassGrader(course, workers=2, limits=LIMITS, progress=False).grade([A])}
    assert third["complete"].status == "graded" and third["complete"].auto_score == 2.0
    assert third["empty"].status == "up to date"
    submit(course, "complete", solved(course))  # restore for other tests
    ClassGrader(course, workers=2, limits=LIMITS, progress=False).grade([A])


def _flaky_execute(job):
    """A worker process that dies while grading ``complete`` the first time (infrastructure
    failure: the pool breaks and every notebook in flight is lost with it)."""
    marker = Path(os.environ["DLKIT_FLAKY_DIR"]) / "died"
    if job.key.startswith("complete/") and not marker.exists():
        marker.write_text("died once")
        os._exit(1)  # takes the pool worker down: BrokenProcessPool
    from grader.engine.worker import execute_job

    return execute_job(job)


def test_worker_death_is_retried_not_scored(course, graded, tmp_path, monkeypatch):
    monkeypatch.setenv("DLKIT_FLAKY_DIR", str(tmp_path))
    monkeypatch.setattr(backends, "execute_job", _flaky_execute)
    outcomes = ClassGrader(course, workers=2, limits=LIMITS, force=True,
                           progress=False).grade([A])
    by = {o.student: o for o in outcomes}
    assert (tmp_path / "died").exists()  # the failure really happened
    assert by["complete"].status == "graded", by["complete"].reason
    assert by["complete"].auto_score == FULL
    _, first = graded
    for student, o in first.items():  # nobody paid for the crash
        if o.status == "graded" and student != "complete":
            assert by[student].status == "graded", (student, by[student].reason)
            assert by[student].auto_score == o.auto_score, student


def test_pool_that_refuses_work_is_retried_then_reported(course, graded, monkeypatch):
    """A backend that cannot even accept a job (a broken pool, a lost scheduler) is an
    infrastructure failure: retried, and if it persists reported per submission; the batch
    never crashes and nobody gets a 0."""
    import concurrent.futures as cf

    calls = []
    real_submit = backends.InlineBackend.submit

    def refuse_twice(self, job):
        calls.append(job)
        if len(calls) <= 2:
            raise cf.process.BrokenProcessPool("simulated: the pool is broken")
        return real_submit(self, job)

    monkeypatch.setattr(backends.InlineBackend, "submit", refuse_twice)
    outcomes = ClassGrader(course, workers=0, limits=LIMITS, force=True,
                           progress=False).grade([A])
    by = {o.student: o for o in outcomes}
    assert len(calls) > 2  # the refusals happened, and work went on
    assert by["complete"].status == "graded" and by["complete"].auto_score == FULL
    _, first = graded
    for student, o in first.items():
        assert by[student].status == o.status, (student, by[student].reason)

    def refuse_always(self, job):
        raise cf.process.BrokenProcessPool("simulated: the pool is broken")

    monkeypatch.setattr(backends.InlineBackend, "submit", refuse_always)
    outcomes = ClassGrader(course, workers=0, limits=LIMITS, force=True, retries=1,
                           progress=False).grade([A])
    assert outcomes and all(o.status in ("failed", "invalid") for o in outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    assert failed and all("previous grade kept" in o.reason for o in failed)


def _broken_execute(job):
    raise RuntimeError("simulated cluster outage")


def test_failed_regrade_keeps_previous_grade_and_files(course, graded, monkeypatch):
    from nbgrader.api import Gradebook

    path = course / "autograded" / "complete" / A / f"{A}.ipynb"
    before = path.read_bytes()
    monkeypatch.setattr(backends, "execute_job", _broken_execute)
    outcomes = ClassGrader(course, workers=1, limits=LIMITS, force=True, retries=1,
                           progress=False).grade([A])
    by = {o.student: o for o in outcomes}
    assert by["complete"].status == "failed"
    assert "previous grade kept" in by["complete"].reason
    assert path.read_bytes() == before
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        assert gb.find_submission(A, "complete").score == FULL


def test_repair_restores_every_kind_of_damage():
    rel = SOURCE
    nb = nbformat.from_dict(rel)
    i = cell_index(nb, "test_mean")
    nb.cells[i].metadata = {}
    j = cell_index(nb, "test_double")
    nb.cells.insert(j, nbformat.from_dict(nb.cells[j]))
    flags = repair_grade_cells(nb, rel)
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells] == \
        [c.metadata.get("nbgrader", {}).get("grade_id") for c in rel.cells]
    assert any("stripped" in f for f in flags) and any("duplicated" in f for f in flags)


@pytest.mark.skipif(not can_isolate(), reason="sandbox needs root (namespaces)")
def test_sandbox_hides_course_and_network(course, graded):
    probe = (
        "import os, socket\n"
        f"course = {str(course)!r}\n"
        "seen = {p: os.path.exists(os.path.join(course, p)) for p in\n"
        "        ['gradebook.db', 'solutions', 'submitted']}\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "    net = 'open'\n"
        "except OSError as e:\n"
        "    net = type(e).__name__ + str(e.errno)\n"
        "print('PROBE', json_dump := repr((seen, net, os.getuid(), os.environ['HOME'])))\n"
    )
    submit(course, "snoop", solved(course, double=probe + GOOD["double"]))
    (o,) = [x for x in ClassGrader(course, workers=1, limits=LIMITS, progress=False).grade([A])
            if x.student == "snoop"]
    assert o.status == "graded" and o.auto_score == FULL
    nb = nbformat.read(course / "autograded" / "snoop" / A / f"{A}.ipynb", as_version=4)
    text = "".join(out.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for out in c.outputs)
    line = next(ln for ln in text.splitlines() if ln.startswith("PROBE"))
    seen, net, uid, home = eval(line.split(" ", 1)[1])  # noqa: S307 - our own repr
    assert seen == {"gradebook.db": False, "solutions": False, "submitted": False}
    assert net.startswith("OSError") and net.endswith("101")  # network unreachable
    assert uid >= 200_000  # a user of its own, not root
    assert not os.path.exists(home)  # a throw-away home, gone after grading
    shutil.rmtree(course / "submitted" / "snoop")


def test_unsandboxed_grading_refuses_unless_accepted_and_says_so(course, graded, monkeypatch):
    import grader.engine.sandbox as sandbox

    monkeypatch.setattr(sandbox, "can_isolate", lambda: False)
    with pytest.raises(sandbox.Refused, match="--unsandboxed"):
        ClassGrader(course, workers=0, limits=LIMITS, force=True, progress=False).grade([A])
    grader = ClassGrader(course, workers=0, limits=LIMITS, force=True, progress=False,
                         sandbox=False)  # the instructor accepted the risk: flagged
    by = {o.student: o for o in grader.grade([A])}
    assert by["complete"].auto_score == FULL
    assert any("UNSANDBOXED" in f for f in by["complete"].flags)


def test_dask_cluster_grades_like_the_local_pool(course, graded):
    """The same command on a (local) Dask distributed cluster: same grades, one gradebook."""
    from distributed import Client, LocalCluster

    _, first = graded
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        grader = ClassGrader(course, scheduler=client, limits=LIMITS, force=True,
                             progress=False)
        assert "Dask cluster" in grader.backend.describe()
        outcomes = {o.student: o for o in grader.grade([A])}
    for student, o in first.items():
        assert outcomes[student].status == o.status, student
        if o.status == "graded":
            assert outcomes[student].cells == o.cells, student


def test_whole_notebook_time_limit(course, graded):
    """Every cell under its own limit, the notebook over its: the rest is marked not run."""
    slow = "import time\n\ndef double(x):\n    time.sleep(1.2)\n    return 2 * x"
    submit(course, "slowpoke", solved(course, double=slow))
    limits = Limits(cell_timeout=2.0, notebook_timeout=1.5, memory_mb=2048)
    by = {o.student: o for o in
          ClassGrader(course, workers=0, limits=limits, progress=False).grade([A])}
    o = by["slowpoke"]
    assert o.status == "graded" and o.auto_score == 0.0, o.cells
    assert any("notebook exceeded its time limit" in f for f in o.flags), o.flags
    nb = nbformat.read(course / "autograded" / "slowpoke" / A / f"{A}.ipynb", as_version=4)
    enames = [out.get("ename") for c in nb.cells if c.cell_type == "code" for out in c.outputs]
    assert "CellTimeout" in enames and "NotExecuted" in enames
    shutil.rmtree(course / "submitted" / "slowpoke")


def test_interrupted_run_resumes(course, graded, monkeypatch):
    """Stop a run after two commits; the next run grades exactly what is left."""
    new = [f"late{k}" for k in range(4)]
    for student in new:
        submit(course, student, solved(course))
    real_commit = record.commit
    calls = []

    def commit_then_stop(grader, prep, results):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the instructor pressed Ctrl-C
        calls.append(prep.student)
        return real_commit(grader, prep, results)

    monkeypatch.setattr(record, "commit", commit_then_stop)
    with pytest.raises(Interrupted) as stopped:
        ClassGrader(course, workers=0, limits=LIMITS, progress=False).grade([A])
    monkeypatch.setattr(record, "commit", real_commit)
    by = {o.student: o for o in
          ClassGrader(course, workers=0, limits=LIMITS, progress=False).grade([A])}
    assert len(calls) == 2 and set(calls) < set(new)
    regraded = {s for s, o in by.items() if o.status == "graded"}
    assert regraded == set(new) - set(calls)
    assert all(by[s].auto_score == FULL for s in new)
    # "N of M graded": M every submission, N those it had graded or found up to date so far
    ok = sum(o.ok for o in by.values())
    assert stopped.value.total == len(by)
    assert len(calls) <= stopped.value.graded <= ok - len(regraded)
    for student in new:
        shutil.rmtree(course / "submitted" / student)


def test_notebook_process_uses_one_blas_thread(tmp_path):
    """Workers run one notebook per core; a BLAS with a thread per core in each notebook
    oversubscribes the machine (measured: 5x slower on 2 cores). The script imports numpy
    first, as a benchmark script or a Dask worker does."""
    script = (
        "import json, numpy\n"
        "from grader.engine.job import Job, Limits\nfrom grader.engine.worker import run_notebook\n"
        "cell = 'from threadpoolctl import threadpool_info\\n'"
        " 'print(max(i[\"num_threads\"] for i in threadpool_info()))'\n"
        "res = run_notebook(Job('t', {0: cell}, limits=Limits(notebook_timeout=60)))\n"
        "print(json.dumps(res.cells[0]['outputs']))\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr
    outputs = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    assert outputs and outputs[0]["text"].strip() == "1", outputs
