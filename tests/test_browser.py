"""The quiz in a real browser: JupyterLab driven by Playwright in headless Chromium.

Runs when Debian's Chromium is installed (``.ci/run`` installs it, so CI always
runs this test) and skips with a reason otherwise.  The browser that
Playwright would download is not used: it cannot be downloaded here.

Every selector is scoped to the notebook's output area: a selector such as
``text=Correct!`` would also match the *source code* of a cell, and a test that
can pass while the widget shows the wrong thing proves nothing.  The test also
clicks a wrong answer first and checks the wrong-answer feedback.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers import quiz

from .conftest import ROOT

# waits that only a hung program exceeds: a busy CI machine (the suite runs two
# files at once, and other jobs may share the cores) must never fail them
PATIENCE_MS = 600_000

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
OUTPUT = ".jp-NotebookPanel .jp-OutputArea-output"  # never the cells' source
# what jupyterlab_widgets shows in place of a widget it could not render
WIDGET_ERROR = re.compile("Error displaying widget|Click to show javascript error")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="Chromium is not installed (apt-get install chromium; .ci/run does it)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a free loopback port with a token, serving a copy of the quiz."""
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy2(ROOT / "notebooks" / "06_quiz.ipynb", work / "06_quiz.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.pop("BNCOURSE_QUIZ_DIR", None)  # the answers file goes beside the notebook
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        PYTHONPATH=str(ROOT),
    )
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}",
            # window.jupyterapp, so that the test can see the kernel's state
            # (_kernel_ready); nothing a learner sees changes
            "--LabApp.expose_app_in_browser=True",
        ],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PATIENCE_MS / 1000
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    log_text = (tmp_path / "jupyterlab.log").read_text()
                    pytest.fail(f"JupyterLab exited: {log_text[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not start within {PATIENCE_MS // 1000} s")
        yield base, token, work
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


# The notebook's kernel is connected and idle and its widget manager has finished
# restoring, or JupyterLab shows a dialog.  `restoredStatus` is the manager's own
# public flag; the manager is reached through a renderer of the widget MIME type
# (`_manager` is jupyterlab_widgets' private field: if a release renames it, this
# returns 'no-manager' and the test says so instead of racing).
KERNEL_READY_OR_DIALOG = """async () => {
    if (document.querySelector('.jp-Dialog')) return 'dialog';
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const session = panel && panel.sessionContext && panel.sessionContext.session;
    const kernel = session && session.kernel;
    if (!kernel || kernel.connectionStatus !== 'connected' || kernel.status !== 'idle')
        return false;
    const rendermime = panel.content.rendermime;
    const mime = 'application/vnd.jupyter.widget-view+json';
    if (!rendermime.mimeTypes.includes(mime)) return false;
    const renderer = rendermime.createRenderer(mime);
    if (!renderer._manager || !renderer._manager.promise) return 'no-manager';
    const manager = await Promise.race([
        renderer._manager.promise, new Promise(done => setTimeout(done, 50))]);
    renderer.dispose();
    return !!manager && manager.restoredStatus && 'ready';
}"""


# For a failure report: every connection of this page to the notebook's kernel.
# Only one of them handles comms (JupyterLab's rule): if it is not the
# notebook's own, the widget's models never reach the notebook.
KERNEL_STATE = """() => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    const session = panel && panel.sessionContext && panel.sessionContext.session;
    const mine = session && session.kernel;
    const kernels = app && app.serviceManager.kernels;
    const all = Array.from((kernels && kernels._kernelConnections) || []);
    return JSON.stringify(all.map(k => ({
        id: k.id.slice(0, 8), notebooks: k === mine, handleComms: k.handleComms,
        connection: k.connectionStatus, status: k.status,
        comms: k._comms && k._comms.size,
    })));
}"""


def _kernel_ready(page) -> None:
    """Wait until the notebook's kernel is connected and idle and the page's
    widget manager has restored its state, accepting any dialog JupyterLab
    shows on the way (a kernel choice).

    Run All clicked before the browser has connected to the kernel makes
    JupyterLab ask for a kernel: nothing runs and the quiz never appears.  Run
    All clicked while the widget manager is still restoring (it asks the kernel
    which widgets exist, as soon as the kernel connects) overlaps that restore
    with the quiz's 1,800 new widget models; on a loaded CI machine this once
    left the quiz as "widget model not found".  A kernel that is idle is not
    enough: at that moment the manager had not finished restoring in every run
    we looked at.  A fixed wait would be a race on a loaded machine;
    JupyterLab's own state is not.
    """
    # polled from here (AssertionError, so that the failure report is printed):
    # wait_for_function returns as soon as an async predicate returns its promise
    deadline = time.monotonic() + PATIENCE_MS / 1000
    while (state := page.evaluate(KERNEL_READY_OR_DIALOG)) != "ready":
        if state == "no-manager":
            raise AssertionError("jupyterlab_widgets changed: no renderer._manager")
        if state == "dialog":
            page.locator(".jp-Dialog .jp-mod-accept").click()
            page.locator(".jp-Dialog").wait_for(state="detached")
        elif time.monotonic() > deadline:
            raise AssertionError(
                f"kernel or widgets not ready in {PATIENCE_MS // 1000} s"
            )
        else:
            page.wait_for_timeout(200)


