"""Grade one submission: its kernel (sandboxed), the tests judged outside it.

Runs in a forked child of ``tools/grade.py``.  The submission's cells run in
the learner's kernel, in order; at each graded test the grader takes over:
the test runs here, in this process, with the grader's own checks, and the
learner's functions and classes are called in the kernel through proxies
(``remote``).  No test's code enters the kernel, so nothing the kernel runs
(input transformers, trace functions, patched libraries) can skip or change
it; hooks the kernel reports are noted for the instructor.  The grader's own
requests run without IPython's history.  The result (scores, messages,
errors, notes) is written after every test to a file in the grader's private
folder, which the kernel cannot see.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers import contract

from . import flags, remote, safe, sandbox
from .report import HIDDEN_FAILED

# A hidden test fails when the learner's code changed, in place, an object the
# test passed to it (an exercise whose point that is excepted: ``remote``).
CHANGED_ARGUMENT = (
    "{} | WRONG | changed, in place, an input the test passed to it: compute "
    "new values instead of writing into the caller's"
)

OUTPUT_CAP = 1_000_000  # bytes of output kept per cell; the rest is dropped
SOURCE_CAP = 20_000  # characters of a cell's source in the transcript
TEXT_CAP = 4000  # characters of a cell's text output in the transcript
TRANSCRIPT_CAP = 2_000_000  # characters of the whole transcript
# What a submission makes the grader hold is charged to a budget per item,
# each item at least a minimum cost, so that no kind of item is free: an empty
# cell (GRADER-FINDINGS attacks4 A01: 50,000 empty skipped cells cost 0
# characters and made a 30 MB feedback page that took 10 minutes to render in
# the grader's own process), an empty message, a widget's comm.
ENTRY_COST = 2000  # characters: at most TRANSCRIPT_CAP // ENTRY_COST entries
MESSAGE_COST = 200  # bytes: at most OUTPUT_CAP // MESSAGE_COST messages a cell
HOOK_NOTES = 10  # hooks noted one by one; the rest are counted
HOOK_REPLY_CAP = 100_000  # characters of the hook probe's reply read
_MORE_HOOKS = re.compile(r"the kernel has \d+ more hook\(s\)")
# Time limits.  Every cell of the learner's runs under the instructor's
# --cell-timeout, whatever its tags or text say.  The grader's own requests
# (a call of a learner's function, the hook probe) get CALL_TIMEOUT, and
# importing the setup's modules, before the learner's first cell, gets
# WARM_TIMEOUT: the grader decides which request is its own (``run_code``),
# never from a cell's source or tags.
WARM_TIMEOUT = 300  # importing torch: slow on a busy machine
CALL_TIMEOUT = 120  # one call of a learner's function
MESSAGE_CAP = 4000  # characters of a check's printed message kept per test

# IPython keeps the last exception for %debug (sys.last_traceback, the
# traceback formatter's .tb, the cell's ExecutionResult), and with it every
# local variable of the frames it went through: after a memory hog's
# MemoryError its hoard stays allocated, and whether the next cells and tests
# fail then depends on how close to the limit it stopped, not on the code.
# The grader drops those references after a failed cell, as a fresh
# interpreter would.  Run in the learner's kernel; an error here is ignored.
FORGET_FAILURE = """\
import sys as _bnc_sys, gc as _bnc_gc
_bnc_ip = get_ipython()
_bnc_ip.InteractiveTB.tb = None
if getattr(_bnc_ip, "last_execution_result", None) is not None:
    _bnc_ip.last_execution_result.error_in_exec = None
_bnc_sys.last_type = _bnc_sys.last_value = _bnc_sys.last_traceback = None
if hasattr(_bnc_sys, "last_exc"):
    _bnc_sys.last_exc = None
del _bnc_sys, _bnc_ip
_bnc_gc.collect()
del _bnc_gc
"""


# What the kernel reports of the hooks it has (run with the learner's code
# present, so it may lie; it is a note, not a defence).
HOOK_PROBE = """\
def _bnc_hooks():
    import sys, json
    from IPython.display import display
    ip = get_ipython()
    def name(f):
        return str(getattr(f, "__qualname__", type(f).__name__))[:100]
    found = {
        "input transformer": [name(f) for f in ip.input_transformers_post],
        "AST transformer": [name(f) for f in ip.ast_transformers],
        "trace function": [name(f) for f in (sys.gettrace(), sys.getprofile()) if f],
        "event callback": [
            f"{e}: {name(f)}" for e, fs in ip.events.callbacks.items() for f in fs
        ],
        "custom exception handler": [name(ip.CustomTB)] if ip.custom_exceptions else [],
    }
    display({MIME: json.dumps(found)}, raw=True)
