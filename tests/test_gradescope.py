"""The Gradescope autograder exactly as the README builds it, run as Gradescope runs it.

Gradescope's autograder specification: the zip holds ``setup.sh`` and
``run_autograder`` at its root; it is unpacked *into* ``/autograder/source``;
``setup.sh`` runs once, as root, to build the image; for each submission
``run_autograder`` is copied to ``/autograder/run_autograder`` and run from
``/autograder``, with the learner's files in ``/autograder/submission``, and
must write ``/autograder/results/results.json``: ``score`` (or a score on
every test), ``tests`` (each with ``name``, ``score``, ``max_score`` and an
``output`` string) and an ``output`` string for the whole submission.

Here ``/autograder`` is a temporary folder (``AUTOGRADER_ROOT``), and
``setup.sh`` takes the dependencies from this environment (``AUTOGRADER_DEPS``)
instead of downloading them; every other step runs as on Gradescope.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

LESSON = "00_setup_and_conventions.ipynb"  # 2 points, graded in seconds


def readme_command() -> list[str]:
    """The README's command that builds the zip, as words."""
    readme = (ROOT / "README.md").read_text()
    paragraph = readme.split("**Gradescope.**", 1)[1].split("\n**", 1)[0]
    (line,) = [ln for ln in paragraph.splitlines() if "make_zip.py" in ln]
    return re.sub(r"#.*", "", line).split()


def _unpack_like_gradescope(archive: Path, root: Path) -> Path:
    """Unpack into ``root/source``, keeping each file's mode (as unzip does)."""
    source = root / "source"
    source.mkdir(parents=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, source))
            mode = info.external_attr >> 16
            if mode:
                target.chmod(stat.S_IMODE(mode))
    return source


