"""Measure the twenty-fifth held-out set, part a (/work/heldout/unseen25a) against any checkout.

    nice -n 10 /work/main/.venv/bin/python /work/heldout/unseen25a/run.py --repo /work/wt-r24before --name before
    ... run.py --repo /work/main --name final                    # results-NAME.json / .md
    ... run.py --repo /work/main --lesson 02 --only spatial         # print only
    ... run.py --summary results-before.json --labels labels-before.json   # shares of the read labels
    ... run.py --review results-after.json --labels labels-before.json     # messages beside causes

A thin runner: everything is round2's tooling, IMPORTED from a checkout
(tests/unseen/round2/measure.py, _format.py, reference.py; by default those of
--repo, else of --tooling, else of /work/wt-unseen2 or /work/main), with three
changes made here at run time, not in a copy:

- the entries are this folder's lessonNN.py (this folder goes first on sys.path,
  so round2's own lessonNN.py are not loaded; the entries import round2's
  ``_format`` by name);
- results are written into this folder (measure.HERE points here);
- only lessons 00, 01 and 02 are run and summed (part a: ``unseen.LESSONS`` is
  narrowed, so round2's own lessons 03-08 are not picked up);
- round2's reference gets round 3's additions (reference3.install, imported from
  --repo's tests/unseen/round3, not copied) and rounds 14's, 15's and 16's additions
  plus rounds 18's to 23's (reference25.install: round 22 part a's
  reference22.py, copied unchanged, with round 23 part a's additions at its end; round 24's reference24.py, copied unchanged as reference25.py).

Copied from round 24 part a's run.py; only the names (24 -> 25) changed.

Nothing is copied from round2, so a fix there reaches this set too.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _arg(name, default=None):
    argv = sys.argv
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def _tooling() -> Path:
    given = _arg("--tooling")
    candidates = [Path(given)] if given else []
    repo = _arg("--repo", "/work/main")
    candidates += [Path(repo) / "tests/unseen/round2", Path("/work/wt-unseen2/tests/unseen/round2"),
                   Path("/work/main/tests/unseen/round2")]
    for c in candidates:
        if (c / "measure.py").exists() and (c / "_format.py").exists() and (c / "reference.py").exists():
            return c.resolve()
    raise SystemExit("no round2 tooling found (tests/unseen/round2): give --tooling PATH")


def main() -> int:
    tooling = _tooling()
    # --tooling is ours: round2's parser does not know it
    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a == "--tooling":
            skip = True
            continue
        if a.startswith("--tooling="):
            continue
        argv.append(a)
    sys.argv = [sys.argv[0], *argv]
    sys.path.insert(0, str(tooling))
    import measure  # round2's: sets ROOT from --repo, chdir, sys.path (repo first)

    measure.unseen.LESSONS = ("00", "01", "02")  # part a: this folder has no other lessons

    sys.path.insert(1, str(tooling.parent / "round3"))
    import reference3

    reference3.install(measure.reference)
    sys.path.insert(0, str(HERE))
    import reference25

    reference25.install(measure.reference)
    measure.HERE = HERE
    if str(HERE) in sys.path:
        sys.path.remove(str(HERE))
    sys.path.insert(0, str(HERE))  # this set's lessonNN.py before round2's
    for name in [m for m in sys.modules if m.startswith("lesson") and m[6:].isdigit()]:
        del sys.modules[name]
    original = measure.markdown

    def markdown(rows, seconds):
        text = original(rows, seconds)
        return text.replace("`/work/heldout/unseen2/measure.py`",
                            f"`/work/heldout/unseen25a/run.py` (round2's measure.py from `{tooling}`)")

    measure.markdown = markdown
    print(f"tooling: {tooling}; entries: {HERE}", file=sys.stderr)
    return measure.main(argv)


if __name__ == "__main__":
    sys.exit(main())
