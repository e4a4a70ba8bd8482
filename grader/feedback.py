"""Feedback that does not leak hidden tests (nbgrader issue #917).

nbgrader's feedback HTML shows each test cell as it was executed, hidden tests and their
tracebacks included. :class:`HideHiddenTests` replaces every hidden-test region by a one-line
placeholder and cuts the traceback of a failing cell with hidden tests down to its last line
(the exception and its message, which the test author writes for the student).
"""

from __future__ import annotations

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

BEGIN, END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"


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
