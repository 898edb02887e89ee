"""Where learners run the course: a built wheel, a non-editable install, a fresh Colab.

Every other test imports the editable install of the checkout, which hides what
a real install leaves out (a non-editable ``pip install`` once dropped
``helpers/checks/`` and Colab broke).  These tests install the package the way
Colab and ``pip install`` users get it, from the learner release
(``tools/make_release.py``): the wheel, the install and every simulated Colab
run use what the public repository holds, not the checkout.
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
def release(tmp_path_factory):
    """The learner release (tools/make_release.py): what the public repository holds."""
    from tools import make_release

    folder = tmp_path_factory.mktemp("release") / "course"
    make_release.write(folder)
    return folder


@pytest.fixture(scope="module")
def mirror(release, tmp_path_factory):
    """A git repository of the learner release: what Colab installs from."""
    return colab_sim.make_mirror(
        tmp_path_factory.mktemp("mirror") / "repo", course.RELEASE, root=release
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
    """A venv that sees the dependencies, not the checkout or its editable install."""
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

# `make test` installs Colab's versions of numpy, matplotlib, ipywidgets,
# IPython and ipykernel here; the simulated kernels put them first.
COLAB_SITE = ROOT / ".venv" / "colab"
COLAB_VERSIONS = {
    "numpy": "2.1.",
    "matplotlib": "3.10.",
    "ipywidgets": "7.7.1",
    "ipython": "7.34.",
    "ipykernel": "6.17.",
}


def _sites() -> list[str]:
    return [str(COLAB_SITE)] if (COLAB_SITE / "ipywidgets").is_dir() else []


@pytest.fixture(scope="module")
def learner_runs(release, mirror, tmp_path_factory):
    """Every learner copy of the release on its own fresh simulated Colab, two at
    a time, installing the course from the release."""
    return colab_sim.run_many(
        [release / "notebooks" / name for name in LESSONS],
        mirror,
        tmp_path_factory.mktemp("colab"),
        sites=_sites(),
    )


@pytest.mark.parametrize("filename", LESSONS)
def test_learner_copy_runs_on_a_fresh_colab(filename, learner_runs):
    """Alone in /content, course installed by its setup cell, fast mode, cold cache."""
    result = learner_runs[filename]
    assert result["ok"], result["error"]
    assert result["installed"] and not result["editable"], result
    assert result["checks_installed"]


@pytest.mark.skipif(not _sites(), reason="Colab's versions are not in .venv/colab")
def test_the_simulated_kernels_had_colabs_versions(learner_runs):
    for name, result in learner_runs.items():
        versions = result.get("versions", {})
        for package, prefix in COLAB_VERSIONS.items():
            assert versions.get(package, "").startswith(prefix), (name, versions)


@pytest.mark.parametrize("filename", LESSONS)
def test_solution_and_learner_copies_share_the_setup_cell(filename):
    """So the learner copies' Colab runs cover the solutions' setup cells too."""
    cells = []
    for folder in ("solutions", "notebooks"):
        nb = nbformat.read(ROOT / folder / filename, 4)
        index = colab_sim.setup_cell_index(nb)
        cells.append([c.source for c in nb.cells[index - 1 : index + 1]])
    assert cells[0] == cells[1]
    colab = cells[0][0]  # the Colab cell comes right before the setup cell
    assert ms.COLAB_BEGIN in colab and course.install_url() in colab


def test_the_quiz_downloads_its_answers_file_on_colab(mirror, tmp_path):
    """/content vanishes with the runtime: the answers must reach the learner's disk.

    The solution copy answers every question, so it has a file to hand in; it
    also stands for the solutions' setup cells on a fresh Colab.
    """
    name = "06_quiz.ipynb"
    result = colab_sim.run_many(
        [ROOT / "solutions" / name], mirror, tmp_path, sites=_sites()
    )[name]
    assert result["ok"], result["error"]
    assert result["installed"] and not result["editable"]
    downloaded = [Path(p).name for p in result["downloads"]]
    assert downloaded == ["06_quiz.answers.json"], result["downloads"]


def test_an_unanswered_quiz_offers_no_download(learner_runs):
    assert learner_runs["06_quiz.ipynb"]["downloads"] == []


def test_a_failed_install_says_which_url_and_what_to_do(tmp_path):
    """The repository moved, is private or the runtime is offline: one clear error."""
    name = "00_setup_and_conventions.ipynb"
    results = colab_sim.run_many(
        [ROOT / "notebooks" / name],
        tmp_path / "no-such-repository",
        tmp_path,
        setup_only=True,
    )
    result = results[name]
    assert not result["ok"]
    assert result["ename"] == "RuntimeError", result["error"]
    message = result["evalue"]
    assert course.install_url() in message, message
    assert "run this cell again" in message and "public" in message
    assert "no-such-repository" in message  # git's own reason is shown too


def test_a_kernel_of_another_python_gets_that_pythons_packages_only():
    """`make colab-sim` runs kernels on Colab's Python 3.13 beside this one.

    Their dependencies must be that interpreter's: this environment's
    site-packages on a 3.13 path would lend it pure-Python packages it lacks.
    """
    other = str(Path(sys.base_prefix) / "bin" / "python3")
    mine = sysconfig.get_paths()["purelib"]
    assert colab_sim.default_sites() == [mine]
    theirs = colab_sim.default_sites(other)
    assert theirs != [mine] and theirs[0].startswith(sys.base_prefix), theirs


def test_make_colab_sim_runs_every_learner_notebook_on_python_313_and_torch_211(
    tmp_path,
):
    done = subprocess.run(
        [
            "make",
            "-n",
            "-B",
            f"VENV={tmp_path / 'venv'}",
            "COLAB_PYTHON=py313",
            "colab-sim",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    runtime = tmp_path / "venv" / "colab-runtime"
    assert f"py313 -m venv {runtime}" in lines
    assert any("'torch==2.11.0'" in ln and "--no-deps" in ln for ln in lines)
    assert any("ipywidgets==7.7.1" in ln and "ipython==7.34.0" in ln for ln in lines)
    (run,) = [ln for ln in lines if "tests/colab_sim.py --python" in ln]
    assert f"--python {runtime}/bin/python" in run and "notebooks/*.ipynb" in run
