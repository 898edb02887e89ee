"""Data for the course: 5,000 MNIST digits and CIFAR-10.

CIFAR-10 comes from the first of these that works, and a banner says which:

1. the path in ``BNCOURSE_CIFAR10`` (the official ``cifar-10-batches-bin``
   folder, the official ``cifar-10-binary.tar.gz`` archive, or the JPEG
   ``.npz`` format of ``data/README.md``): an explicit setting wins;
2. the official binary release already in the cache
   (``~/.cache/bncourse/cifar-10-batches-bin``), or the official archive in the
   cache, verified and unpacked;
3. the official archive downloaded into the cache (full mode only, and only
   when ``BNCOURSE_DOWNLOAD`` is not 0), its size and MD5 verified before it
   is used; a partial or corrupt file is detected, deleted and never trusted;
4. the small subset shipped in ``data/`` (5,000 train and 1,000 test images).

Nothing here unpickles anything: the official *binary* release is read as raw
bytes, and the ``.npz`` files are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import config

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # published on the dataset page
CIFAR10_SIZE = 170_052_171  # bytes
CIFAR10_DIR = "cifar-10-batches-bin"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch.bin"
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
RECORD = 1 + 32 * 32 * 3  # one label byte, then the red, green and blue planes

SUBSET_FILE = "cifar10_subset.npz"
MNIST_FILE = "mnist_5k.npz"


class DataError(RuntimeError):
    """A data file is missing or corrupt; the message says what to do."""


# --------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------


@dataclass
class MNIST:
    images: np.ndarray  # uint8 (N, 28, 28)
    labels: np.ndarray  # int64 (N,)

    def split(self, n_test: int = 1000, seed: int = 0):
        """A stratified train/test split: ``(x_train, y_train, x_test, y_test)``.

        Images come back as float32 in [0, 1], flattened to (N, 784).
        """
        rng = np.random.default_rng(seed)
        classes = np.unique(self.labels)
        per_class = n_test // len(classes)
        test_idx = np.concatenate(
            [
                rng.permutation(np.flatnonzero(self.labels == c))[:per_class]
                for c in classes
            ]
        )
        mask = np.ones(len(self.labels), dtype=bool)
        mask[test_idx] = False
        train_idx = rng.permutation(np.flatnonzero(mask))
        test_idx = rng.permutation(test_idx)
        flat = self.images.reshape(len(self.images), -1).astype(np.float32) / 255.0
        return (
            flat[train_idx],
            self.labels[train_idx],
            flat[test_idx],
            self.labels[test_idx],
        )


def load_mnist() -> MNIST:
    """The 5,000 MNIST digits shipped in ``data/`` (500 per class)."""
    path = config.data_dir() / MNIST_FILE
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels = f["images"], f["labels"].astype(np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(
            f"{path} is missing or corrupt ({exc}). Restore it with "
            "`git checkout -- data/` (or re-clone the course repository)."
        ) from None
    if images.shape != (5000, 28, 28) or labels.shape != (5000,):
        raise DataError(
            f"{path} holds arrays of shapes {images.shape} and {labels.shape}, "
            "expected (5000, 28, 28) and (5000,): restore it with "
            "`git checkout -- data/`."
        )
    return MNIST(images, labels)


# --------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------


@dataclass
class CIFAR10:
    x_train: np.ndarray  # uint8 (N, 32, 32, 3)
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    source: str  # what was loaded, for the banner

    def __repr__(self) -> str:
        return (
            f"CIFAR10({len(self.x_train):,} train, {len(self.x_test):,} test; "
            f"{self.source})"
        )


def read_cifar10_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one file of the official binary release: (images NHWC, labels)."""
    raw = np.fromfile(path, dtype=np.uint8)
    return _parse_records(raw, str(path))


