"""The course's website in a real browser: every page served on 127.0.0.1, in Chromium.

``make site`` builds the site of every lesson in full mode (tools/build_site.py).
This test builds the same site, with the same code, from a subset of the
lessons in fast mode, to fit the suite's time on CI: 00 (a plain lesson and a
figure), 01 (figures and a slider demo's static fallback), 02 (the most maths)
and 06 (the quiz's static page), about a minute of execution.  The other
lessons' notebooks already run in the suite (nbval); what this test adds is
the site, and every kind of page content is in the subset.  To check a whole
site as built, point the test at it: ``BNCOURSE_SITE=build/site/html
.venv/bin/python -m pytest tests/test_site.py`` (it reads the executed page
sources beside it, in ``build/site/src``).

On every page: no request fails and none leaves the machine (any other host
is blocked and reported), no raw ``$$``, ``\\frac`` or ``<!--`` is visible
outside the code cells, every image is loaded, every formula is typeset by
MathJax (each lesson page has some, and they are counted), and every figure
of the page's notebook is on it.  The quiz page lists every question of the
bank with its answer folded.  Screenshots go to ``test-output/site_*.png``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from helpers import course, quiz

from .conftest import ROOT
from .test_browser import CHROMIUM, CHROMIUM_FLAGS, PATIENCE_MS

SUBSET = ("00", "01", "02", "06")
SHOTS = ROOT / "test-output"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="Chromium is not installed (apt-get install chromium; .ci/run does it)",
    ),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site's HTML folder: built here from the subset, or BNCOURSE_SITE's."""
    given = os.environ.get("BNCOURSE_SITE", "").strip()
    if given:
        html = Path(given).resolve()
        assert (html / "index.html").exists(), f"no site in {html}"
        return html
    pytest.importorskip("myst_nb", reason="make test installs requirements-site.txt")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, BNCOURSE_FAST="1")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "build_site.py"),
            "--out",
            str(out),
            "--lessons",
            ",".join(SUBSET),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return out / "html"


