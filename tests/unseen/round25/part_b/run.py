"""Measure the twenty-fifth held-out set, part b (/work/heldout/unseen25b: lessons 03 and 04)
against any checkout.

    nice -n 10 /work/wt-r24before/.venv/bin/python /work/heldout/unseen25b/run.py --repo /work/wt-r24before --name before
    nice -n 10 /work/main/.venv/bin/python /work/heldout/unseen25b/run.py --repo /work/main --name after
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
- round2's reference gets round 3's additions (reference3.install, imported from
  /work/main/tests/unseen/round3/, not copied), round 14 part b's (reference14.install,
  imported from /work/main/tests/unseen/round14/part_b/, not copied), round 15 part b's
  (reference15.install, imported from /work/main/tests/unseen/round15/part_b/, not copied), round 16
  part b's (reference16.install, imported from /work/main/tests/unseen/round16/part_b/, not copied), round 17
  part b's (reference17.install, imported from /work/heldout/unseen17b/ or, once moved,
  /work/main/tests/unseen/round17/part_b/, not copied), round 18 part b's (reference18.install, likewise
  from /work/main/tests/unseen/round18/part_b/ or /work/heldout/unseen18b/), round 19 part b's (reference19.install, likewise),
  round 20 part b's (reference20.install, likewise), round 21 part b's (reference21.install, likewise),
  round 22 part b's (reference22.install, likewise), round 23 part b's (reference23.install, likewise),
  round 24 part b's (reference24.install, likewise) and then this set's own (reference25.install: properties this set's entries break that none of them
  checks).

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

    sys.path.insert(0, "/work/main/tests/unseen/round3")
    import reference3  # round 3's additions, imported, not copied

    sys.path.remove("/work/main/tests/unseen/round3")
    sys.path.insert(0, "/work/main/tests/unseen/round14/part_b")
    import reference14  # round 14 part b's additions, imported, not copied

    sys.path.remove("/work/main/tests/unseen/round14/part_b")
    sys.path.insert(0, "/work/main/tests/unseen/round15/part_b")
    import reference15  # round 15 part b's additions, imported, not copied

    sys.path.remove("/work/main/tests/unseen/round15/part_b")
    sys.path.insert(0, "/work/main/tests/unseen/round16/part_b")
    import reference16  # round 16 part b's additions, imported, not copied

    sys.path.remove("/work/main/tests/unseen/round16/part_b")
    r17 = next((d for d in ("/work/main/tests/unseen/round17/part_b", "/work/heldout/unseen17b")
                if Path(d, "reference17.py").exists()), None)
    if r17 is None:
        raise SystemExit("round 17 part b's reference17.py not found")
    sys.path.insert(0, r17)
    import reference17  # round 17 part b's additions, imported, not copied

    sys.path.remove(r17)
    r18 = next((d for d in ("/work/main/tests/unseen/round18/part_b", "/work/heldout/unseen18b")
                if Path(d, "reference18.py").exists()), None)
    if r18 is None:
        raise SystemExit("round 18 part b's reference18.py not found")
    sys.path.insert(0, r18)
    import reference18  # round 18 part b's additions, imported, not copied

    sys.path.remove(r18)
    r19 = next((d for d in ("/work/main/tests/unseen/round19/part_b", "/work/heldout/unseen19b")
                if Path(d, "reference19.py").exists()), None)
    if r19 is None:
        raise SystemExit("round 19 part b's reference19.py not found")
    sys.path.insert(0, r19)
    import reference19  # round 19 part b's additions, imported, not copied

    sys.path.remove(r19)
    r20 = next((d for d in ("/work/main/tests/unseen/round20/part_b", "/work/heldout/unseen20b")
                if Path(d, "reference20.py").exists()), None)
    if r20 is None:
        raise SystemExit("round 20 part b's reference20.py not found")
    sys.path.insert(0, r20)
    import reference20  # round 20 part b's additions, imported, not copied

    sys.path.remove(r20)
    r21 = next((d for d in ("/work/main/tests/unseen/round21/part_b", "/work/heldout/unseen21b")
                if Path(d, "reference21.py").exists()), None)
    if r21 is None:
        raise SystemExit("round 21 part b's reference21.py not found")
    sys.path.insert(0, r21)
    import reference21  # round 21 part b's additions, imported, not copied

    sys.path.remove(r21)
    r22 = next((d for d in ("/work/main/tests/unseen/round22/part_b", "/work/heldout/unseen22b")
                if Path(d, "reference22.py").exists()), None)
    if r22 is None:
        raise SystemExit("round 22 part b's reference22.py not found")
    sys.path.insert(0, r22)
    import reference22  # round 22 part b's additions, imported, not copied

    sys.path.remove(r22)
    r23 = next((d for d in ("/work/main/tests/unseen/round23/part_b", "/work/heldout/unseen23b")
                if Path(d, "reference23.py").exists()), None)
    if r23 is None:
        raise SystemExit("round 23 part b's reference23.py not found")
    sys.path.insert(0, r23)
    import reference23  # round 23 part b's additions, imported, not copied

    sys.path.remove(r23)
    r24 = next((d for d in ("/work/main/tests/unseen/round24/part_b", "/work/heldout/unseen24b")
                if Path(d, "reference24.py").exists()), None)
    if r24 is None:
        raise SystemExit("round 24 part b's reference24.py not found")
    sys.path.insert(0, r24)
    import reference24  # round 24 part b's additions, imported, not copied

    sys.path.remove(r24)
    sys.path.insert(0, str(HERE))
    import reference25  # this set's additions

    reference3.install(measure.reference)
    reference14.install(measure.reference)
    reference15.install(measure.reference)
    reference16.install(measure.reference)
    reference17.install(measure.reference)
    reference18.install(measure.reference)
    reference19.install(measure.reference)
    reference20.install(measure.reference)
    reference21.install(measure.reference)
    reference22.install(measure.reference)
    reference23.install(measure.reference)
    reference24.install(measure.reference)
    reference25.install(measure.reference)
    measure.HERE = HERE
    measure.unseen.LESSONS = ("03", "04")  # this part's lessons only
    if str(HERE) in sys.path:
        sys.path.remove(str(HERE))
    sys.path.insert(0, str(HERE))  # this set's lessonNN.py before round2's
    for name in [m for m in sys.modules if m.startswith("lesson") and m[6:].isdigit()]:
        del sys.modules[name]
    original = measure.markdown

    def markdown(rows, seconds):
        text = original(rows, seconds)
        return text.replace("`/work/heldout/unseen2/measure.py`",
                            f"`/work/heldout/unseen25b/run.py` (round2's measure.py from `{tooling}`)")

    measure.markdown = markdown
    print(f"tooling: {tooling}; entries: {HERE}", file=sys.stderr)
    return measure.main(argv)


if __name__ == "__main__":
    sys.exit(main())