_bnc_hooks()
del _bnc_hooks
""".replace("MIME", repr(remote.MIME))


@dataclass
class Options:
    cell_timeout: int
    deadline: float
    memory_mb: int
    slot: int
    sandbox: bool
    answers: Path | None = None  # the grader's copy of a quiz's answers file
    uid_base: int = sandbox.FIRST_UID
    quiz_policy: str = "first"  # helpers.quiz.POLICIES
    disk_mb: int = sandbox.DISK_MB  # the sandbox's /tmp and working folder


@dataclass
class Result:
    notebook: str = ""
    tests: dict = field(default_factory=dict)  # grade_id -> [earned, max]
    messages: dict = field(default_factory=dict)  # grade_id -> what the check said
    error: str = ""
    notes: list = field(default_factory=list)
    learner: str = ""  # from the notebook's metadata or the answers file, if any
    quiz: dict = field(default_factory=dict)  # question id -> {correct, choice, ...}
    # what the learner saw, for feedback: each cell's source and text output, or
    # {"test": grade_id} where a test ran
    transcript: list = field(default_factory=list)

    def save(self, path: Path) -> None:
        contract.write_atomic(path, json.dumps(self.__dict__))


# --------------------------------------------------------------------------
# the kernel
# --------------------------------------------------------------------------


class Budget:
    """What one request may make the grader hold, charged item by item.

    Each item costs its size, and at least ``least``, so that a flood of
    empty items is bounded as surely as one large item.  What does not fit is
    dropped and counted (``dropped``, ``dropped_size``) for the row's note.
    """

    def __init__(self, limit: int, least: int):
        self.limit, self.least = limit, least
        self.spent = self.dropped = self.dropped_size = 0

    def charge(self, size: int) -> bool:
        cost = max(size, self.least)
        if self.spent + cost > self.limit:
            self.dropped += 1
            self.dropped_size += size
            return False
        self.spent += cost
        return True


def _message_size(msg: dict) -> int:
    """Bytes a kernel message holds (its content and binary buffers)."""
    size = len(json.dumps(msg.get("content", {}), default=str))
    return size + sum(len(b) for b in msg.get("buffers") or [])


def _client_class():
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        """Every message the kernel sends is charged to the request's budget.

        The worker runs outside the sandbox, so the watchdog does not count
        what it holds (attacks4 A05, A10: ~3 GB of a kernel's outputs and
        widget comms kept here).  So every message of every type (outputs,
        errors, the channel's replies, comms) is charged to ``budget``
        (``Budget``, at least MESSAGE_COST each) and dropped past it.  Widget
        comms are never kept (no widget is rendered here), and the channel's
        MIME type is kept only for the grader's own requests, which read it.
        Only ``status`` passes unconditionally: nbclient needs it to see that
        a request ended, and it holds nothing.
        """

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.budget = Budget(OUTPUT_CAP, MESSAGE_COST)  # Run.run_code's
            self.learner = True  # the request running is a learner's cell

        def process_message(self, msg, cell, cell_index):
            if msg.get("msg_type") == "status":
                return super().process_message(msg, cell, cell_index)
            if not self.budget.charge(_message_size(msg)):
                return None
            if str(msg.get("msg_type", "")).startswith("comm"):
                return None  # no widget state or comm object is kept
            data = msg.get("content", {}).get("data")
            if self.learner and isinstance(data, dict) and remote.MIME in data:
                return None  # read only from the grader's own requests
            return super().process_message(msg, cell, cell_index)

    return CappedClient


def _kernel_manager(workdir: Path, private: Path, options: Options, notes=None):
    """A kernel in the sandbox (ipc sockets in its folder), or plain if it cannot.

    Plain and graded as root, the kernel runs as this slot's unprivileged
    user, in a working folder it owns (``sandbox.plain_launcher``); where
    no unprivileged user can start it (``sandbox.plain_unreachable``), it
    runs as root and ``notes`` says so.
    """
    from jupyter_client import AsyncKernelManager  # nbclient's own kind
    from jupyter_client.kernelspec import KernelSpecManager

    import helpers
    from helpers import config

    usable, _ = sandbox.availability()
    uid = sandbox.kernel_uid(options.slot, options.uid_base)
    if not (options.sandbox and usable):
        if uid is None:
            return None  # the grader's own user: the README says what remains
        blocked = sandbox.plain_unreachable()
        if blocked:
            if notes is not None:
                notes.append(
                    "the kernel ran as root: an unprivileged user cannot start it "
                    f"here ({blocked[-100:]}), so it could write the grader's files"
                )
            return None
        sandbox.prepare(workdir, uid)
        sandbox.give_to(workdir, uid)
        spec = private / "kernels" / "bncourse-plain"
        spec.mkdir(parents=True, exist_ok=True)
        contract.write_atomic(
            spec / "kernel.json",
            json.dumps(
                {
                    "argv": sandbox.plain_launcher(workdir, uid),
                    "display_name": "plain",
                    "language": "python",
                    "env": sandbox.plain_environment(workdir),
                }
            ),
        )
        return AsyncKernelManager(
            kernel_name="bncourse-plain",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]),
            connection_file=str(private / "connection.json"),
        )
    ipc = sandbox.prepare(workdir, uid)
    spec = private / "kernels" / "bncourse-sandbox"
    spec.mkdir(parents=True, exist_ok=True)
    argv = sandbox.launcher(
        workdir, Path(helpers.__file__).parent, config.data_dir(), uid, options.disk_mb
    )
    contract.write_atomic(
        spec / "kernel.json",
        # "message": the kernel interrupts itself (SIGINT to its own process
        # group, inside the sandbox); a signal from out here would reach bwrap
        # first, and bwrap dies of SIGINT, taking the kernel with it.
        json.dumps(
            {
                "argv": argv,
                "display_name": "sandbox",
                "language": "python",
                "interrupt_mode": "message",
            }
        ),
    )
    return AsyncKernelManager(
        kernel_name="bncourse-sandbox",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]),
        transport="ipc",
        ip=str(ipc),
        connection_file=str(private / "connection.json"),
    )


def warm_up_code(setup: str) -> str:
    """The grader's request that imports the course setup's modules.

    Run in the kernel before the learner's first cell, with its own time
    limit, so that the learner's setup cell (which imports them again) fits
    in --cell-timeout.  It binds no name in the learner's namespace; the
    modules come from the grader's own copy of the setup, never the
    submission's.
    """
    import ast

    names: list[str] = []
    try:
        tree = ast.parse(setup)
    except SyntaxError:
        return "pass"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return (
        "def _bnc_warm():\n"
        "    import importlib\n"
        f"    for name in {sorted(set(names))!r}:\n"
        "        try:\n"
        "            importlib.import_module(name)\n"
        "        except Exception:\n"
        "            pass\n"
        "_bnc_warm()\n"
        "del _bnc_warm\n"
    )


# --------------------------------------------------------------------------
# judging the tests
# --------------------------------------------------------------------------


def capped_transcript(items, budget: int = TRANSCRIPT_CAP) -> list:
    """A transcript as the records keep it: every cell, skipped or run, its
    source and output ``safe.learner_text`` (lines kept) and capped, and the
    whole within ``budget`` characters (later sources are then left out)."""
    kept, left = [], Budget(budget, ENTRY_COST)
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if "test" in item:  # the grader's tests: as many as its plan has
            kept.append({"test": safe.learner_text(item["test"], 100)})
            continue
        room = left.limit - left.spent
        entry = _transcript_cell(item.get("source", ""), item.get("output", ""), room)
        if item.get("skipped"):
            entry = {"source": entry["source"], "skipped": True}
        # every entry costs at least ENTRY_COST: an empty one is a cell of the
        # feedback page too (attacks4 A01)
        if left.charge(len(entry["source"]) + len(entry.get("output", ""))):
            kept.append(entry)
    return kept


def _transcript_cell(source, output, budget: int) -> dict:
    """One cell for the transcript: its source and output, capped."""
    if budget <= 0:
        return {"source": "# (source not kept: the transcript's limit)", "output": ""}
    return {
        "source": safe.learner_text(source, min(SOURCE_CAP, budget), lines=True),
        "output": safe.learner_text(output, TEXT_CAP, lines=True),
    }


def _text(outputs: list, cap: int = TEXT_CAP) -> str:
    """The text a cell showed (streams, plain-text results, errors), capped."""
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            parts.append(str(output.get("text", "")))
        elif output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
        else:
            text = output.get("data", {}).get("text/plain")
            if isinstance(text, str):
                parts.append(text)
    text = "".join(parts)
    return text if len(text) <= cap else text[:cap] + "\n[... output cut]"


def _grader_namespace(setup: str) -> dict:
    """The grader's own imports, as the notebook's setup cell makes them."""
    space: dict = {"__name__": "__bnc_grader__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(setup, "setup cell", "exec"), space)
    return space


def split_test(source: str) -> tuple[str, str]:
    """(the visible part, the hidden part) of a graded cell's source."""
    visible = contract.without(source, contract.BEGIN_HIDDEN, contract.END_HIDDEN)
    hidden = contract.regions(source, contract.BEGIN_HIDDEN, contract.END_HIDDEN)
    return visible, textwrap.dedent("\n".join(line for r in hidden for line in r))


def test_space(test: dict, base: dict, session) -> dict:
    """The namespace a test runs in: the setup's imports and the proxies.

    The notebook's functions and classes are proxies
    (``remote.RemoteFunction``; an instance of a learner's module is a
    ``remote.RemoteModule``), its other names are fetched by value.
    """
    space = dict(base)
    for name in test["functions"]:
        space[name] = remote.RemoteFunction(session, name)
    for name in test.get("values", []):
        space[name] = session.value(name)
    return space


def run_test_code(source: str, space: dict, label: str) -> tuple[bool, str]:
    """Run (part of) a test in this process: (passed, what it printed or raised).

    Every test is judged here: its code, its inputs' seeds and its expected
    values never enter the kernel.  Whatever the kernel answers is judged as
    the learner's answer; a test that cannot be judged (the kernel does not
    answer, a name is missing) fails with the reason.
    """
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(source, label, "exec"), space)
    except Exception as exc:
        text = printed.getvalue() + f"\n{type(exc).__name__}: {exc}"
        return False, text.strip()[-MESSAGE_CAP:]
    return True, printed.getvalue().strip()[-MESSAGE_CAP:]


