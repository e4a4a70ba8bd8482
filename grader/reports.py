"""Grade tables and exports from nbgrader's gradebook."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from grader.autograde import GradeResult


def grade_table(results: Iterable[GradeResult], assignments: list[str]) -> str:
    """A plain-text table: one row per student, autograded points per assignment and in total."""
    by_student: dict[str, dict[str, GradeResult]] = {}
    for r in results:
        by_student.setdefault(r.student, {})[r.assignment] = r
    short = {a: a.split("_", 1)[0] for a in assignments}
    header = ["student"] + [short[a] for a in assignments] + ["total"]
    rows = []
    for student in sorted(by_student):
        row, got, avail = [student], 0.0, 0.0
        for a in assignments:
            r = by_student[student].get(a)
            if r is None:
                row.append("-")
            elif not r.success:
                row.append("ERROR")
            else:
                row.append(f"{r.auto_score:g}/{r.auto_max:g}")
                got, avail = got + r.auto_score, avail + r.auto_max
        row.append(f"{got:g}/{avail:g}" + (f" ({100 * got / avail:.0f}%)" if avail else ""))
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def fmt(row: list[str]) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    return "\n".join(lines)


def export_grades_csv(root: str | Path, path: str | Path) -> Path:
    """Write nbgrader's grades CSV (its ``export`` command's CsvExportPlugin) to ``path``."""
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin

    from grader.autograde import make_api

    api = make_api(root)
    path = Path(path).resolve()
    plugin = CsvExportPlugin(to=str(path))
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        plugin.export(gb)
    return path
