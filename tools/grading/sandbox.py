"""The learner's kernel in a sandbox: bubblewrap, an unprivileged user, limits.

On Linux with ``bwrap`` (Debian's ``bubblewrap``), each submission's kernel
runs in its own mount, PID, network, IPC and UTS namespaces:

* it sees a **read-only** view of what a kernel needs: the system's ``/usr``
  and ``/etc``, the Python installation, the environment's site-packages and
  the course package with its data, nothing else of the machine; not
  ``solutions/``, not the tests, not the grader's files, not the other
  submissions;
* its working folder (the copy of the submission) is the one place it can
  write, with a private empty ``/tmp``;
* it has **no network** (an empty network namespace: not even the grader's
  loopback), talks to the grader through Unix sockets in its working folder
  (ZeroMQ's ``ipc`` transport), and cannot signal the grader (its own PID
  namespace; ``--die-with-parent``);
* run as root, it drops to an unprivileged user (``setpriv``), one per
  worker slot, so that the process limit holds (root is exempt from it).

Resource limits apply with or without the sandbox: address space, processes,
file size, no core dumps.  Where the sandbox cannot run (no bwrap, macOS,
user namespaces disabled) the kernel runs directly and the grader prints what
is not protected (``UNPROTECTED``).
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
    "without the sandbox a submission runs with the grader's rights: it can "
    "read the solutions and other submissions, write any file the grader can, "
    "use the network, signal the grader and start processes without a count "
    "limit (the memory, time and file-size limits still hold)"
)
FIRST_UID = 60000  # unprivileged users for the kernels when graded as root


@functools.lru_cache(maxsize=1)
def availability() -> tuple[bool, str]:
    """(can the sandbox run here, why not)."""
    if not sys.platform.startswith("linux"):
        return False, f"no bubblewrap on {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bwrap is not installed (apt-get install bubblewrap)"
    try:
        probe = subprocess.run(
            [bwrap, *system_binds(), "--unshare-all", "--die-with-parent", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap could not run ({exc})"
    if probe.returncode != 0:
        return False, f"bwrap failed here: {probe.stderr.strip()[:200]}"
    return True, ""


def system_binds() -> list[str]:
    """The system a Python process needs, read-only (and /bin, /lib as they are)."""
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


def _parents(paths: list[Path]) -> list[str]:
    """Mount points' parent folders, made traversable (bwrap makes them 0700)."""
    found = set()
    for path in paths:
        for parent in path.parents:
            if str(parent) not in ("/", "/tmp"):
                found.add(parent)
    args = []
    for parent in sorted(found, key=lambda p: len(p.parts)):
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def kernel_command(
    workdir: Path, connection: Path, package: Path, data_dir: Path, uid: int | None
) -> list[str]:
    """argv of a sandboxed ``ipykernel``: ``connection`` lies inside ``workdir``."""
    read = readable_paths(package, data_dir)
    args = ["bwrap", *system_binds(), *_parents([*read, workdir])]
    for path in read:
        args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
    for name, value in (
        ("HOME", "/tmp"),
        ("MPLCONFIGDIR", "/tmp/matplotlib"),
        ("IPYTHONDIR", "/tmp/ipython"),
        ("JUPYTER_RUNTIME_DIR", "/tmp/jupyter"),
        ("TMPDIR", "/tmp"),
    ):
        args += ["--setenv", name, value]
    # ipykernel exits when the process named by JPY_PARENT_PID is gone, and the
    # grader's PID is invisible from the kernel's own PID namespace.  No
    # --new-session: the kernel has no terminal to inject into, and staying in
    # the launcher's process group lets the grader's interrupt (SIGINT to that
    # group, on a cell's time limit) reach it.
    args += [
        "--unsetenv",
        "JPY_PARENT_PID",
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
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
    workdir: Path, course_package: Path, data_dir: Path, uid: int | None
) -> list[str]:
    """The kernelspec's argv: hand the connection file to the kernel, then start it.

    jupyter_client writes the connection file with mode 0600 for the grader's
    user; the kernel (another user, in the sandbox) gets its own copy in its
    working folder before bwrap starts.
    """
    inside = workdir / ".kernel" / "connection.json"
    command = kernel_command(workdir, inside, course_package, data_dir, uid)
    give = f"cp {{connection_file}} {shlex.quote(str(inside))}"
    if uid is not None:
        give += f" && chown {uid}:{uid} {shlex.quote(str(inside))}"
    return ["/bin/sh", "-c", f"{give} && exec {shlex.join(command)}"]


def prepare(workdir: Path, uid: int | None) -> Path:
    """The kernel's socket folder; everything in ``workdir`` owned by ``uid``."""
    sockets = workdir / ".kernel"
    sockets.mkdir(exist_ok=True)
    if uid is not None:
        for path in [workdir, *workdir.rglob("*")]:
            os.chown(path, uid, uid)
    return sockets / "ipc"


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


def set_limits(memory_mb: int, uid: int | None, file_mb: int = 512) -> None:
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
