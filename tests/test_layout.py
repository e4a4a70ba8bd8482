"""The folders are the audiences, and imports run one way between them.

``grader/`` holds three parts (README, Layout):

* the student's library, at the top of ``grader/`` (what notebooks import, and ``dlcheck``);
* ``grader/engine/``, the sandboxed grading engine, which may use the student library (the judge
  runs test cells that call ``grader.checks``);
* ``grader/course/``, the instructor's tools, which may use both; ``grader/__main__.py``
  (``python -m grader``) is the instructor's command line and counts as theirs.

Every import is read, those inside functions too, and none may run the wrong way; nor may any
modules import each other in a loop, however far round.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

#: Which part may import which (a part may always import itself).
ALLOWED = {"student": set(), "engine": {"student"}, "course": {"engine", "student"}}


def module_name(package_root: Path, path: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part(module: str) -> str:
    """``student``, ``engine`` or ``course``: the audience a ``grader`` module serves."""
    if module.startswith("grader.course") or module == "grader.__main__":
        return "course"
    if module.startswith("grader.engine"):
        return "engine"
    return "student"


def modules(package_root: Path) -> dict[str, Path]:
    """``{module name: file}`` of every module of the package at ``package_root``."""
    return {module_name(package_root, p): p for p in sorted(package_root.rglob("*.py"))}


def imports(package_root: Path) -> dict[str, set[str]]:
    """``{module: the package's modules it imports}``, at any depth of its code.

    ``from a.b import c`` names the module ``a.b.c`` when there is one, else ``a.b`` itself;
    relative imports are resolved against the importing module's package.
    """
    known = modules(package_root)
    top = package_root.name
    found: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for a in node.names:
                    full = f"{base}.{a.name}"
                    targets.add(full if full in known else base)
        found[name] = {t for t in targets if t == top or t.startswith(top + ".")} - {name}
    return found


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b (part -> part)`` for every import that runs against :data:`ALLOWED`."""
    return [f"{a} -> {b} ({part(a)} -> {part(b)})" for a in sorted(graph)
            for b in sorted(graph[a])
            if part(b) != part(a) and part(b) not in ALLOWED[part(a)]]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other in a loop (Tarjan's components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_imports_run_one_way():
    assert wrong_way(imports(ROOT / "grader")) == []


def test_no_module_imports_itself_round_a_loop():
    assert cycles(imports(ROOT / "grader")) == []


def test_every_module_is_read():
    graph = imports(ROOT / "grader")
    assert {"grader.checks", "grader.selfcheck", "grader.course.cli", "grader.engine.worker",
            "grader.engine.judge.runner", "grader.__main__"} <= graph.keys()
    assert "grader.engine.judge.processes" in graph["grader.engine.fork_server"]  # lazy import


def _fake(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "grader"
    for rel, text in {"__init__.py": "", "course/__init__.py": "", "engine/__init__.py": "",
                      **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_wrong_way_import_is_caught_even_inside_a_function(tmp_path):
    root = _fake(tmp_path, {
        "checks.py": "def f():\n    from grader.engine import sandbox\n",
        "selfcheck.py": "from . import checks\n\ndef g():\n    from .course.cli import main\n",
        "engine/sandbox.py": "import grader.checks\n",
        "engine/worker.py": "def h():\n    import grader.course.cli\n",
        "course/cli.py": "from grader.engine import worker\nfrom grader import selfcheck\n",
    })
    assert wrong_way(imports(root)) == [
        "grader.checks -> grader.engine.sandbox (student -> engine)",
        "grader.engine.worker -> grader.course.cli (engine -> course)",
        "grader.selfcheck -> grader.course.cli (student -> course)",
    ]


def test_a_cycle_is_caught_however_far_round(tmp_path):
    root = _fake(tmp_path, {
        "engine/worker.py": "from grader.engine.fork_server import Zygote\n",
        "engine/fork_server.py": "def serve():\n    from grader.engine import notebook_process\n",
        "engine/notebook_process.py": "def run():\n    from .worker import Limits\n",
        "engine/job.py": "",
    })
    assert cycles(imports(root)) == [["grader.engine.fork_server", "grader.engine.notebook_process",
                                      "grader.engine.worker"]]