def _parse_records(raw: np.ndarray, where: str):
    if raw.size == 0 or raw.size % RECORD:
        raise DataError(
            f"{where}: {raw.size} bytes is not a whole number of CIFAR-10 "
            f"records ({RECORD} bytes each): the file is truncated or not "
            "CIFAR-10's binary format"
        )
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= 10:
        raise DataError(f"{where}: label {labels.max()} is not a CIFAR-10 class")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _load_binary_dir(folder: Path) -> CIFAR10:
    if (folder / CIFAR10_DIR).is_dir():
        folder = folder / CIFAR10_DIR
    missing = [
        name
        for name in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
        if not (folder / name).is_file()
    ]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}")
    parts = [read_cifar10_bin(folder / name) for name in CIFAR10_TRAIN_FILES]
    x_test, y_test = read_cifar10_bin(folder / CIFAR10_TEST_FILE)
    return CIFAR10(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        x_test,
        y_test,
        CIFAR10_CLASSES,
        f"official binary release in {folder}",
    )


def _file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_archive(
    path: Path, md5: str = CIFAR10_MD5, size: int | None = CIFAR10_SIZE
) -> None:
    """Raise DataError unless ``path`` has the expected size (if given) and MD5."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise DataError(
            f"{path} is {actual:,} bytes, expected {size:,}: a partial or "
            "corrupt download"
        )
    found = _file_md5(path)
    if found != md5:
        raise DataError(f"{path} has MD5 {found}, expected {md5}: corrupt")


def unpack_archive(archive: Path, target: Path) -> Path:
    """Unpack the six data files of the official archive into ``target``.

    Only the expected members are read (by name, as bytes), so a crafted
    archive cannot write outside ``target``.  The folder appears atomically:
    files go to a temporary folder that is renamed when complete.
    """
    names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".cifar10-", dir=target.parent))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for name in names:
                if name not in members:
                    raise DataError(f"{archive} has no member {name}")
                data = tar.extractfile(members[name]).read()
                _parse_records(np.frombuffer(data, np.uint8), f"{archive}:{name}")
                (tmp / name).write_bytes(data)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive} could not be unpacked: {exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def download(url: str, dest: Path, md5: str, size: int | None, timeout=30) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying size and MD5.

    The bytes go to ``dest.part``; only a verified file is renamed to
    ``dest``.  Works with ``file://`` URLs, which is how the tests exercise it.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            with open(part, "wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
        verify_archive(part, md5=md5, size=size)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def load_jpeg_npz(path: Path, cache: bool = True) -> CIFAR10:
    """Read the JPEG-encoded ``.npz`` format (see ``data/README.md``).

    Decoding 60,000 JPEGs takes about 20 s on one core, so the decoded arrays
    of large files are cached (keyed by the file's size and modification
    time) and later loads take a fraction of a second.
    """
    path = Path(path)
    stat = path.stat()
    key = f"{path.stem}-{stat.st_size}-{int(stat.st_mtime)}.npz"
    cached = config.cache_dir() / "decoded" / key
    big = stat.st_size > 20_000_000
    if cache and big and cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as f:
                return CIFAR10(
                    f["x_train"],
                    f["y_train"],
                    f["x_test"],
                    f["y_test"],
                    tuple(str(c) for c in f["classes"]),
                    f"JPEG-encoded CIFAR-10 from {path} (decoded cache)",
                )
        except (OSError, KeyError, ValueError):
            cached.unlink(missing_ok=True)  # corrupt cache: decode again
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from None
    needed = {"classes", "train_jpeg", "train_offsets", "train_labels"}
    needed |= {"test_jpeg", "test_offsets", "test_labels"}
    if not needed <= set(arrays):
        raise DataError(
            f"{path} lacks {sorted(needed - set(arrays))}: not the JPEG format "
            "described in data/README.md"
        )
    splits = {}
    for split in ("train", "test"):
        images = decode_jpegs(arrays[f"{split}_jpeg"], arrays[f"{split}_offsets"])
        splits[split] = (images, arrays[f"{split}_labels"].astype(np.int64))
    result = CIFAR10(
        *splits["train"],
        *splits["test"],
        tuple(str(c) for c in arrays["classes"]),
        f"JPEG-encoded CIFAR-10 from {path}",
    )
    if cache and big:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + ".part.npz")
        np.savez(
            tmp,
            x_train=result.x_train,
            y_train=result.y_train,
            x_test=result.x_test,
            y_test=result.y_test,
            classes=np.array(result.classes),
        )
        os.replace(tmp, cached)
    return result


def decode_jpegs(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Decode concatenated JPEG files into a uint8 array (N, 32, 32, 3)."""
    from PIL import Image

    n = len(offsets) - 1
    out = np.empty((n, 32, 32, 3), dtype=np.uint8)
    data = blob.tobytes()
    for i in range(n):
        with Image.open(io.BytesIO(data[offsets[i] : offsets[i + 1]])) as image:
            out[i] = np.asarray(image.convert("RGB"))
    return out


