"""Feedback for students that tells the truth, rendered offline.

:func:`write_feedback` renders ``feedback/<student>/<assignment>/<notebook>.html`` from the
autograded notebook and the gradebook (:mod:`grader.course.grades`): autograded tests and written
answers are counted apart, an ungraded written answer says *awaiting grading* (never 0), each
test is named by what it checks, error messages wrap instead of running off the page, hidden
tests' source and tracebacks are never shown, maths is MathML (no script, no CDN) and the
folder holds the HTML pages and nothing else.

Plain ``nbgrader generate_feedback`` leaks no hidden test either:
:class:`grader.engine.hidden_tests.HideHiddenTests` (nbgrader issue #917).
"""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from grader.course.grades import CellGrade, Submission, read_gradebook
from grader.engine.graded_cells import nbgrader_meta
from grader.engine.hidden_tests import BEGIN, HIDDEN_NOTICE, strip_hidden_region
from grader.engine.intake import NBGRADER_FILES


# -- naming and text ----------------------------------------------------------------------
def describe_test(source: str, grade_id: str) -> str:
    """What a test cell checks: its first comment line, else its grade id in words."""
    for line in source.split("\n"):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#") and HIDDEN_NOTICE not in text and BEGIN not in text:
            return text.lstrip("#").strip()
        break
    words = re.sub(r"^test_", "", grade_id).replace("_", " ").strip()
    return words or grade_id


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without terminal colour codes."""
    return ANSI.sub("", text)


MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$([^$\n]+?)\$", re.S)


def math_to_mathml(tex: str, display: bool) -> str:
    """MathML for a LaTeX formula (browsers render it natively: nothing to download)."""
    from latex2mathml.converter import convert

    try:
        return convert(tex.strip(), display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - a formula the converter cannot parse stays readable
        return f'<code class="tex">{html.escape(tex.strip())}</code>'


def markdown_html(text: str) -> str:
    """Markdown with ``$...$`` / ``$$...$$`` maths as MathML; raw HTML escaped."""
    import mistune

    formulas: list[str] = []

    def stash(m: re.Match) -> str:
        formulas.append(math_to_mathml(m.group(1) or m.group(2), m.group(1) is not None))
        return f"MATHTOKEN{len(formulas) - 1}X"

    rendered = mistune.create_markdown(escape=True, plugins=["table", "strikethrough"])(
        MATH.sub(stash, text))
    return re.sub(r"MATHTOKEN(\d+)X", lambda m: formulas[int(m.group(1))], rendered)


# -- cells --------------------------------------------------------------------------------
def _pre(cls: str, text: str) -> str:
    return f'<pre class="{cls}">{html.escape(plain(text))}</pre>'


def _output_html(out: NotebookNode, hidden: bool) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        return _pre("stderr" if out.get("name") == "stderr" else "out", out.get("text", ""))
    if kind == "error":
        message = _pre("err", f"{out.get('ename', 'Error')}: {out.get('evalue', '')}")
        trace = plain("\n".join(out.get("traceback", [])))
        if hidden or not trace.strip():
            return message
        return (message + '<details><summary>traceback</summary>'
                + _pre("trace", trace) + "</details>")
    data = out.get("data", {})
    if "image/png" in data:
        return f'<img alt="figure" src="data:image/png;base64,{data["image/png"].strip()}">'
    if "text/plain" in data:  # never text/html: a student's HTML does not run here
        return _pre("out", data["text/plain"])
    return ""


def _points(n: float) -> str:
    return f"{n:g} point" + ("" if n == 1 else "s")


def _banner(grade: CellGrade, title: str) -> str:
    if grade.score is None:
        return (f'<div class="grade awaiting">{html.escape(title)} — awaiting grading '
                f"({_points(grade.max_score)})</div>")
    state = "pass" if grade.score >= grade.max_score else "fail"
    return (f'<div class="grade {state}">{html.escape(title)} — {grade.score:g} / '
            f"{grade.max_score:g}</div>")


def _cell_parts(cell: NotebookNode, grade: CellGrade | None) -> list[str]:
    meta = nbgrader_meta(cell)
    if cell.cell_type == "markdown":
        banner = [_banner(grade, "Written answer")] if grade is not None else []
        return banner + [f'<div class="md">{markdown_html(cell.source)}</div>']
    if cell.cell_type != "code":
        return []
    source, hidden = strip_hidden_region(cell.source, "# (hidden tests: not shown)")
    parts = []
    if grade is not None:
        title = ("Test: " + describe_test(source, meta.get("grade_id", ""))) if grade.auto \
            else "Answer"
        parts.append(_banner(grade, title))
    parts.append(_pre("src", source))
    return parts + [_output_html(o, hidden) for o in cell.get("outputs", [])]


def cell_html(cell: NotebookNode, grade: CellGrade | None, comment: str = "") -> str:
    """One cell: a grade banner when graded, its source and outputs, the grader's comment."""
    parts = _cell_parts(cell, grade)
    if not parts:
        return ""
    if comment:
        parts.append(f'<div class="comment"><b>Comment:</b> {html.escape(comment)}</div>')
    return f'<section class="cell">{"".join(parts)}</section>'


