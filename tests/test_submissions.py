import nbformat
import numpy as np
import pytest

from grader.course.authoring import answer, markdown, notebook, written_answer
from grader.course.authoring import tests as grade_cell
from grader.course.release import release_notebook
from grader.course.submissions import (
    Mutant,
    answer_cell_ids,
    autograded_test_points,
    fill,
    half_done_answers,
    is_autograded_test,
    load_definition_bugs,
    load_mutants,
    make_noisy,
    mutate,
    nbgrader_meta,
    reference_answers,
    strip_solution_markers,
    without_trailing_experiments,
)

from .conftest import ASSIGNMENTS, ROOT

SOURCE = notebook(
    [
        markdown("# t"),
        answer("f", "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
        grade_cell("test_f", 2, "assert f(1) == 2"),
        written_answer("why", 1, "Because."),
    ]
)


def test_reference_answers_strip_markers():
    answers = reference_answers(SOURCE)
    assert answers == {"f": "def f(x):\n    return 2 * x", "why": "Because."}
    assert strip_solution_markers("no markers") == "no markers"
    assert answer_cell_ids(SOURCE) == ["f", "why"]
    assert autograded_test_points(SOURCE) == {"test_f": 2.0}


def test_half_done_answers_the_first_half_of_the_methods():
    cls = (
        "class M:\n"
        "    def a(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n"
        "\n"
        "    def b(self):\n        ### BEGIN SOLUTION\n        return 2\n        ### END SOLUTION\n"
        "\n"
        "    def c(self):\n        ### BEGIN SOLUTION\n        return 3\n        ### END SOLUTION"
    )
    src = notebook([answer("M", cls), written_answer("q1", 1, "A1."),
                    written_answer("q2", 1, "A2.")])
    answers = half_done_answers(src)
    ns = {}
    exec(answers["M"], ns)
    m = ns["M"]()
    assert m.a() == 1  # 3 regions: the first one answered
    for method in (m.b, m.c):
        with pytest.raises(NotImplementedError):
            method()
    assert "BEGIN SOLUTION" not in answers["M"] and "return 2" not in answers["M"]
    assert answers["q1"] == "A1." and "q2" not in answers


def test_fill_replaces_only_named_cells_and_copies():
    filled = fill(SOURCE, {"f": "def f(x):\n    return 0"})
    assert filled.cells[1].source == "def f(x):\n    return 0"
    assert SOURCE.cells[1].source.startswith("def f(x):\n    ### BEGIN")  # original untouched
    with pytest.raises(KeyError, match="nope"):
        fill(SOURCE, {"nope": ""})


def test_mutate_requires_exactly_one_match():
    answers = reference_answers(SOURCE)
    m = Mutant("double", "f", "2 * x", "3 * x", ("test_f",))
    assert mutate(answers, m)["f"].endswith("3 * x")
    with pytest.raises(ValueError, match="0 times"):
        mutate(answers, Mutant("gone", "f", "4 * x", "x", ()))
    with pytest.raises(KeyError):
        mutate(answers, Mutant("nocell", "g", "x", "y", ()))


def test_load_mutants_validates(tmp_path):
    good = tmp_path / "a.mutants.toml"
    good.write_text(
        '[[mutant]]\nname = "m"\ncell = "f"\nfind = "a"\nreplace = "b"\ncaught_by = ["t"]\n'
    )
    (m,) = load_mutants(good)
    assert m.caught_by == ("t",)
    bad = tmp_path / "b.mutants.toml"
    bad.write_text('[[mutant]]\nname = "m"\ncell = "f"\n')
    with pytest.raises(ValueError, match="lacks"):
        load_mutants(bad)
    dup = tmp_path / "c.mutants.toml"
    dup.write_text(good.read_text() * 2)
    with pytest.raises(ValueError, match="duplicate"):
        load_mutants(dup)


def test_noisy_answers_behave_identically_but_write_stderr(capsys):
    answers = {"f": "import numpy as np\n\ndef f(x):\n    return np.sum(x) * 2", "w": "Prose."}
    noisy = make_noisy(answers)
    assert noisy["w"] == "Prose."
    quiet_ns, noisy_ns = {}, {}
    exec(answers["f"], quiet_ns)
    exec(noisy["f"], noisy_ns)
    x = np.arange(4.0)
    with pytest.warns(RuntimeWarning, match="harmless"):
        assert noisy_ns["f"](x) == quiet_ns["f"](x)
    assert "debug: calling f" in capsys.readouterr().err


def test_authoring_cells_round_trip_through_nbformat(tmp_path):
    from grader.course.authoring import HIDDEN_NOTE, save

    src = "assert True\n### BEGIN HIDDEN TESTS\nx = 1\n### END HIDDEN TESTS"
    nb = notebook([grade_cell("t", 1, src)])
    assert HIDDEN_NOTE in nb.cells[0].source
    save(nb, tmp_path / "n.ipynb")
    back = nbformat.read(tmp_path / "n.ipynb", as_version=4)
    assert back.cells[0].metadata["nbgrader"]["points"] == 1


def test_definition_bugs_replace_one_whole_definition(tmp_path):
    answers = {"f": "import math\n\n@staticmethod\ndef f(x):\n    return 2 * x\n\nY = 1",
               "why": "Because."}
    corpus = tmp_path / "bugs.toml"
    corpus.write_text('[[bug]]\nname = "plus"\ntarget = "f"\ndescription = "adds"\n'
                      "source = \'\'\'\ndef f(x):\n    return x + 2\n\'\'\'\n")
    [bug] = load_definition_bugs(corpus, answers)
    assert (bug.cell, bug.caught_by, bug.diagnosis) == ("f", (), None)
    assert mutate(answers, bug)["f"] == "import math\n\ndef f(x):\n    return x + 2\n\nY = 1"


@pytest.mark.parametrize("target, message", [("g", "no answer cell"), ("Y", "no answer cell")])
def test_definition_bug_needs_a_defined_target(tmp_path, target, message):
    corpus = tmp_path / "bugs.toml"
    corpus.write_text(f'[[bug]]\nname = "b"\ntarget = "{target}"\nsource = "def g(): pass"\n')
    with pytest.raises(ValueError, match=message):
        load_definition_bugs(corpus, {"f": "def f(x):\n    return x"})


def test_definition_bugs_have_unique_names(tmp_path):
    corpus = tmp_path / "bugs.toml"
    corpus.write_text('[[bug]]\nname = "b"\ntarget = "f"\nsource = "def f(x): pass"\n' * 2)
    with pytest.raises(ValueError, match="two bugs are called 'b'"):
        load_definition_bugs(corpus, {"f": "def f(x):\n    return x"})


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_trimming_drops_only_plain_code_cells_after_the_last_test(assignment):
    nb = nbformat.read(release_notebook(ROOT, assignment), as_version=4)
    before = len(nb.cells)
    kept, dropped, k = without_trailing_experiments(nb).cells, [], 0
    for i, cell in enumerate(nb.cells):  # the kept cells are the notebook's, in order
        if k < len(kept) and kept[k] == cell:
            k += 1
        else:
            dropped.append(i)
    assert k == len(kept) and len(nb.cells) == before  # a subsequence; nb itself unchanged
    last_test = max(i for i, c in enumerate(nb.cells) if is_autograded_test(c))
    assert dropped, "nothing trimmed: the gates would pay for every experiment"
    assert all(i > last_test and nb.cells[i].cell_type == "code"
               and not nbgrader_meta(nb.cells[i]) for i in dropped), dropped
