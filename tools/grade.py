"""Grade learners' notebooks: one CSV row per submission.

    python tools/grade.py --out grades.csv submissions/*.ipynb
        [--jobs N] [--timeout 600] [--cell-timeout 120] [--memory-mb 4096]
        [--disk-mb 512] [--sandbox on|off] [--class-folder DIR]

For each submission the grader

1. works out which lesson it is (notebook metadata written by the generator,
   else the ``NN_`` prefix of the file name);
2. takes that lesson's graded tests, hidden tests included, from its own
   ``solutions/`` copy, read once before any submission runs (the
   submission's own test cells, points and metadata count for nothing; a test
   the learner deleted still runs, at the end);
3. runs the submission's cells in order in a fresh kernel, in a sandbox
   (``tools/grading/sandbox.py``), in a copy of the submission in a temporary
   folder, in fast mode with ``BNCOURSE_GRADING=1``, with a time limit per
   cell and per notebook and resource limits; cells tagged
   ``skip-when-grading`` (demonstrations no test needs) are skipped;
4. judges every test **outside the kernel** (``tools/grading/remote.py``):
   the grader's own checks, in its own process, call the learner's functions
   and classes in the kernel through proxies, on inputs drawn here, and compare
   what comes back with PyTorch here; no test's code enters the kernel; the
   quiz is scored from its answers file (docs/grading-security.md has the
   threat model);
5. gives each test its points if it passed, else 0, and notes what the code
   does that an instructor should read (``tools/grading/flags.py``).

Submissions run in parallel, each in a forked child (default: one per core).
A submission that is not valid JSON, loops forever, kills its kernel,
allocates without bound or prints without end gets a row with its error; it
never stops the others.  A submission, answers file or learner folder that is
a link, a hard link or not a regular file is refused (``read_regular``): its
row says why and nothing of what the link points at.  The CSV is written
atomically once every row is in.
What the sandbox protects, and what it does not, is in the README.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from helpers import contract, quiz  # noqa: E402
from tools.grading import (  # noqa: E402
    identity,
    plan,
    quizscore,
    report,
    safe,
    sandbox,
    worker,
)


def shown(path) -> str:
    """A path as the grader writes it (``safe.path_text``): one to one, so two
    files are never shown alike; a byte that is not UTF-8 is ``\\xff``, a
    control character or bidi override an escape, a backslash ``\\\\``."""
    return safe.path_text(path)


@dataclass
class Row:
    file: str
    notebook: str = ""
    tests: dict = field(default_factory=dict)  # grade_id -> [earned, max]
    error: str = ""
    seconds: float = 0.0
    notes: list = field(default_factory=list)  # flags for the instructor
    messages: dict = field(default_factory=dict)  # grade_id -> the check's words
    mistakes: dict = field(default_factory=dict)  # grade_id -> mistakes it named
    learner: str = ""  # who the submission claims to be: only cross-checked
    quiz: dict = field(default_factory=dict)  # question id -> result (the quiz)
    transcript: list = field(default_factory=list)  # the run, for feedback
    # the folder the learner's id is read below (``identity.class_folder``)
    class_folder: str | None = None
    # graded with ``--sandbox off``: the grader's own status, in its own CSV
    # column (``sandbox``), never read from a note's text (notes hold learner
    # words); the note only says it
    unsandboxed: bool = False

    @property
    def total(self) -> float:
        return sum(earned for earned, _ in self.tests.values())

    @property
    def maximum(self) -> float:
        return sum(most for _, most in self.tests.values())


# --------------------------------------------------------------------------
# which notebook, which tests
# --------------------------------------------------------------------------


def lesson_of(nb, path: Path, pinned: str | None = None) -> str | None:
    """The lesson stem of a submission, or None when it cannot be told.

    The assignment decides, never what the learner wrote inside the file: the
    instructor's ``--lesson`` first, then the file's name (a lesson's stem
    anywhere in it, as in Canvas's downloads, or an ``NN_`` prefix), and the
    notebook's metadata only when neither names one (the worker notes a
    metadata that disagrees)."""
    from helpers import course

    if pinned:
        return course.lesson(pinned).stem
    named = [lesson.stem for lesson in course.LESSONS if lesson.stem in path.name]
    if named:  # a name that names two lessons tells none
        return named[0] if len(named) == 1 else None
    match = re.match(r"(\d\d)[_\-. ]", path.name)
    stem = nb.get("metadata", {}).get("bncourse", {}).get("lesson")
    for key in ([match.group(1)] if match else []) + [stem] * isinstance(stem, str):
        try:
            return course.lesson(key).stem
        except KeyError:
            continue
    return None


def test_cells(solution_path: Path) -> list:
    """The graded cells of a solution notebook, in order (hidden tests kept)."""
    import nbformat

    return contract.graded_cells(nbformat.read(solution_path, as_version=4))


def points_of(cell) -> float:
    return contract.points(cell, default=1.0)


def kernel_env(jobs: int) -> dict:
    """The kernel's environment: an allow-list of the grader's, never all of it."""
    env = sandbox.allowed_environment(os.environ)
    env.update(
        BNCOURSE_FAST="1",
        BNCOURSE_GRADING="1",
        BNCOURSE_DOWNLOAD="0",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])]),
    )
    if jobs > 1:  # the workers already use every core
        env["OMP_NUM_THREADS"] = "1"
    return env


@dataclass
class Job:
    """One submission being graded by its own child process."""

    index: int
    path: Path
    row: Row
    workdir: Path
    result_path: Path
    started: float
    slot: int = 0
    proc: object = None  # a forked multiprocessing.Process
    killed: str = ""
    unclaimed: str = ""  # an answers file beside it that names no submission
    uid: int | None = None  # the kernel's own user (graded as root)

    def pid(self) -> int | None:
        return getattr(self.proc, "pid", None)

    def running(self) -> bool:
        return self.proc is not None and self.proc.is_alive()


NOTEBOOK_CAP = 100 << 20  # bytes: a bigger submission is refused
ANSWERS_CAP = 4 << 20  # bytes of a quiz answers file


class Refused(Exception):
    """A file the grader will not read: the message says why, never what it holds."""


def read_regular(path: Path, cap: int, what: str) -> bytes:
    """The bytes of ``path`` if it is a regular file with one name, else Refused.

    Never follows a link (``O_NOFOLLOW``, and ``lstat`` first so that a FIFO
    or a device is not even opened); the file opened must be the one checked.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise Refused(f"{what} was not found") from None
    except OSError as exc:
        raise Refused(f"{what} cannot be read ({exc.strerror})") from None
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        raise Refused(
            f"refused: {what} is a symbolic link (hand in the file itself, not a link)"
        )
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device, socket or folder"
        raise Refused(f"refused: {what} is not a regular file ({kind})")
    if info.st_nlink > 1:
        raise Refused(
            f"refused: {what} is a hard link ({info.st_nlink} names for one file: "
            "hand in a copy)"
        )
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise Refused(f"refused: {what} cannot be opened ({exc.strerror})") from None
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino) or not (
            stat.S_ISREG(now.st_mode) and now.st_nlink == 1
        ):
            raise Refused(f"refused: {what} changed while it was read")
        if now.st_size > cap:
            raise Refused(f"refused: {what} is larger than {cap >> 20} MB")
        chunks, size = [], 0
        while size <= cap:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > cap:
            raise Refused(f"refused: {what} is larger than {cap >> 20} MB")
        return b"".join(chunks)
    finally:
        os.close(fd)


