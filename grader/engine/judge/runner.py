"""The judge's side: run a notebook's test cells against a student process it cannot trust.

:class:`Judge` executes the ``import`` statements of the notebook's locked setup cells in its
own namespace, then each test cell (``run_test_cell``) in that namespace. Before a cell runs,
every global name it reads but does not bind itself is fetched from the student process
(``lookup``), except builtins, names the setup imports bind, and ``_``-names bound by an earlier
test cell. A student function, class or object arrives as a
:class:`~grader.engine.judge.proxy.Remote`; data arrives by value; a student *module* is replaced by
the judge's own import of the same name when it is on :data:`TRUSTED_MODULES`, else the cell fails.
A name the student does not have is left unbound, so the cell fails with an ordinary ``NameError``.

``assert_no_loops(fn)`` reads ``fn``'s source: for a Remote the judge takes the source from the
notebook's submitted code cells (``sources``, cell order, last definition wins), found by the
name the function was fetched under (``hinge_loss``, ``Linear.forward``), and compiles it
without running it (the grader's own check then reads the compiled code object).

:func:`serve_student` is the student process's side: it answers lookups from the student's
namespace and the judge's calls until the judge ends the cell.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import linecache
import re
import symtable
import types
from collections.abc import Mapping

from grader import checks
from grader.diagnose import fail
from grader.engine.judge.base import DEFAULT_LIMITS, Limits, ProtocolError
from grader.engine.judge.proxy import JUDGE_MODULE, JudgeObject, Remote, judge_policy
from grader.engine.judge.rpc import Endpoint, HandleTable

#: Student modules a test cell may use (the judge imports its own copy): roots of dotted names.
TRUSTED_MODULES = frozenset({
    "numpy", "math", "cmath", "grader", "itertools", "functools", "collections", "statistics",
    "operator", "string", "re", "json", "fractions", "decimal", "numbers", "dataclasses",
    "typing", "copy", "textwrap", "heapq", "bisect", "random", "time", "warnings",
})
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_BUILTINS = frozenset(dir(builtins))
_original_assert_no_loops = checks.assert_no_loops
_DEFS = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def judge_endpoint(conn, limits: Limits = DEFAULT_LIMITS) -> Endpoint:
    return Endpoint(conn, HandleTable(judge_policy), Remote, limits=limits)


def student_endpoint(conn, limits: Limits = DEFAULT_LIMITS) -> Endpoint:
    ep = Endpoint(conn, HandleTable(), JudgeObject, limits=limits)
    ep.report_all = True  # SystemExit or a timeout in student code fails the judge's call
    ep.write_back_reads = True  # model.W[...] -= g changes the judge's model, as in one process
    return ep


def serve_student(endpoint: Endpoint, user_ns: Mapping) -> None:
    """Answer the judge for one test cell: lookups in ``user_ns``, calls, attributes."""

    def lookup(name: str) -> tuple:
        if name not in user_ns:
            return ("missing",)
        value = user_ns[name]
        if isinstance(value, types.ModuleType):
            return ("module", str(getattr(value, "__name__", "")))
        return ("value", value)

    endpoint.lookup = lookup
    endpoint.serve_until_end()


def _strip_magics(source: str) -> str:
    """IPython magics and shell lines become blank lines (line numbers stay)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def _trusted_imports(source: str, ns: dict) -> set[str]:
    """Run the top-level import statements of ``source`` in ``ns``; the names they bind."""
    tree = ast.parse(_strip_magics(source))
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    exec(compile(ast.Module(imports, []), "<setup imports>", "exec"), ns)
    return {(a.asname or a.name).split(".")[0] for n in imports for a in n.names}


