"""Produce the reference results shipped in ``data/reference/``.

    python tools/make_reference.py solutions/04_batch_renorm.ipynb [--timeout 1800]
        [--only 04_renorm ...]

Runs the notebook top to bottom in **full** mode, with a scratch cache, and
copies every experiment result it cached or saved (``helpers.runs``) into
``data/reference/<name>.json`` (only the names given with ``--only``, if
any).  Each file keeps the provenance recorded when it was made: mode,
device, library versions and date.  Then it refreshes
``data/SHA256SUMS``.  Run it on the machine whose figures the lesson should
quote (a GPU for lesson 05), and commit the files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from helpers import runs  # noqa: E402
from tools import make_data  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--only", nargs="*", help="experiment names to ship")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bncourse-reference-"))
    os.environ.update(BNCOURSE_FAST="0", BNCOURSE_CACHE=str(scratch))
    os.environ.pop("MPLBACKEND", None)
    nb = nbformat.read(args.notebook, as_version=4)
    start = time.monotonic()
    NotebookClient(
        nb,
        timeout=args.timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(args.notebook.parent.resolve())}},
    ).execute()
    print(f"ran {args.notebook} in full mode in {time.monotonic() - start:.0f} s")
    target = ROOT / "data" / "reference"
    made = runs.records(mode="full")  # the scratch cache, set above
    if not made:
        print("no cached results were produced", file=sys.stderr)
        return 1
    for stored in made:
        if args.only and stored["name"] not in args.only:
            continue
        out = target / f"{stored['name']}.json"
        runs.write_json(out, stored)
        print(f"wrote {out.relative_to(ROOT)} ({stored['provenance']})")
    shutil.rmtree(scratch, ignore_errors=True)
    make_data.write_sums()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