def quiz_policy_words(options) -> str:
    from helpers import quiz

    return f"policy {options.quiz_policy}: {quiz.POLICIES[options.quiz_policy]}"


def _judge_answers(
    answers: Path, policy: str = "first"
) -> tuple[float, str, dict, str]:
    """The quiz: scored from the choices its answers file records (``quizscore``).

    ``answers`` is the grader's private copy of the file handed in, taken
    before the kernel started: what the notebook's code does to the file in
    its folder changes nothing.  The file's own flags count for nothing; a
    malformed file or an invalid choice becomes a note, never an exception.
    Returns (fraction of the points, note, each question's result, the
    learner the file claims, which the grader only cross-checks).
    """
    from helpers import quiz

    from . import quizscore

    try:
        bank = quiz.load_bank()
    except quiz.BankError as exc:
        return 0.0, f"the grader's question bank is broken: {exc}"[:300], {}, ""
    scored = quizscore.score(answers, bank, policy)
    return scored.fraction, scored.note, scored.details, scored.learner


# --------------------------------------------------------------------------
# one submission
# --------------------------------------------------------------------------


def _read(submission: Path, result: Result, lesson_of):
    import nbformat

    try:
        nb = nbformat.read(submission, as_version=4)
    except Exception as exc:  # not JSON, not a notebook, unreadable
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        result.error = f"not a valid notebook ({type(exc).__name__}: {first})"
        return None, None
    stem = lesson_of(nb, submission)
    if stem is None:
        result.error = (
            "cannot tell which lesson this is (no course metadata and no NN_ "
            "prefix in the file name)"
        )
        return None, None
    result.notebook = stem
    meta = nb.get("metadata", {}).get("bncourse", {})
    claimed = meta.get("lesson") if isinstance(meta, dict) else None
    if isinstance(claimed, str) and claimed != stem:
        result.notes.append(
            f"the notebook's metadata names lesson {safe.learner_text(claimed, 60)!r}"
            f"; graded as {stem}, the lesson its name or the assignment gives"
        )
    if isinstance(meta, dict) and isinstance(meta.get("learner"), str):
        result.learner = safe.learner_text(meta["learner"], 100)
    return nb, stem