def linked_folder(path: Path, top: Path) -> str | None:
    """The name of a folder of ``path`` that is a link, else None.

    Checked: the submission's own folder (a learner's folder in an LMS
    download), and every folder between it and ``top``, the folder that all
    the submissions graded together share.  Folders above ``top`` are the
    instructor's (on macOS, /tmp itself is a link).
    """
    path = Path(os.path.abspath(path))
    folders = [path.parent]
    if top != Path(top.anchor):
        folders += [p for p in path.parents if top in p.parents]
    for folder in folders:
        if folder.is_symlink():
            return folder.name
    return None


def _prepare(
    index: int, path: Path, private: Path, slot: int, top=None, klass=None
) -> Job:
    """A working folder with a copy of the submission (and its quiz answers).

    The submission itself is only read, without following links (a link, a
    hard link, a FIFO, a device, or a learner folder that is a link is
    refused); the result goes to the grader's private folder, which the
    kernel cannot see.  ``klass`` is the class folder (``identity.
    class_folder``; by default ``top``): it says whether the submission is in
    a learner's own folder (``answers_files``).
    """
    if klass is None and top is not None:
        klass = str(top)
    linked = linked_folder(
        path, Path(top) if top else Path(os.path.abspath(path)).parent
    )
    if linked is not None:
        raise Refused(
            f"refused: the folder {linked!r} is a symbolic link (links are not "
            "followed: hand in the files themselves)"
        )
    notebook = read_regular(path, NOTEBOOK_CAP, "the submission")
    answers = None
    candidates, unclaimed = answers_files(path, klass)
    for candidate in candidates:
        if os.path.lexists(candidate):
            answers = read_regular(candidate, ANSWERS_CAP, "its answers file")
            break
    workdir = Path(tempfile.mkdtemp(prefix="bncourse-grade-"))
    job = Job(
        index,
        path,
        Row(file=shown(path)),
        workdir,
        private / f"result-{index}.json",
        time.monotonic(),
        slot,
    )
    if answers is None and unclaimed and os.path.lexists(unclaimed):
        job.unclaimed = unclaimed.name
    (workdir / path.name).write_bytes(notebook)
    if answers is not None:
        (workdir / quiz.ANSWERS_FILE).write_bytes(answers)
        # the copy the grader scores: the kernel never sees it
        (private / f"answers-{index}.json").write_bytes(answers)
    return job


