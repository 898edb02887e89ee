"""Reference only (no check is run, no message is shown): does every wrong entry
differ from the independent reference, and every correct one agree?

    /work/wt-r22before/.venv/bin/python /work/heldout/unseen22c/refonly.py --repo /work/wt-r22before
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402

sys.path.insert(0, str(run._tooling()))
import measure  # noqa: E402  (round2's; run.main imports the same module)


def only_reference(argv):
    import torch

    torch.set_num_threads(1)
    bad = 0
    for number in ("07",):
        lesson = measure.lesson_of(number)
        for item in measure.unseen.load(number).ENTRIES:
            probs = measure._reference(lesson, item, item.substitutions())
            ok = (not probs) if item.correct else bool(probs)
            bad += not ok
            kind = "correct" if item.correct else "wrong"
            print(f"{number}:{item.id} [{kind}] reference {'agrees' if not probs else 'differs'}"
                  f"{'' if ok else '  !! NOT AS INTENDED'}")
            for line in probs[:4]:
                print(f"    {line[:220]}")
    print(f"not as intended: {bad}")
    return 0


measure.main = only_reference
sys.argv = [sys.argv[0], *sys.argv[1:], "--lesson", "07"]
sys.exit(run.main())
