"""Where learners run the course: a built wheel, a non-editable install, a fresh Colab.

Every other test imports the editable install of the checkout, which hides what
a real install leaves out (a non-editable ``pip install`` once dropped
``helpers/checks/`` and Colab broke).  These tests install the package the way
Colab and ``pip install`` users get it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest

from helpers import course
from tools import make_student as ms

from . import colab_sim
from .conftest import ROOT

LESSONS = [lesson.filename for lesson in course.LESSONS]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A git repository of the checkout's publishable files (what a push sends)."""
    return colab_sim.make_mirror(
        tmp_path_factory.mktemp("mirror") / "repo", course.RELEASE
    )


@pytest.fixture(scope="module")
def wheel(mirror, tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(out),
            str(mirror),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("bncourse_helpers-*.whl")
    return path


def test_wheel_holds_every_subpackage_and_every_data_file(wheel, mirror):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = sorted(
        str(p.relative_to(mirror)) for p in (mirror / "helpers").rglob("__init__.py")
    )
    assert len(packages) >= 2, packages  # helpers and helpers/checks at least
    modules = sorted(
        str(p.relative_to(mirror)) for p in (mirror / "helpers").rglob("*.py")
    )
    missing = [m for m in modules if m not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert "helpers/bncourse.mplstyle" in names
    data = sorted(
        str(p.relative_to(mirror / "data"))
        for p in (mirror / "data").rglob("*")
        if p.is_file()
    )
    assert "quiz_bank.json" in data and "SHA256SUMS" in data
    lost = [d for d in data if f"helpers/_data/{d}" not in names]
    assert not lost, f"the wheel lacks the data files {lost}"


def _clean_venv(where: Path) -> str:
    """A venv that sees the dependencies but not the checkout or its editable install."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(where)], check=True
    )
    python = str(where / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BNCOURSE_")}
    env.pop("PYTHONPATH", None)
    env["BNCOURSE_FAST"] = "1"
    return env


CHECK_SCRIPT = r"""
import json, numpy as np, helpers
from helpers import checks, config, data, quiz

def batch_stats(x):
    if len(x) < 2:
        raise ValueError("the unbiased variance needs two examples")
    return x.mean(axis=0), x.var(axis=0), x.var(axis=0, ddof=1)

report = checks.batch_stats(batch_stats, quiet=True)
print(json.dumps({
    "file": helpers.__file__,
    "verdicts": list(report.verdicts),
    "data": str(config.data_dir()),
    "mnist": int(data.load_mnist().images.shape[0]),
    "questions": len(quiz.load_bank()),
}))
"""


def test_non_editable_install_runs_a_check_and_finds_the_data(wheel, tmp_path):
    python = _clean_venv(tmp_path / "venv")
    env = _clean_env()
    before = subprocess.run(
        [python, "-c", "import helpers"], cwd=tmp_path, env=env, capture_output=True
    )
    assert before.returncode != 0, "the clean venv must not see the checkout"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run(
        [python, "-c", CHECK_SCRIPT],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert str(tmp_path / "venv") in found["file"], found  # not the checkout
    assert set(found["verdicts"]) == {"ok"}, found
    assert found["data"].endswith(os.path.join("helpers", "_data")), found
    assert found["mnist"] == 5000 and found["questions"] > 0


# --------------------------------------------------------------------------
# the Colab path, simulated (tests/colab_sim.py)
# --------------------------------------------------------------------------


def _simulate(nb_path: Path, mirror: Path, workdir: Path, **kwargs) -> dict:
    return colab_sim.run_notebook(
        nb_path, mirror, workdir, sys.executable, colab_sim.default_sites(), **kwargs
    )


@pytest.mark.parametrize("filename", LESSONS)
def test_learner_copy_runs_on_a_fresh_colab(filename, mirror, tmp_path):
    """Alone in /content, course fetched by its setup cell, fast mode, cold cache."""
    result = _simulate(ROOT / "notebooks" / filename, mirror, tmp_path)
    assert result["ok"], result["error"]
    assert result["installed"] and not result["editable"], result
    assert result["checks_installed"]


@pytest.mark.parametrize("filename", LESSONS)
def test_solution_setup_cell_works_on_a_fresh_colab(filename, mirror, tmp_path):
    result = _simulate(ROOT / "solutions" / filename, mirror, tmp_path, setup_only=True)
    assert result["ok"], result["error"]
    assert result["installed"] and not result["editable"], result