def runnable_cells(submission, tests: list[dict]) -> list:
    """The submission's code cells with the course's tests in place of its own.

    Each test is a marker cell (``{"test": grade_id}``), at the place of the
    learner's copy of it; deleted tests come at the end; a duplicated test runs
    once.  The submission's metadata counts for nothing but its tags (which
    cells are setup and demonstrations): points, grade ids and cell types come
    from the course.
    """
    by_id = {t["grade_id"]: t for t in tests}
    used, cells = set(), []
    for cell in submission.cells:
        if cell.get("cell_type") != "code":
            continue
        gid = contract.grade_id(cell)
        if gid in by_id:
            if gid not in used:
                used.add(gid)
                cells.append({"test": gid})
            continue
        cells.append(
            {"source": str(cell.get("source", "")), "tags": contract.tags(cell)}
        )
    cells += [{"test": t["grade_id"]} for t in tests if t["grade_id"] not in used]
    return cells


def metadata_notes(submission, tests: list[dict]) -> list[str]:
    """What the submission's own grading metadata claims that the course ignores."""
    known = {t["grade_id"]: t for t in tests}
    claims = []
    for cell in submission.cells:
        if not contract.graded(cell):
            continue
        gid = contract.grade_id(cell)
        if gid not in known:
            claims.append(f"a graded cell {gid!r} the course does not have")
        elif contract.points(cell, known[gid]["points"]) != known[gid]["points"]:
            claims.append(f"{contract.points(cell):g} points for {gid!r}")
    if not claims:
        return []
    return ["submission metadata ignored (" + "; ".join(claims[:4]) + ")"]


