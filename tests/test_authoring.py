"""The mechanical rules of docs/AUTHORING.md, checked on every graded test cell.

A test cell runs in the student's kernel and, when graded, in the judge, where student objects
are remote: these rules keep its meaning the same in both places. (Rule 1, the last line, is
checked in tests/test_selfcheck.py.)
"""

from __future__ import annotations

import ast

import nbformat
import pytest

from grader.course.release import source_notebook

from .conftest import ASSIGNMENTS, ROOT


def _test_cells(assignment: str):
    nb = nbformat.read(source_notebook(ROOT, assignment), as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            yield meta["grade_id"], cell.source


def _setup_names(assignment: str) -> set[str]:
    """Names the locked setup cells import (the judge imports them itself)."""
    nb = nbformat.read(source_notebook(ROOT, assignment), as_version=4)
    names = set()
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("locked") and not meta.get("grade"):
            src = "\n".join(ln for ln in cell.source.splitlines()
                            if not ln.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _targets(node: ast.AST):
    """Every assignment target of ``node`` (unpacking included)."""
    if isinstance(node, ast.Tuple | ast.List):
        for elt in node.elts:
            yield from _targets(elt)
    elif isinstance(node, ast.Starred):
        yield from _targets(node.value)
    else:
        yield node


def _base_is_attribute(node: ast.AST) -> bool:
    """``obj.attr[...]`` or ``obj.attr`` somewhere under a subscript chain."""
    while isinstance(node, ast.Subscript):
        node = node.value
        if isinstance(node, ast.Attribute):
            return True
    return False


def violations(source: str, setup: set[str]) -> list[str]:
    tree = ast.parse(source)
    scoped = {id(n) for d in ast.walk(tree)  # inside a class or function: local names
              if isinstance(d, ast.ClassDef | ast.FunctionDef | ast.Lambda)
              for n in ast.walk(d) if n is not d}
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in (x for tgt in targets for x in _targets(tgt)):
                if isinstance(t, ast.Name) and not t.id.startswith("_") \
                        and id(node) not in scoped:
                    found.append(f"line {line}: assigns {t.id!r} (rule 2: test names start "
                                 "with _)")
                if isinstance(t, ast.Subscript) and _base_is_attribute(t):
                    found.append(f"line {line}: assigns into an array read from an object "
                                 "(rule 3: assign the attribute)")
                if isinstance(node, ast.AugAssign) and isinstance(t, ast.Attribute):
                    found.append(f"line {line}: augmented assignment to an attribute "
                                 "(rule 3: assign a new value)")
        elif isinstance(node, ast.ClassDef):
            for base in node.bases:
                if isinstance(base, ast.Name) and not base.id.startswith("_") \
                        and base.id not in setup and base.id not in ("object", "Exception"):
                    found.append(f"line {line}: class {node.name} inherits from {base.id} "
                                 "(rule 5: no student base classes)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "shares_memory":
            found.append(f"line {line}: np.shares_memory (rule 7)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2:
            cls = node.args[1]
            names = cls.elts if isinstance(cls, ast.Tuple) else [cls]
            for n in names:
                if isinstance(n, ast.Name) and n.id[:1].isupper() and n.id not in setup:
                    found.append(f"line {line}: isinstance with {n.id} (rule 6)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("eval", "exec", "globals"):
            found.append(f"line {line}: {node.func.id}() (rule 6)")
    return found


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_test_cells_follow_the_judges_contract(assignment):
    setup = _setup_names(assignment)
    bad = [f"{gid}: {v}" for gid, src in _test_cells(assignment) for v in violations(src, setup)]
    assert not bad, "docs/AUTHORING.md rules broken:\n" + "\n".join(bad)


@pytest.mark.parametrize("source, rule", [
    ("W = 1", "rule 2"),
    ("_layer.W[0, 0] += 1e-5", "rule 3"),
    ("_layer.W[0] = 2", "rule 3"),
    ("_layer.W *= 2", "rule 3"),
    ("class _Fake(Module):\n    pass", "rule 5"),
    ("assert not np.shares_memory(_a, _b)", "rule 7"),
    ("assert isinstance(_net, Sequential)", "rule 6"),
])
def test_the_checker_catches_each_rule(source, rule):
    assert any(rule in v for v in violations(source, {"np"})), violations(source, {"np"})


def test_the_checker_accepts_the_allowed_forms():
    ok = ("_layer = Linear(2, 3, np.random.default_rng(0))\n_layer.W = np.ones((2, 3))\n"
          "class _Probe:\n    training = True\n_x = np.zeros(3)\n_x[0] = 1.0\n"
          "assert isinstance(_acc, float)\n")
    assert violations(ok, {"np"}) == []
