"""A fresh Colab runtime, simulated offline, to run notebooks as a Colab learner does.

    python tests/colab_sim.py notebooks/02_bn_forward_backward.ipynb ...
        [--python PY] [--site DIR ...] [--setup-only] [--json RESULT]

For every notebook it builds what a new Colab runtime has, then runs the notebook
top to bottom with nbclient (any error fails it):

* an **empty working folder** (Colab's ``/content``) that holds the notebook alone;
* a **kernel whose Python has the course's dependencies but not the course**: a
  new virtual environment whose ``deps.pth`` points at the dependencies'
  site-packages (``--site``, default: this interpreter's).  A path listed in a
  ``.pth`` file is not itself a site directory, so the ``.pth`` files there (an
  editable install of the course among them) are not read: ``import helpers``
  fails until the setup cell has installed the package, **non-editable**;
* an importable stand-in ``google.colab`` (imported at start-up by a ``.pth``
  line, so ``"google.colab" in sys.modules`` is true, as on Colab) whose
  ``files.download`` records what was offered for download;
* ``git``'s ``https://github.com/<owner>/<name>`` served from a local mirror of
  this checkout (its tracked and untracked, not ignored, files: what would be
  pushed) or of a learner release folder (``--release``), through
  ``GIT_CONFIG_GLOBAL`` with ``url.<mirror>.insteadOf``; the user's own git
  configuration is never read or changed;
* fast mode (``BNCOURSE_FAST=1``) and a fresh, empty cache.

Colab's own package versions can be put first on the path with ``--site`` (a
folder made by ``pip install --target``), see the README's test section.
``--setup-only`` runs the setup cell and nothing else (the solutions' check).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Hang guards, not speed limits: a fast-mode notebook takes a minute or two
# here, its slowest cell well under one.  One simulated run sat idle for over
# 15 minutes once (2026-12-01, notebook 01, kernel at 1% CPU): without a limit
# on the whole run the suite would have waited for ever.
CELL_LIMIT = 900  # seconds per cell (nbclient)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COLAB_STUB = '''"""Stand-in for Colab's google.colab package (tests/colab_sim.py)."""
SIMULATED = True
'''
FILES_STUB = '''"""Stand-in for google.colab.files: records what is downloaded."""
import json
import os

RECORD = "{record}"


def download(filename):
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"Cannot find file: {{filename}}")
    with open(RECORD, "a") as f:
        f.write(json.dumps(os.path.abspath(filename)) + "\\n")
