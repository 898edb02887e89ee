"""Reference verdicts only (no check is run): python refcheck.py --repo /work/wt-r8base"""
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
repo = sys.argv[sys.argv.index("--repo") + 1]
sys.argv = [sys.argv[0], "--repo", repo]
sys.path.insert(0, str(Path(repo) / "tests/unseen/round2"))
import measure  # noqa: E402

sys.path.insert(1, "/work/main/tests/unseen/round3")
import reference3  # noqa: E402

reference3.install(measure.reference)
sys.path.insert(0, str(HERE))
import reference10  # noqa: E402

reference10.install(measure.reference)
for name in [m for m in sys.modules if m.startswith("lesson") and m[6:].isdigit()]:
    del sys.modules[name]
for num in ("00", "01", "02"):
    mod = importlib.import_module(f"lesson{num}")
    lesson = measure.lesson_of(num)
    for item in mod.ENTRIES:
        probs = measure._reference(lesson, item, item.substitutions())
        ok = (not probs) if item.correct else bool(probs)
        print(f"{'ok ' if ok else 'BAD'} {num} {'R' if item.correct else 'W'} {item.id}: {probs[:2]}")
