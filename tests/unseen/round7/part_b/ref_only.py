"""Run every entry of this set through the independent reference ONLY (no check is called,
nothing a check prints is seen): used while writing, before measuring.

    nice -n 10 /work/wt-r7base/.venv/bin/python ref_only.py --repo /work/wt-r7base [--only TEXT]
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402

sys.path.insert(0, str(run._tooling()))
import measure  # noqa: E402


def main(argv):
    import torch

    torch.set_num_threads(1)
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    bad = 0
    for number in measure.unseen.LESSONS:
        lesson = measure.lesson_of(number)
        for item in measure.unseen.load(number).ENTRIES:
            rid = f"{number}:{item.id}"
            if only and only not in rid:
                continue
            problems = measure._reference(lesson, item, item.substitutions())
            ok = (not problems) if item.correct else bool(problems)
            bad += not ok
            print(f"{'ok ' if ok else '!! '}{rid} {'correct' if item.correct else 'wrong'}: "
                  f"{len(problems)} reference problems", flush=True)
            for line in problems[:3]:
                print(f"      {line[:220]}")
    print(f"not as intended: {bad}")
    return 0


measure.main = main
sys.exit(run.main())