def answers_files(path: Path, klass) -> tuple[list[Path], Path | None]:
    """The quiz answers files that can be this submission's, first found counts,
    and the one it may not take.

    An answers file belongs to the submission it names,
    ``<submission>.answers.json``; the name the quiz writes
    (``06_quiz.answers.json``) is a submission's only in a learner's own
    folder (a folder below the class folder, ``klass``).  In a flat folder
    that name is no one's: it is never used for another's notebook (the row
    says it was there).
    """
    own = path.with_name(path.stem + ".answers.json")
    written = path.with_name(quiz.ANSWERS_FILE)
    parts = identity.parts_below(shown(path), klass)
    if written == own:
        return [own], None
    if parts is not None and len(parts) > 1:
        return [own, written], None
    return [own], written


def _child(job: Job, args, env: dict) -> None:
    """Body of a forked child: its own session, limits, environment, then grade."""
    os.setsid()  # its own process group: the parent can kill it with its kernel
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the kernel's chatter stays out of the grader's output
        os.dup2(devnull, fd)
    os.chdir(job.workdir)
    os.environ.clear()
    os.environ.update(env)
    # graded as root, the kernel runs as the slot's own user, sandbox or not
    uid = sandbox.kernel_uid(job.slot, args.uid_base)
    disk_mb = getattr(args, "disk_mb", sandbox.DISK_MB)
    sandbox.set_limits(args.memory_mb, uid, disk_mb)  # the kernel inherits them
    options = worker.Options(
        cell_timeout=args.cell_timeout,
        deadline=time.monotonic() + args.timeout,
        memory_mb=args.memory_mb,
        disk_mb=disk_mb,
        quiz_policy=getattr(args, "quiz_policy", "first"),
        slot=job.slot,
        sandbox=args.sandbox_on,
        uid_base=args.uid_base,
        answers=(job.result_path.parent / f"answers-{job.index}.json")
        if (job.result_path.parent / f"answers-{job.index}.json").is_file()
        else None,
    )
    try:
        worker.grade(
            job.workdir / job.path.name,
            job.result_path,
            job.workdir,
            args.plans,
            args.learner_copies,
            args.shortcuts,
            options,
            functools.partial(lesson_of, pinned=getattr(args, "lesson", None)),
        )
    except BaseException as exc:  # a bug of the grader's: say so in the row
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        failed = worker.Result(
            error=f"the grader failed ({type(exc).__name__}: {exc}, "
            f"{Path(where.filename).name} line {where.lineno})"[:400]
        )
        failed.save(job.result_path)