def _load_configured(path: Path) -> CIFAR10:
    if not path.exists():
        raise DataError(f"BNCOURSE_CIFAR10={path} does not exist")
    if path.is_dir():
        return _load_binary_dir(path)
    if path.suffix == ".npz":
        return load_jpeg_npz(path)
    if path.name.endswith((".tar.gz", ".tgz")):
        verify_archive(path)
        folder = unpack_archive(path, config.cache_dir() / CIFAR10_DIR)
        return _load_binary_dir(folder)
    raise DataError(
        f"BNCOURSE_CIFAR10={path} is neither a cifar-10-batches-bin folder, "
        "the official .tar.gz archive, nor a JPEG .npz file"
    )


def _load_official_cached(url: str, md5: str, size: int | None) -> CIFAR10 | None:
    """The official release from the cache, downloading it if allowed."""
    cache = config.cache_dir()
    folder = cache / CIFAR10_DIR
    if folder.is_dir():
        try:
            return _load_binary_dir(folder)
        except DataError as exc:
            print(f"[data] cached {folder} is incomplete ({exc}); replacing it")
            shutil.rmtree(folder, ignore_errors=True)
    archive = cache / "cifar-10-binary.tar.gz"
    if archive.is_file():
        try:
            verify_archive(archive, md5=md5, size=size)
        except DataError as exc:
            print(f"[data] {exc}; deleting it")
            archive.unlink()
    if not archive.is_file():
        if not config.download_allowed():
            return None
        print(f"[data] downloading CIFAR-10 (about 163 MB) from {url} ...")
        download(url, archive, md5=md5, size=size)
    unpack_archive(archive, folder)
    return _load_binary_dir(folder)


def load_subset() -> CIFAR10:
    """The CIFAR-10 subset shipped in ``data/`` (5,000 train, 1,000 test)."""
    path = config.data_dir() / SUBSET_FILE
    try:
        data = load_jpeg_npz(path, cache=False)
    except (DataError, OSError) as exc:
        raise DataError(
            f"the shipped subset {path} is missing or corrupt ({exc}): restore "
            "it with `git checkout -- data/` or re-clone the repository"
        ) from None
    data.source = f"the small subset shipped in data/{SUBSET_FILE}"
    return data


def load_cifar10(
    verbose: bool = True,
    url: str = CIFAR10_URL,
    md5: str = CIFAR10_MD5,
    size: int | None = CIFAR10_SIZE,
) -> CIFAR10:
    """CIFAR-10 from the best source available (see the module docstring).

    A missing, partial or corrupt file never ends in a traceback: the banner
    says what went wrong and which source is used instead.
    """
    notes = []
    data = None
    configured = config.cifar10_path()
    if configured is not None:
        try:
            data = _load_configured(configured)
        except DataError as exc:
            notes.append(f"could not use the configured path: {exc}")
    if data is None:
        try:
            data = _load_official_cached(url, md5, size)
        except (DataError, OSError) as exc:  # network errors are OSErrors
            notes.append(f"the official archive is not available: {exc}")
    if data is None:
        data = load_subset()
        if not config.download_allowed():
            notes.append(
                "downloading is off in fast mode (set BNCOURSE_CIFAR10 to a "
                "local copy, or run in full mode to download the full data)"
            )
    if verbose:
        banner(data, notes)
    return data


def banner(data: CIFAR10, notes=()) -> None:
    """Print which CIFAR-10 source is in use, and why, in a box."""
    import textwrap

    lines = [
        f"CIFAR-10 source: {data.source}",
        f"{len(data.x_train):,} train and {len(data.x_test):,} test images",
    ]
    for note in notes:
        lines += textwrap.wrap(note, 84)
    width = max(len(line) for line in lines)
    print("+" + "-" * (width + 2) + "+")
    for line in lines:
        print(f"| {line[:width].ljust(width)} |")
    print("+" + "-" * (width + 2) + "+")
