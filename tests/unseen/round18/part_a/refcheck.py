"""Reference-only sanity run (no helpers.checks): does every wrong entry differ from the
independent reference and every correct one agree? Prints nothing from the checks."""
import sys
sys.argv = [sys.argv[0], "--repo", sys.argv[1] if len(sys.argv) > 1 else "/work/wt-r18before"]
import run  # noqa: E402  (the runner's set-up, not its main)
from pathlib import Path  # noqa: E402

tooling = run._tooling()
sys.path.insert(0, str(tooling))
import measure  # noqa: E402
measure.unseen.LESSONS = ("00", "01", "02")
sys.path.insert(1, str(tooling.parent / "round3"))
import reference3  # noqa: E402
reference3.install(measure.reference)
sys.path.insert(0, str(run.HERE))
import reference18  # noqa: E402
reference18.install(measure.reference)
for name in [m for m in sys.modules if m.startswith("lesson") and m[6:].isdigit()]:
    del sys.modules[name]
bad = 0
for number in ("00", "01", "02"):
    mod = measure.unseen.load(number)
    lesson = measure.lesson_of(number)
    for item in mod.ENTRIES:
        probs = measure._reference(lesson, item, item.substitutions())
        ok = (not probs) if item.correct else bool(probs)
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {number}:{item.id} [{'correct' if item.correct else 'wrong'}] "
              f"{len(probs)} problems; first: {probs[:2]}")
print("not as intended:", bad)
