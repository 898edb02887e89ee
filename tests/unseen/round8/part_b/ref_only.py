"""Runs ONLY the independent reference (no check, no grader) on this set's entries:
    .venv/bin/python ref_only.py --repo /work/wt-r8base [lesson ...]"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
repo = sys.argv[sys.argv.index("--repo") + 1]
lessons = [a for a in sys.argv[1:] if a.isdigit() and len(a) == 2] or ["03", "04"]
sys.argv = [sys.argv[0], "--repo", repo]
sys.path.insert(0, str(Path(repo) / "tests/unseen/round2"))
import measure  # noqa: E402
sys.path.insert(0, "/work/main/tests/unseen/round3")
import reference3  # noqa: E402
reference3.install(measure.reference)
sys.path.insert(0, str(HERE))
import reference8  # noqa: E402
reference8.install(measure.reference)
for name in [m for m in sys.modules if m.startswith("lesson") and m[6:].isdigit()]:
    del sys.modules[name]
import importlib  # noqa: E402
for number in lessons:
    mod = importlib.import_module(f"lesson{number}")
    lesson = measure.lesson_of(number)
    for item in mod.ENTRIES:
        probs = measure._reference(lesson, item, item.substitutions())
        ok = (not probs) if item.correct else bool(probs)
        print(f"{'ok ' if ok else 'BAD'} {'R' if item.correct else 'W'} {item.id}: {len(probs)} problems")
        if not ok or item.correct:
            for p in probs[:4]:
                print("     ", str(p)[:220])
        elif probs:
            print("     ", str(probs[0])[:220])
