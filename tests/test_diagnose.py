import numpy as np
import pytest

from grader import diagnose as dx


def test_catalogue_phrases_are_short_distinct_single_lines():
    assert len(dx.CATALOGUE) >= 30
    assert len(set(dx.CATALOGUE)) == len(dx.CATALOGUE)
    for phrase in dx.CATALOGUE:
        assert phrase and "\n" not in phrase and dx.MARKER not in phrase, phrase
        assert len(phrase) <= 90, phrase
        assert dx.causes_in(dx.cause(phrase)) == [phrase]
    assert dx.NOT_DIVIDED_BY_N == "the gradient is not divided by the batch size n"


def test_cause_refuses_phrases_that_would_not_read_back():
    for bad in ("", "two\nlines", "likely cause: nested"):
        with pytest.raises(ValueError):
            dx.cause(bad)


def test_causes_in_reads_every_marker_to_the_end_of_its_line():
    text = "x differs\nlikely cause: the bias is left out.\nmore\nlikely cause:  second one "
    assert dx.causes_in(text) == ["the bias is left out", "second one"]
    assert dx.causes_in("no marker here") == [] and dx.causes_in(None) == []
    assert dx.with_cause("msg", None) == "msg"
    assert dx.with_cause("msg", "p") == "msg\nlikely cause: p"


def test_names_allows_trailing_detail_but_not_a_longer_word():
    assert dx.names("the bias is left out", "the bias is left out")
    assert dx.names("the bias is left out (in predict)", "the bias is left out")
    assert not dx.names("the bias is left outside", "the bias is left out")
    assert not dx.names("the bias", "the bias is left out")


def test_close_compares_shapes_and_nan():
    assert dx.close(np.array([1.0, np.nan]), np.array([1.0, np.nan]), 1e-6, 1e-8)
    assert not dx.close(np.zeros(3), np.zeros((3, 1)), 1e-6, 1e-8)
    assert dx.close(np.array([2.0]), 2.0, 1e-6, 1e-8)
    assert not dx.close(None, 1.0, 1e-6, 1e-8) and not dx.close("1", 1.0, 1e-6, 1e-8)


def test_matching_cause_needs_exactly_one_distinguishable_variant():
    bugs = {"a": np.array([2.0, 4.0]), "b": np.array([1.0, 3.0]), "same": np.array([1.0, 2.0])}
    expected = np.array([1.0, 2.0])
    assert dx.matching_cause(np.array([2.0, 4.0]), expected, bugs, 1e-6, 1e-8) == "a"
    assert dx.matching_cause(np.array([9.0, 9.0]), expected, bugs, 1e-6, 1e-8) is None
    assert dx.matching_cause(expected, expected, bugs, 1e-6, 1e-8) is None
    twins = {"a": np.array([2.0, 4.0]), "c": np.array([2.0, 4.0])}
    assert dx.matching_cause(np.array([2.0, 4.0]), expected, twins, 1e-6, 1e-8) is None


def test_exact_multiple_and_its_description():
    e = np.array([1.0, -2.0, 3.0])
    assert dx.exact_multiple(4 * e, e) == pytest.approx(4.0)
    assert dx.exact_multiple(e, e) is None
    assert dx.exact_multiple(4 * e + [0, 0, 1e-3], e) is None
    assert dx.exact_multiple(np.zeros(3), e) is None
    assert dx.describe_multiple(-1.0) == " (exactly -1 times the expected value)"
    assert dx.describe_multiple(0.125, scalar=True) == " (exactly 1/8 times the expected value)"
    assert dx.describe_multiple(1.37, scalar=True) == ""
    assert "1.37" in dx.describe_multiple(1.37)


def test_sure_cause_needs_two_probes_that_each_separate_the_variant():
    e1, e2 = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    b1 = {"a": 2 * e1, "b": e1 + 1}
    b2 = {"a": 2 * e2, "b": e2 + 1}
    assert dx.sure_cause([(2 * e1, e1, b1), (2 * e2, e2, b2)], 1e-6, 1e-8) == "a"
    assert dx.sure_cause([(2 * e1, e1, b1)], 1e-6, 1e-8) is None  # one probe: never sure
    # b on probe 1, a on probe 2: no one cause explains both
    assert dx.sure_cause([(e1 + 1, e1, b1), (2 * e2, e2, b2)], 1e-6, 1e-8) is None
    # collision: on probe 1 "a" and "b" give the same values; probe 2 separates them
    c1 = {"a": np.array([2.0, 3.0]), "b": np.array([2.0, 3.0])}
    assert dx.sure_cause([(c1["a"], e1, c1), (e2 + 1, e2, b2)], 1e-6, 1e-8) == "b"
    # a variant indistinguishable from the answer on a probe proves nothing
    same = {"a": e2}
    assert dx.sure_cause([(2 * e1, e1, b1), (e2, e2, same)], 1e-6, 1e-8) is None
    # a student right on a probe matches no bug there
    assert dx.sure_cause([(2 * e1, e1, b1), (e2, e2, b2)], 1e-6, 1e-8) is None
