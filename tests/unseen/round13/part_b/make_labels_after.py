"""Write labels-after.json and LABELS-after.md from results-after.json and the labels below
(the labels of make_labels_before.py, re-read against the AFTER messages (main 4acc984, /work/wt-r13after) by a
second helper: 45 of 47 messages are unchanged, so their labels are kept; two schedule messages changed
and were read again; originally read by the helper that wrote the set, message against cause, tests/unseen/README.md
'Classifying', strictly). Run: python3 make_labels_after.py"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RES = json.loads((HERE / "results-after.json").read_text())

# id -> (label, substring of the deciding line, why)
L = {
    "03:scratch_batchnorm: Bessel count per example": ("OBSERVED", "0.1111", "the running_var's blend weight as a bare figure (0.1111 vs 0.1); the unbiased factor's count is not named"),
    "03:scratch_batchnorm: one mean and variance for the whole tensor": ("NAMED", "axes (0, 1)", "says the statistics are taken over the channel axis too"),
    "03:scratch_batchnorm: running buffers created as float64": ("NAMED", "torch.float64, not torch.float32", "names the buffer's dtype"),
    "03:scratch_batchnorm: one-value guard on the batch size": ("NAMED", "your own test refused", "points to the learner's guard line and says the exercise accepts a (1, C, L) input"),
    "03:scratch_batchnorm: batch mean scaled in place by the momentum": ("WRONG CAUSE", "the running mean after the step", "says training normalises with the running mean after the step (a coincidence at the first step: running = momentum * mean from 0); the real cause is the batch mean scaled in place by mul_"),
    "03:scratch_batchnorm: channel count read from the last dimension": ("NAMED", "your own test refused", "points to the line comparing x.shape[-1] and says the 3-D/4-D input is accepted by the exercise"),
    "03:scratch_batchnorm: parameters named gamma and beta": ("WRONG CAUSE", "pick layers by isinstance", "the AttributeError about 'weight' is shown, but the hint blames walking layers without weight and bias (another exercise's mistake), not the parameter names"),
    "03:scratch_batchnorm: reduction dims list extended in place": ("OBSERVED", "appears multiple times", "the learner's own RuntimeError at the mean line, with the dims' length; the += on the stored list is not named"),
    "03:scratch_batchnorm: eval divides by the variance": ("NAMED", "no square root", "names the missing square root in eval mode"),
    "03:scratch_batchnorm: forward decorated with torch.no_grad": ("OBSERVED", "cut the graph", "a list of candidate causes (no_grad, detach, NumPy) of which the real one is one"),
    "03:scratch_batchnorm: reset_running_stats left as pass": ("NAMED", "reset_running_stats() must set", "names the method and what it must do"),
    "03:scratch_batchnorm: counter incremented by 1.0": ("OBSERVED", "can't be cast", "the learner's own RuntimeError as it is (its line is shown), no diagnosis added"),
    "03:scratch_batchnorm: super().__init__() forgotten": ("NAMED", "call super().__init__() first", "names the fix"),
    "03:fold_batchnorm: scale @ W instead of diag(scale) @ W": ("OBSERVED", "max rel. error", "a bare error figure"),
    "03:fold_batchnorm: beta divided by the standard deviation": ("OBSERVED", "shifted by its own offset", "per-feature offsets, no cause"),
    "03:fold_batchnorm: gamma applied twice in the bias": ("OBSERVED", "shifted by its own offset", "per-feature offsets, no cause"),
    "03:fold_batchnorm: one running mean for every channel": ("NAMED", "one number for every column", "names one mean for every channel"),
    "03:fold_batchnorm: folded layer always float64": ("NAMED", "torch.float64, the layer's torch.float32", "names the dtype and the fix"),
    "03:fold_batchnorm: stride and padding swapped in the Conv2d call": ("NAMED", "stride is", "names the wrong stride of the new conv: the learner finds padding in stride's place"),
    "03:fold_batchnorm: layer's bias scaled by gamma only": ("NAMED", "the own bias is not scaled", "the affine=False lines name the own bias's missing scale and the formula (the affine lines give only offsets)"),
    "03:fold_batchnorm: new layer's random weight scaled": ("OBSERVED", "max rel. error", "a bare error figure"),
    "04:batch_renorm_backward: dgamma without d": ("NAMED", "dgamma uses x_hat * r", "names what dgamma uses and what gamma multiplies"),
    "04:batch_renorm_backward: projection term divided by N - 1": ("NAMED", "multiple of x_hat", "locates the branch through sigma_B (the projection term), scaled wrong"),
    "04:batch_renorm_backward: eps taken back out of the cached std": ("OBSERVED", "its own factor", "per-feature factors printed as 1, not recognised"),
    "04:batch_renorm_backward: projection as a (D, D) matrix product": ("WRONG CAUSE", "mixes the features", "describes the mixing correctly but the hint 'mean on axis 0' blames an axis of the means, which are right; the matrix product is not named"),
    "04:batch_renorm_backward: batch size taken as len(cache)": ("NAMED", "combination of 1 and x_hat", "locates the difference in the two batch terms (mean and sigma_B branches), which are the two sums divided by len(cache)"),
    "04:batch_renorm_backward: projection by least squares": ("NAMED", "multiple of x_hat", "locates the branch through sigma_B (the projection), scaled wrong"),
    "04:batch_renorm: running_std moved to the unbiased std": ("NAMED", "unbiased variance (use correction=0)", "names the unbiased variance in running_std"),
    "04:batch_renorm: bias left out in training mode": ("WRONG CAUSE", "d is off", "blames d (offsets read as d) instead of the missing bias"),
    "04:batch_renorm: 4-D variance per position, averaged": ("WRONG CAUSE", "r is off", "blames r in two features; the real cause is sigma_B's variance taken per position"),
    "04:batch_renorm: r from the unbiased std": ("NAMED", "r uses sigma_B", "names r's unbiased variance"),
    "04:batch_renorm: eval divides by running_std squared": ("OBSERVED", "only features", "which features are off, no cause"),
    "04:batch_renorm: torch.lerp results discarded": ("NAMED", "did not change in a training step", "says the running statistics never move: locates the update lines where the unassigned lerp is"),
    "04:batch_renorm: input converted to float32": ("OBSERVED", "float32's rounding size", "candidates: the first lines blame d, later ones a float32 step (the real one) or a tiny term"),
    "04:renorm_schedule: memoised on the step alone": ("NAMED", "changed the global", "names the global cache"),
    "04:renorm_schedule: zero-length r ramp jumps to dmax_final": ("OBSERVED", "0-step ramp jumps", "after: the arguments and the values at one step (r is 5 where rmax_final=3, dmax_final=5) and the rule for a 0-step ramp; the copy-pasted dmax_final in the r branch is not named (unchanged label; borderline: the printed values let a learner see r equals dmax_final)"),
    "04:renorm_schedule: final values in the wrong positional order": ("OBSERVED", "step 1: (1.0, 0.1)", "after: the values at one step (now step 1 of the ramps); the parameter order is not named"),
    "04:renorm_schedule: returns a map object": ("NAMED", "returned a map", "names the return type"),
    "04:renorm_schedule: steps past the schedule refused": ("NAMED", "your own test refused", "points to the learner's raise and says the exercise accepts the step"),
}

labels, md = {}, []
by_lesson = {}
for row in RES["rows"]:
    rid = row["id"]
    auto = row.get("auto_label")
    lines = [ln for ln in (row.get("output") or "").splitlines()]
    if row["correct"]:
        label, key, why = auto, None, "auto label (visible ok and full marks)" if auto == "PASS" else "auto label"
    elif auto in ("FALSE OK", "CRASH"):
        label, key, why = auto, None, "auto label"
    else:
        label, key, why = L[rid]
    deciding = ""
    if key:
        hits = [ln for ln in lines if key in ln]
        assert hits, (rid, key)
        deciding = hits[0].strip()
    elif auto == "FALSE OK":
        deciding = f"visible ok: {row.get('visible_ok')}; hidden marks: {row.get('hidden')}"
    labels[rid] = {"lesson": row["lesson"], "check": row["check"], "correct": row["correct"],
                   "label": label, "note": why}
    by_lesson.setdefault(row["lesson"], []).append((row, label, deciding, why))

(HERE / "labels-after.json").write_text(json.dumps({
    "results": "results-after.json", "commit": RES.get("commit"), "checks_at": RES.get("checks_commit"),
    "date": "2026-12-06", "relabelled_from": "labels-before.json",
    "labels_by": "a second helper (after the lead's changes; same rules as before), reading each visible message against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")

out = ["# Labels of the thirteenth held-out set, part b, at 4acc984 (/work/wt-r13after, AFTER)", "",
       "Each wrong entry's label (tests/unseen/README.md, 'Classifying') and the message line that "
       "decided it; FALSE OK, CRASH, PASS, FAIL are the auto labels of `results-after.json`. Shares: "
       "`run.py --summary results-after.json --labels labels-after.json`. Only the two renorm_schedule "
       "messages 'zero-length r ramp' and 'final values in the wrong positional order' changed since BEFORE; every other message and label is the same.", ""]
for lesson, rows in by_lesson.items():
    out += [f"## Lesson {lesson}", "", "| entry | label | cause | deciding message line | why |", "|---|---|---|---|---|"]
    for row, label, deciding, why in rows:
        cell = lambda s: s.replace("|", "\\|").replace("\n", " ")
        out.append(f"| {cell(row['name'])} ({row['check']}) | **{label}** | {cell(row['cause'] or '(correct alternative)')} "
                   f"| {cell(deciding[:400])} | {cell(why)} |")
    out.append("")
(HERE / "LABELS-after.md").write_text("\n".join(out))
print("written", len(labels))
