"""Attacks on the grader's limits, its environment and the files it reads.

Each attack is a small submission (lesson 02's or the quiz's setup cell and
one attack cell: seconds to grade) or a file laid out in the submissions
folder as an LMS archive could unpack it.  Every one of them succeeded
against the grader of commit 3fd9a5f (issue 27): /tmp outside the memory
budget, a per-file size limit only, the grader's whole environment in the
kernel, links followed with the grader's rights, and no sandbox without a word.

* the sandbox's ``/tmp`` and working folder hold at most ``--disk-mb``
  between them, however many files;
* the kernel sees an allow-list environment, never a token the instructor
  exported (with and without the sandbox);
* a submission, answers file or learner folder that is a link, a hard link or
  a FIFO is refused with a row that says why and shows nothing of the target;
* without bubblewrap the grader refuses unless told ``--sandbox off``, and
  then every row says that it ran unsandboxed;
* the budget is one for the whole sandbox (outside review, 2026-12-06: A22,
  A08, A16): forked children share ``--memory-mb``, empty files count against
  ``--disk-mb``, and no cell's tags or text stretch ``--cell-timeout``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import contract
from tools.grading import sandbox

from .conftest import ROOT, quiz_solution_with_answers, run_grader

LESSON = "02_bn_forward_backward"
DISK_MB = 64
ATTEMPT_MB = 400  # what each filling attack tries to hold (the old grader held it)

needs_sandbox = pytest.mark.skipif(
    not sandbox.availability()[0],
    reason=f"the sandbox cannot run here: {sandbox.availability()[1]}",
)

# A cell that reports how much it held by the name of the exception it raises:
# the row's error names it ('code cell 2 ("# fill /tmp") raised Held64MB').
FILL_TMP = f"""# fill /tmp
import os
held, chunk = 0, b"x" * (8 << 20)
try:
    for i in range({ATTEMPT_MB} // 8):  # many files of 8 MB
        with open(f"/tmp/fill-{{i}}", "wb") as f:
            f.write(chunk)
        held += 8
except OSError:
    pass
raise type(f"Held{{held}}MB", (Exception,), {{}})()
"""

FILL_WORKDIR = f"""# fill the working folder
import os
held, chunk = 0, b"x" * (8 << 20)
try:
    for name in ("a.bin", "b.bin", "c.bin"):  # each file under the old 512 MB limit
        with open(name, "wb") as f:
            for _ in range({ATTEMPT_MB} // 3 // 8):
                f.write(chunk)
                f.flush()
                held += 8
except OSError:
    pass
raise type(f"Held{{held}}MB", (Exception,), {{}})()
"""

FILL_SOCKETS = f"""# fill the socket folder
import os
held, chunk = 0, b"x" * (8 << 20)
try:
    os.chmod(".kernel", 0o777)
except OSError:
    pass
try:
    for i in range({ATTEMPT_MB} // 8):
        with open(f".kernel/fill-{{i}}", "wb") as f:
            f.write(chunk)
        held += 8
except OSError:
    pass
raise type(f"Held{{held}}MB", (Exception,), {{}})()
"""

SHOW_ENVIRONMENT = """# show the environment
import os, glob
print(dict(os.environ))
for path in glob.glob("/proc/*/environ"):
    try:
        print(path, open(path, "rb").read().decode(errors="replace"))
    except OSError:
        pass
"""


def _small(lesson: str, *sources: str):
    """The learner copy's setup cell, then ``sources``: seconds to grade."""
    nb = nbformat.read(ROOT / "notebooks" / f"{lesson}.ipynb", 4)
    nb.cells = [c for c in nb.cells if contract.SETUP_TAG in contract.tags(c)]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def _held(row) -> int:
    found = re.findall(r"raised Held(\d+)MB", row["error"])
    assert found, row
    return int(found[0])


def _everything_written(folder: Path) -> str:
    """Every file the grader wrote (CSV, feedback pages, gradebooks), as text."""
    return "\n".join(
        p.read_text(errors="replace") for p in sorted(folder.rglob("*")) if p.is_file()
    )


def _refused(row, word: str) -> None:
    assert row["total"] == "", row  # not graded at all
    assert "refused" in row["error"] and word in row["error"], row["error"]


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """One class, graded in the sandbox: the attacks and the links in it."""
    folder = tmp_path_factory.mktemp("class")
    out = tmp_path_factory.mktemp("out")
    secret = "TOPSECRET-" + secrets.token_hex(8)
    token = "tok-" + secrets.token_hex(12)
    private = tmp_path_factory.mktemp("instructor")
    (private / "notes.txt").write_text(secret + " not for learners\n")
    paths = {}
    for name, source in {
        "fill tmp": FILL_TMP,
        "fill workdir": FILL_WORKDIR,
        "fill sockets": FILL_SOCKETS,
        "environment": SHOW_ENVIRONMENT,
    }.items():
        paths[name] = folder / f"{LESSON}_{name.replace(' ', '_')}.ipynb"
        nbformat.write(_small(LESSON, source), paths[name])
    links = {
        "symlink to the solution": ROOT / "solutions" / f"{LESSON}.ipynb",
        "symlink to another file": private / "notes.txt",
    }
    for name, target in links.items():
        paths[name] = folder / f"02_{name.replace(' ', '_')}.ipynb"
        paths[name].symlink_to(target)
    paths["hard link"] = private / "02_hard_link.ipynb"  # same file system
    os.link(private / "notes.txt", paths["hard link"])
    paths["fifo"] = folder / "02_fifo.ipynb"
    os.mkfifo(paths["fifo"])
    # a learner folder that is a link to the solutions: mallory/02_... is the key
    (folder / "mallory").symlink_to(ROOT / "solutions")
    paths["symlinked learner folder"] = folder / "mallory" / f"{LESSON}.ipynb"
    # a quiz handed in with its answers file a link to another learner's
    quiz_folder = tmp_path_factory.mktemp("quiz")
    key = quiz_solution_with_answers(quiz_folder)  # bob's answers: every one right
    paths["answers file a symlink"] = folder / "06_quiz_eve.ipynb"
    nbformat.write(_small("06_quiz"), paths["answers file a symlink"])
    (folder / "06_quiz_eve.answers.json").symlink_to(
        key.with_name(key.stem + ".answers.json")
    )
    env = dict(os.environ, BNC_INSTRUCTOR_TOKEN=token)
    rows = run_grader(
        out / "grades.csv",
        paths.values(),
        "--feedback",
        str(out / "feedback"),
        "--format",
        "gradescope",
        "--format",
        "canvas",
        "--cell-timeout",
        "60",
        "--timeout",
        "240",
        "--memory-mb",
        "3072",
        "--disk-mb",
        str(DISK_MB),
        "--sandbox",
        "on",
        env=env,
    )
    return {
        "rows": {name: rows[str(path)] for name, path in paths.items()},
        "written": _everything_written(out),
        "secret": secret,
        "token": token,
    }


@needs_sandbox
@pytest.mark.slow
def test_tmp_holds_no_more_than_the_disk_budget(attacked):
    # 3fd9a5f: 400 MB held (a private tmpfs outside every limit)
    assert _held(attacked["rows"]["fill tmp"]) <= DISK_MB


@needs_sandbox
@pytest.mark.slow
def test_many_files_hold_no_more_than_the_disk_budget(attacked):
    # 3fd9a5f: 400 MB held (512 MB per file, any number of files)
    assert _held(attacked["rows"]["fill workdir"]) <= DISK_MB


@needs_sandbox
@pytest.mark.slow
@pytest.mark.xfail(
    os.geteuid() != 0,
    reason="graded as an unprivileged user, the kernel runs as that user and can "
    "make its sealed socket folder writable again (the README says so)",
    strict=True,
)
def test_the_socket_folder_takes_nothing(attacked):
    # the one folder of the grader's bound into the sandbox, writable until the
    # kernel is up; 3fd9a5f: it was the working folder (see the test above)
    assert _held(attacked["rows"]["fill sockets"]) == 0


@needs_sandbox
@pytest.mark.slow
def test_the_graders_environment_never_reaches_the_learner(attacked):
    row = attacked["rows"]["environment"]
    assert row["total"] != "", row  # it was graded
    assert "BNCOURSE_GRADING" in attacked["written"]  # the printout is there...
    assert attacked["token"] not in attacked["written"]  # ...without the token


@needs_sandbox
@pytest.mark.slow
@pytest.mark.parametrize(
    "name, word",
    [
        ("symlink to the solution", "link"),
        ("symlink to another file", "link"),
        ("hard link", "hard link"),
        ("fifo", "not a regular file"),
        ("symlinked learner folder", "link"),
        ("answers file a symlink", "link"),
    ],
)
def test_links_and_special_files_are_refused(attacked, name, word):
    _refused(attacked["rows"][name], word)
    assert attacked["secret"] not in attacked["written"]


def _without_bwrap(tmp_path) -> dict:
    """The grader's environment with a PATH where bwrap cannot be found."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    return dict(os.environ, PATH=str(bin_dir))


@pytest.mark.slow
def test_without_bubblewrap_the_grader_refuses_unless_told(tmp_path):
    path = tmp_path / f"{LESSON}.ipynb"
    nbformat.write(_small(LESSON, "x = 1"), path)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "grade.py"),
            "--out",
            str(tmp_path / "g.csv"),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=_without_bwrap(tmp_path),
    )
    # 3fd9a5f: graded without the sandbox after one console line, exit 0
    assert result.returncode != 0, result.stdout[-2000:]
    assert "--sandbox off" in result.stderr + result.stdout
    assert not (tmp_path / "g.csv").exists()


@pytest.mark.slow
def test_sandbox_off_is_said_in_every_row_and_hides_the_environment(tmp_path):
    path = tmp_path / f"{LESSON}.ipynb"
    nbformat.write(_small(LESSON, SHOW_ENVIRONMENT), path)
    token = "tok-" + secrets.token_hex(12)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(_without_bwrap(tmp_path), BNC_INSTRUCTOR_TOKEN=token)
    rows = run_grader(
        out / "grades.csv",
        [path],
        "--sandbox",
        "off",
        "--feedback",
        str(out / "feedback"),
        "--format",
        "gradescope",
        env=env,
    )
    row = rows[str(path)]
    assert row["total"] != "", row
    assert "unsandboxed" in row["notes"], row
    from tools import grade

    back = grade.read_csv(out / "grades.csv")  # as `grade.py merge` reads shards
    assert [r.unsandboxed for r in back] == [True]
    assert "1 of 1" in sandbox.unsandboxed_warning(back)
    results = json.loads(next((out / "gradescope").glob("*.json")).read_text())
    assert "unsandboxed" in results["output"], results
    # the kernel's own environment is the allow-list (without the sandbox it
    # can still read the grader's /proc/<pid>/environ: the README says so)
    written = _everything_written(out)
    assert "BNCOURSE_GRADING" in written
    assert f"'BNC_INSTRUCTOR_TOKEN': '{token}'" not in written


# --------------------------------------------------------------------------
# the file checks alone (no grading: fast, everywhere)
# --------------------------------------------------------------------------


def test_read_regular_reads_a_file_and_refuses_the_rest(tmp_path):
    from tools.grade import Refused, read_regular

    plain = tmp_path / "plain.ipynb"
    plain.write_bytes(b"{}")
    assert read_regular(plain, 10, "the submission") == b"{}"
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    (tmp_path / "link.ipynb").symlink_to(secret)
    os.link(secret, tmp_path / "hard.ipynb")
    os.mkfifo(tmp_path / "fifo.ipynb")
    (tmp_path / "dangling.ipynb").symlink_to(tmp_path / "nowhere")
    for name, words in [
        ("link.ipynb", "symbolic link"),
        ("dangling.ipynb", "symbolic link"),
        ("hard.ipynb", "hard link"),
        ("fifo.ipynb", "a FIFO"),
        ("missing.ipynb", "was not found"),
    ]:
        with pytest.raises(Refused, match=words) as caught:
            read_regular(tmp_path / name, 1 << 20, "the submission")
        assert "TOPSECRET" not in str(caught.value)
    big = tmp_path / "big.ipynb"
    big.write_bytes(b"x" * 11)
    with pytest.raises(Refused, match="larger than"):
        read_regular(big, 10, "the submission")


def test_a_learner_folder_that_is_a_link_is_found(tmp_path):
    from tools.grade import linked_folder

    (tmp_path / "class" / "bob").mkdir(parents=True)
    (tmp_path / "class" / "mallory").symlink_to(tmp_path / "class" / "bob")
    (tmp_path / "class" / "bob" / "deep").mkdir()
    top = tmp_path / "class"
    assert linked_folder(top / "bob" / "02.ipynb", top) is None
    assert linked_folder(top / "mallory" / "02.ipynb", top) == "mallory"
    assert linked_folder(top / "mallory" / "deep" / "02.ipynb", top) == "mallory"


def test_the_kernel_cannot_hold_memory_outside_its_address_space(tmp_path):
    """A memfd or System V shared memory holds memory the address-space limit
    does not count (the held-out battery held 1.7 GB under --memory-mb 1024
    with a memfd): the sandbox's seccomp filter refuses both calls, and a
    kernel's usual work (torch) still runs."""
    import platform
    import subprocess
    import sys

    if not sandbox.availability()[0] or sandbox.seccomp_program() is None:
        pytest.skip(f"no sandbox or no filter for {platform.machine()}")
    code = (
        "import ctypes, os\n"
        "try:\n"
        "    os.memfd_create('hoard'); print('memfd allowed')\n"
        "except OSError as e:\n"
        "    print('memfd refused', e.errno)\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('shmget', libc.shmget(0, 1 << 20, 0o1600), ctypes.get_errno())\n"
        "import torch\n"
        "print('torch', torch.ones(3).sum().item())\n"
    )
    shell = (
        f"exec bwrap --ro-bind / / --dev /dev --proc /proc --unshare-ipc "
        f'--seccomp 9 {sys.executable} -c "$CODE" 9<{sandbox.seccomp_file()}'
    )
    run = subprocess.run(
        ["/bin/sh", "-c", shell],
        env={"CODE": code, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "memfd refused 1" in run.stdout, run.stdout + run.stderr
    assert "shmget -1 1" in run.stdout, run.stdout + run.stderr
    assert "torch 3.0" in run.stdout, run.stdout + run.stderr
    # the launcher hands the filter to every sandboxed kernel
    argv = sandbox.launcher(tmp_path, tmp_path, tmp_path, None)
    assert "--seccomp" in argv[-1] and sandbox.seccomp_file() in argv[-1]


def test_no_library_of_the_kernel_uses_an_ipc_call_the_filter_refuses():
    """What a kernel really uses: no shared library of the course's
    environment (torch, NumPy, zmq, the interpreter's extensions) imports a
    function whose call the filter refuses (``sandbox.DENIED_SYMBOLS``), so
    refusing them costs no lesson anything (POSIX ``shm_open``, which torch
    imports, makes a file in ``/dev/shm``: read-only in the sandbox)."""
    import shutil
    import sysconfig

    if shutil.which("nm") is None:
        pytest.skip("no nm")
    roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    roots.add(sysconfig.get_config_var("DESTSHARED") or sys.prefix)
    libraries = sorted(
        {str(p) for root in roots for p in Path(root).rglob("*.so*") if p.is_file()}
    )
    assert any("libtorch_cpu" in p for p in libraries), len(libraries)
    found = []
    for start in range(0, len(libraries), 50):
        run = subprocess.run(
            ["nm", "-D", "--undefined-only", "-A", *libraries[start : start + 50]],
            capture_output=True,
            text=True,
        )
        for line in run.stdout.splitlines():
            symbol = line.split()[-1].split("@")[0]
            if symbol in sandbox.DENIED_SYMBOLS:
                found.append(line)
    assert not found, found


# i386 system calls from a 64-bit process (``int 0x80``): the filter sees
# another architecture; the numbers are i386's (getpid 20, shmget 395, msgget
# 399, semget 393, mq_open 277, memfd_create 356).
_I386 = """
import ctypes, mmap
def i386(nr, a=0, b=0, c=0):
    word = lambda n: n.to_bytes(4, "little")
    code = (b"\\x53\\xb8" + word(nr) + b"\\xbb" + word(a) + b"\\xb9" + word(b)
            + b"\\xba" + word(c) + b"\\xcd\\x80\\x5b\\xc3")
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
    return f()
"""


def test_the_kernel_cannot_create_ipc_objects_the_budget_does_not_count(tmp_path):
    """Attack (held-out A06, 4th battery): 32,000 System V message queues of
    16 KiB each held ~500 MB of kernel memory per submission that neither the
    watchdog nor the address-space limit counts (the filter refused only
    shmget).  Every System V and POSIX IPC object a kernel could create is
    refused (msgget, semget, shmget, mq_open; memfd too), and so is every
    call of another architecture (i386 calls through ``int 0x80`` bypassed
    the whole filter); a kernel's usual work (torch, a thread pool, a pipe,
    a socket pair) still runs."""
    import platform
    import subprocess
    import sys

    if not sandbox.availability()[0] or sandbox.seccomp_program() is None:
        pytest.skip(f"no sandbox or no filter for {platform.machine()}")
    code = (
        "import ctypes, os, socket\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def call(name, *args):\n"
        "    ctypes.set_errno(0)\n"
        "    result = getattr(libc, name)(*args)\n"
        "    verdict = 'refused' if result == -1 else 'allowed'\n"
        "    print(name, verdict, ctypes.get_errno())\n"
        "call('msgget', 0, 0o1600)\n"
        "call('semget', 0, 1, 0o1600)\n"
        "call('shmget', 0, 1 << 20, 0o1600)\n"
        "call('mq_open', b'/hoard', os.O_CREAT | os.O_RDWR, 0o600, None)\n"
        "import torch\n"
        "torch.set_num_threads(2)\n"
        "print('torch', torch.ones(1000, 100).sum().item())\n"
        "r, w = os.pipe(); a, b = socket.socketpair(); print('pipes ok')\n"
    )
    if platform.machine() == "x86_64":
        code += _I386 + (
            "print('i386 getpid', 'allowed' if i386(20) > 0 else 'refused')\n"
            "for nr, name in ((395, 'shmget'), (399, 'msgget'), (393, 'semget')):\n"
            "    print('i386', name, 'allowed' if i386(nr, 0, 1 << 16, 0o1600) >= 0"
            " else 'refused')\n"
        )
    shell = (
        f"exec bwrap --ro-bind / / --dev /dev --proc /proc --unshare-ipc "
        f'--seccomp 9 {sys.executable} -c "$CODE" 9<{sandbox.seccomp_file()}'
    )
    run = subprocess.run(
        ["/bin/sh", "-c", shell],
        env={"CODE": code, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout + run.stderr
    for name in ("msgget", "semget", "shmget", "mq_open"):
        assert f"{name} refused 1" in run.stdout, out
    assert "torch 100000.0" in run.stdout and "pipes ok" in run.stdout, out
    if platform.machine() == "x86_64":
        assert "allowed" not in run.stdout, out
        assert run.stdout.count("refused") == 8, out


# --------------------------------------------------------------------------
# one budget for the whole sandbox (outside review, findings A22, A08, A16)
# --------------------------------------------------------------------------

BUDGET_MB = 2048  # --memory-mb of the class below
CHILDREN, CHILD_MB = 4, 600  # each under the address-space limit, together over

# Forked children each get their own address-space limit: on main, four of
# them held 4 x 600 MB under --memory-mb 2048 (A22).
FORKED_MEMORY = f"""# forked children hold memory
import os, time
reads = []
for _ in range({CHILDREN}):
    r, w = os.pipe()
    if os.fork() == 0:
        hoard = b"x" * ({CHILD_MB} << 20)  # touched: resident
        os.write(w, b"1")
        time.sleep(120)
        os._exit(0)
    reads.append(r)
held = sum(len(os.read(r, 1)) for r in reads) * {CHILD_MB}
time.sleep(30)  # holding it while the grader looks
raise type(f"Held{{held}}MB", (Exception,), {{}})()
"""

# Empty files cost the kernel memory (~1.2 KiB each) that the tmpfs's size
# does not count: on main, 150,000 of them took ~183 MB outside --disk-mb (A08).
MANY_FILES = """# many empty files
import os, time
made = 0
for made in range(1, 30001):
    open(f"/tmp/empty-{made}", "w").close()
time.sleep(30)  # holding them while the grader looks
raise type(f"Made{made}Files", (Exception,), {})()
"""

# What the learner controls never stretches --cell-timeout (A16): on main a
# cell tagged setup got 300 s, a cell holding the channel's name 120 s.
LONG_CELLS = [
    ("# tagged setup\nimport time\ntime.sleep(100)", ["setup"]),
    ("# names the channel\nimport time\ntime.sleep(100)  # __bnc_channel_x", []),
]


def _with_tags(lesson: str, cells) -> nbformat.NotebookNode:
    nb = _small(lesson)
    nb.cells = [
        nbformat.v4.new_code_cell(source, metadata={"tags": tags})
        for source, tags in cells
    ]
    return nb


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory):
    """One class graded in the sandbox with small budgets: the attacks on the
    budget and an honest short submission."""
    folder = tmp_path_factory.mktemp("budget")
    notebooks = {
        "forked memory": _small(LESSON, FORKED_MEMORY),
        "many files": _small(LESSON, MANY_FILES),
        "long cells": _with_tags(LESSON, LONG_CELLS),
        "honest": _small(LESSON, "x = 1"),
    }
    paths = {}
    for name, nb in notebooks.items():
        paths[name] = folder / f"{LESSON}_{name.replace(' ', '_')}.ipynb"
        nbformat.write(nb, paths[name])
    rows = run_grader(
        folder / "grades.csv",
        paths.values(),
        "--cell-timeout",
        "20",
        "--timeout",
        "400",
        "--memory-mb",
        str(BUDGET_MB),
        "--disk-mb",
        str(DISK_MB),
        "--sandbox",
        "on",
    )
    return {name: rows[str(path)] for name, path in paths.items()}


@needs_sandbox
@pytest.mark.slow
def test_forked_processes_share_one_memory_budget(budgeted):
    # main: nothing ended it; the cell ran to its time limit (CellTimeoutError)
    # with its four children holding 2,400 MB, each under its own --memory-mb
    row = budgeted["forked memory"]
    assert row["total"] != "", row  # graded
    assert "sandbox was ended" in row["error"], row["error"]
    assert "memory" in row["error"] and "--memory-mb 2048" in row["error"], row
    assert "raised Held" not in row["error"], row["error"]


@needs_sandbox
@pytest.mark.slow
def test_files_count_in_the_disk_budget_however_small(budgeted):
    # main: the 30,000 empty files were not counted (64 MB allows 4,096): the
    # cell ran to its time limit
    row = budgeted["many files"]
    assert row["total"] != "", row
    assert "sandbox was ended" in row["error"], row["error"]
    assert "--disk-mb 64" in row["error"], row["error"]


@needs_sandbox
@pytest.mark.slow
def test_no_cell_gets_more_than_the_cell_time_limit(budgeted):
    # main: both cells ran their 100 s (a setup tag: 300 s; the channel's name: 120 s)
    error = budgeted["long cells"]["error"]
    for cell in (
        'code cell 1 ("# tagged setup")',
        'code cell 2 ("# names the channel")',
    ):
        # interrupted at the limit: the kernel's KeyboardInterrupt or the
        # client's CellTimeoutError, whichever came first
        assert re.search(
            re.escape(cell) + " raised (CellTimeoutError|KeyboardInterrupt)", error
        ), error


@needs_sandbox
@pytest.mark.slow
def test_an_honest_kernel_fits_its_budget_and_time(budgeted):
    row = budgeted["honest"]
    assert row["total"] != "", row
    assert "sandbox was ended" not in row["error"], row["error"]
    assert "code cell 1" not in row["error"], row["error"]  # the setup cell ran


def test_the_watchdog_counts_every_process_and_ends_them_all(tmp_path):
    """The watchdog's parts, on plain processes (no grading, no sandbox): the
    processes below a root, an orphan included, their memory summed, and all
    of them ended, a setsid'd double-forked one included."""
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        hoard = b'x' * (64 << 20)\n"
        "        open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "        time.sleep(120)\n"
        "    os._exit(0)\n"
        "time.sleep(120)\n"
    )
    marker = tmp_path / "orphan"
    script = (
        "import subprocess, sys, time\n"
        "from tools.grading import sandbox\n"
        "assert sandbox.become_subreaper()\n"
        f"child = subprocess.Popen([sys.executable, '-c', {code!r}, {str(marker)!r}])\n"
        f"while not __import__('os').path.exists({str(marker)!r}):\n"
        "    time.sleep(0.05)\n"
        "time.sleep(0.2)\n"
        "import os\n"
        "below = sandbox.descendants(os.getpid())\n"
        f"orphan = int(open({str(marker)!r}).read())\n"
        "print('orphan below', orphan in below)\n"
        "print('held MB', sandbox.memory_held(below, precise=True) >> 20)\n"
        "dog = sandbox.Watchdog(os.getpid(), memory_mb=32, disk_mb=64)\n"
        "dog.look()\n"
        "print('reason', dog.reason)\n"
        "print('left', sandbox.descendants(os.getpid()))\n"
        "where = f'/proc/{orphan}/stat'\n"
        "st = open(where).read() if os.path.exists(where) else 'x) gone'\n"
        "print('orphan state', st.rsplit(')', 1)[1].split()[0])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout + run.stderr
    assert "orphan below True" in out, out
    held = int(re.search(r"held MB (\d+)", out).group(1))
    assert held >= 64, out
    assert "over --memory-mb 32" in out, out
    assert "left []" in out, out
    assert "orphan state S" not in out and "orphan state R" not in out, out
