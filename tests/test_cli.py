"""Command-line manners: options anywhere, nothing to grade, report and feedback commands."""

from __future__ import annotations

import pytest

from grader.course.cli import build_parser, main
from tests.test_reports import fabricate_course


@pytest.mark.parametrize("argv, expected", [
    (["grade", "--no-progress"], True),
    (["--no-progress", "grade"], True),
    (["grade"], False),
    (["report", "--no-progress"], True),
])
def test_common_options_before_or_after_the_command(argv, expected):
    assert build_parser().parse_args(argv).no_progress is expected


def test_grade_without_submitted_folder_fails_naming_it(tmp_path, capsys):
    (tmp_path / "nbgrader_config.py").write_text("")  # a course root
    assert main(["grade", "--course", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "nothing to grade" in err and str(tmp_path / "submitted") in err


def test_grade_unknown_assignment_fails_naming_the_pattern(tmp_path, capsys):
    (tmp_path / "nbgrader_config.py").write_text("")  # a course root
    (tmp_path / "submitted" / "ada" / "01_a").mkdir(parents=True)
    assert main(["grade", "02_b", "--course", str(tmp_path)]) == 2
    assert str(tmp_path / "submitted" / "*" / "02_b") in capsys.readouterr().err


def test_report_and_feedback_commands(tmp_path, capsys):
    assert main(["report", "--course", str(tmp_path)]) == 2
    assert "no gradebook" in capsys.readouterr().err
    fabricate_course(tmp_path, ["ada", "ben"], ["01_a"])
    assert main(["--no-progress", "report", "--course", str(tmp_path)]) == 0
    assert (tmp_path / "class_report.html").is_file()
    assert (tmp_path / "class_report.json").is_file()
    assert main(["feedback", "--course", str(tmp_path)]) == 0
    assert sorted(p.relative_to(tmp_path).as_posix()
                  for p in (tmp_path / "feedback").rglob("*.html")) == \
        ["feedback/ada/01_a/01_a.html", "feedback/ben/01_a/01_a.html"]


def _subparsers(parser):
    import argparse

    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_help_of_every_command_shows_the_defaults(capsys):
    """Issue 21 P6: every option and optional argument with a default says it in --help."""
    import argparse

    commands = _subparsers(build_parser())
    assert {"grade", "release", "student-kit", "demo", "mutants", "report", "feedback"} <= \
        set(commands)
    for name, sub in commands.items():
        for action in sub._actions:
            if action.default in (False, argparse.SUPPRESS) or action.help is None or \
                    isinstance(action, argparse._HelpAction):
                continue
            fmt = sub._get_formatter()
            fmt.add_argument(action)
            assert "(default" in fmt.format_help(), (name, action.dest)
    with pytest.raises(SystemExit):
        main(["grade", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for said in ("(default: 60.0)", "(default: 300.0)", "(default: 4096)", "(default: .)",
                 "(default: one per core)", "(default: all submitted)"):
        assert said in text
