from grader.feedback import strip_hidden_region


def test_strip_hidden_region_keeps_visible_lines():
    src = "a = 1\n    ### BEGIN HIDDEN TESTS\n    secret()\n    ### END HIDDEN TESTS\nb = 2"
    out, found = strip_hidden_region(src, "# hidden")
    assert found
    assert out == "a = 1\n    # hidden\nb = 2"
    assert "secret" not in out


def test_strip_hidden_region_no_region():
    out, found = strip_hidden_region("a = 1", "# hidden")
    assert (out, found) == ("a = 1", False)
