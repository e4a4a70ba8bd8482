"""The class report: what the class got wrong, in one HTML page and its JSON twin.

:func:`write_class_report` reads what a grade run leaves behind (the gradebook, the
autograded notebooks, ``submitted/``) and writes ``class_report.html`` (matplotlib figures
embedded as PNG, no script, no network) and ``class_report.json`` (the same figures as data,
for an LMS or a spreadsheet) at the course root:

* the score distribution of every assignment (autograded points, submitted notebooks only);
* the pass rate of every test cell;
* the most common diagnosed causes per test cell, with counts, read from the failing cells'
  error messages (``likely cause: <phrase>``; else the message's first line);
* students with a missing or an ungradable submission;
* flags (repairs, UNSANDBOXED) and the run time, from the grade run's outcomes when given,
  else from the previous report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grader.course.feedback import describe_test
from grader.course.grades import CourseGrades, read_gradebook
from grader.diagnose import causes_in
from grader.engine.graded_cells import nbgrader_meta

HTML_NAME, JSON_NAME = "class_report.html", "class_report.json"


NOT_ATTEMPTED = "not attempted (raise NotImplementedError() left in)"
_USES = re.compile(r"this test uses (?P<all>.+?): make (?:(?P<one>.+?)'s own tests|their own "
                   r"tests) pass first")
_RAISED = re.compile(r"^(?P<who>[A-Za-z_][\w.]*) raised (?P<what>[A-Za-z_]\w*)")
_NAMES = re.compile(r"\s*,\s*|\s+and\s+")


def _one_phrase(names: str) -> str:
    """``"A, B"``, ``"A and B"``, ``"B, A"`` all as ``"A and B"``: one cause, one group."""
    parts = sorted({n.strip() for n in _NAMES.split(names) if n.strip()}, key=str.lower)
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def diagnosed_cause(outputs: list[dict]) -> str | None:
    """The diagnosed cause of a failing cell's error output, or the error's first line.

    Messages that say the same thing in different words are one group: every "make their
    own tests pass first" about the same exercises (in any order, "A, B" or "A and B"), every
    stub left in, every error an exercise raised (whatever its details).
    """
    for out in outputs:
        if out.get("output_type") != "error":
            continue
        message = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"
        named = causes_in(message)
        if named:
            return named[0]
        evalue = str(out.get("evalue", ""))
        if out.get("ename") == "NotImplementedError" or " is not written yet: " in evalue:
            return NOT_ATTEMPTED
        uses = _USES.search(evalue)
        if uses:
            return f"an earlier exercise fails: {_one_phrase(uses['one'] or uses['all'])}"
        raised = _RAISED.match(evalue)
        if raised:
            return f"{raised['who']} raised {raised['what']}"
        if evalue.startswith("this test could not use what your code returned"):
            return "this test could not use what your code returned"
        return message.strip().split("\n", 1)[0]
    return None


@dataclass
class TestCell:
    """One autograded test cell of an assignment, over the class."""

    notebook: str
    grade_id: str
    name: str
    max_score: float
    position: int = 0  # index among the notebook's test cells
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    causes: dict[str, list[str]] = field(default_factory=dict)  # cause -> students

    @property
    def pass_rate(self) -> float | None:
        n = len(self.passed) + len(self.failed)
        return len(self.passed) / n if n else None

    def top_causes(self, k: int = 5) -> list[tuple[str, int]]:
        return Counter({c: len(s) for c, s in self.causes.items()}).most_common(k)


def _read_outputs(path: Path) -> dict[str, tuple[str, list[dict]]]:
    """``{grade_id: (source, outputs)}`` of the code grade cells of an autograded notebook."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    cells = {}
    for cell in nb.get("cells", []):
        meta = nbgrader_meta(cell)
        if cell.get("cell_type") == "code" and meta.get("grade"):
            src = cell.get("source", "")
            cells[meta.get("grade_id", "")] = ("".join(src) if isinstance(src, list) else src,
                                               cell.get("outputs", []))
    return cells


