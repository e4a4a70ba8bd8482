"""Diagnoses generalise to bugs nobody catalogued.

``tests/blind_bugs/<assignment>.toml`` holds bugs written from the release notebook's text alone,
by someone who never saw the reference, the mutants files or the cause catalogue: each replaces
one definition a student writes. A sample of each (:func:`tests.conftest.blind_sample`) is handed
in to the session's shared graded class (``gates_class``), next to the declared mutants. The gate:

* every bug loses points;
* no message names a cause the bug does not have. What each bug does have was judged by reading
  the bug: ``<assignment>.verdicts.toml`` lists, per bug, the causes a message may name for it
  (``accept``) and why. A cause named but not listed fails the test: either the diagnosis is wrong
  (fix it) or the judgement is missing (add it, with its reason);
* at least 70 % of the bugs are *named* (an accepted cause) or *localised* (the message says which
  output, which entries or which line differs, by how much or how).

The table printed at the end gives caught / right cause / wrong cause / localised per notebook.
"""

from __future__ import annotations

import re
import tomllib
from typing import NamedTuple

import nbformat
import pytest

from grader.course.mutants import MutantOutcome, bug_outcomes
from grader.course.release import release_notebook, source_notebook
from grader.course.submissions import fill, load_definition_bugs, mutate, reference_answers

from .conftest import ASSIGNMENTS, BLIND_BUGS, ROOT, add_report, blind_sample

#: What a message says when it localises a failure: which value differs from what (entries,
#: shape, type, a value against its expected one), or which line of the student's code raised.
LOCALISED = re.compile(
    r"differs from the expected value|expected|has shape|should be (a|an) |modified its argument"
    r"|must be vectorised|NaN/inf|raised .* line|line \d+|forget to `return`|worst entry"
    r"|must (stay|be|keep|not|visit|return)"
)
MIN_BUGS = 20
MIN_NAMED_OR_LOCALISED = 0.70


def verdicts(assignment: str) -> dict[str, dict]:
    path = BLIND_BUGS / f"{assignment}.verdicts.toml"
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def blind_bugs(assignment: str, answers: dict[str, str] | None = None) -> list:
    """The sample of ``assignment``'s blind bugs graded here, as mutants of the reference."""
    corpus = BLIND_BUGS / f"{assignment}.toml"
    if not corpus.exists():
        return []
    if answers is None:
        answers = reference_answers(nbformat.read(source_notebook(ROOT, assignment), as_version=4))
    return blind_sample(load_definition_bugs(corpus, answers))


def gate_submissions(assignment: str) -> dict:
    """What this gate hands in to the shared class: each sampled blind bug in the reference."""
    answers = reference_answers(nbformat.read(source_notebook(ROOT, assignment), as_version=4))
    release = nbformat.read(release_notebook(ROOT, assignment), as_version=4)
    return {f"blind-{b.name}": fill(release, mutate(answers, b))
            for b in blind_bugs(assignment, answers)}


class Suite(NamedTuple):
    assignment: str
    extra: list[MutantOutcome]  # one outcome per sampled blind bug


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def suite(request, gates_class):
    corpus = BLIND_BUGS / f"{request.param}.toml"
    if not corpus.exists():
        pytest.fail(f"no blind bug corpus for {request.param}: write {corpus}")
    rep = Suite(request.param,
                bug_outcomes(gates_class, request.param, blind_bugs(request.param), "blind-"))
    add_report(table(rep.assignment, rep.extra, verdicts(rep.assignment)))
    return rep


def wrong_causes(outcome: MutantOutcome, judged: dict[str, dict]) -> list[str]:
    accept = set(judged.get(outcome.mutant.name, {}).get("accept", []))
    return [c for c in outcome.named if c not in accept]


def localised(outcome: MutantOutcome) -> bool:
    return any(LOCALISED.search(t) for texts in outcome.messages.values() for t in texts)


def category(outcome: MutantOutcome, judged: dict[str, dict]) -> str:
    if not outcome.caught:
        return "MISSED"
    if wrong_causes(outcome, judged):
        return "WRONG CAUSE"
    if outcome.named:
        return "right cause"
    return "localised" if localised(outcome) else "generic"


def table(assignment: str, outcomes: list[MutantOutcome], judged: dict[str, dict]) -> str:
    lines = [f"Blind bugs of {assignment}:"]
    width = max([len(o.mutant.name) for o in outcomes] + [4])
    for o in outcomes:
        first = next((t for texts in o.messages.values() for t in texts), "")
        first = first.splitlines()[0][:110] if first else "-"
        lines.append(f"  {o.mutant.name:<{width}}  {category(o, judged):<11}  "
                     f"{', '.join(sorted(o.zeroed)) or '-'}: {first}")
    counts = {k: sum(category(o, judged) == k for o in outcomes)
              for k in ("right cause", "localised", "generic", "WRONG CAUSE", "MISSED")}
    n = len(outcomes) or 1
    share = (counts["right cause"] + counts["localised"]) / n
    lines.append(f"  bugs {len(outcomes)}, caught {len(outcomes) - counts['MISSED']}, "
                 + ", ".join(f"{k} {v}" for k, v in counts.items() if k != "MISSED")
                 + f"; named or localised {share:.0%}")
    return "\n".join(lines)


def test_corpus_is_large_enough(suite):
    assert len(suite.extra) >= MIN_BUGS, f"{len(suite.extra)} blind bugs, want {MIN_BUGS}"


def test_every_blind_bug_loses_points(suite):
    missed = [o.mutant.name for o in suite.extra if not o.caught]
    assert not missed, f"blind bugs that keep full marks (or could not be graded): {missed}"


def test_no_blind_bug_gets_a_wrong_cause(suite):
    judged = verdicts(suite.assignment)
    wrong = {o.mutant.name: wrong_causes(o, judged) for o in suite.extra}
    assert not {k: v for k, v in wrong.items() if v}, wrong


def test_verdicts_name_real_bugs(suite):
    """A judgement about a bug that is no longer in the corpus is stale."""
    names = {o.mutant.name for o in suite.extra}
    stale = sorted(set(verdicts(suite.assignment)) - names)
    assert not stale, f"verdicts for bugs not in the corpus: {stale}"


def test_most_bugs_are_named_or_localised(suite):
    judged = verdicts(suite.assignment)
    good = [o for o in suite.extra if category(o, judged) in ("right cause", "localised")]
    share = len(good) / len(suite.extra)
    assert share >= MIN_NAMED_OR_LOCALISED, table(suite.assignment, suite.extra, judged)


def dump(assignment: str) -> list[dict]:
    """Grade only the blind bugs of ``assignment`` and describe each outcome (to judge them:
    ``python -m tests.test_blind_bugs <assignment>`` prints JSON)."""
    from grader.course.trial import grade_trial

    trial = grade_trial(ROOT, {assignment: gate_submissions(assignment)})
    judged = verdicts(assignment)
    return [{"name": o.mutant.name, "description": o.mutant.description,
             "category": category(o, judged), "zeroed": sorted(o.zeroed), "named": o.named,
             "messages": o.messages}
            for o in bug_outcomes(trial, assignment, blind_bugs(assignment), "blind-")]


if __name__ == "__main__":
    import json
    import sys

    for a in sys.argv[1:]:
        print(json.dumps({a: dump(a)}, indent=1))