def _start(job: Job, args, env: dict) -> None:
    """Fork a child that already has every module imported.

    Forking saves each submission the seconds of importing nbclient, torch and
    the checks.  The grader needs POSIX (fork, process groups, resource
    limits): Linux or macOS; on Windows, run it under WSL.
    """
    import multiprocessing

    context = multiprocessing.get_context("fork")
    job.proc = context.Process(target=_child, args=(job, args, env), daemon=False)
    job.uid = sandbox.kernel_uid(job.slot, args.uid_base)
    job.proc.start()


def _kill(job: Job) -> None:
    pid = job.pid()
    if pid is None:
        return
    try:  # the child, its kernel and anything the kernel started
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    job.proc.join(timeout=5)
    if job.uid is not None:  # whatever left the child's group (setsid, orphans)
        sandbox.kill_user(job.uid)


def _finish(job: Job) -> Row:
    row = job.row
    _kill(job)
    try:
        data = json.loads(job.result_path.read_text())
    except (OSError, ValueError):
        row.error = job.killed or "the grading worker failed before writing a result"
    else:
        _from_worker(row, data, job.killed)
    if job.unclaimed and quiz.ANSWERS_FILE == f"{row.notebook}.answers.json":
        row.notes.append(
            f"{job.unclaimed!r} beside it names no submission (a flat folder: "
            f"{job.path.stem + '.answers.json'!r} would be this one's): not used"
        )
    # who it is: where the LMS put the file; what the file claims is only noted
    row.notes += identity.claim_note(
        identity.identify(row.file, row.notebook, row.class_folder), _claims(job, row)
    )
    row.seconds = time.monotonic() - job.started
    sandbox.remove(job.workdir)
    return row


def _from_worker(row: Row, data: dict, killed: str = "") -> None:
    """The worker's result into the row: where what the kernel sent (its
    exceptions, hooks, outputs, the cells' sources) enters the grader's
    records, every piece of it goes through ``safe.learner_text``."""
    text = safe.learner_text
    row.notebook = text(data.get("notebook", ""), 100)
    row.tests = {text(k, 100): list(v) for k, v in data.get("tests", {}).items()}
    row.messages = {
        text(gid, 100): text(message, worker.MESSAGE_CAP, lines=True)
        for gid, message in dict(data.get("messages", {})).items()
    }
    row.notes = safe.learner_notes(data.get("notes", []))
    row.learner = text(data.get("learner", ""), 100)
    row.quiz = dict(data.get("quiz", {}))
    row.transcript = worker.capped_transcript(data.get("transcript", []))
    row.mistakes = {
        gid: report.named_mistakes(message)
        for gid, message in row.messages.items()
        if gid in row.tests and row.tests[gid][0] < row.tests[gid][1]
    }
    row.error = text("; ".join(filter(None, [data.get("error"), killed])), 1000)


def _claims(job: Job, row: Row) -> dict:
    """The learners a submission names: its metadata's, its answers file's."""
    claims = {"the submission": row.learner}
    answers = job.result_path.parent / f"answers-{job.index}.json"
    if answers.is_file():
        claims["the quiz answers file"] = quizscore.claimed_learner(answers)
        if claims["the quiz answers file"] == row.learner:  # the worker's fallback
            claims["the submission"] = ""
    return claims


def _course_knowledge(args) -> None:
    """Everything the workers need, read once from the grader's own files."""
    import importlib

    import nbformat

    from helpers import course

    args.plans = plan.snapshot(args.solutions)
    args.learner_copies, args.shortcuts = {}, {}
    for lesson in course.LESSONS:
        copy_path = ROOT / "notebooks" / lesson.filename
        if copy_path.is_file():
            args.learner_copies[lesson.stem] = nbformat.read(copy_path, as_version=4)
        if lesson.checks_module:
            module = importlib.import_module(f"helpers.checks.{lesson.checks_module}")
            args.shortcuts[lesson.stem] = dict(getattr(module, "SHORTCUTS", {}))
    # imported once here: forked children share them
    import matplotlib.pyplot  # noqa: F401
    import nbclient  # noqa: F401
    import torch  # noqa: F401

    import helpers.checks  # noqa: F401