def cell_names(source: str) -> tuple[set[str], set[str]]:
    """``(read, bound)``: global names the cell reads (any scope), names it binds at top level."""
    top = symtable.symtable(source, "<test cell>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    read: set[str] = set()
    stack = [top]
    while stack:
        table = stack.pop()
        stack.extend(table.get_children())
        read |= {s.get_name() for s in table.get_symbols()
                 if s.is_referenced() and (table is top or s.is_global())}
    return read - bound, bound


def _import_trusted(name: str) -> types.ModuleType:
    if not _DOTTED.match(name) or name.split(".")[0] not in TRUSTED_MODULES:
        raise ImportError(f"the test uses the module {name[:80]!r} of the notebook, which the "
                          "judge does not import (trusted: numpy, grader, the standard library)")
    return importlib.import_module(name)


class Judge:
    def __init__(self, endpoint: Endpoint, trusted_imports: str,
                 sources: Mapping[str, str] | None = None):
        self.ep = endpoint
        self.ns: dict = {"__name__": JUDGE_MODULE, "__builtins__": builtins}
        self.setup_names = _trusted_imports(trusted_imports, self.ns)
        self.test_names: set[str] = set()
        endpoint.student_sources = dict(sources or {})
        checks.assert_no_loops = assert_no_loops  # `from grader.checks import ...` gets it too
        if self.ns.get("assert_no_loops") is _original_assert_no_loops:
            self.ns["assert_no_loops"] = assert_no_loops

    def _fetch(self, name: str) -> None:
        answer = self.ep.request("lookup", None, name)
        if type(answer) is not tuple or not answer or answer[0] not in (
                "missing", "module", "value"):
            raise ProtocolError("malformed lookup answer")
        if answer[0] == "missing":
            self.ns.pop(name, None)
        elif answer[0] == "module":
            self.ns[name] = _import_trusted(str(answer[1]) if len(answer) > 1 else "")
        else:
            value = answer[1] if len(answer) > 1 else None
            if isinstance(value, Remote):
                object.__setattr__(value, "_dl_path", (name,))
            self.ns[name] = value

    def run_test_cell(self, source: str) -> None:
        """Run one test cell; returns when it passed, raises what made it fail."""
        bound: set[str] = set()
        try:
            code = compile(source, "<test cell>", "exec", dont_inherit=True)
            read, bound = cell_names(source)
            for name in sorted(read):
                if name in _BUILTINS or name in self.setup_names or (
                        name.startswith("_") and name in self.test_names):
                    continue
                self._fetch(name)
            exec(code, self.ns)
        finally:
            self.test_names |= {n for n in bound if n.startswith("_") and n in self.ns}
            if not self.ep.broken:
                self.ep.end_session()
        self.ep.check()  # a cell that swallowed a ProtocolError still fails


# ----------------------------------------------------------------------------- source checks


def _find_definition(sources: Mapping[str, str], path: tuple[str, ...]) -> tuple[str, str]:
    """``(source, name)`` of the last definition of ``path`` (``f``, ``Class.method``)."""
    found = None
    for cell in sources.values():
        text = _strip_magics(cell)
        try:
            nodes = ast.parse(text).body
        except SyntaxError:
            continue
        for step in path:
            nodes = [n for n in nodes if isinstance(n, _DEFS) and n.name == step]
            if not nodes:
                break
            last = nodes[-1]
            nodes = last.body if step != path[-1] else nodes
        else:
            found = (ast.get_source_segment(text, last), last.name)
    if found is None or not path:
        raise OSError("its definition is not in the notebook's code cells")
    return found


def _code_of(path: tuple[str, ...], sources: Mapping[str, str]) -> types.CodeType:
    segment, name = _find_definition(sources, path)
    filename = f"<notebook: {'.'.join(path)}>"
    linecache.cache[filename] = (len(segment), None, segment.splitlines(True), filename)
    code = compile(segment, filename, "exec", dont_inherit=True)  # compiled, never run
    return next(c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name == name)


def assert_no_loops(fn, name: str | None = None) -> None:
    """:func:`grader.checks.assert_no_loops`, reading a student function's source from the
    notebook's code cells when ``fn`` is a :class:`Remote`."""
    __tracebackhide__ = True
    if not isinstance(fn, Remote):
        return _original_assert_no_loops(fn, name)
    path = tuple(p for p in fn._dl_path if p != "()")
    label = name or ".".join(path) or "function"
    try:
        code = _code_of(path, getattr(fn._dl_ep, "student_sources", {}))
    except (OSError, SyntaxError, ValueError, StopIteration) as exc:
        fail(AssertionError(f"cannot read the source of {label}: {exc}"))
    return _original_assert_no_loops(code, label)
