"""The learner's kernel in a sandbox: bubblewrap, an unprivileged user, limits.

On Linux with ``bwrap`` (Debian's ``bubblewrap``, 0.7 or later), each
submission's kernel runs in its own mount, PID, network, IPC and UTS
namespaces:

* it sees a **read-only** view of what a kernel needs: the system's ``/usr``
  and ``/etc``, the Python installation, the environment's site-packages and
  the course package with its data, nothing else of the machine; not
  ``solutions/``, not the tests, not the grader's files, not the other
  submissions;
* it can write only to a private ``/tmp``, a tmpfs of at most ``disk_mb``
  that also holds its working folder (``/tmp/<the grader's folder name>``,
  where the submission and its answers file are copied when it starts): one
  cap for every file it writes, however many; the rest of its file system
  (``/``, ``/dev``) is read-only;
* it has **no network** (an empty network namespace: not even the grader's
  loopback), talks to the grader through Unix sockets in a folder of the
  grader's bound into it (ZeroMQ's ``ipc`` transport), which the grader seals
  once the kernel is up (``seal``), and cannot signal the grader (its own PID
  namespace; ``--die-with-parent``);
* its environment is an allow-list (``allowed_environment``: ``PATH``,
  ``LANG``, ``LC_*``, the course's ``BNCOURSE_*`` settings...), never the
  grader's own (``--clearenv``);
* run as root, it drops to an unprivileged user (``setpriv``), one per
  worker slot, so that the process limit holds (root is exempt from it).

Resource limits apply with or without the sandbox: address space, processes,
file size, no core dumps; and one budget for every process and file of the
submission together (``Watchdog``), which ends them all.  Where the sandbox
cannot run (no bwrap, macOS, user namespaces disabled) the grader refuses
unless told ``--sandbox off``; then the kernel runs directly, with the
allow-list environment (graded as root: as an unprivileged user of its own,
``plain_launcher``), and every row says so (``UNSANDBOXED_NOTE``).
"""

from __future__ import annotations

import functools
import os
import resource
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

UNPROTECTED = (
    "without the sandbox a submission can read the solutions and other "
    "submissions, use the network and fill the disk; graded as an ordinary "
    "user it also runs with the grader's rights: it can write any file the "
    "grader can, signal the grader and read the grader's environment from "
    "/proc (graded as root, it runs as an unprivileged user of its own instead; "
    "the memory budget, the time limits, the per-file size limit and the end "
    "of every process it starts still hold)"
)
UNSANDBOXED_NOTE = (
    "graded unsandboxed (--sandbox off): the submission ran without the "
    "sandbox's isolation and disk cap"
)


def unsandboxed_warning(rows) -> str:
    """One line for a class report or gradebook: how many rows ran unsandboxed.

    ``rows``: the grader's rows (their ``unsandboxed`` status, never a note's
    text); "" when none did.
    """
    count = sum(bool(getattr(row, "unsandboxed", False)) for row in rows)
    if not count:
        return ""
    return (
        f"WARNING: {count} of {len(rows)} submission(s) were graded unsandboxed "
        "(--sandbox off): their code ran without the sandbox's isolation"
    )


FIRST_UID = 60000  # unprivileged users for the kernels when graded as root
DISK_MB = 512  # default cap on what a sandboxed kernel writes (/tmp + work folder)

# The kernel's environment: these names and prefixes of the grader's, nothing
# else (a token the instructor exported must not reach a feedback page).
PASSED_THROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "LD_LIBRARY_PATH",
    "MPLBACKEND",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)
PASSED_PREFIXES = ("LC_", "BNCOURSE_")
WITHHELD = ("BNCOURSE_QUIZ_DIR",)  # the quiz reads its file in the working folder


def allowed_environment(source) -> dict:
    """The allow-listed part of ``source`` (an environment mapping)."""
    return {
        key: value
        for key, value in source.items()
        if (key in PASSED_THROUGH or key.startswith(PASSED_PREFIXES))
        and key not in WITHHELD
    }