def grade_all(paths: list[Path], args) -> list[Row]:
    env = kernel_env(args.jobs)
    args.sandbox_on = args.sandbox != "off"
    args.uid_base = sandbox.uid_base(os.getpid())
    if args.sandbox_on:
        usable, why = sandbox.availability()
        if not usable:
            raise SystemExit(
                f"grade.py: the sandbox cannot run here: {why}.\n"
                f"To grade anyway, say so with --sandbox off: {sandbox.UNPROTECTED}; "
                "every row, the report and the gradebooks will say it ran unsandboxed."
            )
    elif not args.quiet:
        print(f"grade.py: WARNING: --sandbox off: {sandbox.UNPROTECTED}")
    if not args.sandbox_on and os.geteuid() == 0:
        sandbox.plain_unreachable()  # once, before the workers fork
    _course_knowledge(args)
    private = Path(tempfile.mkdtemp(prefix="bncourse-grader-"))
    os.chmod(private, 0o700)
    try:
        rows = _grade_all(paths, args, env, private)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    if not args.sandbox_on:
        for row in rows:
            row.unsandboxed = True
            row.notes.append(sandbox.UNSANDBOXED_NOTE)
    return rows


def _grade_all(paths: list[Path], args, env, private: Path) -> list[Row]:
    """Run up to ``args.jobs`` children at once; every submission gets a row.

    A single-threaded loop (forking from a threaded process is unsafe): start
    children while there is room, poll them, kill any that outlives the
    notebook time limit by a minute, collect each result as it ends.
    """
    rows: dict[int, Row] = {}
    pending = list(enumerate(paths))
    running: list[Job] = []
    free_slots = list(range(args.jobs))
    # the folder the submissions share: links below it are refused
    top = os.path.commonpath([os.path.abspath(p) for p in paths]) if paths else None
    if top and len(paths) == 1:
        top = os.path.dirname(top)
    klass = getattr(args, "class_folder", None)
    if klass is None:
        klass = identity.class_folder([shown(p) for p in paths])
    while pending or running:
        while pending and free_slots:
            index, path = pending.pop(0)
            slot = free_slots.pop(0)
            try:
                job = _prepare(index, Path(path), private, slot, top, klass)
                job.row.class_folder = klass
                _start(job, args, env)
                running.append(job)
            except Exception as exc:  # a bug here must not lose the other rows
                free_slots.append(slot)
                why = safe.learner_text(f"not graded: {exc}")
                rows[index] = Row(file=shown(path), error=why)
        time.sleep(0.05)
        for job in list(running):
            overdue = time.monotonic() - job.started > args.timeout + 60
            if overdue and job.running():
                job.killed = f"killed after the {args.timeout} s notebook time limit"
                _kill(job)
            if not job.running():
                running.remove(job)
                free_slots.append(job.slot)
                row = rows[job.index] = _finish(job)
                if not args.quiet:
                    status = f"{row.total:g}/{row.maximum:g}" if row.tests else "-"
                    note = f"  [{row.error}]" if row.error else ""
                    line = f"{row.file}: {status} ({row.seconds:.1f} s){note}"
                    print(safe.learner_text(line, 2000), flush=True)
    for index, path in enumerate(paths):  # never silently missing
        rows.setdefault(index, Row(file=shown(path), error="not graded"))
    for row in rows.values():  # the id is read below the class folder
        row.class_folder = klass
        note = identity.nested_note(row.file, klass)
        if note and note not in row.notes:
            row.notes.append(note)
    return [rows[i] for i in range(len(paths))]


def write_csv(rows: list[Row], out: Path) -> None:
    """One row per submission; the file appears complete or not at all.

    Columns: file, learner, notebook, total, maximum, one per test
    (``NN:test_id``), then ``mistakes`` (JSON: test -> the mistakes its check
    named), ``quiz`` (JSON: question -> result), ``error``, ``sandbox``
    (``off`` for a row graded with ``--sandbox off``, else ``on``) and
    ``notes`` (``safe.join_notes``).  Every cell goes through ``safe.cell``
    (no spreadsheet formula); two submissions of one learner for one lesson
    are noted in both rows.
    """
    report.flag_duplicates(rows)
    columns: list[str] = []
    for row in rows:
        for gid in row.tests:
            key = f"{row.notebook[:2]}:{gid}"
            if key not in columns:
                columns.append(key)
    header = ["file", "learner", "notebook", "total", "maximum", *columns]
    header += ["mistakes", "quiz", "error", "sandbox", "notes"]
    records = []
    for row in rows:
        try:
            records.append(_csv_record(row, columns))
        except Exception as exc:  # one row's data never costs the others theirs
            records.append(
                [
                    row.file,
                    "",
                    row.notebook,
                    "",
                    "",
                    *[""] * len(columns),
                    "",
                    "",
                    f"row not written: {type(exc).__name__}: {exc}"[:300],
                    "off" if row.unsandboxed else "on",
                    "",
                ]
            )
    contract.write_atomic(out, safe.csv_text(header, records))


