"""``dlgrader`` / ``python -m grader``: the instructor's commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.course.release import available_assignments, repo_root


def _cmd_release(args: argparse.Namespace) -> int:
    from grader.course.release import notebooks_with_outputs, release_differences, sync_release

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
    from grader.course.student_kit import build_student_kit

    print(f"wrote {build_student_kit(args.root, args.out)}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from grader.course.demo import run
    from grader.engine.sandbox import Refused

    try:
        results = run(args.root, args.out, progress=not args.no_progress,
                      sandbox=not args.unsandboxed, assignments=args.assignments or None)
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 3
    return 0 if all(r.success for r in results) else 1


def _cmd_mutants(args: argparse.Namespace) -> int:
    from grader.course.mutants import evaluate_all

    ok = True
    reports = evaluate_all(args.root, args.assignments or available_assignments(args.root),
                           progress=not args.no_progress, engine=args.engine)
    for report in reports.values():
        print(report.table())
        ok &= report.solution.auto_score == report.solution.auto_max
        ok &= report.stub.auto_score == 0
        ok &= all(m.as_declared for m in report.mutants)
        ok &= not report.problems()  # wrong or missing causes, rejected alternatives
    return 0 if ok else 1


def _cmd_selfcheck_agreement(args: argparse.Namespace) -> int:
    from grader.course.selfcheck_agreement import main

    return main(args.assignments, args.root)


def not_a_course(course: str | Path) -> str | None:
    """Why ``course`` is not a course root (no nbgrader_config.py, no solutions/), or None."""
    root = Path(course).resolve()
    if (root / "nbgrader_config.py").is_file() or (root / "solutions").is_dir():
        return None
    return (f"{root} is not a course (no nbgrader_config.py or solutions/ there): run this at the "
            "course root or pass --course PATH")


def unknown_assignments(course: str | Path, assignments: list[str]) -> str | None:
    """"no assignment named X; known: ..." for a name with no ``solutions/<name>/``, or None."""
    source = Path(course) / "solutions"
    known = sorted(p.name for p in source.iterdir() if p.is_dir()) if source.is_dir() else []
    unknown = [a for a in assignments if a not in known]
    if not unknown or not known:
        return None
    return f"no assignment named {', '.join(unknown)}; known: {', '.join(known)}"


def nothing_to_grade(course: str | Path, assignments: list[str]) -> str | None:
    """Why there is nothing to grade under ``course`` (naming the folder searched), or None."""
    base = (Path(course) / "submitted").resolve()
    pattern = [f"*/{a}" for a in assignments] or ["*/*"]
    if any(p.is_dir() for pat in pattern for p in base.glob(pat)):
        return None
    where = ", ".join(str(base / pat) for pat in pattern)
    if not base.is_dir():
        return f"nothing to grade: {base} does not exist (expected {base}/<student>/<assignment>/)"
    return f"nothing to grade: no submission folder matches {where}"


def _cmd_grade(args: argparse.Namespace) -> int:
    import time

    from grader.course.class_report import write_class_report
    from grader.course.grades import export_grades_csv, grade_table
    from grader.engine.coordinator import ClassGrader, summary
    from grader.engine.job import Limits
    from grader.engine.sandbox import Refused, can_isolate, describe

    why = (not_a_course(args.course) or unknown_assignments(args.course, args.assignments)
           or nothing_to_grade(args.course, args.assignments))
    if why:
        print(why, file=sys.stderr)
        return 2
    limits = Limits(cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                    memory_mb=args.memory_mb)
    if args.scheduler is not None:
        mode = "on the Dask workers (each refuses to run student code it cannot isolate)"
    elif args.unsandboxed:
        mode = "UNSANDBOXED (--unsandboxed): student code runs with your rights"
        print("WARNING: UNSANDBOXED — you passed --unsandboxed: student code runs with your "
              "rights and can read what you can; resource limits still apply", file=sys.stderr)
    elif can_isolate():
        mode = describe(limits)
    else:
        mode = None  # ClassGrader.grade refuses
    start = time.perf_counter()
    grader = ClassGrader(args.course, workers=args.workers, scheduler=args.scheduler,
                         limits=limits, sandbox=not args.unsandboxed, force=args.force,
                         progress=not args.no_progress)
    try:
        if mode:
            print(f"grading with {grader.backend.describe()}; {mode}", file=sys.stderr)
        _say_forced(grader, args)
        outcomes = grader.grade(args.assignments or None)
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 3
    seconds = time.perf_counter() - start
    expected = sorted(set(args.assignments) | {o.assignment for o in outcomes})
    print(grade_table(outcomes, expected))
    print(summary(outcomes, seconds, sandbox=mode))
    csv = export_grades_csv(args.course, outcomes=outcomes)
    print(f"grades CSV: {csv}")
    report_start = time.perf_counter()
    try:  # the grades are committed: a failing report must not hide them
        html, _ = write_class_report(args.course, outcomes, seconds)
        print(f"class report: {html} ({time.perf_counter() - report_start:.1f} s)")
    except Exception as exc:  # noqa: BLE001
        print(f"ERROR: could not write the class report: {exc!r}", file=sys.stderr)
        return 1
    return 0 if all(o.ok for o in outcomes) else 1


def _say_forced(grader, args: argparse.Namespace) -> None:
    """Say so when this run goes on with a --force run that was interrupted."""
    from grader.engine.ledger import forced

    if args.force:
        return
    pending = sorted(a for a in forced(grader) if not args.assignments or a in args.assignments)
    if pending:
        print(f"continuing an interrupted --force run of {', '.join(pending)}: what it had not "
              "regraded yet is regraded now", file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> int:
    from grader.course.class_report import write_class_report

    if not (Path(args.course) / "gradebook.db").is_file():
        print(f"no gradebook at {Path(args.course).resolve() / 'gradebook.db'}: "
              "grade the class first (`grader grade`)", file=sys.stderr)
        return 2
    html, data = write_class_report(args.course)
    print(f"class report: {html}\nmachine-readable twin: {data}")
    return 0


def _cmd_feedback(args: argparse.Namespace) -> int:
    from grader.course.feedback import write_class_feedback

    if not (Path(args.course) / "gradebook.db").is_file():
        print(f"no gradebook at {Path(args.course).resolve() / 'gradebook.db'}: "
              "grade the class first (`grader grade`)", file=sys.stderr)
        return 2
    folders = write_class_feedback(args.course, args.assignments or None)
    print(f"feedback for {len(folders)} submissions under "
          f"{Path(args.course).resolve() / 'feedback'}/<student>/<assignment>/")
    return 0 if folders else 1


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every default: appended, unless the help says it (or it is off/none)."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    # options common to every command are accepted before or after the command's name: the
    # sub-parser's copy defaults to SUPPRESS, so it only overrides when given after it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars")
    parser = argparse.ArgumentParser(prog="dlgrader", description=__doc__, formatter_class=_Help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)
    root = str(repo_root())

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], formatter_class=_Help, **kwargs)

    _add_checkout_commands(command, root)
    _add_class_commands(command)
    return parser


def _add_checkout_commands(command, root: str) -> None:
    """The commands on the course checkout: release, student kit, demo, mutants, agreement."""
    p = command("release", help="regenerate notebooks/ from solutions/ (nbgrader)")
    p.add_argument("--root", default=root, help="course root (default: this repository)")
    p.add_argument("--check", action="store_true", help="only check that notebooks/ is in sync")
    p.set_defaults(func=_cmd_release)

    p = command("student-kit", help="zip what students get: notebooks/ + grader/")
    p.add_argument("--root", default=root, help="course root (default: this repository)")
    p.add_argument("--out", default="dist/student-kit.zip", help="zip file to write (it unzips "
                   "into one folder, student-kit/)")
    p.set_defaults(func=_cmd_student_kit)

    p = command("demo", help="grade the built-in demo class end to end")
    p.add_argument("--root", default=root, help="course root (default: this repository)")
    p.add_argument("--out", default="demo_class", help="demo course directory to (re)create")
    p.add_argument("--unsandboxed", action="store_true",
                   help="run where nothing isolates student code (flagged UNSANDBOXED)")
    p.add_argument("--assignments", nargs="+", default=None,
                   help="only these assignments (default: all)")
    p.set_defaults(func=_cmd_demo)

    p = command("mutants", help="grade solution, stubs and known-bug mutants")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")
    p.add_argument("--root", default=root, help="course root (default: this repository)")
    p.add_argument("--engine", choices=["parallel", "nbgrader"], default="parallel",
                   help="parallel class grader (default) or nbgrader's own serial autograde")
    p.set_defaults(func=_cmd_mutants)

    p = command("selfcheck-agreement",
                help="does dlcheck fail where the grader does? (solution, stub, mutants)")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")
    p.add_argument("--root", default=root, help="course root (default: this repository)")
    p.set_defaults(func=_cmd_selfcheck_agreement)


def _add_class_commands(command) -> None:
    """The commands on a class's course directory: grade, report, feedback."""
    p = command("grade", help="grade a whole class in parallel (local or Dask)")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all submitted)")
    p.add_argument("--course", default=".", help="nbgrader course directory")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per core)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. "
                   "tcp://h:8786 (default: none, grade on this machine)")
    p.add_argument("--force", action="store_true", help="regrade even what is up to date")
    p.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per cell")
    p.add_argument("--notebook-timeout", type=float, default=300.0, help="seconds per notebook")
    p.add_argument("--memory-mb", type=int, default=4096, help="memory per notebook process")
    p.add_argument("--unsandboxed", "--no-sandbox", dest="unsandboxed", action="store_true",
                   help="accept the risk: run student code with your rights where nothing "
                        "isolates it (every grade is flagged UNSANDBOXED)")
    p.set_defaults(func=_cmd_grade)

    p = command("report", help="write the class report (HTML + JSON) from the gradebook")
    p.add_argument("--course", default=".", help="nbgrader course directory")
    p.set_defaults(func=_cmd_report)

    p = command("feedback", help="write students' feedback HTML from the gradebook")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all graded)")
    p.add_argument("--course", default=".", help="nbgrader course directory")
    p.set_defaults(func=_cmd_feedback)


def main(argv: list[str] | None = None) -> int:
    from grader.engine.interrupt import Interrupted
    from grader.engine.sandbox import Refused

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Refused as exc:  # any command that grades (mutants too): refused, said plainly
        print(exc, file=sys.stderr)
        return 3
    except Interrupted as exc:  # Ctrl-C while grading (grade, demo, mutants): how far it got
        print(exc, file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # elsewhere: one line, no traceback
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
