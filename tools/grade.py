"""Grade learners' notebooks: one CSV row per submission.

    python tools/grade.py --out grades.csv submissions/*.ipynb
        [--jobs N] [--timeout 600] [--cell-timeout 120] [--memory-mb 4096]

For each submission the grader

1. works out which lesson it is (notebook metadata written by the generator,
   else the ``NN_`` prefix of the file name);
2. takes that lesson's graded test cells (nbgrader metadata ``grade: true``)
   from the grader's own ``solutions/`` copy, hidden tests included, and puts
   them in place of the submission's copies (a test cell the learner deleted
   is appended at the end, so deleting a test never avoids it);
3. runs the notebook top to bottom in its own fresh kernel, in a temporary
   working directory, in fast mode with ``BNCOURSE_GRADING=1`` (a failed
   check then raises), with a time limit per cell and per notebook and a
   memory limit; cells tagged ``skip-when-grading`` (slow demonstrations that
   no test needs) are not run;
4. gives each test cell its points if it ran without an exception, else 0.

Submissions run in parallel, each in its own worker process (default: one per
core).  A submission that is not valid JSON, loops forever, kills its kernel,
allocates without bound or prints without end gets a row with its error; it
never stops the others.  The CSV is written atomically (a temporary file
renamed into place) once every row is in.

This is not a security sandbox: the learner's code runs with your user's
rights and can read or write any file you can.  For a real class, run the
grader in a throw-away container (see the README's grading section).
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from helpers import contract  # noqa: E402

SKIP_TAG = contract.SKIP_WHEN_GRADING
OUTPUT_CAP = 1_000_000  # bytes of output kept per cell; the rest is dropped
# A graded cell may give partial credit by displaying this MIME type with
# {"earned": k, "possible": n}: it then earns points * k / n (the quiz does).
SCORE_MIME = contract.SCORE_MIME
grade_id = contract.grade_id
reported_score = contract.reported_score


@dataclass
class Row:
    file: str
    notebook: str = ""
    tests: dict = field(default_factory=dict)  # grade_id -> [earned, max]
    error: str = ""
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return sum(earned for earned, _ in self.tests.values())

    @property
    def maximum(self) -> float:
        return sum(most for _, most in self.tests.values())


# --------------------------------------------------------------------------
# which notebook, which tests
# --------------------------------------------------------------------------


def lesson_of(nb, path: Path) -> str | None:
    """The lesson stem of a submission, or None when it cannot be told."""
    from helpers import course

    stem = nb.get("metadata", {}).get("bncourse", {}).get("lesson")
    candidates = [stem] if isinstance(stem, str) else []
    match = re.match(r"(\d\d)[_\-. ]", path.name)
    if match:
        candidates.append(match.group(1))
    for key in candidates:
        try:
            return course.lesson(key).stem
        except KeyError:
            continue
    return None


def test_cells(solution_path: Path) -> list:
    """The graded cells of a solution notebook, in order (hidden tests kept)."""
    import nbformat

    return contract.graded_cells(nbformat.read(solution_path, as_version=4))


def snapshot_tests(solutions: Path) -> dict:
    """Every lesson's graded cells, read once before any submission runs.

    Workers get this snapshot (from the grader's private folder), never the
    solutions folder itself: a submission that overwrites the solution files
    cannot change how it, or any later submission, is graded.
    """
    snapshot = {}
    for path in sorted(Path(solutions).glob("*.ipynb")):
        snapshot[path.stem] = [dict(cell) for cell in test_cells(path)]
    return snapshot


def points_of(cell) -> float:
    return contract.points(cell, default=1.0)


def build_notebook(submission, tests: list):
    """The submission with the authoritative test cells in place."""
    import nbformat

    by_id = {grade_id(t): t for t in tests}
    used, cells = set(), []
    for cell in submission.cells:
        if cell.get("cell_type") != "code":
            continue
        gid = grade_id(cell)
        if gid in by_id:
            if gid in used:  # a duplicated test cell runs once
                continue
            used.add(gid)
            cells.append(copy.deepcopy(by_id[gid]))
        else:
            cell = nbformat.v4.new_code_cell(
                source=str(cell.get("source", "")),
                metadata={"tags": list(cell.get("metadata", {}).get("tags", []))},
            )
            cells.append(cell)
    for test in tests:  # deleted test cells still run, at the end
        if grade_id(test) not in used:
            cells.append(copy.deepcopy(test))
    out = nbformat.v4.new_notebook()
    out.cells = cells
    out.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return out


# --------------------------------------------------------------------------
# the worker: one submission, one kernel
# --------------------------------------------------------------------------


def _client_class():
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        """Keeps at most OUTPUT_CAP bytes of output per cell (errors always)."""

        def output(self, outs, msg, display_id, cell_index):
            if SCORE_MIME in msg.get("content", {}).get("data", {}):
                return super().output(outs, msg, display_id, cell_index)
            if msg["msg_type"] != "error":
                size = sum(len(json.dumps(o, default=str)) for o in outs)
                if size > OUTPUT_CAP:
                    return None
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient


def _write_json(path: Path, data: dict) -> None:
    contract.write_atomic(path, json.dumps(data))


def grade_in_worker(
    submission: Path,
    result_path: Path,
    workdir: Path,
    tests_file: Path,
    cell_timeout: int,
    deadline: float,
) -> None:
    """Grade one submission; write the result JSON after every test cell."""
    import nbformat
    from nbclient.exceptions import DeadKernelError

    result = {"notebook": "", "tests": {}, "error": ""}

    def save():
        _write_json(result_path, result)

    try:
        nb = nbformat.read(submission, as_version=4)
    except Exception as exc:  # not JSON, not a notebook, unreadable
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        result["error"] = f"not a valid notebook ({type(exc).__name__}: {first})"
        save()
        return
    stem = lesson_of(nb, submission)
    if stem is None:
        result["error"] = (
            "cannot tell which lesson this is (no course metadata and no NN_ "
            "prefix in the file name)"
        )
        save()
        return
    result["notebook"] = stem
    snapshot = json.loads(Path(tests_file).read_text())
    if stem not in snapshot:
        result["error"] = f"the grader has no tests for {stem}"
        save()
        return
    tests = [nbformat.from_dict(cell) for cell in snapshot[stem]]
    for test in tests:
        result["tests"][grade_id(test)] = [0.0, points_of(test)]
    save()

    runnable = build_notebook(nb, tests)
    client = _client_class()(
        runnable,
        shutdown_kernel="immediate",  # a graceful shutdown costs ~1 s per submission
        timeout=cell_timeout,
        interrupt_on_timeout=True,
        error_on_timeout={
            "ename": "CellTimeoutError",
            "evalue": f"cell ran longer than {cell_timeout} s",
            "traceback": [],
        },
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        iopub_timeout=10,
        raise_on_iopub_timeout=False,
    )
    failed: dict[int, str] = {}

    def on_error(cell, cell_index, execute_reply):
        content = execute_reply.get("content", {})
        failed[cell_index] = (
            f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"
        )

    client.on_cell_error = on_error
    index = 0
    notes: list[str] = []

    def where(i: int) -> str:
        lines = [ln for ln in runnable.cells[i].source.splitlines() if ln.strip()]
        first = lines[0].strip()[:50] if lines else ""
        return f'code cell {i + 1} ("{first}")'

    try:
        with client.setup_kernel():
            for index, cell in enumerate(runnable.cells):
                if time.monotonic() > deadline:
                    result["error"] = (
                        f"notebook time limit reached before cell {index + 1} "
                        f"of {len(runnable.cells)}"
                    )
                    break
                if SKIP_TAG in cell.metadata.get("tags", []):
                    continue
                client.execute_cell(cell, index)
                gid = grade_id(cell)
                if gid in result["tests"] and index not in failed:
                    most = result["tests"][gid][1]
                    result["tests"][gid][0] = partial_credit(cell, most)
                    note = (reported_score(cell) or {}).get("note")
                    if note:
                        notes.append(str(note)[:200])
                save()
    except DeadKernelError:
        result["error"] = (
            f"the kernel died in {where(index)}: os._exit, a crash, or the memory "
            "limit; later cells did not run"
        )
    except Exception as exc:
        result["error"] = f"grading stopped: {type(exc).__name__}: {exc}"[:300]
    # Errors outside the test cells do not cost points by themselves, but the
    # instructor should see them (a timeout, a MemoryError, a NameError ...).
    test_indices = {i for i, c in enumerate(runnable.cells) if grade_id(c)}
    others = [
        f"{where(i)} raised {message.split(':', 1)[0]}"
        for i, message in sorted(failed.items())
        if i not in test_indices
    ]
    if others:
        extra = "; ".join(others[:3]) + (
            f" (+{len(others) - 3} more)" if len(others) > 3 else ""
        )
        result["error"] = "; ".join(filter(None, [result["error"], extra]))
    if notes:
        result["error"] = "; ".join(filter(None, [result["error"], *notes]))
    save()


def partial_credit(cell, most: float) -> float:
    """Full points, or points * earned / possible if the cell reported a score."""
    score = reported_score(cell)
    if score is None:
        return most
    try:
        fraction = float(score["earned"]) / float(score["possible"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 0.0
    return round(most * min(max(fraction, 0.0), 1.0), 2)


# --------------------------------------------------------------------------
# the parent: many submissions, a CSV
# --------------------------------------------------------------------------


def kernel_env(jobs: int) -> dict:
    env = dict(os.environ)
    env.pop("BNCOURSE_QUIZ_DIR", None)  # the quiz reads its file in the workdir
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
    proc: object = None  # a forked multiprocessing.Process
    killed: str = ""

    def pid(self) -> int | None:
        return getattr(self.proc, "pid", None)

    def running(self) -> bool:
        return self.proc is not None and self.proc.is_alive()


def _prepare(index: int, path: Path) -> Job:
    """A private working directory with the submission (and its quiz answers)."""
    from helpers import quiz

    workdir = Path(tempfile.mkdtemp(prefix="bncourse-grade-"))
    job = Job(
        index,
        path,
        Row(file=str(path)),
        workdir,
        workdir / ".grade-result.json",
        time.monotonic(),
    )
    shutil.copy2(path, workdir / path.name)
    # The quiz's recorded answers travel with the notebook: either
    # <submission>.answers.json or, in a one-learner folder, the name the quiz
    # writes.  They are copied under the name the quiz reads.
    for answers in (
        path.with_name(path.stem + ".answers.json"),
        path.with_name(quiz.ANSWERS_FILE),
    ):
        if answers.is_file():
            shutil.copy2(answers, workdir / quiz.ANSWERS_FILE)
            break
    return job


def _child(job: Job, args, env: dict) -> None:
    """Body of a forked child: its own session, limits, environment, then grade."""
    os.setsid()  # its own process group: the parent can kill it with its kernel
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the kernel's chatter stays out of the grader's output
        os.dup2(devnull, fd)
    os.chdir(job.workdir)
    os.environ.clear()
    os.environ.update(env)
    limit = args.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # the kernel inherits it
    grade_in_worker(
        job.workdir / job.path.name,
        job.result_path,
        job.workdir,
        Path(args.tests),
        args.cell_timeout,
        time.monotonic() + args.timeout,
    )


def _start(job: Job, args, env: dict) -> None:
    """Fork a child that already has every module imported.

    Forking saves each submission the ~2 s of importing nbformat and nbclient.
    The grader needs POSIX (fork, process groups, resource limits): Linux or
    macOS; on Windows, run it under WSL.
    """
    import multiprocessing

    context = multiprocessing.get_context("fork")
    job.proc = context.Process(target=_child, args=(job, args, env), daemon=False)
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


def _finish(job: Job) -> Row:
    row = job.row
    _kill(job)
    try:
        data = json.loads(job.result_path.read_text())
    except (OSError, ValueError):
        row.error = job.killed or "the grading worker failed before writing a result"
    else:
        row.notebook = data.get("notebook", "")
        row.tests = {k: list(v) for k, v in data.get("tests", {}).items()}
        row.error = "; ".join(filter(None, [data.get("error"), job.killed]))
    row.seconds = time.monotonic() - job.started
    shutil.rmtree(job.workdir, ignore_errors=True)
    return row


def grade_all(paths: list[Path], args) -> list[Row]:
    env = kernel_env(args.jobs)
    private = Path(tempfile.mkdtemp(prefix="bncourse-grader-"))
    try:
        args.tests = private / "tests.json"
        args.tests.write_text(json.dumps(snapshot_tests(args.solutions)))
        import nbclient  # noqa: F401  (imported once here: forked children share it)

        return _grade_all(paths, args, env)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _grade_all(paths: list[Path], args, env) -> list[Row]:
    """Run up to ``args.jobs`` children at once; every submission gets a row.

    A single-threaded loop (forking from a threaded process is unsafe): start
    children while there is room, poll them, kill any that outlives the
    notebook time limit by a minute, collect each result as it ends.
    """
    rows: dict[int, Row] = {}
    pending = list(enumerate(paths))
    running: list[Job] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            index, path = pending.pop(0)
            try:
                if not Path(path).is_file():
                    raise FileNotFoundError("file not found")
                job = _prepare(index, Path(path))
                _start(job, args, env)
                running.append(job)
            except Exception as exc:  # a bug here must not lose the other rows
                rows[index] = Row(file=str(path), error=f"not graded: {exc}"[:300])
        time.sleep(0.05)
        for job in list(running):
            overdue = time.monotonic() - job.started > args.timeout + 60
            if overdue and job.running():
                job.killed = f"killed after the {args.timeout} s notebook time limit"
                _kill(job)
            if not job.running():
                running.remove(job)
                row = rows[job.index] = _finish(job)
                if not args.quiet:
                    status = f"{row.total:g}/{row.maximum:g}" if row.tests else "-"
                    note = f"  [{row.error}]" if row.error else ""
                    print(
                        f"{row.file}: {status} ({row.seconds:.1f} s){note}", flush=True
                    )
    for index, path in enumerate(paths):  # never silently missing
        rows.setdefault(index, Row(file=str(path), error="not graded"))
    return [rows[i] for i in range(len(paths))]


def write_csv(rows: list[Row], out: Path) -> None:
    """One row per submission; the file appears complete or not at all."""
    columns: list[str] = []
    for row in rows:
        for gid in row.tests:
            key = f"{row.notebook[:2]}:{gid}"
            if key not in columns:
                columns.append(key)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["file", "notebook", "total", "maximum", *columns, "error"])
    for row in rows:
        cells = []
        for key in columns:
            lesson, gid = key.split(":", 1)
            hit = row.tests.get(gid) if row.notebook[:2] == lesson else None
            cells.append("" if hit is None else f"{hit[0]:g}")
        total = f"{row.total:g}" if row.tests else ""
        maximum = f"{row.maximum:g}" if row.tests else ""
        writer.writerow([row.file, row.notebook, total, maximum, *cells, row.error])
    contract.write_atomic(out, buffer.getvalue())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Grade course notebooks into a CSV (see the module docstring)."
    )
    parser.add_argument("submissions", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=Path("grades.csv"))
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
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    args.jobs = max(1, args.jobs)
    if not args.submissions:
        parser.error("give at least one submission")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    rows = grade_all([Path(p) for p in args.submissions], args)
    write_csv(rows, args.out)
    elapsed = time.monotonic() - start
    if not args.quiet:
        print(
            f"graded {len(rows)} submission(s) in {elapsed:.1f} s with "
            f"{args.jobs} worker(s); wrote {args.out}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