def _csv_record(row: Row, columns: list[str]) -> list:
    cells = []
    for key in columns:
        lesson, gid = key.split(":", 1)
        hit = row.tests.get(gid) if row.notebook[:2] == lesson else None
        cells.append("" if hit is None else f"{hit[0]:g}")
    total = f"{row.total:g}" if row.tests else ""
    maximum = f"{row.maximum:g}" if row.tests else ""
    learner = report.learner_id(row) if row.tests else ""
    return [
        row.file,
        learner,
        row.notebook,
        total,
        maximum,
        *cells,
        json.dumps(row.mistakes, sort_keys=True) if row.mistakes else "",
        json.dumps(row.quiz, sort_keys=True) if row.quiz else "",
        row.error,
        "off" if row.unsandboxed else "on",
        safe.join_notes(row.notes),
    ]


def read_csv(path: Path) -> list[Row]:
    """Rows back from a CSV this grader wrote (to merge shards).

    A record that does not parse costs only itself: its row keeps the file
    and says why, with no scores.
    """
    rows = []
    for record in safe.read_table(path):
        row = Row(file=str(record.get("file") or ""))
        try:
            _read_record(row, record)
        except Exception as exc:  # one bad record never stops the merge
            row.notebook, row.tests, row.mistakes, row.quiz = "", {}, {}, {}
            row.error = safe.learner_text(
                f"not read back from {Path(path).name}: {type(exc).__name__}: {exc}"
            )
        rows.append(row)
    return rows


def _read_record(row: Row, record: dict) -> None:
    row.notebook = record.get("notebook") or ""
    row.learner = record.get("learner") or ""
    lesson = row.notebook[:2]
    for key, value in record.items():
        if key and re.fullmatch(r"\d\d:.+", key) and key[:2] == lesson and value:
            row.tests[key[3:]] = [float(value), 0.0]
    row.mistakes = json.loads(record["mistakes"]) if record.get("mistakes") else {}
    row.quiz = json.loads(record["quiz"]) if record.get("quiz") else {}
    if not isinstance(row.mistakes, dict) or not isinstance(row.quiz, dict):
        raise ValueError("its mistakes or quiz column is not a JSON object")
    row.error = record.get("error") or ""
    row.notes = safe.split_notes(record.get("notes") or "")
    # the grader's status, from its own column; a CSV of an older grader has
    # none: its exact note then (learner words in a note cannot make one)
    status = record.get("sandbox")
    if status is None:
        row.unsandboxed = sandbox.UNSANDBOXED_NOTE in row.notes
    else:
        row.unsandboxed = status == "off"


