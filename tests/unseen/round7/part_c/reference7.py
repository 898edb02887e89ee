"""The seventh set's (part c) additions to the independent reference (no helpers.checks).

``install(reference)`` is called by run.py after round 3's ``reference3.install``:

- the lesson 08 capstone verifier (graded cell ``sync_bn_layer``) is round 4 part b's
  ``_install4`` (tests/unseen/round4/part_b/reference3.py), LOADED from the checkout, not
  copied (as the sixth set, part c, did). Every property this set's entries break is
  looked at by round 2's, round 3's or round 4 part b's verifiers, so this set adds none of
  its own (one property written for an entry that turned out to be no mistake at all, a
  model holding stale gradients, which deepcopy drops, was removed with that entry).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path



def _round4b():
    repo = None
    for i, a in enumerate(sys.argv):
        if a == "--repo" and i + 1 < len(sys.argv):
            repo = sys.argv[i + 1]
        elif a.startswith("--repo="):
            repo = a.split("=", 1)[1]
    candidates = ([Path(repo)] if repo else []) + [Path("/work/main")]
    for root in candidates:
        path = root / "tests/unseen/round4/part_b/reference3.py"
        if path.exists():
            spec = importlib.util.spec_from_file_location("reference3_round4b", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit("tests/unseen/round4/part_b/reference3.py not found")


def install(reference):
    _round4b()._install4(reference)
