"""What the known-answer canaries cost when not cached: once per assignment and environment
(host), alongside the first students, the untouched release and the reference solution.

    python benchmarks/canary_cost.py                  # all assignments
    python benchmarks/canary_cost.py 01_linear_regression

For each assignment it prints the seconds of the two canary runs (through the same sandboxed
path as a student's notebook) and their ratio to one graded student notebook (the solution
graded as a submission), all measured in this one run.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.course.release import available_assignments, release_notebook  # noqa: E402
from grader.course.submissions import fill, reference_answers, write_submission  # noqa: E402
from grader.engine.configuration import write_course_config  # noqa: E402
from grader.engine.coordinator import ClassGrader  # noqa: E402
from grader.engine.worker import run_notebook  # noqa: E402


def main(argv: list[str]) -> int:
    for assignment in argv or available_assignments(ROOT):
        with tempfile.TemporaryDirectory() as tmp:
            course = Path(tmp)
            write_course_config(course)
            src = ROOT / "solutions" / assignment
            (course / "solutions" / assignment).mkdir(parents=True)
            for path in src.iterdir():
                if path.is_file():
                    (course / "solutions" / assignment / path.name).write_bytes(path.read_bytes())
            g = ClassGrader(course, workers=0, progress=False)
            g.ensure_assignment(assignment)
            release = nbformat.read(release_notebook(ROOT, assignment), as_version=4)
            source = nbformat.read(src / f"{assignment}.ipynb", as_version=4)
            write_submission(course, "ada", assignment,
                             {assignment: fill(release, reference_answers(source))})
            prep = g.prepare("ada", assignment, [assignment])
            run_notebook(g.make_job("warm-up", release, {}))  # start the zygote
            t = time.perf_counter()
            for job in g.canaries.jobs(assignment):
                run_notebook(job)
            canaries = time.perf_counter() - t
            t = time.perf_counter()
            run_notebook(g.job(prep, assignment).__class__(**{
                **g.job(prep, assignment).__dict__, "canaries": []}))
            student = time.perf_counter() - t
        print(f"{assignment}: canaries {canaries:.1f} s per host (uncached), one student notebook "
              f"{student:.1f} s, ratio {canaries / student:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