def _outputs(parser) -> None:
    """The options for what is written besides the CSV (grading and merging)."""
    parser.add_argument("--out", type=Path, default=Path("grades.csv"))
    parser.add_argument(
        "--feedback", type=Path, help="write one HTML page per submission here"
    )
    parser.add_argument(
        "--report", type=Path, help="write the class report (HTML and CSV) here"
    )
    parser.add_argument(
        "--format",
        action="append",
        default=[],
        choices=("canvas", "moodle", "gradescope"),
        help="also write a gradebook for Canvas or Moodle (<out>-canvas.csv ...) "
        "or Gradescope results (gradescope/<folder>--<name>-<hash>.json beside "
        "--out, one per submission, listed in gradescope/index.csv)",
    )
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--class-folder",
        help="the folder that holds the class's submissions: a learner's id is "
        "read from the first folder or file name below it (default: the folder "
        "all the submissions share)",
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Grade course notebooks into a CSV (see the module docstring)."
    )
    parser.add_argument("submissions", nargs="*", type=Path)
    _outputs(parser)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--timeout", type=int, default=600, help="seconds per notebook (default 600)"
    )
    parser.add_argument(
        "--cell-timeout", type=int, default=120, help="seconds per cell (default 120)"
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=4096,
        help="address-space limit of each submission's kernel (default 4096)",
    )
    parser.add_argument(
        "--disk-mb",
        type=int,
        default=sandbox.DISK_MB,
        help="what each submission's kernel may write, all files together: its "
        f"/tmp and working folder, a tmpfs in memory (default {sandbox.DISK_MB}); a "
        "worker needs --memory-mb plus --disk-mb of memory",
    )
    parser.add_argument(
        "--quiz-policy",
        choices=tuple(quiz.POLICIES),  # one list of policies: helpers.quiz
        default="first",
        help="what a quiz answer earns: right at the first attempt (default), "
        "1/k if first right at attempt k, or the last answer (practice)",
    )
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument(
        "--lesson",
        help="grade every submission as this lesson (NN or its stem), whatever "
        "its name or metadata say: an assignment of one lesson (Gradescope)",
    )
    parser.add_argument(
        "--sandbox",
        choices=("on", "off", "auto"),
        default="on",
        help="run kernels in bubblewrap: on (the default: refuse to grade where "
        "it cannot run), off (grade unsandboxed, said in every row); auto is "
        "the old name of on",
    )
    parser.add_argument(
        "--shard",
        help="K/N: grade only the K-th of N shares of the submissions (a stable "
        "split by file name, its bytes), for several machines; join with "
        "`grade.py merge`",
    )
    args = parser.parse_args(argv)
    args.jobs = max(1, args.jobs)
    if args.memory_mb < 1 or args.disk_mb < 1:
        parser.error("--memory-mb and --disk-mb take a positive number of MB")
    if not args.submissions:
        parser.error("give at least one submission")
    if args.lesson:
        from helpers import course

        try:
            args.lesson = course.lesson(args.lesson).stem
        except KeyError:
            parser.error(f"--lesson: no lesson {args.lesson!r}")
    if args.shard:
        match = re.fullmatch(r"(\d+)/(\d+)", args.shard)
        if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
            parser.error("--shard takes K/N with 1 <= K <= N, e.g. 2/3")
        args.shard = (int(match.group(1)), int(match.group(2)))
    return args


def in_shard(path: Path, shard) -> bool:
    """Stable: the same file lands in the same shard on every machine and run."""
    if shard is None:
        return True
    k, n = shard
    digest = hashlib.sha256(os.fsencode(Path(path).name)).digest()
    return int.from_bytes(digest[:8], "big") % n == k - 1


def _index_name(args) -> str:
    """``index``, or ``index-K-of-N`` for a shard (shards share one folder)."""
    shard = getattr(args, "shard", None)
    return f"index-{shard[0]}-of-{shard[1]}" if shard else "index"


def _tell(args, message: str) -> None:
    print(f"grade.py: {safe.learner_text(message, 2000)}", file=sys.stderr, flush=True)


