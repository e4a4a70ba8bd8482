"""Benchmark: the class report's share of a grade run (budget: under 5 %).

    python benchmarks/class_report_time.py --students 40 [--assignments 01_linear_regression]

Builds a class (benchmarks/grade_class.py's mix of complete, buggy, stub and noisy work), grades
it with ``dlgrader grade``'s engine, then writes the class report of that same course; prints
both times and their ratio, measured in one run. (This was a timed test in
tests/test_classreport.py; timings belong here, not in the test suite.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from grade_class import build_class  # noqa: E402

from grader.course.class_report import write_class_report  # noqa: E402
from grader.engine.coordinator import ClassGrader  # noqa: E402

BUDGET = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--assignments", nargs="*", default=["01_linear_regression"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp) / "class"
        n = build_class(course, args.students, args.assignments, args.seed)
        start = time.perf_counter()
        outcomes = ClassGrader(course, progress=False).grade(args.assignments)
        grading = time.perf_counter() - start
        start = time.perf_counter()
        write_class_report(course, outcomes, grading)
        report = time.perf_counter() - start
    ratio = report / grading
    print(f"{n} submissions, {os.cpu_count()} cores: grading {grading:.1f} s, class report "
          f"{report:.2f} s = {100 * ratio:.1f} % of the grade run (budget {100 * BUDGET:.0f} %)")
    return 0 if ratio < BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
