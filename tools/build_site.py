"""Build the course's website: every lesson with its outputs, offline (``make site``).

    python tools/build_site.py [--out build/site] [--lessons 01,06] [--mathjax DIR]

What a page shows.  The **learner copy** of each lesson (``notebooks/``: the
exercises are stubs), with the outputs of a run of the **instructor's copy**
(``solutions/``): every figure, table, printed number and check message, but
no answer's code.  The two copies have the same cells with the same ids
(``tools/make_student.py``), so each learner cell takes the outputs of its
solution cell; a cell only the solutions have (the quiz's answer key) is not
shown.  The mode follows ``BNCOURSE_FAST`` like everything else: ``make site``
runs full mode, the test fast mode; every page says which.

Executed notebooks are cached in ``<out>/executed/<mode>/``, keyed by the
solution's code cells and the course's ``helpers/`` and ``data/``: a change
of prose re-runs nothing, and Sphinx rebuilds only the pages whose source
changed.  A failing cell fails the build (no traceback is ever published).

A static page has no kernel, so the widgets get a fallback: the quiz's widget
becomes the whole bank as text with the answers folded
(``helpers.quiz.static_markdown``), a slider demo's widget becomes a note
pointing at the figure its static call drew just above (STYLE.md section 9),
and a progress bar its last state as text.  Any other widget fails the build.
The quote markers of ``helpers.quotes`` are removed from the prose, the
setup cell is folded, and each page links to Colab and to its notebook.

Sphinx with MyST-NB and the book theme (Jupyter Book 1's own stack, pinned in
``requirements-site.txt``) turns the notebooks into HTML; maths is typeset by
a MathJax copy inside the site (MathJax 3.2.2 from a pinned PyPI package, or
``--mathjax`` for another copy of its es5 folder), so nothing is loaded from a
CDN, at build time or when a page is read.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from helpers import config, course, quiz, quotes  # noqa: E402

CONF_DIR = ROOT / "site"  # conf.py and the static files kept in the repository
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_HINTS = ("interact(", ".widget(", "ipywidgets")
QUIZ_WIDGET_CALL = re.compile(r"^\s*\w+\.widget\(\)\s*;?\s*$")
# cells whose output describes one session's state, not the lesson: the
# instructor's quiz score (42/42, from its answer key) and where it saved the file
NO_OUTPUT_TAGS = {"grade-from-answers"}
NO_OUTPUT_IDS = {"quiz-hand-in"}
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\(([^)]*)\)")
COMMENT = re.compile(r"<!--.*?-->", re.S)
# code (fenced or inline, skipped) or maths ($$...$$ or $...$), left to right
CODE_OR_MATHS = re.compile(r"```.*?```|`[^`]*`|\$\$.+?\$\$|\$[^$]+?\$", re.S)
QUIZ_NOTE = (
    "*On this page the quiz is not live (it needs a running kernel): each "
    "question's answer is folded under it. To answer and be scored, open the "
    "notebook in Colab or JupyterLab.*\n\n"
)
SLIDER_NOTE = (
    "*On this page the slider is not live (it needs a running kernel): the figure "
    "just above is the same demo at its default setting. Open the notebook in "
    "Colab or JupyterLab to move it.*"
)


class SiteError(RuntimeError):
    """The site cannot be built; the message says why."""


def mode() -> str:
    return "fast" if config.fast() else "full"


# --------------------------------------------------------------------------
# executing the instructor's copies, cached
# --------------------------------------------------------------------------


def _course_digest() -> str:
    """A digest of what a run's outputs depend on besides the notebook itself."""
    h = hashlib.sha256()
    for folder in ("helpers", "data"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def run_key(nb, digest: str) -> str:
    """What decides a run: the code cells (not the prose), the mode, the course."""
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    payload = json.dumps([code, mode(), digest, sys.version_info[:2]])
    return hashlib.sha256(payload.encode()).hexdigest()


def execute(source: Path, timeout: int, cache: Path) -> nbformat.NotebookNode:
    """Run a solution notebook top to bottom in a scratch folder; errors fail.

    The kernel's ``BNCOURSE_CACHE`` is ``cache``, whose experiment results are
    removed first (they are keyed by parameters, not by code: a run must
    compute its own); downloaded and decoded data sets stay there.
    """
    nb = nbformat.read(source, as_version=4)
    shutil.rmtree(cache / "results", ignore_errors=True)
    saved = {k: os.environ.get(k) for k in ("BNCOURSE_QUIZ_DIR", "BNCOURSE_CACHE")}
    with tempfile.TemporaryDirectory(prefix="bncourse-site-") as work:
        os.environ["BNCOURSE_QUIZ_DIR"] = work  # the quiz's answers file
        os.environ["BNCOURSE_CACHE"] = str(cache)
        try:
            client = NotebookClient(
                nb,
                timeout=timeout,
                timeout_func=lambda cell: (
                    min(timeout, 120)
                    if any(h in cell.source for h in WIDGET_HINTS)
                    else timeout
                ),
                kernel_name="python3",
                allow_errors=False,
                resources={"metadata": {"path": work}},
            )
            client.execute()
        except Exception as exc:  # nbclient's CellExecutionError, a timeout ...
            raise SiteError(f"{source.name} failed to run: {exc}") from None
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return nb


def executed(lesson: course.Lesson, cache: Path, digest: str, timeout: int, log):
    """The lesson's solution notebook with outputs, from the cache or a fresh run."""
    source = ROOT / "solutions" / lesson.filename
    key = run_key(nbformat.read(source, as_version=4), digest)
    cached = cache / lesson.filename
    if cached.exists():
        old = nbformat.read(cached, as_version=4)
        if old.metadata.get("bncourse_site", {}).get("key") == key:
            log(f"  {lesson.stem}: outputs from the cache ({mode()} mode)")
            return old
    log(f"  {lesson.stem}: running the instructor's copy ({mode()} mode) ...")
    start = time.monotonic()
    nb = execute(source, timeout, cache.parent.parent / "cache")
    seconds = time.monotonic() - start
    nb.metadata["bncourse_site"] = {
        "key": key,
        "mode": mode(),
        "seconds": round(seconds, 1),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    cache.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, cached)
    log(f"  {lesson.stem}: ran in {seconds:.0f} s")
    return nb


# --------------------------------------------------------------------------
# the page: the learner copy with the instructor's outputs
# --------------------------------------------------------------------------


def _is_widget(output) -> bool:
    return WIDGET_VIEW in output.get("data", {})


def _progress_bar(output, state: dict):
    """A tqdm bar's last state as text (an HBox of label, progress and counts)."""
    model = state.get(output["data"][WIDGET_VIEW]["model_id"], {})
    children = [
        state.get(ref.replace("IPY_MODEL_", ""), {})
        for ref in model.get("state", {}).get("children", [])
    ]
    names = [child.get("model_name") for child in children]
    if model.get("model_name") != "HBoxModel" or len(children) != 3:
        return None
    if names[1] not in ("FloatProgressModel", "IntProgressModel"):
        return None
    label = html.unescape(children[0]["state"].get("value", ""))
    label = re.sub(r"\s*\d+%\s*$", "", label.replace("\u2007", " ")).strip()
    bar = children[1]["state"]
    done, total = bar.get("value", 0), bar.get("max", 0) or 1
    text = f"{label} {100 * done / total:.0f}% ({done:.0f}/{total:.0f})".strip()
    return nbformat.v4.new_output("stream", name="stderr", text=text + "\n")


def join_inline_maths(text: str) -> str:
    """Inline maths on one line.  Jupyter and Colab take the maths out before
    parsing the Markdown, MyST after: a ``$...$`` broken before ``- x`` would
    become a list item there, and its TeX would show raw."""

    def join(match):
        span = match.group(0)
        if span.startswith("$") and not span.startswith("$$") and "\n" in span:
            return re.sub(r"\s*\n\s*", " ", span)
        return span

    return CODE_OR_MATHS.sub(join, text)


def _markdown_output(text: str):
    return nbformat.v4.new_output("display_data", data={"text/markdown": text})


def _page_markdown(cell, lesson: course.Lesson, run: dict, present: set) -> str:
    """A markdown cell as the site shows it: no quote markers, links that work."""
    tags = set(cell.metadata.get("tags", []))
    source = join_inline_maths(COMMENT.sub("", quotes.plain(cell.source)))
    if "bncourse-header" in tags:
        return header(lesson, source, run)
    if "bncourse-nav" in tags:
        source = source.replace("../README.md", "index.md")
        for item in course.LESSONS:  # a lesson this build leaves out: on GitHub
            if item.filename not in present:
                source = source.replace(
                    f"]({item.filename})",
                    f"]({course.REPO_URL}/blob/{course.RELEASE}/notebooks/"
                    f"{item.filename})",
                )
    return source


def _page_outputs(cell, outputs: list, state: dict, where: str) -> list:
    """A code cell's outputs from the instructor's run, widgets made static."""
    tags = set(cell.metadata.get("tags", []))
    if tags & NO_OUTPUT_TAGS or cell.id in NO_OUTPUT_IDS:
        return []
    shown = []
    for output in copy.deepcopy(outputs):
        if not _is_widget(output):
            shown.append(output)
        elif QUIZ_WIDGET_CALL.match(cell.source):
            shown.append(_markdown_output(QUIZ_NOTE + quiz.static_markdown()))
        elif (bar := _progress_bar(output, state)) is not None:
            shown.append(bar)
        elif "interactive(" in "".join(output["data"].get("text/plain", "")):
            shown.append(_markdown_output(SLIDER_NOTE))
        else:
            raise SiteError(
                f"{where}: cell {cell.id} shows a widget that has no static "
                "fallback (tools/build_site.py)"
            )
    return shown


def page_notebook(lesson: course.Lesson, solved, lessons=None) -> nbformat.NotebookNode:
    """The learner copy of ``lesson`` with the outputs of ``solved``.

    A link to a lesson that this build leaves out (``lessons``, a subset) goes
    to its notebook on GitHub instead."""
    present = {item.filename for item in (lessons or course.LESSONS)}
    nb = nbformat.read(ROOT / "notebooks" / lesson.filename, as_version=4)
    outputs = {
        c.id: c.get("outputs", []) for c in solved.cells if c.cell_type == "code"
    }
    state = (
        solved.metadata.get("widgets", {})
        .get("application/vnd.jupyter.widget-state+json", {})
        .get("state", {})
    )
    run = solved.metadata["bncourse_site"]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _page_markdown(cell, lesson, run, present)
        if cell.cell_type != "code":
            continue
        if cell.id not in outputs:
            raise SiteError(
                f"{lesson.filename}: cell {cell.id} of the learner copy is not in the "
                "solutions (run tools/make_student.py)"
            )
        cell.outputs = _page_outputs(cell, outputs[cell.id], state, lesson.filename)
        cell.execution_count = None
        if "setup" in cell.metadata.get("tags", []):  # Colab's install lines, folded
            cell.metadata["tags"].append("hide-input")
    nb.metadata.pop("widgets", None)
    return nb


def header(lesson: course.Lesson, source: str, run: dict) -> str:
    """The learner header with links instead of Colab's badge (an outside image)."""
    links = (
        f"[Open in Colab]({course.colab_url('notebooks', lesson)}) · "
        f"{{download}}`Download the notebook <notebooks/{lesson.filename}>` · "
        "[All lessons](index.md)"
    )
    if not BADGE.search(source):
        raise SiteError(f"{lesson.filename}: the header has no Colab badge to replace")
    source = BADGE.sub(lambda m: links, source)
    note = (
        f"*On this page: the learner's copy (exercises left for you to write) with "
        f"the outputs of a {run['mode']}-mode run of the instructor's copy "
        f"({run['date']}).*"
    )
    return f"{source}\n\n{note}"


def index_page(lessons) -> str:
    """The front page: what the course is, the lesson table, the table of contents."""
    readme = (ROOT / "README.md").read_text()
    intro = readme.split("\n## ", 1)[0].split("\n", 1)[1].strip()
    rows = [
        "| # | lesson | what you learn | time | notebook |",
        "|---|---|---|---|---|",
    ]
    for lesson in lessons:
        rows.append(
            f"| {lesson.number} | [{lesson.title}]({lesson.filename}) "
            f"| {lesson.purpose} | {lesson.minutes} min "
            f"| [Colab]({course.colab_url('notebooks', lesson)}) · "
            f"{{download}}`download <notebooks/{lesson.filename}>` |"
        )
    toc = "\n".join(lesson.stem for lesson in lessons)
    return f"""# Batch Normalization, hands-on

{intro}

Each page below is a lesson's notebook as a learner gets it, with the outputs
of a {mode()}-mode run of the instructor's copy: every figure, table and printed
number, and what each check says about a correct answer. The exercises are left
for you to write (their cells raise `NotImplementedError` until you do): open a
lesson in Colab, or download it and run it in JupyterLab ([the
repository]({course.REPO_URL}) says how).

{chr(10).join(rows)}

```{{toctree}}
:hidden:
:maxdepth: 1

{toc}
```
"""


# --------------------------------------------------------------------------
# the Sphinx source folder, and the build
# --------------------------------------------------------------------------


def write_if_changed(path: Path, text: str) -> bool:
    """Write only a changed file, so that Sphinx rebuilds only what changed."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def sync_tree(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target``, keeping unchanged files (and their times)."""
    for path in sorted(source.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        dest = target / path.relative_to(source)
        if dest.exists() and dest.read_bytes() == path.read_bytes():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


def packaged_mathjax() -> Path:
    """MathJax 3.2.2's es5 folder, as the PyPI package ``sphinx-mathjax-offline``
    ships it (the files of npm's ``mathjax@3.2.2``, fonts included)."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise SiteError(
            "MathJax is not installed: `make site` installs requirements-site.txt "
            "(or give --mathjax <MathJax 3 es5 folder>)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"


def build(out: Path, lessons, mathjax: Path, timeout: int, log=print) -> Path:
    """Execute (or reuse), compose and render; returns the HTML folder."""
    if not (mathjax / "tex-chtml.js").exists():
        raise SiteError(
            f"no MathJax in {mathjax} (tex-chtml.js): `make site` installs it "
            "(requirements-site.txt)"
        )
    src = out / "src"
    digest = _course_digest()
    cache = out / "executed" / mode()
    wanted = {"index.md"}
    for lesson in lessons:
        solved = executed(lesson, cache, digest, timeout, log)
        page = page_notebook(lesson, solved, lessons)
        write_if_changed(src / lesson.filename, nbformat.writes(page) + "\n")
        learner = (ROOT / "notebooks" / lesson.filename).read_text()
        write_if_changed(src / "notebooks" / lesson.filename, learner)
        wanted |= {lesson.filename, f"notebooks/{lesson.filename}"}
    write_if_changed(src / "index.md", index_page(lessons))
    for path in list(src.rglob("*.ipynb")):  # a lesson left out of this build
        if str(path.relative_to(src)) not in wanted:
            path.unlink()
    sync_tree(CONF_DIR, src)
    sync_tree(mathjax, src / "_static" / "mathjax")
    html = out / "html"
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        "html",
        "-q",
        "-W",
        "--keep-going",
        "-d",
        str(out / "doctrees"),
        str(src),
        str(html),
    ]
    log(f"  sphinx: {' '.join(command[3:])}")
    done = subprocess.run(command, cwd=ROOT)
    if done.returncode != 0:
        raise SiteError(f"sphinx-build failed (exit {done.returncode}): see above")
    return html


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    parser.add_argument(
        "--lessons", default="", help="comma-separated numbers (default: every lesson)"
    )
    parser.add_argument(
        "--mathjax",
        type=Path,
        default=None,
        help="MathJax 3's es5 folder (default: the copy in requirements-site.txt)",
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    lessons = course.LESSONS
    if args.lessons:
        lessons = tuple(course.lesson(key.strip()) for key in args.lessons.split(","))
    out = args.out.resolve()
    start = time.monotonic()
    print(f"build_site: {len(lessons)} lesson(s), {mode()} mode, into {out}")
    try:
        mathjax = (args.mathjax or packaged_mathjax()).resolve()
        html = build(out, lessons, mathjax, args.timeout)
    except SiteError as exc:
        print(f"build_site: {exc}", file=sys.stderr)
        return 1
    print(
        f"build_site: done in {time.monotonic() - start:.0f} s: {html / 'index.html'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
