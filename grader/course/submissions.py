"""Build submissions from an instructor's source notebook: complete, empty, partial, buggy.

A *submission* is the release notebook (what the student received) with some answer cells
filled in. The answers come from the source notebook's solution regions, optionally with a
known bug applied (a *mutant*, declared in ``solutions/<assignment>.mutants.toml``). These
drive the demo class, the "tests mean something" gate and the grading benchmarks.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from grader.engine.graded_cells import (  # noqa: F401 - part of this module's API
    is_autograded_test,
    nbgrader_meta,
    without_trailing_experiments,
)

BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"


@dataclass(frozen=True)
class Mutant:
    """A known bug: replace ``find`` by ``replace`` in answer cell ``cell``.

    ``caught_by`` lists the grade cells that must score zero on it; every other grade cell
    must keep full marks, so the mutant loses exactly their points. ``diagnosis`` is the
    cause phrase (:mod:`grader.diagnose`) the failing cells must name: ``""`` means none may
    name any cause, ``None`` (the field left out) that named causes are only reported.
    """

    name: str
    cell: str
    find: str
    replace: str
    caught_by: tuple[str, ...]
    description: str = ""
    diagnosis: str | None = None


def is_answer_cell(cell: NotebookNode) -> bool:
    """A cell the student writes in (nbgrader ``solution: true``)."""
    return bool(nbgrader_meta(cell).get("solution"))


def strip_solution_markers(source: str) -> str:
    """The answer as a student would type it: the solution region without its markers."""
    lines = source.split("\n")
    if not any(BEGIN_SOLUTION in ln for ln in lines):
        return source
    return "\n".join(ln for ln in lines if BEGIN_SOLUTION not in ln and END_SOLUTION not in ln)


def reference_answers(source_nb: NotebookNode) -> dict[str, str]:
    """``{grade_id: answer}`` for every answer cell of an instructor's source notebook."""
    return {
        nbgrader_meta(c)["grade_id"]: strip_solution_markers(c.source)
        for c in source_nb.cells
        if is_answer_cell(c)
    }


def half_done_answers(source_nb: NotebookNode) -> dict[str, str]:
    """Answers of a student who stopped halfway through the notebook.

    Solution regions are counted in notebook order over all code answer cells (a class with
    three methods to write has three); the first half are answered with the reference, the
    rest keep the release's stub (``raise NotImplementedError()``). The first half of the
    written answers get the model answer. So a notebook with a single answer cell of several
    methods is half done too.
    """
    code = [c for c in source_nb.cells if is_answer_cell(c) and c.cell_type == "code"]
    written = [c for c in source_nb.cells if is_answer_cell(c) and c.cell_type != "code"]
    regions = sum(c.source.count(BEGIN_SOLUTION) for c in code)
    to_answer = regions // 2
    answers = {}
    for cell in code:
        out, inside, keep = [], False, True
        for line in cell.source.split("\n"):
            if BEGIN_SOLUTION in line:
                inside, keep = True, to_answer > 0
                if not keep:
                    indent = line[: len(line) - len(line.lstrip())]
                    out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
                to_answer -= 1
            elif END_SOLUTION in line:
                inside = False
            elif keep or not inside:
                out.append(line)
        answers[nbgrader_meta(cell)["grade_id"]] = "\n".join(out)
    for cell in written[: len(written) // 2]:
        answers[nbgrader_meta(cell)["grade_id"]] = cell.source
    return answers


def answer_cell_ids(nb: NotebookNode) -> list[str]:
    return [nbgrader_meta(c)["grade_id"] for c in nb.cells if is_answer_cell(c)]


def autograded_test_points(nb: NotebookNode) -> dict[str, float]:
    """``{grade_id: points}`` of the autograded test cells, in notebook order."""
    return {
        nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c).get("points", 0))
        for c in nb.cells
        if is_autograded_test(c)
    }


def fill(release_nb: NotebookNode, answers: Mapping[str, str]) -> NotebookNode:
    """A copy of the release notebook with the given answer cells replaced."""
    nb = nbformat.from_dict(release_nb)  # deep copy
    known = set(answer_cell_ids(nb))
    unknown = set(answers) - known
    if unknown:
        raise KeyError(f"no answer cell with grade_id {sorted(unknown)} in the release notebook")
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if is_answer_cell(cell) and gid in answers:
            cell.source = answers[gid]
    return nb


