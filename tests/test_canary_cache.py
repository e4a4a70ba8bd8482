"""Canaries once per environment, cached across runs while nothing they depend on changed.

A tiny course graded in the coordinator's own process (``workers=0``: the worker and the
coordinator share one module state, so a test can change what an environment is made of). Each
test asserts how many canary notebooks ran and how many came from the cache, and that a cache
entry is evidence scored again, never a verdict: corrupt, edited, foreign or failing entries
are run afresh, and nothing is stored from an environment whose canaries failed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from grader.course.authoring import save
from grader.course.submissions import fill
from grader.engine import environment
from grader.engine import worker as worker_mod
from grader.engine.canary_cache import CACHE_DIR, CanaryCache
from grader.engine.configuration import write_course_config
from grader.engine.coordinator import ClassGrader
from grader.engine.job import Limits

from .test_classgrade import FULL, GOOD, SOURCE

A = "00_cache"
LIMITS = Limits(cell_timeout=10.0, notebook_timeout=60.0, memory_mb=1024, job_mb=64)
CANARIES = 2  # the untouched release and the reference solution of the one notebook


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    course = tmp_path_factory.mktemp("template")
    write_course_config(course)
    save(SOURCE, course / "solutions" / A / f"{A}.ipynb")
    ClassGrader(course, workers=0, limits=LIMITS, progress=False).ensure_assignment(A)
    release = nbformat.read(course / "notebooks" / A / f"{A}.ipynb", as_version=4)
    sub = course / "submitted" / "ada" / A
    sub.mkdir(parents=True)
    nbformat.write(fill(release, GOOD), sub / f"{A}.ipynb")
    return course


@pytest.fixture
def course(template, tmp_path):
    dest = tmp_path / "course"
    shutil.copytree(template, dest)
    return dest


def grade(course, **kw):
    """Regrade everything; return (outcome of ada, canary notebooks run, taken from cache)."""
    g = ClassGrader(course, workers=0, limits=LIMITS, progress=False, force=True, **kw)
    (out,) = g.grade([A])
    return out, g.canaries.ran, g.canaries.cached


def entries(course) -> list[Path]:
    return sorted((course / CACHE_DIR).glob("*.json"))


def test_cache_hit_when_nothing_changed(course):
    out, ran, cached = grade(course)
    assert (out.status, out.score, ran, cached) == ("graded", FULL, CANARIES, 0)
    assert len(entries(course)) == CANARIES
    out, ran, cached = grade(course)
    assert (out.status, out.score, ran, cached) == ("graded", FULL, 0, CANARIES)


def test_cache_lives_in_the_course_where_student_code_cannot_reach(course):
    g = ClassGrader(course, workers=0, limits=LIMITS, progress=False)
    folder = g.canaries.cache.folder.resolve()
    assert folder == (course / ".dlgrader" / "canaries").resolve()
    # the course root is hidden from student code (and the isolation probe checks it)
    assert str(course.resolve()) in g.protect_paths()
    assert str(course.resolve()) in g.canaries.secrets()
    grade(course)
    assert (folder / "secret").stat().st_mode & 0o077 == 0
    assert folder.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("part", ["grader", "packages", "python", "sandbox", "host"])
def test_rerun_when_the_environment_changed(course, monkeypatch, part):
    grade(course)
    original = environment.describe()
    monkeypatch.setattr(environment, "describe", lambda: {**original, part: "changed"})
    out, ran, cached = grade(course)
    assert (out.status, out.score, ran, cached) == ("graded", FULL, CANARIES, 0)
    assert len(entries(course)) == 2 * CANARIES  # the old entries do not vouch for the new


def test_rerun_when_the_notebook_changed(course):
    grade(course)
    path = course / "solutions" / A / f"{A}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source += "\n\nA new sentence in the source."
    nbformat.write(nb, path)
    out, ran, cached = grade(course)
    # the reference solution changed; the release students got did not
    assert (out.status, out.score, ran, cached) == ("graded", FULL, 1, 1)


def test_rerun_when_the_data_changed(course):
    grade(course)
    (course / "solutions" / A / "table.csv").write_text("x,y\n1,2\n")
    out, ran, cached = grade(course)
    assert (out.status, ran, cached) == ("graded", CANARIES, 0)
    (course / "solutions" / A / "table.csv").write_text("x,y\n1,3\n")
    out, ran, cached = grade(course)
    assert (out.status, ran, cached) == ("graded", CANARIES, 0)


def test_rerun_when_the_sandbox_mode_or_limits_changed(course):
    grade(course)
    out, ran, cached = grade(course, sandbox=False)  # unsandboxed: another environment
    assert (out.status, ran, cached) == ("graded", CANARIES, 0)
    assert any("UNSANDBOXED" in f for f in out.flags)
    g = ClassGrader(course, workers=0, limits=Limits(**{**LIMITS.__dict__, "cell_timeout": 11}),
                    progress=False, force=True)
    g.grade([A])
    assert (g.canaries.ran, g.canaries.cached) == (CANARIES, 0)


def _resign(course, path: Path, change) -> None:
    """Rewrite an entry with the course's own secret: a poisoning that knows the key."""
    entry = json.loads(path.read_text())
    change(entry["result"])
    cache = CanaryCache(course / CACHE_DIR)
    entry["mac"] = cache._mac(cache._secret(create=False), entry["material"], entry["result"])
    path.write_text(json.dumps(entry))


def _solution_entry(course) -> Path:
    return next(p for p in entries(course) if "/solution/" in p.read_text())


def _raise_everywhere(result):
    for cell in result["cells"].values():
        cell["raised"] = True