def _prepared(submission, result, plans, learner_copies, shortcuts, lesson_of):
    """(plan, runnable cells) of a readable submission of a known lesson, or None."""
    nb, stem = _read(submission, result, lesson_of)
    if nb is None:
        return None
    if stem not in plans:
        result.error = f"the grader has no tests for {stem}"
        return None
    plan = plans[stem]
    for test in plan["tests"]:
        result.tests[test["grade_id"]] = [0.0, test["points"]]
    cells = runnable_cells(nb, plan["tests"])
    code = [c["source"] for c in cells if "source" in c]
    result.notes = flags.notes(code, learner_copies.get(stem), shortcuts.get(stem, {}))
    result.notes += metadata_notes(nb, plan["tests"])
    return plan, cells


def grade(
    submission: Path,
    result_path: Path,
    workdir: Path,
    plans: dict,
    learner_copies: dict,
    shortcuts: dict,
    options: Options,
    lesson_of,
) -> None:
    """Grade one submission; the result file is rewritten after every test."""
    result = Result()
    found = _prepared(submission, result, plans, learner_copies, shortcuts, lesson_of)
    result.save(result_path)
    if found is None:
        return
    plan, cells = found
    private = Path(tempfile.mkdtemp(prefix="bncourse-kernel-"))
    # Every process the kernel starts stays below this one (orphans are
    # re-parented here), is counted in one budget and is ended with it.
    sandbox.become_subreaper()
    uid = sandbox.kernel_uid(options.slot, options.uid_base)
    watchdog = sandbox.Watchdog(os.getpid(), options.memory_mb, options.disk_mb, uid)
    try:
        with watchdog:
            Run(plan, workdir, private, options, result, result_path).execute(cells)
    finally:
        sandbox.end_all(os.getpid(), uid)
        import shutil

        shutil.rmtree(private, ignore_errors=True)
    if watchdog.reason:
        result.error = "; ".join(filter(None, [watchdog.reason, result.error]))
    result.save(result_path)