@functools.lru_cache(maxsize=1)
def availability() -> tuple[bool, str]:
    """(can the sandbox run here, why not)."""
    if not sys.platform.startswith("linux"):
        return False, f"no bubblewrap on {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bwrap is not installed (apt-get install bubblewrap)"
    try:
        probe = subprocess.run(  # the options kernel_command needs (0.7: --size)
            [
                bwrap,
                *system_binds(1),
                "--clearenv",
                "--remount-ro",
                "/",
                "--unshare-all",
                "--die-with-parent",
                "true",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap could not run ({exc})"
    if probe.returncode != 0:
        if "Unknown option" in probe.stderr:
            return False, (
                "this bwrap is too old (0.7 or later caps the kernel's /tmp: "
                f"--size): {probe.stderr.strip()[:120]}"
            )
        return False, f"bwrap failed here: {probe.stderr.strip()[:200]}"
    return True, ""


def system_binds(disk_mb: int = DISK_MB) -> list[str]:
    """The system a Python process needs, read-only (and /bin, /lib as they are).

    ``/tmp`` is a tmpfs of ``disk_mb`` (its pages are memory, outside the
    address-space limit: the budget of a submission is both).
    """
    args = []
    for top in ("/usr", "/etc"):
        if os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args + [
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--perms",
        "1777",
        "--size",
        str(disk_mb << 20),
        "--tmpfs",
        "/tmp",
    ]


def readable_paths(course_package: Path, data_dir: Path) -> list[Path]:
    """What the kernel may read: the interpreter, the environment, the course."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(Path(sysconfig.get_paths()[key]))
    paths |= {Path(course_package), Path(data_dir)}
    for entry in sys.path:  # e.g. a .pth-added folder outside the environment
        if entry and Path(entry).is_dir() and "site-packages" in entry:
            paths.add(Path(entry))
    real = {p.resolve() for p in paths if p.exists()}
    real |= {p for p in paths if p.exists()}  # the link names too (venv/bin/python)
    kept = []
    for path in sorted(real, key=lambda p: len(p.parts)):
        if str(path).startswith(("/usr/", "/etc/")) or str(path) in ("/usr", "/etc"):
            continue
        if not any(parent in kept for parent in path.parents):
            kept.append(path)
    return kept


def _parents(paths: list[Path], skip=()) -> list[str]:
    """Mount points' parent folders, made traversable (bwrap makes them 0700)."""
    found = set()
    for path in paths:
        for parent in path.parents:
            if str(parent) not in ("/", "/tmp") and parent not in skip:
                found.add(parent)
    args = []
    for parent in sorted(found, key=lambda p: len(p.parts)):
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def inside(workdir: Path) -> Path:
    """The kernel's working folder as the kernel sees it: on its capped /tmp."""
    return Path("/tmp") / workdir.name


# Memory a process can hold without mapping it escapes the address-space
# limit and the watchdog: a memfd written to, and every IPC object the kernel
# keeps for a process (System V shared memory, message queues and semaphore
# sets; POSIX message queues): 32,000 message queues of 16 KiB held ~500 MB
# of kernel memory per submission (held-out A06).  No memory cgroup is
# writable here (nor on many graders' machines), so the kernel may not create
# them: a seccomp filter (classic BPF, handed to bwrap's --seccomp) makes those
# calls fail with EPERM, and every call of another architecture (i386's
# through ``int 0x80``, arm32's) too.  Nothing a notebook of the course needs
# uses them: no library in the course's environment imports msgget, semget,
# shmget or mq_open (``tests/test_grading_sandbox.py`` reads their symbols),
# and the lessons run sandboxed under the filter.  Creating none, the kernel
# can attach, send to or wait on none (a fresh IPC namespace has none).
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
DENIED_CALLS = {
    # memfd_create, memfd_secret, shmget, msgget, semget, mq_open
    "x86_64": (319, 447, 29, 68, 64, 240),
    "aarch64": (279, 447, 194, 186, 190, 180),
}
# the C library's functions for those calls (a library importing one uses one)
DENIED_SYMBOLS = ("shmget", "msgget", "semget", "mq_open", "memfd_create")


def seccomp_program(machine: str | None = None) -> bytes | None:
    """The filter's instructions (``struct sock_filter``), or None for a machine
    whose system-call numbers are not listed here (then there is no filter)."""
    import platform
    import struct

    machine = machine or platform.machine()
    if machine not in DENIED_CALLS:
        return None
    calls = DENIED_CALLS[machine]
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, ERRNO(EPERM)
    n = len(calls)
    program = [
        (ld, 0, 0, 4),  # the architecture
        (jeq, 0, n + 3, AUDIT_ARCH[machine]),  # another one: deny
        (ld, 0, 0, 0),  # the call's number
        (jge, n + 1, 0, 0x40000000),  # x32 calls (x86_64): deny
        *[(jeq, n - i, 0, nr) for i, nr in enumerate(calls)],
        (ret, 0, 0, allow),
        (ret, 0, 0, deny),
    ]
    return b"".join(struct.pack("<HBBI", *item) for item in program)


@functools.lru_cache(maxsize=1)
def seccomp_file() -> str | None:
    """The filter written once per grader, for the launcher's shell to open."""
    import tempfile

    program = seccomp_program()
    if program is None:
        return None
    fd, path = tempfile.mkstemp(prefix="bncourse-seccomp-", suffix=".bpf")
    with os.fdopen(fd, "wb") as f:
        f.write(program)
    os.chmod(path, 0o644)
    return path


def kernel_command(
    workdir: Path,
    connection: Path,
    package: Path,
    data_dir: Path,
    uid: int | None,
    disk_mb: int = DISK_MB,
    inputs: tuple = (),
    seccomp_fd: int | None = None,
) -> list[str]:
    """argv of a sandboxed ``ipykernel``.

    ``connection`` lies in ``workdir/.kernel``, the socket folder, bound into
    the sandbox at its own path; ``inputs`` are ``(fd, name)`` pairs: files
    open on those descriptors, copied into the kernel's working folder (on
    its capped ``/tmp``) when the sandbox starts.
    """
    read = readable_paths(package, data_dir)
    sockets = connection.parent
    work = inside(workdir)
    args = ["bwrap", *system_binds(disk_mb)]
    args += ["--perms", "0777", "--dir", str(work)]  # the kernel's user writes here
    args += _parents([*read, sockets], skip=(work,))
    for path in read:
        args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(sockets), str(sockets)]
    for fd, name in inputs:
        args += ["--perms", "0666", "--file", str(fd), str(work / name)]
    args += ["--chdir", str(work), "--clearenv"]
    env = allowed_environment(os.environ)
    env.update(
        HOME="/tmp",
        MPLCONFIGDIR="/tmp/matplotlib",
        IPYTHONDIR="/tmp/ipython",
        JUPYTER_RUNTIME_DIR="/tmp/jupyter",
        TMPDIR="/tmp",
        BNCOURSE_CACHE="/tmp/bncourse-cache",  # the grader's cache is not bound in
    )
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    # ipykernel exits when the process named by JPY_PARENT_PID is gone, and the
    # grader's PID is invisible from the kernel's own PID namespace: it is not
    # set (--clearenv).  No --new-session: the kernel has no terminal to inject
    # into, and staying in the launcher's process group lets the grader's
    # interrupt (SIGINT to that group, on a cell's time limit) reach it.
    args += [
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
        # last: nothing but /tmp (capped) and the socket folder is writable
        "--remount-ro",
        "/dev",
        "--remount-ro",
        "/",
    ]
    if uid is not None:
        args += [
            "/usr/bin/setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
    return [*args, sys.executable, "-m", "ipykernel_launcher", "-f", str(connection)]


def launcher(
    workdir: Path,
    course_package: Path,
    data_dir: Path,
    uid: int | None,
    disk_mb: int = DISK_MB,
) -> list[str]:
    """The kernelspec's argv: hand the connection file to the kernel, then start it.

    jupyter_client writes the connection file with mode 0600 for the grader's
    user; the kernel (another user, in the sandbox) gets its own copy in the
    socket folder before bwrap starts.  The files of ``workdir`` (the
    submission, its answers file) are opened by the shell and copied into the
    sandbox by bwrap (``--file``).
    """
    sockets = workdir / ".kernel"
    connection = sockets / "connection.json"
    files = sorted(p for p in workdir.iterdir() if p.is_file() and not p.is_symlink())
    inputs = tuple((3 + i, p.name) for i, p in enumerate(files))
    program = seccomp_file()
    seccomp_fd = 3 + len(files) if program else None
    command = kernel_command(
        workdir, connection, course_package, data_dir, uid, disk_mb, inputs, seccomp_fd
    )
    give = f"cp {{connection_file}} {shlex.quote(str(connection))}"
    if uid is not None:
        give += f" && chown {uid}:{uid} {shlex.quote(str(connection))}"
    redirects = " ".join(
        f"{fd}<{shlex.quote(str(p))}" for (fd, _), p in zip(inputs, files, strict=True)
    )
    if program:
        redirects += f" {seccomp_fd}<{shlex.quote(program)}"
    return ["/bin/sh", "-c", f"{give} && exec {shlex.join(command)} {redirects}"]


def plain_launcher(workdir: Path, uid: int) -> list[str]:
    """The kernelspec's argv without the sandbox, graded as root: the kernel
    runs as ``uid`` (an unprivileged user of this grader's, ``kernel_uid``).

    It can then write only where that user may (its working folder, which
    it owns, and the machine's world-writable folders), never the grader's
    private folder or outputs, and every process it starts can be killed at
    once (``kill_user``), however it detaches itself.
    """
    connection = workdir / ".kernel" / "connection.json"
    command = [
        "/usr/bin/setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        sys.executable,
        "-m",
        "ipykernel_launcher",
        "-f",
        str(connection),
    ]
    # the copy and the hand-over in Python: no shell tool, whatever PATH holds
    give = (
        "import os, shutil, sys; _, src, dst, uid, *argv = sys.argv; "
        "shutil.copyfile(src, dst); os.chown(dst, int(uid), int(uid)); "
        "os.execv(argv[0], argv)"
    )
    return [
        sys.executable,
        "-I",
        "-c",
        give,
        "{connection_file}",
        str(connection),
        str(uid),
        *command,
    ]


PROBE_UID = 65534  # "nobody": a user with no group of the grader's


@functools.lru_cache(maxsize=1)
def plain_unreachable() -> str:
    """ "" when an unprivileged user can start the kernel's interpreter and
    import the course and ipykernel, else why not (tried once per grader, as
    ``PROBE_UID``: without the sandbox, the kernel's user needs to reach
    them with the rights of "others").  Root only."""
    import helpers

    course = str(Path(helpers.__file__).resolve().parent.parent)
    try:
        probe = subprocess.run(
            [
                "/usr/bin/setpriv",
                f"--reuid={PROBE_UID}",
                f"--regid={PROBE_UID}",
                "--clear-groups",
                "--",
                sys.executable,
                "-c",
                "import sys; sys.path[:0] = sys.argv[1:]; import helpers, ipykernel",
                course,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)[:160]
    if probe.returncode != 0:
        lines = (probe.stderr or probe.stdout).strip().splitlines()
        return (lines[-1] if lines else f"exit status {probe.returncode}")[:160]
    return ""


def plain_environment(workdir: Path) -> dict:
    """Where the unsandboxed kernel's user keeps its caches: its own folder."""
    return {
        "HOME": str(workdir),
        "MPLCONFIGDIR": str(workdir / ".matplotlib"),
        "IPYTHONDIR": str(workdir / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(workdir / ".jupyter"),
        "TMPDIR": str(workdir),
        "BNCOURSE_CACHE": str(workdir / ".bncourse-cache"),
    }


def give_to(workdir: Path, uid: int) -> None:
    """The working folder and its files belong to the kernel's user."""
    os.chown(workdir, uid, uid)
    for path in workdir.iterdir():
        if path.is_file() and not path.is_symlink():
            os.chown(path, uid, uid)


def prepare(workdir: Path, uid: int | None) -> Path:
    """The kernel's socket folder (its user may create sockets there)."""
    sockets = workdir / ".kernel"
    sockets.mkdir(exist_ok=True)
    for old in sockets.iterdir():  # a kernel started again: its old sockets
        old.unlink(missing_ok=True)
    os.chmod(sockets, 0o755)  # unsealed (``seal``) for the new kernel
    if uid is not None:
        os.chown(sockets, uid, uid)
    return sockets / "ipc"


def seal(workdir: Path) -> None:
    """Once the kernel is up: its socket folder takes no new file.

    The kernel has bound its sockets and read its connection file (removed
    now): the folder becomes the grader's and read-only, so that the one
    writable place outside the capped /tmp holds nothing the kernel writes.
    (Graded as an unprivileged user, the kernel runs as that user and could
    make the folder writable again: see the README.)
    """
    sockets = workdir / ".kernel"
    if not sockets.is_dir():
        return
    (sockets / "connection.json").unlink(missing_ok=True)
    if os.geteuid() == 0:
        os.chown(sockets, 0, 0)
    os.chmod(sockets, 0o555)


def remove(workdir: Path) -> None:
    """Delete a working folder, its sealed socket folder included."""
    import shutil

    sockets = workdir / ".kernel"
    if sockets.is_dir() and not sockets.is_symlink():
        try:
            os.chmod(sockets, 0o700)
        except OSError:
            pass
    shutil.rmtree(workdir, ignore_errors=True)


def uid_base(grader_pid: int) -> int:
    """The first of this grader's users: graders running at once get their own."""
    return FIRST_UID + (grader_pid % 2048) * 64


def kernel_uid(slot: int, base: int = FIRST_UID) -> int | None:
    """An unprivileged user for worker ``slot`` when grading as root, else None.

    One user per slot and per grader: the process limit counts a user's
    processes, so a fork bomb exhausts its own user's quota, nobody else's.
    """
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"):
        return None
    return base + slot % 64


def _processes_of(uid: int) -> int:
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    count += int(line.split()[1]) == uid
                    break
        except (OSError, ValueError):
            continue
    return count


def set_limits(memory_mb: int, uid: int | None, file_mb: int = DISK_MB) -> None:
    """Limits the kernel inherits: memory, processes, file size, no core files.

    The process limit counts every process of the user: for the grader's own
    user (no sandbox user) it leaves room for what already runs.
    """
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb << 20, file_mb << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if uid is not None:
        procs = 256  # threads count too: a kernel and torch use a few dozen
    elif os.geteuid() == 0:
        return  # root ignores the limit; without the sandbox user there is none
    else:
        procs = _processes_of(os.geteuid()) + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard != resource.RLIM_INFINITY:
        procs = min(procs, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (procs, procs if uid else hard))


# --------------------------------------------------------------------------
# one budget for the whole sandbox, and nothing outlives it
# --------------------------------------------------------------------------
#
# The address-space limit (RLIMIT_AS) counts one process: a kernel that forks
# gets it again for every child, and the files of the sandbox's tmpfs cost
# kernel memory per inode that --size does not count.  No memory cgroup is
# writable where the course is tested, so the grader watches instead: a
# thread of the worker (``Watchdog``) sums, a few times a second, the memory
# of every process the kernel started and what the sandbox's tmpfs holds, and
# ends the whole sandbox when either is over its budget.  Every process the
# kernel starts stays a descendant of the worker (the worker is a child
# subreaper: an orphan, double-forked or not, is re-parented to it, and in the
# sandbox to its PID namespace's init), so one walk of /proc finds them all.

FILE_COST = 16 << 10  # bytes of --disk-mb per file of the tmpfs (see files_held)
WATCH_INTERVAL = 0.2  # seconds between two looks; 0.05 when over half the budget
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphans of this process's descendants are re-parented to it (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat after the command's name (which may hold anything)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """The live (not zombie) processes below ``pid``, children first."""
    children: dict[int, list[int]] = {}
    states: dict[int, bytes] = {}
    try:
        entries = list(os.scandir("/proc"))
    except OSError:  # no /proc (macOS): nothing found, nothing watched
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or len(fields) < 2:
            continue
        states[int(entry.name)] = fields[0]
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        if states.get(child) not in (b"Z", b"X"):
            found.append(child)
        queue += children.get(child, [])
    return found


def _kilobytes(path: str) -> dict[str, int] | None:
    """The ``name: N kB`` lines of a /proc file; None when it cannot be read."""
    found = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(":")
                words = value.split()
                if len(words) == 2 and words[1] == "kB" and words[0].isdigit():
                    found[name] = int(words[0])
    except OSError:
        return None
    return found


def memory_held(pids, precise: bool = False) -> int:
    """Bytes of memory the processes hold: anonymous and shared memory.

    Cheap: each one's resident anonymous and shared memory (``RssAnon``,
    ``RssShmem``: pages a fork shares are counted in each process, an upper
    bound).  Precise: each one's proportional share (``Pss_Anon``,
    ``Pss_Shmem`` of ``smaps_rollup``; ``Pss`` on kernels before 5.9), what
    the processes hold together; where that file cannot be read, the cheap
    count.  File-backed pages (the libraries) are page cache, not counted.
    """
    total = 0
    for pid in pids:
        rollup = _kilobytes(f"/proc/{pid}/smaps_rollup") if precise else None
        if rollup and "Pss_Anon" in rollup:
            held = rollup["Pss_Anon"] + rollup.get("Pss_Shmem", 0)
        elif rollup and "Pss" in rollup:
            held = rollup["Pss"]
        else:
            status = _kilobytes(f"/proc/{pid}/status") or {}
            held = status.get("RssAnon", 0) + status.get("RssShmem", 0)
        total += held << 10
    return total


def files_held(pids) -> tuple[int, int]:
    """(bytes, files) on the sandbox's tmpfs.

    Read through ``/proc/<pid>/root/tmp`` of a process inside the sandbox
    (one whose /tmp is not the grader's); (0, 0) without a sandbox.  The
    bytes are capped by the tmpfs's size (the writer gets ENOSPC); its files
    are not (each costs the kernel ~1.2 KiB of memory, however small: 150,000
    empty files took 183 MB), so the watchdog allows one file per
    ``FILE_COST`` of the disk budget: their memory stays under 8 % of it.
    """
    try:
        ours = os.stat("/tmp").st_dev
    except OSError:
        ours = None
    seen, used, files = set(), 0, 0
    for pid in pids:
        try:
            where = f"/proc/{pid}/root/tmp"
            device = os.stat(where).st_dev
            if device == ours or device in seen:
                continue
            info = os.statvfs(where)
        except OSError:
            continue
        seen.add(device)
        used += (info.f_blocks - info.f_bfree) * info.f_frsize
        files += info.f_files - info.f_ffree
    return used, files


def kill_user(uid: int) -> None:
    """SIGKILL every process of ``uid`` at once (kill(-1) as that user).

    A forked child takes the user and signals; nothing is executed, so the
    user's process limit (reached by a fork bomb) cannot stop it.  Root only.
    """
    import signal

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def end_all(root: int, uid: int | None = None, rounds: int = 50) -> int:
    """Kill every process below ``root`` (and every process of ``uid``).

    Repeated until none is left (a process may fork between two looks);
    returns how many were seen.  ``root`` should be a subreaper
    (``become_subreaper``) so that orphans are still below it.
    """
    import signal

    seen: set[int] = set()
    for _ in range(rounds):
        if uid is not None and os.geteuid() == 0:
            kill_user(uid)
        alive = descendants(root)
        if not alive:
            break
        seen |= set(alive)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        import time

        time.sleep(0.01)
    return len(seen)


class Watchdog:
    """A thread that ends the sandbox when it holds more than its budget.

    The budget is the submission's, for the whole sandbox however many
    processes and files it makes: ``memory_mb`` for the memory of every
    process below ``root`` (the worker; see ``memory_held``); ``disk_mb`` for
    the tmpfs, whose size caps its bytes and whose files the watchdog counts
    (``files_held``).  Over either, every process of the sandbox is killed
    (``end_all``) and ``reason`` says why.
    """

    def __init__(
        self, root: int, memory_mb: int, disk_mb: int, uid: int | None = None
    ) -> None:
        import threading

        self.root, self.uid = root, uid
        self.memory, self.disk = memory_mb << 20, disk_mb << 20
        self.reason = ""
        self.looks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        interval = WATCH_INTERVAL
        while not self._stop.wait(interval):
            try:
                interval = self.look()
            except Exception:  # noqa: BLE001 - a look that failed; the next one
                interval = WATCH_INTERVAL

    def look(self) -> float:
        """One look; returns the seconds to the next."""
        self.looks += 1
        pids = descendants(self.root)
        memory = memory_held(pids)
        if memory > self.memory:  # the upper bound is over: the shares decide
            memory = memory_held(pids, precise=True)
        _, files = files_held(pids)
        most_files = self.disk // FILE_COST
        over = []
        if memory > self.memory:
            over.append(
                f"its processes ({len(pids)}) held {memory >> 20} MB of memory, "
                f"over --memory-mb {self.memory >> 20}"
            )
        if files > most_files:
            over.append(
                f"it made {files} files, over the {most_files} that --disk-mb "
                f"{self.disk >> 20} allows (one per {FILE_COST >> 10} KB: each "
                "costs memory however small)"
            )
        if over:
            self.reason = (
                "the sandbox was ended: " + " and ".join(over) + " (one budget for "
                "every process and file the submission makes)"
            )
            end_all(self.root, self.uid)
            return WATCH_INTERVAL
        busy = memory > self.memory // 2 or files > most_files // 2
        return WATCH_INTERVAL / 4 if busy else WATCH_INTERVAL