'''


# Appended to every simulated notebook: which versions the kernel really had.
VERSIONS_CELL = """
import json as _json, platform as _platform
import IPython, ipykernel, ipywidgets, matplotlib, numpy, torch
print("COLAB-SIM-VERSIONS " + _json.dumps({
    "python": _platform.python_version(), "torch": torch.__version__,
    "numpy": numpy.__version__, "matplotlib": matplotlib.__version__,
    "ipywidgets": ipywidgets.__version__, "ipython": IPython.__version__,
    "ipykernel": ipykernel.__version__}))
"""


def _git(*args, cwd: Path, env=None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def git_env(home: Path) -> dict:
    """An environment in which git reads no configuration of the user's."""
    env = dict(os.environ)
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / "gitconfig"),
        GIT_AUTHOR_NAME="colab-sim",
        GIT_AUTHOR_EMAIL="colab-sim@localhost",
        GIT_COMMITTER_NAME="colab-sim",
        GIT_COMMITTER_EMAIL="colab-sim@localhost",
        GIT_AUTHOR_DATE="2026-01-01T00:00:00+00:00",
        GIT_COMMITTER_DATE="2026-01-01T00:00:00+00:00",
    )
    return env


def publishable_files(root: Path = ROOT) -> list[str]:
    """The checkout's files as a push would publish them (tracked + not ignored).

    A folder that is not a git checkout (the learner release that
    ``tools/make_release.py`` writes) is published whole.
    """
    if not (root / ".git").exists():
        return sorted(
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )
    listed = _git(
        "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=root
    )
    return sorted({p for p in listed.split("\0") if p and (root / p).is_file()})


def make_mirror(dest: Path, branch: str, root: Path = ROOT) -> Path:
    """A git repository holding ``root``'s publishable files on ``branch``.

    ``root``: this checkout (default), or a learner release folder: then Colab's
    ``pip install git+https://github.com/...`` gets what learners really get.
    """
    dest.mkdir(parents=True)
    for rel in publishable_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    (dest / "gitconfig").unlink(missing_ok=True)
    env = git_env(dest.parent)
    Path(env["GIT_CONFIG_GLOBAL"]).touch()
    _git("init", "-q", "-b", branch, cwd=dest, env=env)
    _git("add", "-A", cwd=dest, env=env)
    _git("commit", "-q", "-m", "mirror of the checkout", cwd=dest, env=env)
    return dest


class Runtime:
    """One simulated Colab runtime: its venv, kernelspec, git config and /content."""

    def __init__(self, base: Path, mirror: Path, python: str, sites: list[str]):
        from helpers import course

        self.base = base
        self.content = base / "content"
        self.content.mkdir(parents=True)
        self.home = base / "home"
        self.home.mkdir()
        self.venv = base / "venv"
        subprocess.run(
            [python, "-m", "venv", "--without-pip", str(self.venv)], check=True
        )
        self.python = str(self.venv / "bin" / "python")
        site = Path(
            subprocess.run(
                [
                    self.python,
                    "-c",
                    "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        self.site = site
        (site / "deps.pth").write_text("".join(f"{s}\n" for s in sites))
        colab = site / "google" / "colab"
        colab.mkdir(parents=True)
        (colab / "__init__.py").write_text(COLAB_STUB)
        self.downloads = base / "downloads.jsonl"
        (colab / "files.py").write_text(FILES_STUB.format(record=self.downloads))
        (site / "zz_google_colab.pth").write_text("import google.colab\n")
        # git: the course's GitHub URL answered by the local mirror
        self.gitconfig = self.home / "gitconfig"
        self.gitconfig.write_text(
            f'[url "file://{mirror}"]\n\tinsteadOf = {course.REPO_URL}\n'
        )
        kernels = base / "jupyter" / "kernels" / "colab"
        kernels.mkdir(parents=True)
        (kernels / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [
                        self.python,
                        "-m",
                        "ipykernel_launcher",
                        "-f",
                        "{connection_file}",
                    ],
                    "display_name": "Simulated Colab",
                    "language": "python",
                }
            )
        )

    def env(self) -> dict:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BNCOURSE_", "PYTHON", "JUPYTER", "GIT_CONFIG", "MPL"))
            and k not in {"VIRTUAL_ENV", "PYTEST_XDIST_WORKER"}
        }
        env.update(
            BNCOURSE_FAST="1",
            BNCOURSE_CACHE=str(self.base / "cache"),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=str(self.gitconfig),
            JUPYTER_PATH=str(self.base / "jupyter"),
            PATH=os.pathsep.join([str(self.venv / "bin"), env.get("PATH", "")]),
            PYTHONNOUSERSITE="1",
        )
        return env


def setup_cell_index(nb) -> int:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "setup" in cell.metadata.get("tags", []):
            return index
    raise ValueError("no cell tagged 'setup'")


def run_notebook(
    path: Path,
    mirror: Path,
    workdir: Path,
    python: str,
    sites: list[str],
    setup_only: bool = False,
    cell_timeout: int = None,
) -> dict:
    """Run one notebook in a fresh simulated runtime; a dict says what happened."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    runtime = Runtime(workdir, mirror, python, sites)
    target = runtime.content / path.name
    shutil.copy2(path, target)
    nb = nbformat.read(target, as_version=4)
    if setup_only:
        nb.cells = nb.cells[: setup_cell_index(nb) + 1]
    nb.cells.append(nbformat.v4.new_code_cell(VERSIONS_CELL))
    result = {"notebook": str(path), "ok": False, "error": "", "seconds": 0.0}
    saved, wanted = dict(os.environ), runtime.env()
    os.environ.clear()
    os.environ.update(wanted)
    start = time.monotonic()
    try:
        client = NotebookClient(
            nb,
            kernel_name="colab",
            timeout=cell_timeout or CELL_LIMIT,
            resources={"metadata": {"path": str(runtime.content)}},
        )
        client.execute()
        result["ok"] = True
    except CellExecutionError as exc:
        result["error"] = str(exc)[-4000:]
        result["ename"], result["evalue"] = exc.ename, exc.evalue
    except Exception as exc:  # a kernel that would not start, a timeout ...
        result["error"] = f"{type(exc).__name__}: {exc}"[-4000:]
    finally:
        result["seconds"] = round(time.monotonic() - start, 1)
        os.environ.clear()
        os.environ.update(saved)
    installed = list(runtime.site.glob("bncourse_helpers-*.dist-info"))
    result["installed"] = bool(installed)
    result["editable"] = any(
        "editable" in (d / "direct_url.json").read_text()
        for d in installed
        if (d / "direct_url.json").is_file()
    )
    result["checks_installed"] = (runtime.site / "helpers" / "checks").is_dir()
    result["content"] = sorted(p.name for p in runtime.content.iterdir())
    result["downloads"] = (
        [json.loads(x) for x in runtime.downloads.read_text().splitlines()]
        if runtime.downloads.exists()
        else []
    )
    result["versions"] = {}
    for output in nb.cells[-1].get("outputs", []):
        for line in str(output.get("text", "")).splitlines():
            if line.startswith("COLAB-SIM-VERSIONS "):
                result["versions"] = json.loads(line.split(" ", 1)[1])
    nbformat.write(nb, workdir / f"executed-{path.name}")
    return result


def run_many(
    notebooks: list[Path],
    mirror: Path,
    workdir: Path,
    sites: list[str] = (),
    python: str = sys.executable,
    setup_only: bool = False,
    jobs: int = 2,
    notebook_limit: int = 2400,
) -> dict[str, dict]:
    """Simulate several notebooks, ``jobs`` at a time, each in its own process.

    A run that has not finished after ``notebook_limit`` seconds is stopped
    with its kernel and reported as a hang.  One process per notebook keeps
    each one's environment (which the runtime sets in ``os.environ`` for its
    kernel) to itself.  Returns the results by
    notebook file name.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(item):
        index, path = item
        out = workdir / f"result-{index}.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            str(path),
            "--mirror",
            str(mirror),
            "--python",
            python,
            "--json",
            str(out),
            "--keep",
            str(workdir),
        ]
        command += ["--setup-only"] if setup_only else []
        for site in sites:
            command += ["--site", str(site)]
        env = dict(os.environ)
        if jobs > 1:  # two kernels' OpenMP threads fighting for the cores: 50x slower
            env["OMP_NUM_THREADS"] = "1"
        # its own session, so that a hang can be stopped with its kernel
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        try:
            _, stderr = proc.communicate(timeout=notebook_limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {
                "notebook": str(path),
                "ok": False,
                "error": f"the simulated run of {path.name} had not finished after "
                f"{notebook_limit} s (each cell may take {CELL_LIMIT} s): a hang; its "
                f"runtime is kept in {workdir} to look at",
            }
        if out.exists():
            return json.loads(out.read_text())[0]
        return {
            "notebook": str(path),
            "ok": False,
            "error": f"the simulation itself failed: {stderr[-3000:]}",
        }

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(one, enumerate(notebooks)))
    return {Path(r["notebook"]).name: r for r in results}


def default_sites(python: str = sys.executable) -> list[str]:
    """The site-packages of the kernel's interpreter (``--python``), not this one's.

    A kernel of another Python (Colab's 3.13 beside this 3.11) must not see this
    interpreter's packages: their compiled parts would not load, and the pure
    ones would stand in for packages its own environment lacks.
    """
    if Path(python).absolute() == Path(sys.executable).absolute():
        return [sysconfig.get_paths()["purelib"]]
    found = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [found.stdout.strip()]


def main(argv=None) -> int:
    from helpers import course

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument(
        "--site",
        action="append",
        default=[],
        help="a folder of packages for the kernel, searched before the default",
    )
    parser.add_argument("--setup-only", action="store_true")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", type=Path, help="build everything in this folder")
    parser.add_argument(
        "--mirror",
        type=Path,
        help="serve GitHub from this repository (default: "
        "a new mirror of the checkout; a missing path simulates a failed clone)",
    )
    parser.add_argument(
        "--release",
        type=Path,
        help="serve GitHub from a mirror of this learner release folder "
        "(tools/make_release.py) instead of the checkout",
    )
    args = parser.parse_args(argv)
    sites = [str(Path(s).resolve()) for s in args.site] + default_sites(args.python)
    base = Path(tempfile.mkdtemp(prefix="colab-sim-", dir=args.keep))
    try:
        mirror = args.mirror or make_mirror(
            base / "mirror" / "repo", course.RELEASE, root=args.release or ROOT
        )
        results = []
        for index, path in enumerate(args.notebooks):
            result = run_notebook(
                path.resolve(),
                mirror,
                base / f"runtime-{index}",
                args.python,
                sites,
                setup_only=args.setup_only,
            )
            results.append(result)
            verdict = "ok" if result["ok"] else "FAILED"
            versions = result["versions"]
            print(
                f"{path}: {verdict} ({result['seconds']} s; Python "
                f"{versions.get('python', '?')}, torch {versions.get('torch', '?')})",
                flush=True,
            )
            if not result["ok"]:
                print(result["error"], flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return 0 if all(r["ok"] for r in results) else 1
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
