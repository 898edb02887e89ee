"""Measure the fifth held-out set, part a (/work/heldout/unseen5a: lessons 00-03) against any checkout.

    nice -n 10 /work/main/.venv/bin/python /work/heldout/unseen5a/run.py --repo /work/main --name after
    ... run.py --repo /work/wt-unseen2 --name before             # results-before.json / .md
    ... run.py --repo /work/main --lesson 03 --only fold          # print only
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
- round2's reference gets round3's additions (reference3.install, imported from
  tests/unseen/round3/reference3.py) round4's (reference4.install, imported from round4/part_a) and this set's (reference5.install): a few
  properties of lessons 00-03 that round2's verifiers do not look at.

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

    sys.path.insert(0, str(HERE.parents[1] / "round3"))  # round 3's, imported
    import reference3

    sys.path[0] = str(HERE.parents[1] / "round4" / "part_a")  # round 4's, imported
    import reference4

    sys.path[0] = str(HERE)
    import reference5

    reference3.install(measure.reference)
    reference4.install(measure.reference)
    reference5.install(measure.reference)
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
                            f"`/work/heldout/unseen5a/run.py` (round2's measure.py from `{tooling}`)")

    measure.markdown = markdown
    measure.unseen.LESSONS = ("00", "01", "02", "03")  # this part of the fifth set
    if "--reference-only" in argv:  # the reference's verdict only: no check runs
        return reference_only(measure, [a for a in argv if a != "--reference-only"])
    print(f"tooling: {tooling}; entries: {HERE}", file=sys.stderr)
    return measure.main(argv)


def reference_only(measure, argv) -> int:
    """Every entry through the independent reference only (nothing of the checks
    runs, nothing is printed by them): whether each wrong entry differs from the
    reference and each correct one agrees, before the measurement proper."""
    only = None
    if "--only" in argv:
        only = argv[argv.index("--only") + 1]
    lessons = [argv[i + 1] for i, a in enumerate(argv) if a == "--lesson"] or list(measure.unseen.LESSONS)
    bad = 0
    for number in lessons:
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
