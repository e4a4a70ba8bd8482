"""Repairs of what students do to nbgrader's cells (the coordinator applies them, flagged)."""

from __future__ import annotations

import nbformat
from nbformat import NotebookNode

from grader.engine.graded_cells import nbgrader_meta


def repair_grade_cells(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """Undo what students do to nbgrader's cells, in place; return one flag per repair.

    Compared with the release notebook (what the student received): a grade/locked/answer cell
    that was duplicated keeps its first copy; one whose type was changed gets its type back;
    one whose nbgrader metadata was stripped (same source, no metadata) gets it back; one that
    was deleted is put back after the cell that preceded it in the release.
    """
    flags: list[str] = []
    reference = {
        m["grade_id"]: c
        for c in release.cells
        if (m := nbgrader_meta(c)).get("grade_id") is not None
    }
    by_source = {
        c.source.strip(): gid
        for gid, c in reference.items()
        if not nbgrader_meta(c).get("solution") and c.source.strip()
    }
    seen: set[str] = set()
    kept = []
    for cell in nb.cells:
        m = nbgrader_meta(cell)
        gid = m.get("grade_id")
        if gid is None and cell.source.strip() in by_source:
            gid = by_source[cell.source.strip()]
            if gid not in seen:
                restored = dict(nbgrader_meta(reference[gid]))
                cell.setdefault("metadata", {})["nbgrader"] = restored
                flags.append(f"cell {gid}: nbgrader metadata was stripped; restored")
        if gid is not None and gid in reference:
            if gid in seen:
                flags.append(f"cell {gid}: duplicated; extra copy removed")
                continue
            seen.add(gid)
            want = reference[gid].cell_type
            if cell.cell_type != want:
                flags.append(f"cell {gid}: type changed to {cell.cell_type}; restored to {want}")
                fresh = (
                    nbformat.v4.new_code_cell(cell.source)
                    if want == "code"
                    else nbformat.v4.new_markdown_cell(cell.source)
                )
                fresh.metadata = cell.metadata
                cell = fresh
        kept.append(cell)
    # deleted cells: put each back after its predecessor in the release
    order = [nbgrader_meta(c).get("grade_id") for c in release.cells]
    for pos, gid in enumerate(order):
        if gid is None or gid in seen or gid not in reference:
            continue
        prev = next((g for g in reversed(order[:pos]) if g in seen), None)
        where = 0
        if prev is not None:
            where = 1 + [nbgrader_meta(c).get("grade_id") for c in kept].index(prev)
        kept.insert(where, nbformat.from_dict(reference[gid]))
        seen.add(gid)
        flags.append(f"cell {gid}: deleted by the student; restored from the release")
    nb.cells = kept
    return flags
