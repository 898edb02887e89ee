"""Measure the sixth held-out set, part a (/work/heldout/unseen6a: lessons 00, 01, 02) against any checkout.

    nice -n 10 /work/wt-r6base/.venv/bin/python /work/heldout/unseen6a/run.py --repo /work/wt-r6base --name before
    ... run.py --repo /work/wt-r6base --reference-only             # the reference's verdict only, no check runs
    ... run.py --repo /work/main --lesson 02 --only spatial        # print only
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
- round2's reference gets round3's additions (reference3.install, IMPORTED from
  tests/unseen/round3/ of --repo, else of /work/main) and this set's own
  (reference6.install, this folder);
- only lessons 00, 01, 02 are measured (this part of the sixth set).

Nothing is copied from round2 or round3, so a fix there reaches this set too.
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

    repo = Path(_arg("--repo", "/work/main"))
    for r3 in (repo / "tests/unseen/round3", Path("/work/main/tests/unseen/round3")):
        if (r3 / "reference3.py").exists():
            sys.path.insert(0, str(r3))
            break
    import reference3

    sys.path.insert(0, str(HERE))
    import reference6

    reference3.install(measure.reference)
    reference6.install(measure.reference)
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
                            f"`/work/heldout/unseen6a/run.py` (round2's measure.py from `{tooling}`)")

    measure.markdown = markdown
    measure.unseen.LESSONS = ("00", "01", "02")  # this part of the sixth set
    if "--reference-only" in argv:  # the reference's verdict only: no check runs
        return reference_only(measure, [a for a in argv if a != "--reference-only"])
    print(f"tooling: {tooling}; entries: {HERE}", file=sys.stderr)
    return measure.main(argv)


def reference_only(measure, argv) -> int:
    """Every entry through the independent reference only (nothing of the checks runs)."""
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    bad = 0
    for number in measure.unseen.LESSONS:
        lesson = measure.lesson_of(number)
        for item in measure.unseen.load(number).ENTRIES:
            rid = f"{number}:{item.id}"
            if only and only not in rid:
                continue
            problems = measure._reference(lesson, item, item.substitutions())
            fine = (not problems) if item.correct else bool(problems)
            bad += not fine
            print(f"{'ok ' if fine else '!! '}{rid} ({'correct' if item.correct else 'wrong'}): "
                  f"{len(problems)} problem(s)", flush=True)
            for line in problems[:3]:
                print(f"      {line[:200]}")
    print(f"{bad} entries not as intended by the reference alone (hidden tests not run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
