"""Writing what a learner controls: CSV cells, output file names, HTML text.

Every string that comes from a submission (its file and folder names, the
learner id taken from them, what its code printed or raised, the notes about
it) is the learner's.  Three rules keep it from acting on the instructor's
side:

* ``cell``: a CSV cell that a spreadsheet would run as a formula (OWASP: one
  that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets
  a leading ``'``; so does one that starts with ``'`` already, so that
  ``uncell`` gives every value back exactly (``grade.py merge`` reads the CSVs
  it wrote).  ``write_table`` and ``read_table`` are the only CSV writer and
  reader of the grader's outputs.
* ``output_name``: a file name per submission that no submission can steer
  onto another's: a readable part (letters, digits, ``_`` and ``-`` only) and
  a hash of the submission's path as the grader was given it, which differs
  for any two submissions of a class (shards included: each is given the same
  list of paths).
* ``esc``: HTML-escaped text, quotes included; learner text never goes
  through markdown (whose links and raw HTML pass escaping by).
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import re
from pathlib import Path, PurePath

from helpers import contract

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    """A CSV cell no spreadsheet runs: formula-like text gets a leading ``'``."""
    text = "" if value is None else str(value)
    if text[:1] in FORMULA_LEADS or text[:1] == "'":
        return "'" + text
    return text


def uncell(text: str) -> str:
    """The value ``cell`` was given."""
    return text[1:] if text[:1] == "'" else text


def csv_text(header, records) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([cell(v) for v in header])
    for record in records:
        writer.writerow([cell(v) for v in record])
    return buffer.getvalue()


def write_table(path: Path, header, records) -> Path:
    """A CSV of neutralised cells, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contract.write_atomic(path, csv_text(header, records))
    return path


def read_table(path: Path) -> list[dict]:
    """The records of a CSV that ``write_table`` wrote, values as given."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = [uncell(h) for h in next(reader)]
        except StopIteration:
            return []
        return [
            dict(zip(header, (uncell(v) for v in record), strict=False))
            for record in reader
        ]


def output_name(file: str) -> str:
    """``<folder>--<stem>-<hash>``: readable, and unique per submission path."""
    path = PurePath(str(file))
    stem = path.name[:-6] if path.name.endswith(".ipynb") else path.name
    readable = f"{path.parent.name}--{stem}" if path.parent.name else stem
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", readable)[:80].strip("_-") or "file"
    raw = str(file).encode("utf-8", "surrogateescape")
    return f"{readable}-{hashlib.sha256(raw).hexdigest()[:16]}"


def esc(text) -> str:
    """HTML text (quotes escaped too, for attribute values)."""
    return html.escape("" if text is None else str(text), quote=True)
