"""The learner's install: what `make lab` brings, and how it finds PyTorch.

* `make lab` installs requirements.txt only: the course package, PyTorch and
  JupyterLab.  Its whole dependency closure, worked out offline from the
  installed packages' metadata, holds no test or instructor tool; those come
  with requirements-test.txt, which `make test` adds.
* PyTorch's CPU index is asked first with a short time-out
  (tools/torch_index.py): where it cannot be reached the install goes on
  from the default index within seconds, and says so.
"""

from __future__ import annotations

import http.server
import io
import os
import re
import socket
import subprocess
import threading
import time
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools import torch_index

from .conftest import ROOT

# what a learner's JupyterLab must not carry (nbgrader adds a menu and a panel)
TEST_AND_INSTRUCTOR_TOOLS = {
    "nbgrader",
    "pytest",
    "pytest-xdist",
    "nbval",
    "playwright",
    "ruff",
    "confusable-homoglyphs",  # the grader's look-alike ids
}


def _requirements(path) -> list[Requirement]:
    """The requirement lines of a pip requirements file (``-r`` followed)."""
    found = []
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            found += _requirements(path.parent / line[3:].strip())
        elif line.startswith("-e "):  # the course itself: -e .[extras]
            extras = re.search(r"\[(.*)\]", line)
            found.append(
                Requirement(f"bncourse-helpers[{extras.group(1) if extras else ''}]")
            )
        elif not line.startswith("-"):
            found.append(Requirement(line))
    return found


def closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution these requirements pull in, read from what is installed."""
    seen: set[tuple[str, frozenset]] = set()
    names: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        names.add(name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue  # not needed on this platform, or not installed here
        for line in dist.requires or []:
            dep = Requirement(line)
            wanted = {""} | set(extras)
            if dep.marker and not any(
                dep.marker.evaluate({"extra": extra}) for extra in wanted
            ):
                continue
            todo.append((dep, frozenset(dep.extras)))
    return names


def test_the_learners_install_pulls_no_test_or_instructor_tool():
    lab = closure(_requirements(ROOT / "requirements.txt"))
    assert {"torch", "bncourse-helpers", "jupyterlab", "ipywidgets"} <= lab, lab
    assert not lab & TEST_AND_INSTRUCTOR_TOOLS, sorted(lab & TEST_AND_INSTRUCTOR_TOOLS)


def test_the_test_install_adds_them():
    full = closure(_requirements(ROOT / "requirements-test.txt"))
    assert TEST_AND_INSTRUCTOR_TOOLS <= full, sorted(TEST_AND_INSTRUCTOR_TOOLS - full)


def _dry_run(tmp_path, target: str) -> str:
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "-n", "-B", f"VENV={venv}", "TORCH_INDEX=", f"{venv}/{target}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_lab_installs_requirements_txt_and_make_test_adds_the_tools(tmp_path):
    lab = _dry_run(tmp_path, ".installed-lab")
    assert "-r requirements.txt" in lab
    assert "requirements-test.txt" not in lab
    full = _dry_run(tmp_path, ".installed")
    assert "-r requirements-test.txt" in full
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^lab: \$\(LAB_STAMP\)\s*$", make, flags=re.M)
    assert re.search(r"^test: \$\(STAMP\)\s*$", make, flags=re.M)


def test_every_install_step_says_what_it_does_and_pip_prints_only_errors(tmp_path):
    lab = _dry_run(tmp_path, ".installed-lab").splitlines()
    installs = [i for i, line in enumerate(lab) if " install " in line]
    assert installs
    for i in installs:
        assert "--quiet --quiet" in lab[i], lab[i]  # no setuptools notice box
        said = [ln for ln in lab[:i] if ln.startswith('echo "make: [')]
        assert said, f"nothing said before: {lab[i]}"


# --------------------------------------------------------------------------
# tools/torch_index.py: the probe and the fall-back
# --------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


def test_an_index_that_refuses_falls_back_to_the_default_and_says_so():
    url = f"http://127.0.0.1:{_closed_port()}/whl/cpu"
    log = io.StringIO()
    assert torch_index.choose(url, timeout=2, log=log) == ""
    said = log.getvalue()
    assert url in said and "cannot be reached" in said and "default index" in said


def test_an_index_that_never_answers_is_given_up_within_the_timeout():
    """A server that accepts and then says nothing (a black-holing proxy)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/whl/cpu"
        start = time.monotonic()
        reason = torch_index.probe(url, timeout=1.0)
        waited = time.monotonic() - start
    assert reason is not None
    assert waited < 30  # a hang guard, not a timing: pip alone waits minutes


class _Index(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 - the handler's API
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_index_that_answers_is_kept():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"
        log = io.StringIO()
        assert torch_index.choose(url, timeout=10, log=log) == url
        assert log.getvalue() == ""
    finally:
        server.shutdown()
        server.server_close()


def test_no_index_asked_means_the_default_index_and_no_probe():
    log = io.StringIO()
    assert torch_index.choose("", log=log) == ""
    assert log.getvalue() == ""


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="the fallback shell line")
def test_the_makefile_installs_torch_from_what_the_probe_chose(tmp_path):
    """The recipe line itself: an unreachable index gives pip no index option."""
    url = f"http://127.0.0.1:{_closed_port()}/whl/cpu"
    fake_pip = tmp_path / "pip-args"
    lines = _dry_run(tmp_path, ".installed-lab").splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("index=$("))
    recipe = lines[start] + "\n" + lines[start + 1]
    recipe = recipe.replace("''", f"'{url}'")
    recipe = re.sub(r"\S+/python -m pip", f"printf '%s\\n' >{fake_pip}", recipe)
    done = subprocess.run(
        ["sh", "-c", recipe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "cannot be reached" in done.stderr
    args = fake_pip.read_text().split()
    assert "--extra-index-url" not in args
    assert "torch==2.13.0" in args