def _pass_everywhere(result):
    for cell in result["cells"].values():
        cell["raised"] = False
        cell["outputs"] = []


POISONS = {
    "garbage": lambda course, p: p.write_bytes(b"\x00\xffnot json"),
    "truncated": lambda course, p: p.write_text(p.read_text()[: len(p.read_text()) // 2]),
    "edited, stale mac": lambda course, p: p.write_text(  # an edit only the mac can tell
        p.read_text().replace('"detail": ""', '"detail": "edited"', 1)),
    "foreign secret": lambda course, p: (course / CACHE_DIR / "secret").write_bytes(b"k" * 32),
    "re-signed, failing": lambda course, p: _resign(course, p, _raise_everywhere),
    "re-signed, not a dict": lambda course, p: _resign(course, p, lambda r: r.update(cells=7)),
}


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_corrupt_or_poisoned_entry_is_rerun_never_trusted(course, poison):
    grade(course)
    POISONS[poison](course, _solution_entry(course))
    out, ran, cached = grade(course)
    assert out.status == "graded" and out.score == FULL
    assert ran >= 1 and ran + cached == CANARIES
    out, ran, cached = grade(course)  # rewritten, genuine again
    assert (ran, cached) == (0, CANARIES)


def test_a_poisoned_stub_entry_that_would_pass_is_rerun(course):
    """The stub's entry re-signed to say every test passed: scored again, it gives the stubs
    points, so it is not trusted: the canary runs again (and passes, truthfully)."""
    grade(course)
    stub = next(p for p in entries(course) if "/stub/" in p.read_text())
    _resign(course, stub, _pass_everywhere)
    out, ran, cached = grade(course)
    assert (out.status, ran, cached) == ("graded", 1, 1)


def test_nothing_is_cached_from_failed_canaries(course):
    from nbgrader.api import Gradebook, MissingEntry

    grade(course)
    for path in entries(course):
        path.unlink()
    path = course / "solutions" / A / f"{A}.ipynb"
    broken = nbformat.read(path, as_version=4)
    for cell in broken.cells:  # the reference solution itself is wrong
        cell.source = cell.source.replace("return 2 * x", "return 3 * x")
    nbformat.write(broken, path)
    (course / "gradebook.db").unlink()
    shutil.rmtree(course / "autograded")
    for _ in range(2):  # failing twice: the second time is not served from any cache
        out, ran, cached = grade(course)
        assert out.status == "failed" and "known-answer" in out.reason, out.reason
        assert (ran, cached) == (CANARIES, 0)
        assert entries(course) == []
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        with pytest.raises(MissingEntry):
            gb.find_submission(A, "ada")


def test_a_worker_whose_own_probe_disagrees_is_excluded(course, monkeypatch):
    from nbgrader.api import Gradebook, MissingEntry

    grade(course)  # cached for this environment
    (course / "gradebook.db").unlink()
    shutil.rmtree(course / "autograded")
    theirs = {**environment.describe(), "packages": "something else"}
    monkeypatch.setattr(worker_mod, "probe_environment", lambda: theirs)
    out, ran, cached = grade(course)
    assert out.status == "failed" and "own probe disagrees" in out.reason, out.reason
    assert "packages" in out.reason
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        with pytest.raises(MissingEntry):
            gb.find_submission(A, "ada")


def test_canaries_run_alongside_the_first_students_once_per_environment(course, monkeypatch):
    """Two workers: the canaries go out with the first students, not before them, and once
    for the environment, not once per worker."""
    from grader.engine import backends

    submitted, waits = [], []

    class Recording(backends.InlineBackend):
        workers = 2

        def submit(self, job, worker=None):
            submitted.append(job.key)
            return super().submit(job)

        def wait(self, futures):
            waits.append(len(submitted))
            return super().wait(futures)

    monkeypatch.setattr(ClassGrader, "__init__", _with_backend(Recording()))
    out, ran, cached = grade(course)
    assert (out.status, out.score, ran, cached) == ("graded", FULL, CANARIES, 0)
    before_first_wait = submitted[:waits[0]]
    assert sum(k.startswith("canary/") for k in before_first_wait) == CANARIES
    assert "ada/" + A + "/" + A in before_first_wait
    assert sum(k.startswith("canary/") for k in submitted) == CANARIES


def _with_backend(backend):
    real = ClassGrader.__init__

    def init(self, *args, **kw):
        real(self, *args, **kw)
        self.backend = backend

    return init


def test_canaries_skip_the_closing_experiments_a_student_runs_them(course, monkeypatch):
    """A plain code cell after the last test cannot change a score: the canaries leave it out
    (here it would kill their process), a student's notebook still runs it."""
    from grader.engine import backends

    closing = "import os\nos._exit(3)  # a closing experiment that kills its process"
    for path in (course / "solutions" / A / f"{A}.ipynb",
                 course / "submitted" / "ada" / A / f"{A}.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(closing))
        nbformat.write(nb, path)
    jobs = {}

    class Recording(backends.InlineBackend):
        def submit(self, job, worker=None):
            jobs[job.key] = job
            return super().submit(job)

    monkeypatch.setattr(ClassGrader, "__init__", _with_backend(Recording()))
    out, ran, cached = grade(course)
    assert (out.score, ran, cached) == (FULL, CANARIES, 0), out
    canary_sources = [src for key, job in jobs.items() if key.startswith("canary/")
                      for src in job.cells.values()]
    assert canary_sources and closing not in canary_sources
    assert closing in jobs[f"ada/{A}/{A}"].cells.values()