# -- pages --------------------------------------------------------------------------------
CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:.3rem 0;padding:.4rem;
background:#f6f8fa;font-size:13px}
pre.err{background:#fdecea;color:#8a1c1c;font-weight:600}pre.stderr{background:#fff4e0}
.grade{font-weight:600;padding:.3rem .5rem;border-left:.3rem solid}
.pass{border-color:#2e7d32;background:#e8f5e9}.fail{border-color:#c62828;background:#fdecea}
.awaiting{border-color:#f9a825;background:#fffde7}
.comment{background:#e3f2fd;padding:.3rem .5rem;white-space:pre-wrap}.cell{margin:1rem 0}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}
td.msg{white-space:pre-wrap;overflow-wrap:anywhere}img{max-width:100%}
math[display=block]{margin:.5rem 0}
"""


def summary_html(sub: Submission, notebook: str, tests: list[tuple[str, CellGrade, str]]) -> str:
    """Autograded and written points apart, then every test with its result and message."""
    cells = [c for c in sub.cells if c.notebook == notebook]
    auto = [c for c in cells if c.auto]
    manual = [c for c in cells if not c.auto]
    got = sum(c.score or 0.0 for c in auto)
    lines = [f"<p><b>Autograded tests:</b> {got:g} / {sum(c.max_score for c in auto):g} "
             "points</p>"]
    if manual:
        waiting = [c for c in manual if c.score is None]
        graded = [c for c in manual if c.score is not None]
        text = f"{sum(c.score for c in graded):g} / {sum(c.max_score for c in graded):g} " \
               f"points graded" if graded else "none graded yet"
        if waiting:
            text += (f"; {len(waiting)} awaiting grading "
                     f"({_points(sum(c.max_score for c in waiting))})")
        lines.append(f"<p><b>Written answers:</b> {text}</p>")
    rows = "".join(
        f'<tr class="{"pass" if (g.score or 0) >= g.max_score else "fail"}"><td>'
        f"{html.escape(name)}</td><td>{g.score or 0:g} / {g.max_score:g}</td>"
        f'<td class="msg">{html.escape(message)}</td></tr>' for name, g, message in tests)
    if rows:
        lines.append('<table class="tests"><tr><th>test</th><th>points</th><th>message</th>'
                     f"</tr>{rows}</table>")
    return "".join(lines)


def _message(cell: NotebookNode) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return plain(f"{out.get('ename', 'Error')}: {out.get('evalue', '')}")
    return ""


def notebook_html(nb: NotebookNode, sub: Submission, notebook: str) -> str:
    """The whole feedback page of one notebook."""
    grades = {c.name: c for c in sub.cells if c.notebook == notebook}
    body, tests = [], []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        grade = grades.get(meta.get("grade_id")) if meta.get("grade") else None
        body.append(cell_html(cell, grade, sub.comments.get((notebook, meta.get("grade_id")), "")))
        if grade is not None and grade.auto:
            source = strip_hidden_region(cell.source, "")[0]
            tests.append((describe_test(source, meta.get("grade_id", "")), grade, _message(cell)))
    title = html.escape(f"{sub.assignment} / {notebook} — {sub.student}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{CSS}</style></head><body><h1>{title}</h1>"
            f"{summary_html(sub, notebook, tests)}{''.join(body)}</body></html>")


def write_feedback(course: str | Path, assignment: str, student: str,
                   submission: Submission | None = None) -> Path:
    """Write ``feedback/<student>/<assignment>/``: the HTML pages, and the submission's
    ``timestamp.txt`` and ``submission_secret.txt`` when it has them (nbgrader's
    ``release_feedback`` reads them); return the folder."""
    course = Path(course)
    if submission is None:
        submission = read_gradebook(course).submissions[(student, assignment)]
    src = course / "autograded" / student / assignment
    dest = course / "feedback" / student / assignment
    tmp = dest.with_name(f".{assignment}.new-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in sorted(src.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        (tmp / f"{path.stem}.html").write_text(notebook_html(nb, submission, path.stem))
    for name in NBGRADER_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, tmp / name)
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)
    return dest


def write_class_feedback(course: str | Path, assignments: list[str] | None = None) -> list[Path]:
    """Feedback for every graded submission (of ``assignments``); one gradebook read."""
    grades = read_gradebook(course)
    return [write_feedback(course, a, s, sub) for (s, a), sub in sorted(grades.submissions.items())
            if (assignments is None or a in assignments)
            and (Path(course) / "autograded" / s / a).is_dir()]
