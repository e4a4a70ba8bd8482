"""Benchmark: grade a generated class with `dlgrader grade` and with plain serial nbgrader.

    python benchmarks/grade_class.py --students 5 --workers-sweep 1,2   # 20 notebooks
    python benchmarks/grade_class.py --students 20 --workers-sweep 1,2  # 80 notebooks
    python benchmarks/grade_class.py --students 40 --workers-sweep 1,2,4,8,16 --skip-nbgrader

The class: every available notebook for each student; a seeded mix of complete answers,
known-bug mutants, untouched stubs and correct-but-noisy answers (grader.course.submissions). Both
engines grade identical copies; the per-cell scores are compared, and the script fails if they
differ. For each number of workers the class is graded twice in a fresh course: *cold* (no
canary cache: the canaries run alongside the first students) and *warm* (``--force`` regrade,
canaries from the course's cache). Each prints, measured in this one run: seconds per notebook;
the ratio to the **physical limit** (Σ student-cell seconds / min(workers, cores, notebooks):
the wall time if nothing but the students' own cells ran, perfectly packed) and to serial
nbgrader, beside the ratio to nbgrader that the physical limit itself would give (no grader that
runs these cells this way can beat it); and where the rest went, per notebook (core-seconds,
grader.engine.gradebook_writer.TIMINGS).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.course.mutants import mutants_file  # noqa: E402
from grader.course.release import available_assignments, release_notebook, source_notebook  # noqa: E402
from grader.course.submissions import (  # noqa: E402
    fill,
    load_mutants,
    make_noisy,
    mutate,
    reference_answers,
    write_submission,
)
from grader.engine.configuration import write_course_config  # noqa: E402
from grader.engine.coordinator import ClassGrader  # noqa: E402
from grader.engine.gradebook_writer import TIMINGS  # noqa: E402
from grader.engine.nbgrader_api import autograde  # noqa: E402


def build_class(dest: Path, students: int, assignments: list[str], seed: int) -> int:
    rng = np.random.default_rng(seed)
    write_course_config(dest)
    n = 0
    for a in assignments:
        shutil.copytree(ROOT / "solutions" / a, dest / "solutions" / a)
        release = nbformat.read(release_notebook(ROOT, a), as_version=4)
        good = reference_answers(nbformat.read(source_notebook(ROOT, a), as_version=4))
        mutants = load_mutants(mutants_file(ROOT, a))
        for s in range(students):
            kind = rng.choice(["complete", "mutant", "stub", "noisy"], p=[0.5, 0.3, 0.1, 0.1])
            if kind == "stub":
                nb = release
            elif kind == "mutant":
                nb = fill(release, mutate(good, mutants[rng.integers(len(mutants))]))
            elif kind == "noisy":
                nb = fill(release, make_noisy(good))
            else:
                nb = fill(release, good)
            write_submission(dest, f"student{s:03d}", a, {a: nb})
            n += 1
    return n


def run_ours(course: Path, workers: int, force: bool = False):
    t = time.perf_counter()
    g = ClassGrader(course, workers=workers, progress=False, force=force)
    outcomes = g.grade()
    return time.perf_counter() - t, outcomes, g.canaries


def report(label: str, n: int, workers: int, seconds: float, outcomes: list,
           canaries) -> tuple[float, float]:
    """Print one run: its time, its ratio to the physical limit, and the breakdown; return
    ``(seconds, physical limit)``."""
    cores = min(workers, os.cpu_count() or 1, n)  # one notebook never runs on two cores
    cells = sum(o.cell_seconds for o in outcomes)
    limit = cells / cores
    steps = {k: sum(o.timings.get(k, 0.0) for o in outcomes) for k in TIMINGS}
    accounted = cells + sum(steps.values()) + canaries.seconds
    rest = seconds * cores - accounted
    print(f"dlgrader grade, {workers} worker(s), {label}: {seconds:7.1f} s  "
          f"{seconds / n:.3f} s/notebook;  physical limit {limit:.1f} s "
          f"(cells {cells:.1f} s / {cores} cores) -> {seconds / limit:.2f}x the limit")
    print(f"  canaries: {canaries.ran} notebook runs ({canaries.seconds:.1f} s), "
          f"{canaries.cached} from the cache")
    print("  per notebook, seconds (worker steps wall, coordinator steps CPU; rest: start-up, "
          "probes, idle and contention): " + ", ".join(
        [f"cells {cells / n:.3f}"] + [f"{k} {v / n:.3f}" for k, v in steps.items()]
        + [f"canaries {canaries.seconds / n:.3f}", f"rest {rest / n:.3f}"]))
    return seconds, limit


def run_nbgrader(course: Path, assignments: list[str]) -> tuple[float, list]:
    t = time.perf_counter()
    results = []
    for a in assignments:
        results += autograde(course, a, progress=False)
    return time.perf_counter() - t, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--assignments", nargs="*", default=None)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--workers-sweep", default="", help="e.g. 1,2,4,8,16")
    parser.add_argument("--skip-nbgrader", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    assignments = args.assignments or available_assignments(ROOT)

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "class"
        n = build_class(base, args.students, assignments, args.seed)
        print(f"class: {args.students} students x {len(assignments)} notebooks = {n} "
              f"submissions; {os.cpu_count()} cores")

        sweep = [int(w) for w in args.workers_sweep.split(",") if w] or [args.workers]
        ours = {}
        for w in sweep:
            course = Path(tmp) / f"ours-{w}"
            shutil.copytree(base, course)
            for label, force in (("cold", False), ("warm", True)):
                seconds, outcomes, canaries = run_ours(course, w, force)
                bad = [o for o in outcomes if o.status != "graded"]
                if bad:
                    print(f"{len(bad)} not graded: {bad[0].student}: {bad[0].reason}")
                    return 1
                ours[w, label] = (*report(label, n, w, seconds, outcomes, canaries), outcomes)
        if len(sweep) > 1:
            for label in ("cold", "warm"):
                s1 = ours[sweep[0], label][0]
                for w in sweep:
                    print(f"  scaling, {label}: {w:3d} workers  speed-up "
                          f"{s1 / ours[w, label][0]:.2f}x over {sweep[0]} worker(s)")

        if args.skip_nbgrader:
            return 0
        course = Path(tmp) / "nbgrader"
        shutil.copytree(base, course)
        seconds_nb, results = run_nbgrader(course, assignments)
        print(f"nbgrader autograde, serial: {seconds_nb:7.1f} s  {seconds_nb / n:.3f} s/notebook")
        for w in sweep:
            for label in ("cold", "warm"):
                seconds, limit, _ = ours[w, label]
                print(f"ratio (nbgrader serial / dlgrader grade, {w} worker(s), {label}): "
                      f"{seconds_nb / seconds:.2f}x; at the physical limit it would be "
                      f"{seconds_nb / limit:.2f}x (nothing but the students' cells, judge "
                      "included, perfectly packed)")
        outcomes = ours[sweep[-1], "warm"][2]
        theirs = {(r.student, r.assignment): r.cells for r in results}
        differ = [(o.student, o.assignment) for o in outcomes
                  if o.cells != theirs[o.student, o.assignment]]
        print(f"per-cell scores identical for {n - len(differ)}/{n} submissions")
        return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
