"""``dlgrader`` / ``python -m grader``: the instructor's commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.release import available_assignments, repo_root


def _cmd_release(args: argparse.Namespace) -> int:
    from grader.release import notebooks_with_outputs, release_differences, sync_release

    root = Path(args.root)
    if args.check:
        problems = release_differences(root)
        paths = sorted((root / "solutions").glob("*/*.ipynb")) + sorted(
            (root / "notebooks").glob("*/*.ipynb")
        )
        problems += [f"{p} has outputs (commit notebooks cleared)" for p in
                     notebooks_with_outputs(paths)]
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("release out of sync: run `python -m grader release`", file=sys.stderr)
            return 1
        print(f"release in sync ({', '.join(available_assignments(root))})")
        return 0
    dest = sync_release(root)
    print(f"regenerated {dest} from {root / 'solutions'}")
    return 0


def _cmd_student_kit(args: argparse.Namespace) -> int:
    from grader.release import build_student_kit

    print(f"wrote {build_student_kit(args.root, args.out)}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from grader.demo import run

    results = run(args.root, args.out, progress=not args.no_progress)
    return 0 if all(r.success for r in results) else 1


def _cmd_mutants(args: argparse.Namespace) -> int:
    from grader.mutants import evaluate

    ok = True
    for assignment in args.assignments or available_assignments(args.root):
        report = evaluate(args.root, assignment, progress=not args.no_progress,
                          engine=args.engine)
        print(report.table())
        ok &= report.solution.auto_score == report.solution.auto_max
        ok &= report.stub.auto_score == 0
        ok &= all(m.as_declared for m in report.mutants)
    return 0 if ok else 1


def _cmd_grade(args: argparse.Namespace) -> int:
    import time

    from grader.classgrade import ClassGrader, summary
    from grader.executor import Limits
    from grader.reports import export_grades_csv
    from grader.sandbox import can_isolate

    limits = Limits(cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                    memory_mb=args.memory_mb)
    if not args.no_sandbox and not can_isolate() and args.scheduler is None:
        print("WARNING: UNSANDBOXED — student code runs with your rights (no root here for "
              "namespaces); resource limits still apply", file=sys.stderr)
    start = time.perf_counter()
    grader = ClassGrader(args.course, workers=args.workers, scheduler=args.scheduler,
                         limits=limits, sandbox=not args.no_sandbox, force=args.force,
                         progress=not args.no_progress)
    print(f"grading with {grader.backend.describe()}", file=sys.stderr)
    outcomes = grader.grade(args.assignments or None)
    from grader.reports import grade_table

    print(grade_table(outcomes, sorted({o.assignment for o in outcomes})))
    print(summary(outcomes, time.perf_counter() - start))
    csv = export_grades_csv(args.course, Path(args.course) / "grades.csv")
    print(f"grades CSV: {csv}")
    return 0 if all(o.ok for o in outcomes) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlgrader", description=__doc__)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)
    root = str(repo_root())

    p = sub.add_parser("release", help="regenerate notebooks/ from solutions/ (nbgrader)")
    p.add_argument("--root", default=root, help="course root (default: this repository)")
    p.add_argument("--check", action="store_true", help="only check that notebooks/ is in sync")
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser("student-kit", help="zip what students get: notebooks/ + grader/")
    p.add_argument("--root", default=root, help="course root (default: this repository)")
    p.add_argument("--out", default="dist/student-kit.zip", help="zip file to write")
    p.set_defaults(func=_cmd_student_kit)

    p = sub.add_parser("demo", help="grade the built-in demo class end to end")
    p.add_argument("--root", default=root, help="course root (default: this repository)")
    p.add_argument("--out", default="demo_class", help="demo course directory to (re)create")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("mutants", help="grade solution, stubs and known-bug mutants")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")
    p.add_argument("--root", default=root, help="course root (default: this repository)")
    p.add_argument("--engine", choices=["parallel", "nbgrader"], default="parallel",
                   help="parallel class grader (default) or nbgrader's own serial autograde")
    p.set_defaults(func=_cmd_mutants)

    p = sub.add_parser("grade", help="grade a whole class in parallel (local or Dask)")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all submitted)")
    p.add_argument("--course", default=".", help="nbgrader course directory (default: .)")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (cores)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://h:8786")
    p.add_argument("--force", action="store_true", help="regrade even what is up to date")
    p.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per cell")
    p.add_argument("--notebook-timeout", type=float, default=300.0, help="seconds per notebook")
    p.add_argument("--memory-mb", type=int, default=4096, help="memory per notebook process")
    p.add_argument("--no-sandbox", action="store_true", help="run student code unisolated")
    p.set_defaults(func=_cmd_grade)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