class Run:
    """One submission's kernel, the channel to it, and the tests as they come."""

    def __init__(self, plan, workdir, private, options, result, result_path):
        import nbformat

        self.plan, self.options, self.workdir = plan, options, workdir
        self.result, self.result_path = result, result_path
        self.tests = {t["grade_id"]: t for t in plan["tests"]}
        self.runnable = nbformat.v4.new_notebook()
        self.runnable.cells = [nbformat.v4.new_code_cell("")]  # every cell's slot
        self.runnable.metadata["kernelspec"] = {"name": "python3", "display_name": "P"}
        self.private = private
        self.limit = options.cell_timeout  # the running request's (run_code)
        self.client = self._new_client()
        self.replies: list[str] = []  # the execute reply's error (a timeout's too)
        self.session = remote.Session(self.run_code)
        self.base = _grader_namespace(plan["setup"])
        self.failed: list[str] = []
        self.hidden: list = []  # tests whose hidden part is still to run
        self.hooks_seen: set[str] = set()
        self.hooks_baseline: dict | None = None
        # the transcript: every entry at least ENTRY_COST (``Budget``)
        self.kept = Budget(TRANSCRIPT_CAP, ENTRY_COST)
        self.position = 0  # the learner's cell running (for the notes)
        self.flooded: dict[str, int] = {}  # what the kernel sent past the budgets

    def _new_client(self):
        """An nbclient client with a kernel (in the sandbox) of its own."""
        options, workdir = self.options, self.workdir
        client = _client_class()(
            self.runnable,
            km=_kernel_manager(workdir, self.private, options, self.result.notes),
            shutdown_kernel="immediate",
            timeout=options.cell_timeout,
            timeout_func=lambda cell: self.limit,
            interrupt_on_timeout=True,
            error_on_timeout={
                "ename": "CellTimeoutError",
                "evalue": "time limit",
                "traceback": [],
            },
            allow_errors=True,
            kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
            iopub_timeout=10,
            raise_on_iopub_timeout=False,
        )
        client.on_cell_error = self._on_error
        return client

    def replay_and_judge_hidden(self, cells: list, died_at: int) -> None:
        """The hidden parts still to run when the kernel died (or ran out of
        time): in a fresh kernel, after the learner's cells before the one that
        ended it, replayed without a transcript.  Earlier tests keep what their
        hidden parts earn, as they did when the hidden parts ran in place."""
        if not self.hidden:
            return
        try:
            self.client = self._new_client()
            with self.client.setup_kernel():
                sandbox.seal(self.workdir)
                self.run_code(warm_up_code(self.plan["setup"]), limit=WARM_TIMEOUT)
                for cell in cells[: max(died_at - 1, 0)]:
                    if time.monotonic() > self.options.deadline:
                        break
                    if (
                        "source" in cell
                        and contract.SKIP_WHEN_GRADING not in cell["tags"]
                    ):
                        self.run_code(cell["source"], cell["tags"], learner=True)
                self.judge_hidden()
        except Exception as exc:  # noqa: BLE001 - the row says what happened
            for test, *_ in self.hidden:
                gid = test["grade_id"]
                if self.result.tests[gid][0] == 0:
                    self.result.messages[gid] += (
                        f"\nhidden tests not judged: {type(exc).__name__}"
                    )

    def _on_error(self, cell, cell_index, execute_reply) -> None:  # nbclient's hook
        self.replies.append(execute_reply.get("content", {}).get("ename", "Error"))

    def run_code(
        self, source: str, tags=(), learner: bool = False, limit: int | None = None
    ) -> list:
        """Run code in the kernel; only the learner's cells enter its history.

        A learner's cell gets the instructor's --cell-timeout, nothing else;
        a request of the grader's gets ``limit`` (default CALL_TIMEOUT, or
        --cell-timeout where that is longer).
        """
        import nbformat

        cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})
        self.runnable.cells[0] = cell
        self.replies.clear()
        if learner:
            self.limit = self.options.cell_timeout
        else:
            self.limit = limit or max(CALL_TIMEOUT, self.options.cell_timeout)
        if os.environ.get("BNCOURSE_GRADER_TRACE"):
            print(f"[grader] run {source[:60]!r}", file=sys.stderr, flush=True)
        # One budget a request for everything the kernel sends (CappedClient):
        # a learner's cell keeps OUTPUT_CAP, a grader's request room for the
        # largest reply the channel accepts (measured as the message's JSON,
        # where the reply's own quotes are escaped: twice MAX_REPLY).
        budget = Budget(OUTPUT_CAP if learner else 2 * remote.MAX_REPLY, MESSAGE_COST)
        self.client.budget, self.client.learner = budget, learner
        getattr(self.client, "_display_id_map", {}).clear()  # kept across cells
        try:
            self.client.execute_cell(cell, 0, store_history=learner)
        finally:
            if budget.dropped:
                self.flooded.setdefault("cell", self.position)
                self.flooded["messages"] = self.flooded.get("messages", 0) + (
                    budget.dropped
                )
                self.flooded["bytes"] = self.flooded.get("bytes", 0) + (
                    budget.dropped_size
                )
        return cell.get("outputs", [])

    def flood_note(self) -> str:
        """The row's note for what the budgets dropped, or ''."""
        notes = []
        if self.flooded:
            notes.append(
                f"the kernel sent more than the grader keeps (first in code cell "
                f"{self.flooded['cell']}): {self.flooded['messages']:,} messages "
                f"({self.flooded['bytes'] / 1e6:,.1f} MB of outputs, errors or "
                f"comms) were dropped, {OUTPUT_CAP // 1_000_000} MB a cell at most"
            )
        if self.kept.dropped:
            notes.append(
                f"{self.kept.dropped:,} cells are not in the feedback: the "
                f"transcript keeps {TRANSCRIPT_CAP:,} characters, each cell "
                f"counted as at least {ENTRY_COST:,}"
            )
        return "; ".join(notes)

    def note_hooks(self) -> None:
        """Note the interpreter hooks the kernel reports beyond the setup's.

        They cannot change a verdict (no test runs in the kernel); the
        instructor should still know.  The kernel may lie: the code flags
        (``flags.py``) read the same from the source.
        """
        try:
            outputs = self.run_code(HOOK_PROBE)
            found = None
            for output in outputs:
                text = output.get("data", {}).get(remote.MIME)
                if isinstance(text, str) and len(text) > HOOK_REPLY_CAP:
                    self._note_hook(
                        "too large",
                        f"the kernel's report of its hooks was too large to read "
                        f"({len(text):,} characters): it may have hooks the course "
                        "does not install; no test ran in the kernel, so they "
                        "changed no verdict",
                    )
                elif isinstance(text, str):
                    found = json.loads(text)
            if not isinstance(found, dict):
                return
        except Exception:  # noqa: BLE001 - a note, never a failure
            return
        if self.hooks_baseline is None:
            self.hooks_baseline = found
        for kind, items in found.items():
            before = self.hooks_baseline.get(kind, [])
            for item in items if isinstance(items, list) else []:
                if item in before:
                    continue
                hook = safe.learner_text(f"{kind}: {item}", 120)
                self._note_hook(
                    hook,
                    f"the kernel has a hook the course does not install ({hook}); "
                    "no test ran in the kernel, so it changed no verdict",
                )

    def _note_hook(self, key: str, note: str) -> None:
        """A note per hook, the first HOOK_NOTES of them; then one that counts."""
        if key in self.hooks_seen:
            return
        self.hooks_seen.add(key)
        if len(self.hooks_seen) <= HOOK_NOTES:
            self.result.notes.append(safe.learner_text(note, 400))
            return
        notes = [n for n in self.result.notes if not _MORE_HOOKS.match(str(n))]
        self.result.notes = notes + [
            f"the kernel has {len(self.hooks_seen) - HOOK_NOTES} more hook(s) the "
            "course does not install (not listed one by one)"
        ]

    def execute(self, cells: list) -> None:
        from nbclient.exceptions import DeadKernelError

        position, died_at = 0, 0
        try:
            with self.client.setup_kernel():
                sandbox.seal(self.workdir)  # before any of the learner's code
                self.run_code(warm_up_code(self.plan["setup"]), limit=WARM_TIMEOUT)
                for position, cell in enumerate(cells, 1):
                    if time.monotonic() > self.options.deadline:
                        self.result.error = (
                            f"notebook time limit reached before cell {position} "
                            f"of {len(cells)}"
                        )
                        break
                    self.step(position, cell)
                self.judge_hidden()
        except DeadKernelError:
            self.result.error = (
                f"the kernel died in code cell {position}: os._exit, a crash, or a "
                "resource limit; later cells did not run"
            )
            died_at = position
        except Exception as exc:
            self.result.error = f"grading stopped: {type(exc).__name__}: {exc}"[:300]
        if died_at and any(
            self.result.tests[t["grade_id"]][0] == 0 for t, *_ in self.hidden
        ):
            self.replay_and_judge_hidden(cells, died_at)
        if self.flood_note():
            self.result.notes.append(self.flood_note())
        if self.failed:
            extra = "; ".join(self.failed[:3]) + (
                f" (+{len(self.failed) - 3} more)" if len(self.failed) > 3 else ""
            )
            self.result.error = "; ".join(filter(None, [self.result.error, extra]))

    def step(self, position: int, cell: dict) -> None:
        """One cell of the submission, or one of the course's tests."""
        if "test" in cell:
            self.judge(self.tests[cell["test"]])
            self.result.transcript.append({"test": cell["test"]})
            self.result.save(self.result_path)
            return
        self.position = position
        if contract.SKIP_WHEN_GRADING in cell["tags"]:
            self._keep(_transcript_cell(cell["source"], "", self._room()), True)
            return
        outputs = self.run_code(cell["source"], cell["tags"], learner=True)
        if contract.SETUP_TAG in cell["tags"] and self.hooks_baseline is None:
            self.note_hooks()  # what the course's own setup installs
        self._keep(_transcript_cell(cell["source"], _text(outputs), self._room()))
        errors = [o["ename"] for o in outputs if o.get("ename")]
        if self.replies or errors:
            lines = [
                ln for ln in cell["source"][:SOURCE_CAP].splitlines() if ln.strip()
            ]
            first = safe.learner_text(lines[0].strip()[:50] if lines else "")
            name = safe.learner_text((self.replies or errors)[0], 100)
            self.failed.append(f'code cell {position} ("{first}") raised {name}')
            self.run_code(FORGET_FAILURE)  # before the next cell or test

    def _room(self) -> int:
        return self.kept.limit - self.kept.spent

    def _keep(self, entry: dict, skipped: bool = False) -> None:
        """A cell's entry in the transcript, if the budget has room for it."""
        if skipped:
            entry = {"source": entry["source"], "skipped": True}
        if self.kept.charge(len(entry["source"]) + len(entry.get("output", ""))):
            self.result.transcript.append(entry)

    def judge(self, test: dict) -> None:
        gid, most, result = test["grade_id"], test["points"], self.result
        if test["mode"] == "answers":
            if self.options.answers is None:
                result.notes.append(
                    "no answers file handed in (<notebook>.answers.json, or "
                    "06_quiz.answers.json beside it): the quiz scores 0"
                )
                result.messages[gid] = "no answers file"
                return
            fraction, note, result.quiz, learner = _judge_answers(
                self.options.answers, self.options.quiz_policy
            )
            result.learner = result.learner or learner
            result.tests[gid][0] = round(most * min(max(fraction, 0.0), 1.0), 2)
            result.messages[gid] = (
                f"{fraction:.0%} of the points ({quiz_policy_words(self.options)})"
            )
            if note:
                result.notes.append(note[:200])
            return
        # The visible part runs here, at the test's place; the hidden part after
        # the last of the learner's cells, so that no cell of theirs runs after
        # the learner's code has seen a hidden test's inputs.
        visible, hidden = split_test(test["source"])
        label = f"test {gid}"
        try:
            space = test_space(test, self.base, self.session)
        except Exception as exc:  # a missing name, a kernel that does not answer
            space, passed, message = None, False, f"{type(exc).__name__}: {exc}"
        else:
            passed, message = run_test_code(visible, space, label)
        result.tests[gid][0] = most if passed and not hidden.strip() else 0.0
        result.messages[gid] = message
        if hidden.strip():
            self.hidden.append((test, space, passed, message, hidden))
            if passed:
                result.messages[gid] = (
                    message + "\n(hidden tests: judged after the notebook's last cell)"
                ).strip()
        self.note_hooks()

    def judge_hidden(self) -> None:
        """Every test's hidden part, after the learner's last cell ran.

        What the learner's code prints, raises or keeps from these calls can no
        longer reach a cell of theirs; the feedback shows only the verdict and
        the mistake the check named (``report._safe``), never their words.
        """
        self.session.hidden = True  # the learner's words stay out (``remote``)
        while self.hidden:
            test, space, passed, message, hidden = self.hidden.pop(0)
            gid = test["grade_id"]
            if time.monotonic() > self.options.deadline:
                self.result.messages[gid] = (
                    message + "\nnot judged: the notebook time limit came first"
                )
                continue
            if not passed:
                continue  # the visible part failed: no points, its message stands
            self.session.changed.clear()
            ok_, more = run_test_code(hidden, space, f"hidden test {gid}")
            if self.session.changed:  # kept from the test's objects (``remote``)
                ok_, more = False, f"{more}\n{CHANGED_ARGUMENT.format(gid)}".strip()
            self.result.tests[gid][0] = test["points"] if ok_ else 0.0
            self.result.messages[gid] = (
                message if ok_ else f"{message}{HIDDEN_FAILED}{more}"
            ).strip()[-MESSAGE_CAP:]
            self.result.save(self.result_path)
