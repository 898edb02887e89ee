"""Reference verdicts only (no check is run, no check message is printed): for freezing.

    /work/wt-r17before/.venv/bin/python ref_only.py --repo /work/wt-r17before
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.argv = [sys.argv[0], *sys.argv[1:]]
import run  # noqa: E402  (this folder's runner: same set-up)


def main():
    tooling = run._tooling()
    sys.path.insert(0, str(tooling))
    import measure
    for extra in ("/work/main/tests/unseen/round3", "/work/main/tests/unseen/round14/part_b",
                  "/work/main/tests/unseen/round15/part_b", "/work/main/tests/unseen/round16/part_b"):
        sys.path.insert(0, extra)
    import reference3, reference14, reference15, reference16
    for extra in ("/work/main/tests/unseen/round3", "/work/main/tests/unseen/round14/part_b",
                  "/work/main/tests/unseen/round15/part_b", "/work/main/tests/unseen/round16/part_b"):
        sys.path.remove(extra)
    sys.path.insert(0, str(HERE))
    import reference17
    for mod in (reference3, reference14, reference15, reference16, reference17):
        mod.install(measure.reference)
    for name in [m for m in sys.modules if m.startswith("lesson") and m[6:].isdigit()]:
        del sys.modules[name]
    bad = 0
    for number in ("03", "04"):
        lesson = measure.lesson_of(number)
        for item in measure.unseen.load(number).ENTRIES:
            probs = measure._reference(lesson, item, item.substitutions())
            ok = (not probs) if item.correct else bool(probs)
            bad += not ok
            print(f"{'ok ' if ok else '!! '}{number} {'RIGHT' if item.correct else 'wrong'} {item.id}: "
                  f"{len(probs)} reference problems")
            for line in probs[:3]:
                print(f"      {line[:220]}")
    print(f"not as intended (reference only): {bad}")


main()
