"""Before measuring: each entry through the independent reference only (no helpers.checks
message is run or printed). Wrong entries must have reference problems, correct ones none."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
repo = "/work/wt-r24before"
sys.argv = [sys.argv[0], "--repo", repo]
tooling = Path(repo) / "tests/unseen/round2"
sys.path.insert(0, str(tooling))
import measure  # noqa: E402

measure.unseen.LESSONS = ("00", "01", "02")
sys.path.insert(1, str(tooling.parent / "round3"))
import reference3  # noqa: E402

reference3.install(measure.reference)
sys.path.insert(0, str(HERE))
import reference24  # noqa: E402

reference24.install(measure.reference)
for number in ("00", "01", "02"):
    lesson = measure.lesson_of(number)
    mod = measure.unseen.load(number)
    for item in mod.ENTRIES:
        probs = measure._reference(lesson, item, item.substitutions())
        ok = (not probs) if item.correct else bool(probs)
        print(f"{'ok ' if ok else 'BAD'} {number} {'RIGHT' if item.correct else 'wrong'} {item.id}")
        for pr in probs[:4]:
            print("      ", pr[:200])
# the solution itself against the new reference checks
for number, test in (("00", "batch_stats"), ("01", "standardize_columns"), ("02", "batchnorm_forward")):
    lesson = measure.lesson_of(number)
    sol = measure.namespace(lesson, {})
    print("solution", test, measure.reference.verify(test, sol, sol))