@pytest.fixture(scope="module")
def image():
    """The zip built by the README's command, unpacked and set up: /autograder.

    Built where every user may pass, as /autograder is on Gradescope (pytest's
    own temporary folders are the grader's alone): graded as root without the
    sandbox, the kernel runs as an unprivileged user and must reach the
    course and its environment.
    """
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="bncourse-gradescope-"))
    tmp.chmod(0o755)
    try:
        yield _build_image(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_image(tmp: Path) -> dict:
    words = readme_command()
    assert words[:2] == [".venv/bin/python", "tools/gradescope/make_zip.py"], words
    # the README pins its example's lesson; these tests hand in LESSON (quick)
    assert "--lesson" in words, words
    words[words.index("--lesson") + 1] = LESSON[:2]
    out = words[words.index("--out") + 1]
    build = subprocess.run(
        [sys.executable, str(ROOT / words[1]), *words[2:]],
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    root = tmp / "autograder"
    source = _unpack_like_gradescope(tmp / out, root)
    env = dict(
        os.environ,
        AUTOGRADER_ROOT=str(root),
        AUTOGRADER_DEPS=sysconfig.get_paths()["purelib"],
        PYTHON3=str(Path(sys.base_prefix) / "bin" / "python3"),
    )
    env.pop("PYTHONPATH", None)
    setup = subprocess.run(
        [str(source / "setup.sh")], cwd=root, env=env, capture_output=True, text=True
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    # Gradescope copies run_autograder to /autograder when it builds the image
    shutil.copy2(source / "run_autograder", root / "run_autograder")
    return {"root": root, "source": source, "setup": setup.stdout}


# A process the kernel detaches (setsid, then a second fork) outlived the
# grader's killpg on main and rewrote Gradescope's JSON before run_autograder
# copied it (finding A23): the fallback without the sandbox ran the kernel as
# root.  The cell says, in a folder everyone may write, whether the kernel
# could create Gradescope's results file, and which process it left behind.
DETACHED = """# leave a process behind
import json, os, time
spy, results = {spy!r}, {results!r}
try:
    os.makedirs(os.path.dirname(results), exist_ok=True)
    with open(results, "w") as f:
        f.write(json.dumps({{"score": 99, "tests": [], "output": "forged"}}))
    verdict = "wrote"
except OSError:
    verdict = "denied"
with open(os.path.join(spy, "probe"), "w") as f:
    f.write(verdict)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(os.path.join(spy, "pid.tmp"), "w") as f:
            f.write(str(os.getpid()))
        os.rename(os.path.join(spy, "pid.tmp"), os.path.join(spy, "pid"))
        for _ in range(2400):  # two minutes: rewrite the results whenever they exist
            try:
                if os.path.exists(results):
                    with open(results, "w") as f:
                        f.write(json.dumps({{"score": 99, "tests": [], "output": "x"}}))
            except OSError:
                pass
            time.sleep(0.05)
    os._exit(0)
os.wait()
while not os.path.exists(os.path.join(spy, "pid")):
    time.sleep(0.05)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(os.geteuid() != 0, reason="Gradescope grades as root")
def test_without_the_sandbox_nothing_outlives_the_kernel_or_writes_the_results(
    image, tmp_path
):
    import tempfile

    import nbformat

    root = image["root"]
    spy = Path(tempfile.mkdtemp(prefix="bncourse-spy-"))
    spy.chmod(0o777)
    nb = nbformat.read(ROOT / "solutions" / LESSON, 4)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            DETACHED.format(
                spy=str(spy), results=str(root / "results" / "results.json")
            )
        )
    )
    submission = tmp_path / LESSON
    nbformat.write(nb, submission)
    no_bwrap = tmp_path / "bin"  # bubblewrap cannot run: the fallback
    no_bwrap.mkdir()
    (no_bwrap / "bwrap").write_text(
        "#!/bin/sh\necho 'no user namespaces' >&2\nexit 1\n"
    )
    (no_bwrap / "bwrap").chmod(0o755)
    pid = None
    try:
        done = _run(
            root,
            {LESSON: submission},
            PATH=f"{no_bwrap}:{os.environ['PATH']}",
        )
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        assert "--sandbox off" in done.stderr, done.stderr  # the fallback ran
        pid = int((spy / "pid").read_text())
        # main: the kernel ran as root and wrote it
        assert (spy / "probe").read_text() == "denied"
        # main: the detached process was still running, rewriting the results
        assert not _alive(pid), f"process {pid} outlived the grading"
        results = json.loads((root / "results" / "results.json").read_text())
        assert results["score"] == sum(t["max_score"] for t in results["tests"]) > 0
        assert "unsandboxed" in results["output"], results["output"]
    finally:
        if pid is not None and _alive(pid):
            os.kill(pid, 9)
        shutil.rmtree(spy, ignore_errors=True)


def test_the_zip_has_the_scripts_and_the_course_at_its_root(image):
    source = image["source"]
    for script in ("setup.sh", "run_autograder"):
        assert os.access(source / script, os.X_OK), script
    assert (source / "tools" / "grade.py").is_file()
    assert (source / "solutions" / LESSON).is_file()
    assert not (source / "source").exists()
    assert not (source / ".venv").exists()


def test_setup_installs_the_course_from_source_and_says_each_step(image):
    lines = image["setup"].splitlines()
    steps = [ln for ln in lines if re.match(r"setup\.sh: \[\d/4\]", ln)]
    assert len(steps) == 4, lines
    assert "ready" in lines[-1] and str(image["source"]) in lines[-1]
    python = image["root"] / "venv" / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", "import helpers; print(helpers.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(image["source"])), done.stdout


def _run(
    root: Path, submission: dict[str, Path], **env_extra
) -> subprocess.CompletedProcess:
    folder = root / "submission"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(root / "results", ignore_errors=True)
    folder.mkdir()
    for name, path in submission.items():
        shutil.copyfile(path, folder / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env.update(AUTOGRADER_ROOT=str(root), **env_extra)
    return subprocess.run(
        [str(root / "run_autograder")],
        cwd=root,  # Gradescope's working folder
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_run_autograder_writes_gradescopes_results_json(image):
    root = image["root"]
    done = _run(root, {LESSON: ROOT / "solutions" / LESSON})
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    # Gradescope's documented fields and their types
    assert isinstance(results["score"], (int, float))
    assert isinstance(results.get("output", ""), str)
    assert results["tests"], results
    for test in results["tests"]:
        assert isinstance(test["name"], str) and test["name"]
        assert isinstance(test["score"], (int, float))
        assert isinstance(test["max_score"], (int, float))
        assert isinstance(test.get("output", ""), str)
    assert results["score"] == sum(t["score"] for t in results["tests"])
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) > 0


def _fake_grader(tmp_path: Path, count: int) -> Path:
    """A stand-in for the venv's python: writes ``count`` JSON files, odd names."""
    fake = tmp_path / "fake-python"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        # a call without --out (run_autograder's sandbox probe) fails: no sandbox
        'while [ $# -gt 0 ] && [ "$1" != --out ]; do shift; done\n'
        "[ $# -gt 0 ] || exit 1\n"
        'dir="$(dirname "$2")/any-folder"; mkdir -p "$dir"\n'
        f"for i in $(seq 1 {count}); do\n"
        '  echo \'{"score": 1, "tests": [], "output": ""}\' >"$dir/$RANDOM-$i.json"\n'
        "done\n"
    )
    fake.chmod(0o755)
    return fake


def _scripts_only(tmp_path: Path) -> Path:
    root = tmp_path / "autograder"
    (root / "source" / "tools").mkdir(parents=True)
    shutil.copy2(
        ROOT / "tools" / "gradescope" / "run_autograder", root / "run_autograder"
    )
    return root


def test_run_autograder_takes_the_one_results_file_whatever_its_name(tmp_path):
    root = _scripts_only(tmp_path)
    done = _run(
        root,
        {LESSON: ROOT / "notebooks" / LESSON},
        PYTHON=str(_fake_grader(tmp_path, 1)),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((root / "results" / "results.json").read_text())["score"] == 1


@pytest.mark.parametrize("count", [0, 2])
def test_run_autograder_fails_clearly_without_exactly_one_results_file(tmp_path, count):
    root = _scripts_only(tmp_path)
    done = _run(
        root,
        {LESSON: ROOT / "notebooks" / LESSON},
        PYTHON=str(_fake_grader(tmp_path, count)),
    )
    assert done.returncode != 0
    assert "expected exactly one Gradescope results file" in done.stderr
    assert f"found {count}" in done.stderr
    assert not (root / "results" / "results.json").exists()


def test_run_autograder_refuses_a_submission_of_two_notebooks(tmp_path):
    root = _scripts_only(tmp_path)
    notebook = ROOT / "notebooks" / LESSON
    done = _run(
        root,
        {LESSON: notebook, "01_covariate_shift.ipynb": notebook},
        PYTHON=str(_fake_grader(tmp_path, 2)),
    )
    assert done.returncode != 0
    assert "found 2 in" in done.stderr and "one lesson notebook" in done.stderr


def test_setup_refuses_the_course_one_folder_too_deep(tmp_path):
    """The layout the README once documented: the course in source/source/."""
    root = tmp_path / "autograder"
    source = root / "source"
    (source / "source").mkdir(parents=True)
    shutil.copy2(ROOT / "tools" / "gradescope" / "setup.sh", source / "setup.sh")
    done = subprocess.run(
        [str(source / "setup.sh")],
        env=dict(os.environ, AUTOGRADER_ROOT=str(root)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "make_zip.py" in done.stderr


FAKE_PYTHON3 = """#!/bin/sh
# python3 for setup.sh: a venv whose python records pip's arguments
if [ "$1" = -m ] && [ "$2" = venv ]; then
  /bin/mkdir -p "$3/bin"
  printf '#!/bin/sh\\necho "$*" >>%s\\n' "{log}" >"$3/bin/python"
  /bin/chmod +x "$3/bin/python"
  exit 0
fi
exec {real} "$@"
"""


def test_the_image_installs_pytorchs_cpu_build_and_only_what_grading_needs(tmp_path):
    """setup.sh's install steps as they run on Gradescope (pip's arguments recorded)."""
    import http.server
    import threading

    from .test_install import _Index  # an index that answers

    server = http.server.HTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    index = f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"
    root = tmp_path / "autograder"
    source = root / "source"
    (source / "tools" / "gradescope").mkdir(parents=True)
    for rel in (
        "requirements.txt",
        "requirements-test.txt",
        "tools/grade.py",
        "tools/torch_index.py",
    ):
        shutil.copy2(ROOT / rel, source / rel)
    shutil.copy2(ROOT / "tools" / "gradescope" / "setup.sh", source / "setup.sh")
    bin_dir, log = tmp_path / "bin", tmp_path / "pip.log"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(FAKE_PYTHON3.format(log=log, real=sys.executable))
    fake.chmod(0o755)
    os.symlink(shutil.which("grep"), bin_dir / "grep")  # and no apt-get
    try:
        done = subprocess.run(
            ["/bin/bash", str(source / "setup.sh")],
            env={
                "PATH": str(bin_dir),
                "AUTOGRADER_ROOT": str(root),
                "TORCH_INDEX": index,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stdout + done.stderr
    calls = [line.split() for line in log.read_text().splitlines()]
    installs = [c for c in calls if "install" in c]
    torch = [c for c in installs if "--no-deps" in c]
    assert torch and torch[0][-1] == "torch==2.13.0", installs
    assert torch[0][torch[0].index("--index-url") + 1] == index  # the CPU build
    (course,) = [c for c in installs if "-e" in c]
    assert course[course.index("-e") + 1] == str(source)  # no [lab] or [test] extras
    assert "-r" not in course and "requirements.txt" not in " ".join(course)
    # the grader's own library, at the pin the test suite runs with
    (pin,) = [
        line
        for line in (ROOT / "requirements-test.txt").read_text().splitlines()
        if line.startswith("confusable-homoglyphs==")
    ]
    assert pin in course, course


def test_the_zips_lesson_pins_what_run_autograder_grades(tmp_path):
    """make_zip.py --lesson writes LESSON; run_autograder passes it on as
    grade.py's --lesson (a submission's name or metadata cannot choose)."""
    import zipfile

    sys.path.insert(0, str(ROOT / "tools" / "gradescope"))
    import make_zip

    names = make_zip.build(tmp_path / "a.zip", lesson=Path(LESSON).stem)
    assert "LESSON" in names
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert archive.read("LESSON").decode().strip() == Path(LESSON).stem
    root = _scripts_only(tmp_path)
    (root / "source" / "LESSON").write_text(Path(LESSON).stem + "\n")
    fake = _fake_grader(tmp_path, 1)
    log = tmp_path / "args.txt"
    fake.write_text(
        fake.read_text().replace(
            "#!/usr/bin/env bash\n", f'#!/usr/bin/env bash\necho "$@" >>{log}\n', 1
        )
    )
    done = _run(root, {LESSON: ROOT / "notebooks" / LESSON}, PYTHON=str(fake))
    assert done.returncode == 0, done.stderr
    assert f"--lesson {Path(LESSON).stem}" in log.read_text()
