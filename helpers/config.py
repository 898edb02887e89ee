"""The one place that reads the environment.

Notebooks never read ``os.environ``; they ask this module.  Every setting is
read when asked for (not cached at import), so a test or the grader can set a
variable and the next call sees it.

Variables
---------
BNCOURSE_FAST     "1" for fast mode (CI, ``make test``, quick local runs):
                  small data, few epochs, same code path.
BNCOURSE_DEVICE   "cpu", "cuda" or "auto" (default): where torch code runs.
BNCOURSE_CIFAR10  a path to CIFAR-10: the official ``cifar-10-batches-bin``
                  folder, the official ``cifar-10-binary.tar.gz`` archive, or
                  the JPEG ``.npz`` format described in ``data/README.md``.
BNCOURSE_DOWNLOAD "0" forbids downloading CIFAR-10, "1" allows it (default: in full
                  mode yes, in fast mode no).
BNCOURSE_CACHE    where downloads and results go (default ~/.cache/bncourse).
BNCOURSE_DATA     the course's ``data/`` folder to use instead of the one found
                  (a checkout's ``data/``, or the copy an installed package
                  ships as ``helpers/_data``).
BNCOURSE_GRADING  "1" while ``tools/grade.py`` runs a submission: checks
                  raise on a failure instead of only printing it.
BNCOURSE_QUIZ_DIR where the quiz saves its answers file (default: the
                  notebook's own folder, the kernel's working directory).
BNCOURSE_CPU_BF16 "1" trains on the CPU with bfloat16 autocast (lesson 05):
                  much faster on CPUs with AMX or AVX-512-BF16, slower on
                  others, so off by default.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in _TRUE


def _fast_mode() -> bool:
    return _flag("BNCOURSE_FAST")


def fast() -> bool:
    """True in fast mode (``BNCOURSE_FAST=1``)."""
    return _fast_mode()


def grading() -> bool:
    """True while the grader executes a submission."""
    return _flag("BNCOURSE_GRADING")


def mode() -> str:
    return "fast" if fast() else "full"


def budget(full, fast):
    """Pick the full-mode or fast-mode value of a budget (epochs, steps, sizes)."""
    return fast if _fast_mode() else full


def epochs(full: int, fast: int) -> int:
    """Number of epochs for the current mode, e.g. ``epochs(full=20, fast=2)``."""
    return int(budget(full, fast))


def steps(full: int, fast: int) -> int:
    """Number of training steps for the current mode."""
    return int(budget(full, fast))


def device() -> str:
    """ "cuda" when asked for or available (BNCOURSE_DEVICE=auto), else "cpu"."""
    wanted = os.environ.get("BNCOURSE_DEVICE", "auto").strip().lower() or "auto"
    if wanted not in {"auto", "cpu", "cuda"}:
        raise ValueError(
            f"BNCOURSE_DEVICE={wanted!r} is not understood: use cpu, cuda or auto"
        )
    if wanted == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if wanted == "cuda":
        raise RuntimeError(
            "BNCOURSE_DEVICE=cuda but torch sees no GPU: on Colab choose "
            "Runtime > Change runtime type > T4 GPU, or unset BNCOURSE_DEVICE"
        )
    return "cpu"


def cifar10_path() -> Path | None:
    """The configured CIFAR-10 location (``BNCOURSE_CIFAR10``), if any."""
    value = os.environ.get("BNCOURSE_CIFAR10", "").strip()
    return Path(value).expanduser() if value else None


def download_allowed() -> bool:
    """Downloading CIFAR-10 is allowed in full mode unless BNCOURSE_DOWNLOAD=0."""
    return _flag("BNCOURSE_DOWNLOAD", default=not _fast_mode())


def cache_dir() -> Path:
    value = os.environ.get("BNCOURSE_CACHE", "").strip()
    base = Path(value).expanduser() if value else Path.home() / ".cache" / "bncourse"
    return base


def _data_candidates() -> list[Path]:
    here = Path(__file__).resolve().parent
    candidates = []
    value = os.environ.get("BNCOURSE_DATA", "").strip()
    if value:
        candidates.append(Path(value).expanduser())
    candidates += [
        here.parent / "data",  # a checkout, or an editable install
        here / "_data",  # an installed package (wheel, git, Colab): shipped inside
        Path.cwd() / "data",  # the repository root
        Path.cwd().parent / "data",  # notebooks/ or solutions/
    ]
    unique = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def data_dir() -> Path:
    """The course's ``data/`` folder (shipped files: MNIST, CIFAR-10 subset, quiz)."""
    candidates = _data_candidates()
    for path in candidates:
        if (path / "README.md").is_file() and (path / "mnist_5k.npz").is_file():
            return path
    tried = "\n  ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        "The course's data/ folder was not found. Tried:\n  "
        + tried
        + "\nReinstall the course package (`make lab` in a clone, or `pip install "
        "<the course's git URL>`: the package ships its data as helpers/_data), "
        "or set BNCOURSE_DATA to a copy of the repository's data/ folder."
    )


CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of bf16 units


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bfloat16 units (AMX or AVX-512-BF16), from its flags.

    Read from ``/proc/cpuinfo`` (Linux, Colab); elsewhere (macOS, Windows)
    False, so those machines keep fp32 unless ``BNCOURSE_CPU_BF16=1``.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def cpu_bf16() -> bool:
    """bfloat16 autocast for CPU training: on where the CPU has bf16 units
    (1.1-1.6x faster there; slower on CPUs without them), off elsewhere.
    ``BNCOURSE_CPU_BF16=0`` turns it off, ``=1`` forces it on."""
    return _flag("BNCOURSE_CPU_BF16", default=cpu_has_bf16())


def quiz_dir() -> Path:
    """The folder of the quiz's answers file (``BNCOURSE_QUIZ_DIR`` or the cwd)."""
    value = os.environ.get("BNCOURSE_QUIZ_DIR", "").strip()
    return Path(value).expanduser() if value else Path.cwd()


def describe() -> str:
    """One line: mode and where the settings came from."""
    parts = [f"mode {mode()}" + (" (BNCOURSE_FAST=1)" if fast() else "")]
    if cifar10_path():
        parts.append(f"CIFAR-10 from {cifar10_path()}")
    if grading():
        parts.append("grading")
    return " | ".join(parts)