def test_cells(course: Path, grades: CourseGrades, assignment: str) -> list[TestCell]:
    """Every autograded test cell of ``assignment``: who passed, who failed and why."""
    cells: dict[tuple[str, str], TestCell] = {}
    for (student, a), sub in sorted(grades.submissions.items()):
        if a != assignment:
            continue
        outputs: dict[str, dict] = {}
        for c in sub.cells:
            if not c.auto:
                continue
            if c.notebook not in outputs:
                path = course / "autograded" / student / a / f"{c.notebook}.ipynb"
                outputs[c.notebook] = _read_outputs(path)
            source, outs = outputs[c.notebook].get(c.name, ("", []))
            tc = cells.setdefault((c.notebook, c.name),
                                  TestCell(c.notebook, c.name, "", c.max_score))
            if not tc.name and source:
                tc.name = describe_test(source, c.name)
                tc.position = list(outputs[c.notebook]).index(c.name)
            if (c.score or 0.0) >= c.max_score:
                tc.passed.append(student)
                continue
            tc.failed.append(student)
            cause = diagnosed_cause(outs) or "no error output (partial credit or not run)"
            tc.causes.setdefault(cause, []).append(student)
    for tc in cells.values():
        tc.name = tc.name or describe_test("", tc.grade_id)
    return sorted(cells.values(), key=lambda tc: (tc.notebook, tc.position))


def class_data(course: str | Path, outcomes: list | None = None,
               seconds: float | None = None) -> dict:
    """Everything the report shows, as plain data (the JSON twin)."""
    course = Path(course)
    grades = read_gradebook(course)
    previous = _previous(course)
    problems = previous.get("problems", [])
    flags = previous.get("flags", [])
    if outcomes is not None:
        problems = [{"student": o.student, "assignment": o.assignment, "status": o.status,
                     "reason": o.reason} for o in outcomes if not o.ok]
        flags = [{"student": o.student, "assignment": o.assignment, "flag": f}
                 for o in outcomes for f in o.flags]
    data = {"course": str(course.resolve()), "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "run_seconds": seconds if seconds is not None else previous.get("run_seconds"),
            "students": grades.class_list, "problems": problems, "flags": flags,
            "assignments": {}}
    for a in grades.assignments:
        subs = {s: grades.submissions[(s, a)] for s in grades.class_list
                if (s, a) in grades.submissions}
        missing = [s for s in grades.class_list if s not in subs]
        data["assignments"][a] = {
            "auto_max": grades.maxima[a][0], "manual_max": grades.maxima[a][1],
            "scores": {s: {"auto": sub.auto[0], "manual": sub.manual[0],
                           "awaiting": sub.awaiting} for s, sub in subs.items()},
            "not_submitted": [s for s in missing
                              if not (course / "submitted" / s / a).is_dir()],
            "submitted_not_graded": [s for s in missing
                                     if (course / "submitted" / s / a).is_dir()],
            "tests": [_cell_data(tc) for tc in test_cells(course, grades, a)],
        }
    return data


def _cell_data(tc: TestCell) -> dict:
    d = asdict(tc)
    d["pass_rate"] = tc.pass_rate
    d["top_causes"] = tc.top_causes()
    return d


def _previous(course: Path) -> dict:
    try:
        return json.loads((course / JSON_NAME).read_text())
    except (OSError, ValueError):
        return {}


def write_class_report(course: str | Path, outcomes: list | None = None,
                       seconds: float | None = None) -> tuple[Path, Path]:
    """Write ``class_report.html`` and ``class_report.json`` at ``course``; return both."""
    course = Path(course)
    data = class_data(course, outcomes, seconds)
    json_path, html_path = course / JSON_NAME, course / HTML_NAME
    json_path.write_text(json.dumps(data, indent=1))
    html_path.write_text(render(data))
    return html_path, json_path


def png(fig) -> str:
    """A matplotlib figure as an ``<img>`` with the PNG inlined (base64)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)  # no bbox "tight": it draws twice
    import matplotlib.pyplot as plt

    plt.close(fig)
    return (f'<img alt="{html.escape(fig.get_label() or "figure")}" '
            f'src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">')


# -- the HTML page ------------------------------------------------------------------------
CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:1rem auto;padding:0 1rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;
text-align:left;vertical-align:top}img{max-width:100%}.warn{color:#b71c1c;font-weight:600}"""