def load_mutants(path: str | Path, kind: str = "mutant") -> list[Mutant]:
    """Read a ``*.mutants.toml`` file: a list of ``[[mutant]]`` tables.

    ``kind="alternative"`` reads its ``[[alternative]]`` tables instead: other correct
    answers (a library function, another formula the text allows) that must keep full marks;
    they have no ``caught_by`` and no ``diagnosis``.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    required = {"name", "cell", "find", "replace"} | ({"caught_by"} if kind == "mutant" else set())
    mutants = []
    for i, entry in enumerate(data.get(kind, [])):
        missing = required - set(entry)
        if missing:
            raise ValueError(f"{path}: {kind} #{i + 1} lacks {sorted(missing)}")
        mutants.append(
            Mutant(
                name=entry["name"],
                cell=entry["cell"],
                find=entry["find"],
                replace=entry["replace"],
                caught_by=tuple(entry.get("caught_by", ())),
                description=entry.get("description", ""),
                diagnosis=_diagnosis(path, entry),
            )
        )
    names = [m.name for m in mutants]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate {kind} names")
    return mutants


def load_alternatives(path: str | Path) -> list[Mutant]:
    """The ``[[alternative]]`` tables of a ``*.mutants.toml`` file (see :func:`load_mutants`)."""
    return load_mutants(path, kind="alternative")


def _diagnosis(path: Path, entry: dict) -> str | None:
    value = entry.get("diagnosis")
    if value is not None and (not isinstance(value, str) or "\n" in value):
        raise ValueError(f"{path}: mutant {entry['name']!r}: diagnosis must be one line of text")
    return value


def mutate(answers: Mapping[str, str], mutant: Mutant) -> dict[str, str]:
    """Apply ``mutant`` to a set of reference answers; the text to find must occur exactly once."""
    if mutant.cell not in answers:
        raise KeyError(f"mutant {mutant.name!r}: no answer cell {mutant.cell!r}")
    source = answers[mutant.cell]
    count = source.count(mutant.find)
    if count != 1:
        raise ValueError(
            f"mutant {mutant.name!r}: {mutant.find!r} occurs {count} times in cell "
            f"{mutant.cell!r} (must be exactly once; update the mutant to the current solution)"
        )
    out = dict(answers)
    out[mutant.cell] = source.replace(mutant.find, mutant.replace)
    return out


def write_submission(
    course_root: str | Path, student: str, assignment: str, notebooks: Mapping[str, NotebookNode]
) -> Path:
    """Write ``{notebook name: nb}`` into nbgrader's ``submitted/<student>/<assignment>/``."""
    dest = Path(course_root) / "submitted" / student / assignment
    dest.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, dest / f"{name}.ipynb")
    return dest


NOISE = '''

import functools as _functools
import sys as _sys
import warnings as _warnings


def _noisy(fn):
    """Wrap fn so every call prints to stderr and raises a warning (correct result unchanged)."""
    @_functools.wraps(fn)
    def wrapper(*args, **kwargs):
        print(f"debug: calling {fn.__name__}", file=_sys.stderr)
        _warnings.warn(f"{fn.__name__}: a harmless warning", RuntimeWarning, stacklevel=2)
        return fn(*args, **kwargs)
    return wrapper

'''


def make_noisy(answers: Mapping[str, str]) -> dict[str, str]:
    """Answers that behave identically but write to stderr and warn on every call.

    Every top-level function defined in a code answer is wrapped; markdown answers are left
    alone. Grading must give these the same marks as the quiet originals.
    """
    out = {}
    for gid, source in answers.items():
        try:
            tree = ast.parse(source)
        except SyntaxError:
            out[gid] = source  # a written (markdown) answer
            continue
        names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        if not names:
            out[gid] = source
            continue
        wraps = "\n".join(f"{name} = _noisy({name})" for name in names)
        out[gid] = source + NOISE + wraps + "\n"
    return out


def load_definition_bugs(path: str | Path, answers: Mapping[str, str]) -> list[Mutant]:
    """Bugs written as whole definitions (``[[bug]]`` tables: name, target, source, description).

    Each replaces the reference's top-level ``def``/``class`` called ``target`` by ``source``,
    in the one answer cell that defines it; such bugs can be written from the exercise text
    alone, without the reference at hand (``tests/blind_bugs/``). They declare no ``caught_by``
    and no diagnosis: what each message names is judged separately.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        entries = tomllib.load(fh).get("bug", [])
    bugs, seen = [], set()
    for i, entry in enumerate(entries):
        missing = {"name", "target", "source"} - set(entry)
        if missing:
            raise ValueError(f"{path}: bug #{i + 1} lacks {sorted(missing)}")
        if entry["name"] in seen:
            raise ValueError(f"{path}: two bugs are called {entry['name']!r}")
        seen.add(entry["name"])
        cell, find = _definition(answers, entry["target"], f"{path}: bug {entry['name']!r}")
        bugs.append(Mutant(name=entry["name"], cell=cell, find=find,
                           replace=entry["source"].strip("\n"), caught_by=(),
                           description=entry.get("description", "")))
    return bugs


def _definition(answers: Mapping[str, str], target: str, who: str) -> tuple[str, str]:
    """``(answer cell, exact source text)`` of the top-level definition of ``target``."""
    found = []
    for cell, source in answers.items():
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # a written (markdown) answer
        lines = source.split("\n")
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == target:
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                found.append((cell, "\n".join(lines[start - 1:node.end_lineno])))
    if len(found) != 1:
        where = ", ".join(c for c, _ in found) or "no answer cell"
        raise ValueError(f"{who}: {target!r} must be defined in exactly one answer cell "
                         f"(found: {where})")
    return found[0]
