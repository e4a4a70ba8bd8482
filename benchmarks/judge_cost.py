"""What the judge costs: the same class graded with test cells in the student's process
(``judge=False``, the engine before issue 10) and in the judge, back to back, in one run.

    python benchmarks/judge_cost.py --students 10            # every assignment
    python benchmarks/judge_cost.py --students 40 --assignments 01_linear_regression

The class is benchmarks/grade_class.py's seeded mix (complete, known-bug mutants, stubs, noisy).
Prints both times, their ratio, and every cell whose score differs between the two.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from grade_class import build_class  # noqa: E402

from grader.course.release import available_assignments  # noqa: E402
from grader.engine.coordinator import ClassGrader  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=10)
    p.add_argument("--assignments", nargs="*", default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    assignments = args.assignments or available_assignments(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        n = build_class(base, args.students, assignments, args.seed)
        times, cells = {}, {}
        for judge in (False, True):
            course = Path(tmp) / f"judge-{judge}"
            shutil.copytree(base, course)
            g = ClassGrader(course, workers=args.workers, judge=judge, progress=False)
            t = time.perf_counter()
            outs = g.grade(assignments)
            times[judge] = time.perf_counter() - t
            cells[judge] = {(o.student, o.assignment): o.cells for o in outs}
    print(f"{n} notebooks: test cells in the student's process {times[False]:.1f} s, "
          f"in the judge {times[True]:.1f} s, ratio {times[True] / times[False]:.2f}")
    differ = [(k, c, cells[False][k].get(c), cells[True][k].get(c))
              for k in cells[False] for c in cells[False][k]
              if cells[False][k].get(c) != cells[True].get(k, {}).get(c)]
    for key, cell, before, after in differ:
        print(f"  differs: {key[0]}/{key[1]} {cell}: {before} -> {after}")
    print(f"{len(differ)} cell score(s) differ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