def distribution_figure(data: dict):
    """The score distribution of every assignment: one bar per 10 % of graded students and,
    apart, those without a grade (not handed in, ungradable), so the bars of an assignment
    count every student of the class; whole students on the y axis; a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = list(data["assignments"])
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3.2 * max(1, len(names)), 2.9),
                             squeeze=False, sharey=True, label="score distribution")
    for ax, a in zip(axes[0], names, strict=False):
        info = data["assignments"][a]
        pct = [100 * s["auto"] / info["auto_max"] for s in info["scores"].values()
               if info["auto_max"]]
        ungraded = len(info["not_submitted"]) + len(info["submitted_not_graded"])
        ax.hist(pct, bins=range(0, 101, 10), color="#1565c0", edgecolor="white",
                label=f"graded ({len(pct)})")
        ax.bar([-7.5], [ungraded], width=5, color="#9e9e9e",
               label=f"no grade: not handed in or ungradable ({ungraded})")
        ax.set_title(f"{a} ({len(pct) + ungraded} students)", fontsize=9)
        ax.set_xlabel("autograded score (%)", fontsize=8)
        ax.set_xlim(-12, 102)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=6, loc="upper left")
    axes[0][0].set_ylabel("students")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.2, top=0.88, wspace=0.08)
    return fig


def _pass_rate_figure(assignment: str, tests: list[dict]) -> str:
    import matplotlib.pyplot as plt

    rates = [100 * (t["pass_rate"] or 0.0) for t in tests]
    labels = [t["name"][:40] + ("…" if len(t["name"]) > 40 else "") for t in tests]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(tests) + 0.8),
                           label=f"pass rate per test cell of {assignment}")
    ax.barh(range(len(tests)), rates, color=["#2e7d32" if r >= 50 else "#c62828"
                                             for r in rates])
    ax.set_yticks(range(len(tests)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("students passing (%)", fontsize=8)
    inch = fig.get_size_inches()[1]
    fig.subplots_adjust(left=0.46, right=0.97, bottom=0.5 / inch, top=1 - 0.15 / inch)
    return png(fig)


def _students(names: list[str]) -> str:
    return html.escape(", ".join(names)) if names else "none"


def _assignment_html(a: str, info: dict) -> str:
    e = html.escape
    rows = []
    for t in info["tests"]:
        rate = "-" if t["pass_rate"] is None else f"{100 * t['pass_rate']:.0f}%"
        causes = "<br>".join(f"{n} student{'s' * (n != 1)}: {e(c)}" for c, n in t["top_causes"])
        rows.append(f"<tr><td>{e(t['name'])}<br><small>{e(t['grade_id'])}</small></td>"
                    f"<td>{rate}</td><td>{causes or '—'}</td></tr>")
    figure = _pass_rate_figure(a, info["tests"]) if info["tests"] else ""
    return (f"<h2>{e(a)}</h2><p>Not submitted: {_students(info['not_submitted'])}. "
            f"Submitted but not graded: {_students(info['submitted_not_graded'])}.</p>"
            f"{figure}<table><tr><th>test</th><th>pass rate</th>"
            f"<th>most common causes of failure</th></tr>{''.join(rows)}</table>")


def render(data: dict) -> str:
    """The class report page for :func:`class_data`'s ``data``."""
    e = html.escape
    run = data["run_seconds"]
    problems = "".join(f"<li>{e(p['status'])} {e(p['student'])}/{e(p['assignment'])}: "
                       f"{e(p['reason'])}</li>" for p in data["problems"]) or "<li>none</li>"
    unsandboxed = sum("UNSANDBOXED" in f["flag"] for f in data["flags"])
    flags = "".join(f"<li>{e(f['student'])}/{e(f['assignment'])}: {e(f['flag'])}</li>"
                    for f in data["flags"] if "UNSANDBOXED" not in f["flag"]) or "<li>none</li>"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>Class report</title><style>{CSS}</style></head><body>"
            f"<h1>Class report</h1><p>{e(data['course'])} — {len(data['students'])} students, "
            f"generated {e(data['generated'])}; last grade run: "
            f"{'unknown' if run is None else f'{run:.1f} s'}.</p>"
            + (f'<p class="warn">UNSANDBOXED: {unsandboxed} submission(s) graded without '
               "isolation.</p>" if unsandboxed else "")
            + f"<h2>Score distribution</h2>{png(distribution_figure(data))}"
            f"<h2>Submissions that could not be graded</h2><ul>{problems}</ul>"
            f"<h2>Flags (repairs)</h2><ul>{flags}</ul>"
            + "".join(_assignment_html(a, info) for a, info in data["assignments"].items())
            + "</body></html>")