def write_outputs(rows: list[Row], args) -> list[Path]:
    """The CSV, and the feedback, report and gradebooks asked for.

    Each submission's files are named by ``safe.output_name`` (unique per
    submission path, shards included) and listed in an index.  One row that
    cannot be written costs only its own page or JSON (the index says why);
    one output that fails costs only itself, with a message.
    """
    from helpers import course, quiz

    place(rows, getattr(args, "class_folder", None))
    report.flag_duplicates(rows)
    write_csv(rows, args.out)
    written = [args.out]
    bank = None
    if args.feedback or args.report:
        try:
            bank = quiz.load_bank()
        except quiz.BankError:
            bank = None
    if args.feedback:
        args.feedback.mkdir(parents=True, exist_ok=True)
        entries = []
        for row in rows:
            if not row.tests:
                entries.append(("", row, "not graded: no page"))
                continue
            page = args.feedback / f"{safe.output_name(row.file)}.html"
            try:
                contract.write_atomic(page, report.feedback_html(row, bank))
            except Exception as exc:
                why = f"page not written: {type(exc).__name__}: {exc}"[:300]
                _tell(args, f"{row.file}: {why}")
                entries.append(("", row, why))
                continue
            written.append(page)
            entries.append((page.name, row, "written"))
        written.append(report.feedback_index(entries, args.feedback, _index_name(args)))
    if args.report:
        try:
            written += list(report.class_report(rows, args.report, bank))
        except Exception as exc:
            _tell(args, f"the class report failed: {type(exc).__name__}: {exc}")
    for system in args.format:
        if system == "gradescope":
            folder = args.out.parent / "gradescope"
            entries = []
            for row in rows:
                target = folder / f"{safe.output_name(row.file)}.json"
                try:
                    contract.write_json_atomic(target, report.gradescope_results(row))
                except Exception as exc:
                    why = f"not written: {type(exc).__name__}: {exc}"[:300]
                    _tell(args, f"{row.file}: results {why}")
                    entries.append(("", row, why))
                    continue
                written.append(target)
                entries.append((target.name, row, "written"))
            written.append(report.feedback_index(entries, folder, _index_name(args)))
        else:
            target = args.out.with_name(f"{args.out.stem}-{system}.csv")
            try:
                written.append(report.gradebook(rows, target, system, course.LESSONS))
            except Exception as exc:
                _tell(
                    args, f"the {system} gradebook failed: {type(exc).__name__}: {exc}"
                )
    if {"canvas", "moodle"} & set(args.format):
        target = args.out.with_name(f"{args.out.stem}-conflicts.csv")
        written.append(report.conflicts_table(rows, target))
    return written


def place(rows: list[Row], klass=None) -> None:
    """Give every row that has none the class folder its id is read below:
    ``klass`` (``--class-folder``), else the folder all the rows share."""
    if any(row.class_folder is None for row in rows):
        if klass is None:
            klass = identity.class_folder([row.file for row in rows])
        for row in rows:
            if row.class_folder is None:
                row.class_folder = klass


def merge_main(argv) -> int:
    """``grade.py merge --out all.csv shard-*.csv``: one CSV (and outputs) of shards."""
    parser = argparse.ArgumentParser(
        prog="grade.py merge", description="Join the CSVs of graded shards."
    )
    parser.add_argument("shards", nargs="+", type=Path)
    _outputs(parser)
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    args = parser.parse_args(argv)
    maxima = {
        stem: {t["grade_id"]: t["points"] for t in p["tests"]}
        for stem, p in plan.snapshot(args.solutions).items()
    }
    rows, seen = [], set()
    for shard in args.shards:
        for row in read_csv(shard):
            if row.file and row.file in seen:
                where = safe.learner_text(row.file, 2000)
                raise SystemExit(f"grade.py merge: {where} is in two shards")
            seen.add(row.file)
            for gid in row.tests:
                row.tests[gid][1] = maxima.get(row.notebook, {}).get(gid, 0.0)
            rows.append(row)
    rows.sort(key=lambda r: r.file)
    pages, args.feedback = args.feedback, None  # each shard's run wrote its pages
    written = write_outputs(rows, args)
    if pages:  # one index of the pages the shards wrote into this folder
        entries = []
        for row in rows:
            page = pages / f"{safe.output_name(row.file)}.html"
            found = page.is_file()
            entries.append(
                (page.name if found else "", row, "written" if found else "no page")
            )
        written.append(report.feedback_index(entries, pages))
    if not args.quiet:
        print(f"merged {len(rows)} rows from {len(args.shards)} shard(s): {written[0]}")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:
        return merge_main(argv[1:])
    args = parse_args(argv)
    start = time.monotonic()
    if args.class_folder is None:  # the whole class's, so every shard agrees
        args.class_folder = identity.class_folder(map(shown, args.submissions))
    paths = [Path(p) for p in args.submissions if in_shard(Path(p), args.shard)]
    rows = grade_all(paths, args)
    graded = time.monotonic() - start
    write_outputs(rows, args)
    elapsed = time.monotonic() - start
    if not args.quiet:
        extra = (
            f" (+{elapsed - graded:.1f} s for the outputs)" if elapsed > graded else ""
        )
        print(
            f"graded {len(rows)} submission(s) in {graded:.1f} s with "
            f"{args.jobs} worker(s){extra}; wrote {args.out}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
