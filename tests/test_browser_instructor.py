"""The instructor's pages in a real browser: a feedback page and the class report.

Headless Debian chromium through Playwright (tests/browser.py; skipped, saying what to install,
when chromium or Playwright is missing). Screenshots go to artifacts/ for CI.
"""

from __future__ import annotations

from tests.browser import browser_page, screenshot
from tests.test_reports import fabricate_course

NO_OVERFLOW = "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).length"


def test_feedback_page_renders_maths_and_whole_messages(tmp_path):
    from grader.course.feedback import write_feedback

    truth = fabricate_course(tmp_path, ["ada"], ["01_a"], seed=0,
                             graded_answers={("ada", "written_how"): 2.0})
    assert truth[("ada", "01_a")]["test_gradient"] == 0  # seed 0: that test fails
    page_path = write_feedback(tmp_path, "01_a", "ada") / "01_a.html"
    with browser_page(viewport=(900, 1000)) as page:
        page.goto(page_path.as_uri())
        text = page.inner_text("body")
        assert "$" not in text and "\\frac" not in text  # no raw LaTeX on screen
        maths = page.locator("math")
        assert maths.count() >= 3
        # laid out as maths: the numerator of 1/n sits above its denominator
        num = page.locator("mfrac > :first-child").first.bounding_box()
        den = page.locator("mfrac > :nth-child(2)").first.bounding_box()
        assert num["y"] + num["height"] <= den["y"] + 1
        errors = page.locator("pre.err")
        assert errors.count() >= 1 and errors.first.is_visible()
        assert "likely cause: the gradient is not divided by the batch size n" in text
        assert page.locator("pre").evaluate_all(NO_OVERFLOW) == 0  # wrapped, not cut
        assert page.get_by_text("Written answer — awaiting grading").first.is_visible()
        assert "Test: returns one number per example" in text
        screenshot(page, "instructor_feedback_page")


def test_class_report_shows_its_plots_and_causes(tmp_path):
    from grader.course.class_report import write_class_report

    fabricate_course(tmp_path, [f"s{i:02d}" for i in range(10)], ["01_a", "02_b"], seed=2,
                     missing={"s09": "02_b"})
    html_path, _ = write_class_report(tmp_path, [], 42.0)
    with browser_page() as page:
        page.goto(html_path.as_uri())
        images = page.locator("img")
        assert images.count() == 3  # distribution + one pass-rate chart per assignment
        sizes = images.evaluate_all("els => els.map(e => [e.complete, e.naturalWidth])")
        assert all(done and width > 100 for done, width in sizes)
        text = page.inner_text("body")
        assert "students: the gradient is not divided by the batch size n" in text
        assert "Not submitted: s09" in text and "last grade run: 42.0 s" in text
        screenshot(page, "instructor_class_report")
