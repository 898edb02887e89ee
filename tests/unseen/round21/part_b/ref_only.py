"""Reference-only pass over this set's entries (no helpers.checks involved): every wrong entry must have
problems, every correct one none.  /work/main/.venv/bin/python /work/heldout/unseen21b/ref_only.py [filter]"""
import json, sys, types, random
sys.path.insert(0, "/work/main/tests/unseen/round2")
import numpy as np, torch
import reference
for d, mod in [("/work/main/tests/unseen/round3", "reference3"), ("/work/main/tests/unseen/round14/part_b", "reference14"),
               ("/work/main/tests/unseen/round15/part_b", "reference15"), ("/work/main/tests/unseen/round16/part_b", "reference16"),
               ("/work/heldout/unseen17b", "reference17"), ("/work/main/tests/unseen/round18/part_b", "reference18"), ("/work/main/tests/unseen/round19/part_b", "reference19"), ("/work/main/tests/unseen/round20/part_b", "reference20"), ("/work/heldout/unseen21b", "reference21")]:
    sys.path.insert(0, d); m = __import__(mod); sys.path.remove(d); m.install(reference)
sys.path.insert(0, "/work/heldout/unseen21b")
from _format import realise
PRE = "import copy, math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
def sol_space(nb, names):
    cells = json.load(open(nb))["cells"]
    ns = {}
    exec(PRE, ns)
    for c in cells:
        src = "".join(c["source"])
        if c["cell_type"] == "code" and any(f"def {n}(" in src or f"class {n}(" in src for n in names) and "checks." not in src.split("\n")[0]:
            exec(src, ns)
    return ns
S3 = sol_space("/work/main/solutions/03_inference_running_stats.ipynb", ["ScratchBatchNorm", "fold_batchnorm"])
S4 = sol_space("/work/main/solutions/04_batch_renorm.ipynb", ["batch_renorm_forward", "batch_renorm_backward", "BatchRenorm", "renorm_schedule"])
only = sys.argv[1] if len(sys.argv) > 1 else ""
for lesson, sol in [("03", S3), ("04", S4)]:
    # the solution itself
    tests = {"03": ["scratch_batchnorm", "fold_batchnorm"], "04": ["batch_renorm_backward", "batch_renorm", "renorm_schedule"]}[lesson]
    for t in tests:
        if only and only not in t: continue
        torch.manual_seed(0); np.random.seed(0); random.seed(0)
        print(f"[solution] {t}: {reference.verify(t, dict(sol), sol)[:3]}")
    mod = __import__(f"lesson{lesson}")
    for e in mod.ENTRIES:
        if only and only not in e.id: continue
        space = dict(sol)
        exec(PRE, space)
        for k, v in e.substitutions().items():
            space[k] = realise(v, space)
        torch.manual_seed(0); np.random.seed(0); random.seed(0)
        probs = reference.verify(e.test, space, sol)
        ok = (not probs) if e.correct else bool(probs)
        print(f"{'OK ' if ok else 'BAD'} {'correct' if e.correct else 'wrong  '} {e.id}: {len(probs)} problems; {probs[:4]}")