@pytest.fixture(scope="module")
def served(site):
    """The site on a free loopback port, as a static host serves it."""
    handler = functools.partial(
        type(
            "Quiet",
            (http.server.SimpleHTTPRequestHandler,),
            {"log_message": lambda *a: None},
        ),
        directory=str(site),
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _lessons(site: Path) -> list[course.Lesson]:
    return [item for item in course.LESSONS if (site / f"{item.stem}.html").exists()]


def _answer_lines(lesson: course.Lesson) -> set[str]:
    """Code lines of the instructor's copy that the learner copy does not have:
    the answers, which the site must never show."""

    def lines(folder):
        nb = json.loads((ROOT / folder / lesson.filename).read_text())
        return {
            line.strip()
            for cell in nb["cells"]
            if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines()
            if len(line.strip()) > 20
        }

    return lines("solutions") - lines("notebooks")


def _figures(site: Path, lesson: course.Lesson) -> int:
    """How many figures the page's executed notebook holds (the page must show them)."""
    nb = json.loads((site.parent / "src" / lesson.filename).read_text())
    return sum(
        "image/png" in output.get("data", {})
        for cell in nb["cells"]
        for output in cell.get("outputs", [])
    )


# Everything shown outside the code cells' source (code may well hold a "$").
VISIBLE_TEXT = """() => {
  const style = document.createElement('style');
  style.textContent = '.cell_input { display: none !important; }';
  document.head.appendChild(style);
  const text = document.body.innerText;
  style.remove();
  return text;
}"""
MATHS = """() => {
  const maths = [...document.querySelectorAll('.math')];
  return {
    total: maths.length,
    typeset: maths.filter(m => m.querySelector('mjx-container')).length,
    containers: document.querySelectorAll('mjx-container').length,
  };
}"""
IMAGES = """() => [...document.images].map(i => ({
  src: i.getAttribute('src'),
  loaded: i.complete && i.naturalWidth > 0,
  figure: !!i.closest('.cell_output'),
}))"""


def _open(page, url: str, offsite: list, timeout_error) -> None:
    page.goto(url, wait_until="load")
    # MathJax (on the pages that have maths) typesets after load; its promise
    # settles when the page is done
    if page.locator("script[src*='mathjax']").count():
        try:
            page.wait_for_function(
                "() => window.MathJax && MathJax.startup", timeout=PATIENCE_MS
            )
        except timeout_error:
            pytest.fail(
                f"{url}: MathJax did not start; requests to other hosts: {offsite}"
            )
        page.evaluate("() => MathJax.startup.promise")


def _check_page(page, name: str) -> dict:
    """What every page must satisfy; returns its counts."""
    text = page.evaluate(VISIBLE_TEXT)
    for raw in ("$$", "\\frac", "<!--", "\\(", "interactive(children", "VBox("):
        assert raw not in text, (
            f"{name}: {raw!r} is visible: ...{_around(text, raw)}..."
        )
    assert "<!--=" not in page.content(), f"{name}: a quote marker is in the HTML"
    images = page.evaluate(IMAGES)
    broken = [i["src"] for i in images if not i["loaded"]]
    assert broken == [], f"{name}: images not loaded: {broken}"
    maths = page.evaluate(MATHS)
    assert maths["typeset"] == maths["total"], f"{name}: formulas left raw: {maths}"
    return {
        "figures": sum(i["figure"] for i in images),
        "formulas": maths["containers"],
    }


def _around(text: str, raw: str) -> str:
    at = text.index(raw)
    return text[max(0, at - 60) : at + 60]


def test_every_page_of_the_site_in_chromium(site, served, capsys):
    sync_api = pytest.importorskip("playwright.sync_api")
    lessons = _lessons(site)
    assert lessons, f"no lesson page in {site}"
    if not os.environ.get("BNCOURSE_SITE"):
        assert [item.number for item in lessons] == list(SUBSET)
    SHOTS.mkdir(exist_ok=True)
    requests, offsite, failed = [], [], []

    def route(r):
        url = r.request.url
        if url.startswith(served + "/") or url.startswith(("data:", "blob:")):
            r.continue_()
        else:  # nothing leaves the machine: blocked, and a failure of the test
            offsite.append(url)
            r.abort()

    counts = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(PATIENCE_MS)
        page.route("**/*", route)
        page.on("request", lambda r: requests.append(r.url))
        page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
        page.on(
            "response",
            lambda r: (
                failed.append(f"{r.url} (HTTP {r.status})") if r.status >= 400 else None
            ),
        )
        try:
            # the front page: the lesson table links every lesson, Colab and a download
            _open(page, f"{served}/index.html", offsite, sync_api.TimeoutError)
            counts["index"] = _check_page(page, "index")
            for lesson in lessons:
                row = page.locator("table tr", has_text=lesson.title).first
                assert row.locator(f"a[href='{lesson.stem}.html']").count() == 1
                assert row.locator("a[href*='colab.research.google.com']").count() == 1
                assert (
                    row.locator(f"a[href$='{lesson.filename}'][download]").count() == 1
                )
            page.screenshot(path=str(SHOTS / "site_index.png"), full_page=True)

            for lesson in lessons:
                name = lesson.stem
                _open(page, f"{served}/{name}.html", offsite, sync_api.TimeoutError)
                counts[name] = found = _check_page(page, name)
                # every figure of the notebook, loaded (checked above)
                assert found["figures"] == _figures(site, lesson), (name, found)
                # the header's links: Colab, the learner notebook as a download
                colab = course.colab_url("notebooks", lesson)
                assert page.locator(f"article a[href='{colab}']").count() >= 1, name
                download = page.locator(
                    f"article a[download][href$='{lesson.filename}']"
                )
                assert download.count() >= 1, name
                href = download.first.get_attribute("href")
                href = urllib.parse.urljoin(page.url, href)
                assert href.startswith(served + "/"), href  # page.request is not routed
                notebook = page.request.get(href)
                assert notebook.ok, name
                assert notebook.json()["metadata"]["bncourse"]["copy"] == "learner"
                # navigation to the next lesson (theme's footer), when it is built
                index = lessons.index(lesson)
                if index + 1 < len(lessons):
                    following = lessons[index + 1].stem
                    assert page.locator(
                        f"a.right-next[href='{following}.html']"
                    ).count()
                if lesson.number == "01":  # a slider demo: the note, not a widget
                    assert page.get_by_text("the slider is not live").count() == 1
                    assert found["figures"] > 0
                # the learner's copy: no answer's code, the stubs, their outputs
                code = page.locator(".cell_input").all_inner_texts()
                code = {line.strip() for block in code for line in block.splitlines()}
                assert code & _answer_lines(lesson) == set(), name
                if lesson.number == "02":  # an exercise: its stub, then its check
                    stub = page.locator(".cell_input", has_text="NotImplementedError")
                    stub.first.evaluate("e => e.scrollIntoView({block: 'start'})")
                    page.evaluate("() => window.scrollBy(0, -160)")
                    page.screenshot(path=str(SHOTS / "site_lesson.png"))
                if lesson.number == "06":
                    _check_quiz(page)
                    page.screenshot(path=str(SHOTS / "site_quiz.png"))
                else:  # each lesson typesets formulas (the quiz's are checked inside)
                    assert found["formulas"] > 0, (name, found)
        finally:
            browser.close()

    assert offsite == [], f"requests to other hosts: {offsite[:5]}"
    assert failed == [], f"failed requests: {failed[:5]}"
    assert any("/_static/mathjax/" in url for url in requests), "MathJax not loaded"
    assert any(".woff" in url for url in requests), "MathJax's fonts not loaded"
    with capsys.disabled():
        print("\nsite pages (figures, typeset formulas):")
        for name, found in counts.items():
            print(f"  {name}: {found['figures']} figures, {found['formulas']} formulas")


def _check_quiz(page) -> None:
    """The quiz's static page: every question of the bank, its answer folded."""
    bank = quiz.load_bank()
    boxes = page.locator(".bncourse-static-question")
    assert boxes.count() == len(bank)
    for question in bank:
        box = page.locator(f"#quiz-{question.id}")
        assert box.count() == 1, question.id
        options = box.locator("li:not(details li)")
        assert options.count() == len(question.options), question.id
    # folded: the explanation is hidden until its summary is clicked
    first = boxes.first.locator("details")
    answer = first.locator("p", has_text="Answer:")
    assert not answer.is_visible()
    first.locator("summary").click()
    assert answer.is_visible()
    boxes.first.scroll_into_view_if_needed()
    # every answer unfolded: no raw maths in the explanations either
    page.evaluate(
        "() => document.querySelectorAll('details').forEach(d => d.open = true)"
    )
    text = page.evaluate(VISIBLE_TEXT)
    assert text.count("Answer:") >= len(bank)
    for raw in ("$", "\\frac", "<!--"):
        assert raw not in text, f"quiz: {raw!r} is visible: ...{_around(text, raw)}..."
    page.evaluate(
        "() => document.querySelectorAll('details').forEach(d => d.open = false)"
    )
    first.locator("summary").click()
