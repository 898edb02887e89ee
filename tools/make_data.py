"""Make the small data files shipped in ``data/`` from ``../shared/data/``.

    python tools/make_data.py [--shared ../shared/data]

Writes (deterministically, so re-running gives identical bytes):

* ``data/mnist_5k.npz``: the 5,000 MNIST digits of ``mnist_5k.csv.gz`` as
  uint8 images (5000, 28, 28) and labels (5000,);
* ``data/cifar10_subset.npz``: 500 train and 100 test images per class drawn
  (seed 0) from ``cifar10_jpeg.npz``, kept JPEG-encoded in the same format,
  so one reader serves both;
* ``data/SHA256SUMS``: the checksum of every shipped data file.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from helpers import contract  # noqa: E402

DATA = ROOT / "data"
SHARED_SHA256 = {  # from ../shared/data/README.md
    "cifar10_jpeg.npz": "6d9683bc0c730aabcfe2af1a329b29d70bf3fcf6f4ff2d2dc7e48fcaf71e5aca",  # noqa: E501
    "mnist_5k.csv.gz": "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",  # noqa: E501
}
TRAIN_PER_CLASS, TEST_PER_CLASS = 500, 100


sha256 = contract.sha256


def save_npz(path: Path, **arrays) -> None:
    """np.savez_compressed with fixed timestamps, so the bytes are reproducible."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            archive.writestr(info, member.getvalue())
    path.write_bytes(buffer.getvalue())


def make_mnist(shared: Path) -> None:
    with gzip.open(shared / "mnist_5k.csv.gz", "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 784].astype(np.uint8)
    save_npz(DATA / "mnist_5k.npz", images=images, labels=labels)


def _select(jpeg, offsets, labels, index, per_class, rng):
    chosen = np.sort(
        np.concatenate(
            [
                rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                for c in range(10)
            ]
        )
    )
    chosen = chosen[rng.permutation(len(chosen))]
    pieces = [jpeg[offsets[i] : offsets[i + 1]] for i in chosen]
    new_offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])])
    return (
        np.concatenate(pieces),
        new_offsets.astype(np.int64),
        labels[chosen],
        index[chosen],
    )


def make_cifar_subset(shared: Path) -> None:
    rng = np.random.default_rng(0)
    with np.load(shared / "cifar10_jpeg.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    out = {"classes": arrays["classes"]}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        jpeg, offsets, labels, index = _select(
            arrays[f"{split}_jpeg"],
            arrays[f"{split}_offsets"],
            arrays[f"{split}_labels"],
            arrays[f"{split}_index"],
            per_class,
            rng,
        )
        out[f"{split}_jpeg"], out[f"{split}_offsets"] = jpeg, offsets
        out[f"{split}_labels"], out[f"{split}_index"] = labels, index
    save_npz(DATA / "cifar10_subset.npz", **out)


def write_sums() -> None:
    names = sorted(
        p.relative_to(DATA).as_posix()
        for p in DATA.rglob("*")
        if p.suffix in {".npz", ".json"}
    )
    lines = [f"{sha256(DATA / name)}  {name}" for name in names]
    (DATA / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--sums-only", action="store_true", help="only rewrite data/SHA256SUMS"
    )
    args = parser.parse_args(argv)
    if not args.sums_only:
        for name, expected in SHARED_SHA256.items():
            found = sha256(args.shared / name)
            if found != expected:
                parser.error(f"{args.shared / name} has sha256 {found}, not {expected}")
        DATA.mkdir(exist_ok=True)
        make_mnist(args.shared)
        make_cifar_subset(args.shared)
    write_sums()
    print((DATA / "SHA256SUMS").read_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
