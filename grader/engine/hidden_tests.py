"""nbgrader preprocessors that keep hidden tests hidden, installed by
:mod:`grader.engine.configuration`.

* :class:`HideHiddenTests` strips hidden-test source and tracebacks from feedback (nbgrader
  issue #917), for plain ``nbgrader generate_feedback`` and :mod:`grader.course.feedback` alike;
* :class:`RestoreHiddenTests` restores the locked test cells of a submission (hidden tests
  included) without nbgrader's false "checksum has changed" warnings (#1961).
"""

from __future__ import annotations

import nbformat
from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor, OverwriteCells
from traitlets import Unicode

from grader.engine.graded_cells import nbgrader_meta

BEGIN, END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
HIDDEN_NOTICE = "More tests of this cell are hidden"


def strip_hidden_region(source: str, placeholder: str) -> tuple[str, bool]:
    """Return ``source`` with each hidden-test region replaced by ``placeholder``."""
    out, inside, found = [], False, False
    for line in source.split("\n"):
        if BEGIN in line:
            inside, found = True, True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + placeholder)
        elif END in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out), found


class HideHiddenTests(NbGraderPreprocessor):
    """Strip hidden-test source and tracebacks from graded cells before rendering feedback."""

    placeholder = Unicode("# (hidden tests: not shown)").tag(config=True)

    def preprocess_cell(
        self, cell: NotebookNode, resources: ResourcesDict, cell_index: int
    ) -> tuple[NotebookNode, ResourcesDict]:
        if cell.cell_type != "code" or not utils.is_grade(cell):
            return cell, resources
        cell.source, had_hidden = strip_hidden_region(cell.source, self.placeholder)
        if had_hidden:
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


class RestoreHiddenTests(OverwriteCells):
    """nbgrader's OverwriteCells without the false "checksum has changed" warnings (#1961).

    The gradebook stores each locked test cell's source and checksum *with* its hidden tests
    (``SaveCells`` runs before ``ClearHiddenTests``), so every untouched submitted test cell
    with hidden tests differs from it and nbgrader warns before restoring it. Here a cell
    whose source is exactly the release version (the stored source with the hidden tests
    cleared) is restored silently; any other change is still reported.
    """

    def preprocess_cell(self, cell: NotebookNode, resources: ResourcesDict,
                        cell_index: int) -> tuple[NotebookNode, ResourcesDict]:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id is not None and cell.cell_type == "code":
            try:
                stored = self.gradebook.find_source_cell(grade_id, self.notebook_id,
                                                         self.assignment_id)
            except MissingEntry:
                stored = None
            if stored is not None and stored.locked and cell.source == released(stored.source):
                cell.source = stored.source
        return super().preprocess_cell(cell, resources, cell_index)


def released(source: str) -> str:
    """``source`` as the student received it: nbgrader's ClearHiddenTests applied."""
    cell = nbformat.v4.new_code_cell(source)
    ClearHiddenTests()._remove_hidden_test_region(cell)
    return cell.source