def _what_the_page_shows(page, console: list[str], log) -> str:
    """For a failure: every output of the notebook as shown, what the page
    logged, and the end of JupyterLab's log (the screenshot shows the rest)."""
    try:
        outputs = page.evaluate(
            "() => Array.from(document.querySelectorAll("
            "'.jp-NotebookPanel .jp-OutputArea-output'))"
            ".map(o => (o.innerText || '').slice(0, 300))"
        )
        kernel = page.evaluate(KERNEL_STATE)
    except Exception as exc:  # a crashed page still gets its report
        outputs, kernel = [f"(the page could not be read: {exc})"], ""
    return "\n".join(
        ["outputs, in order:", *outputs, "", f"the kernel's connections: {kernel}"]
        + ["", "the page's console:", *console[-200:]]
        + ["", "JupyterLab's log (end):", log.read_text()[-6000:]]
    )


def _as_rendered(text: str, length: int = 30) -> str:
    """The start of a bank text as the browser shows it: no Markdown marks, no maths."""
    return re.sub(r"[*`]", "", text.split("$")[0])[:length]


def _option(box, expected, question, index):
    """The checkbox of option ``index`` (bank numbering) as this learner sees it."""
    position = expected.option_order[question.id].index(index)
    return box.locator(".bncourse-option").nth(position).locator("input")


def _no_raw_markup_and_no_overlap(page, questions):
    """Every question and option as rendered: no raw ``$`` or backtick (MathJax
    and code rendered), and no option drawn over the next one."""
    page.wait_for_function(  # MathJax typesets asynchronously
        "() => !document.querySelector('.bncourse-question .MathJax_Processing')"
    )
    count = questions.count()
    assert count == len(quiz.load_bank())
    raw = []
    for n in range(count):
        box = questions.nth(n)
        box.scroll_into_view_if_needed()
        options = box.locator(".bncourse-option")
        texts = [box.locator(".widget-htmlmath").first.inner_text()]
        texts += options.all_inner_texts()
        raw += [t for t in texts if "$" in t or "`" in t]
        rects = [options.nth(i).bounding_box() for i in range(options.count())]
        for upper, lower in zip(rects, rects[1:], strict=False):
            assert upper["y"] + upper["height"] <= lower["y"] + 1, (n, upper, lower)
    assert raw == [], f"raw markup shown: {raw[:3]}"


def test_quiz_gives_feedback_in_jupyterlab_and_records_answers(lab, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    expect.set_options(timeout=PATIENCE_MS)
    base, token, work = lab
    # the quiz as the notebook builds it (LEARNER = ""): order and option order
    expected = quiz.Quiz(quiz.load_bank(), learner="", answers_file=tmp_path / "x.json")
    # two single-answer questions: the second click must clear the first (radio)
    one, two = [
        n for n, qid in enumerate(expected.order) if not expected.by_id[qid].multiple
    ][:2]
    first = expected.by_id[expected.order[one]]
    second = expected.by_id[expected.order[two]]
    wrong = next(i for i in range(len(first.options)) if i not in first.correct)
    shots = ROOT / "test-output"
    shots.mkdir(exist_ok=True)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.set_default_timeout(PATIENCE_MS)
        console = []  # what the page logs: reported if the test fails
        page.on("console", lambda m: console.append(f"{m.type}: {m.text[:300]}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {str(e)[:300]}"))
        try:
            page.goto(f"{base}/lab/tree/06_quiz.ipynb?token={token}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", state="visible")
            _kernel_ready(page)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            questions = page.locator(f"{OUTPUT} .bncourse-question")
            # a widget that failed to render fails the test now, not in 10 minutes
            broken = page.locator(OUTPUT, has_text=WIDGET_ERROR).first
            questions.first.or_(broken).wait_for(state="visible")
            assert not broken.count(), "the quiz's widget did not render (report below)"
            box = questions.nth(one)

            # a wrong answer first: the feedback must say so, with its misconception
            _option(box, expected, first, wrong).click()
            box.locator("button", has_text="Check").click()
            # locators are re-resolved at every poll, so a re-rendered widget is fine
            feedback = box.locator(".bncourse-feedback")
            expect(feedback).to_contain_text("Not quite")
            expect(feedback).to_contain_text(_as_rendered(first.misconceptions[wrong]))

            # then the right one: "Correct!" and the explanation
            right = sorted(first.correct)[0]
            _option(box, expected, first, right).click()
            box.locator("button", has_text="Check").click()
            expect(feedback).to_contain_text("Correct!")
            expect(feedback).to_contain_text(_as_rendered(first.explanation))

            # a second question, answered right
            box2 = questions.nth(two)
            for i in sorted(second.correct):
                _option(box2, expected, second, i).click()
            box2.locator("button", has_text="Check").click()
            expect(box2.locator(".bncourse-feedback")).to_contain_text("Correct!")
            _no_raw_markup_and_no_overlap(page, questions)
            box.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "quiz_feedback.png"))
            box.screenshot(path=str(shots / "quiz_question.png"))
        except Exception:
            page.screenshot(path=str(shots / "quiz_failure.png"))
            report = _what_the_page_shows(page, console, tmp_path / "jupyterlab.log")
            (shots / "quiz_failure.txt").write_text(report)
            print(report)  # pytest shows it with the failure
            raise
        finally:
            browser.close()

    stored = json.loads((work / quiz.ANSWERS_FILE).read_text())
    records = stored["answers"]
    assert records[first.id]["attempts"] == 2 and records[first.id]["correct"]
    assert records[second.id]["correct"]
