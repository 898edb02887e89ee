"""Reference-only check of this set (no helpers.checks, no check messages): every
wrong entry must differ from the independent reference, every correct one agree."""
import json, sys
from pathlib import Path
HERE = Path(__file__).resolve().parent
REPO = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/wt-r24before")
U = REPO / "tests/unseen"
sys.path[:0] = [str(HERE), str(U / "round2"), str(U / "round3")] + [str(U / f"round{r}/part_c") for r in (13, 14, 15, 16, 18, 20, 21, 22, 23)]
import copy, torch, torch.nn.functional as F
from torch import nn
import reference, reference3, reference13, reference14, reference15, reference16, reference18, reference20, reference21, reference22, reference23, reference25
for m in (reference3, reference13, reference14, reference15, reference16, reference18, reference20, reference21, reference22, reference23, reference25):
    m.install(reference)
nb = json.loads((REPO / "solutions/07_why_batchnorm_works.ipynb").read_text())
sol = {"copy": copy, "torch": torch, "F": F, "nn": nn}
for c in nb["cells"]:
    gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    if gid in ("noisy_answer", "ics_answer", "probe_answer"):
        src = "".join(c["source"]).replace("### BEGIN SOLUTION", "#").replace("### END SOLUTION", "#")
        exec(src, sol)
import lesson07
bad = 0
for e in lesson07.ENTRIES:
    space = dict(sol); space.update(e.substitutions())
    torch.manual_seed(0)
    probs = reference.verify(e.check, space, sol)
    ok = (not probs) if e.correct else bool(probs)
    bad += not ok
    print(("ok  " if ok else "BAD ") + ("correct " if e.correct else "wrong   ") + e.id)
    if probs: print("      ", probs[:3])
torch.manual_seed(0)
print("solution itself:", {k: reference.verify(k, dict(sol), sol) for k in ("noisy_batchnorm", "gradient_change", "landscape_probe")})
print("not as intended:", bad)
