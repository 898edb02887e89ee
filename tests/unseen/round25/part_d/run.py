"""Measure the twenty-fifth held-out set, part D (/work/heldout/unseen25d: lesson 08
only) against any checkout.

    nice -n 10 /work/wt-r24before/.venv/bin/python /work/heldout/unseen25d/run.py --repo /work/wt-r24before --name before
    ... run.py --repo /work/main --name final --lesson 08 --write  # results-final.json / .md
    ... run.py --repo /work/main --lesson 08 --only merge          # print only
    ... run.py --summary results-before.json --labels labels-before.json   # shares of the read labels
    ... run.py --review results-before.json                        # messages beside causes

This folder holds lesson08.py only: without --lesson the runner adds ``--lesson 08``
itself (round2's own lesson00-07 would otherwise be measured), and without --lesson,
--only or --write it adds ``--write``.  Copied from round 24 part D's run.py.

A thin runner: everything is round2's tooling, IMPORTED from a checkout
(tests/unseen/round2/measure.py, _format.py, reference.py; by default those of
--repo, else of --tooling, else of /work/wt-unseen2 or /work/main), with three
changes made here at run time, not in a copy:

- the entries are this folder's lessonNN.py (this folder goes first on sys.path,
  so round2's own lessonNN.py are not loaded; the entries import round2's
  ``_format`` by name);
- results are written into this folder (measure.HERE points here);
- round2's reference gets round 3's additions (reference3.install, imported from
  tests/unseen/round3 of --repo or /work/main, not copied), round 13 part C's
  (reference13.install, imported from tests/unseen/round13/part_c of --repo or
  /work/main, with its verifier for the graded cell sync_bn_layer), round 14 part C's
  (reference14.install, from tests/unseen/round14/part_c likewise), round 15
  and 16 part C's (reference15.install, reference16.install, from
  tests/unseen/round15/part_c and round16/part_c likewise), round 18 part C's
  reference18.install (round 17 part C's additions; imported from
  tests/unseen/round18/part_c of --repo or /work/main, not copied), round 19 part D's
  reference19.install (imported from tests/unseen/round19/part_d likewise) and round 20
  part D's reference20.install (from tests/unseen/round20/part_d likewise).  This set
  adds no verifier of its own (no reference24.py): every entry was confirmed against
  the references above.

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
    if not any(a in argv for a in ("--summary", "--review")) and not any(
            a.startswith(("--summary=", "--review=")) for a in argv):
        if not any(a == "--lesson" or a.startswith("--lesson=") for a in argv):
            if not any(a == "--only" or a.startswith("--only=") for a in argv) and "--write" not in argv:
                argv.append("--write")
            argv += ["--lesson", "08"]
    sys.argv = [sys.argv[0], *argv]
    sys.path.insert(0, str(tooling))
    import measure  # round2's: sets ROOT from --repo, chdir, sys.path (repo first)

    for r3 in (Path(_arg("--repo", "/work/main")) / "tests/unseen/round3", Path("/work/main/tests/unseen/round3")):
        if (r3 / "reference3.py").exists():
            sys.path.insert(1, str(r3.resolve()))
            break
    import reference3

    repo = Path(_arg("--repo", "/work/main"))
    for rnd, mod, part in (("round13", "reference13", "part_c"), ("round14", "reference14", "part_c"),
                           ("round15", "reference15", "part_c"), ("round16", "reference16", "part_c"),
                           ("round18", "reference18", "part_c"), ("round19", "reference19", "part_d"),
                           ("round20", "reference20", "part_d")):
        for d in (repo / f"tests/unseen/{rnd}/{part}", Path(f"/work/main/tests/unseen/{rnd}/{part}")):
            if (d / f"{mod}.py").exists():  # imported, not copied
                sys.path.insert(1, str(d.resolve()))
                __import__(mod)
                sys.path.remove(str(d.resolve()))
                break
        else:
            raise SystemExit(f"no {mod}.py found (tests/unseen/{rnd}/{part})")
    import reference13
    import reference14
    import reference15
    import reference16
    import reference18
    import reference19
    import reference20

    reference3.install(measure.reference)
    reference13.install(measure.reference)
    reference14.install(measure.reference)
    reference15.install(measure.reference)
    reference16.install(measure.reference)
    reference18.install(measure.reference)
    reference19.install(measure.reference)
    reference20.install(measure.reference)
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
                            f"`/work/heldout/unseen25d/run.py` (round2's measure.py from `{tooling}`)")

    measure.markdown = markdown
    print(f"tooling: {tooling}; entries: {HERE}", file=sys.stderr)
    return measure.main(argv)


if __name__ == "__main__":
    sys.exit(main())
