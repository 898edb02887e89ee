"""Writes labels-after.json and LABELS-after.md from results-after.json (main 5353880, measured
in /work/wt-final8) and the labels read by hand below (tests/unseen/README.md "Classifying",
strictly), by a helper that did not write the set.

Every entry's visible message, verdict lines, hidden marks and auto label at 5353880 are
identical to those at 4acc984 (checked below against results-before.json), and none of the
writer's labels is plainly inconsistent with the rules, so every label is the writer's, kept;
the borderline ones were re-read and kept at the writer's strict reading."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
L = {
    "03:scratch_batchnorm: one-pass variance in the input's dtype": ("FALSE OK", "visible ok, 7/7 hidden: no float32 input with a large offset is tried"),
    "03:scratch_batchnorm: eps squared": ("NAMED", "'the scale divides by sqrt(var + e) with e = 1e-10 = (eps)^2'"),
    "03:scratch_batchnorm: output squeezed": ("FALSE OK", "visible ok, 7/7 hidden: no shape with a size-1 dimension is tried"),
    "03:scratch_batchnorm: mean divided by the batch size only": ("OBSERVED", "'the mean used is none of the usual ones (m - batch mean: 43.66, ...); the scale is none of the usual ones': bare figures, 3-D/4-D only listed but no cause"),
    "03:scratch_batchnorm: training decided by x.requires_grad": ("OBSERVED", "'eval mode changed running_mean: update it only in training': the symptom in eval mode; the learner believes the update already happens only in (their notion of) training and may only guard the update, leaving the training output wrong for plain tensors; borderline NAMED"),
    "03:fold_batchnorm: dilation not copied": ("NAMED", "'the folded conv's dilation is (1, 1), the original's (2, 2): copy every setting'"),
    "03:fold_batchnorm: missing layer bias taken as the running mean": ("NAMED", "'the running mean is not subtracted ... (it fails only where the layer has no bias)'"),
    "03:fold_batchnorm: grouped convolutions refused": ("NAMED", "'fold_batchnorm grouped | not yet | replace the `raise NotImplementedError` line with your code': the case is named grouped and the line to remove is the learner's refusal; it calls it 'not implemented yet', but following it fixes the real mistake"),
    "04:batch_renorm_backward: dx squeezed": ("FALSE OK", "visible ok, 8/8 hidden: no D = 1 batch is tried"),
    "04:batch_renorm_backward: gamma missing from the mean term": ("NAMED", "'the branch through the batch mean is off (missing, or scaled wrong)': locates the mean term"),
    "04:batch_renorm: eval mode always viewed as (1, C, 1, 1)": ("OBSERVED", "'the eval-mode output has shape (1, 5, 12, 5), expected (12, 5)': a correct description (eval, 2-D) with no cause; borderline NAMED"),
    "04:batch_renorm: one sigma_B for all channels": ("WRONG CAUSE", "'read as gamma * (x_hat * r + d) + beta with the batch's x_hat: r is off in features 0..4: yours 0.6317, ... expected 1' (rmax=1): blames r (its clipping is right) while sigma_B is global"),
    "04:batch_renorm: eval mode uses the last training batch's statistics": ("OBSERVED", "'the mean used is none of the usual ones ...; the scale is none of the usual ones': bare figures"),
    "04:renorm_schedule: missing parentheses around rmax_final - 1": ("OBSERVED", "'rmax starts at 4, the paper's at 1; ... at step 0 (rmax, dmax) = (4, 0), expected (1, 0)': values at one step, no cause"),
    "04:renorm_schedule: both ramps over the longer length": ("NAMED", "'dmax ramps over 35000 steps (r_steps = 35000), the paper's over 20000': the d ramp's length"),
    "04:renorm_schedule: bounds rounded to two decimals": ("OBSERVED", "'rmax jumps from 1 to 1.01 at step 5088, then moves until step 39913; ...; at step 5500 (1.03, 0.12), expected (1.02857, 0.125)': a correct description (the 0.01 steps hint at rounding) with no cause"),
}
res = json.loads((HERE / "results-after.json").read_text())
before = {r["id"]: r for r in json.loads((HERE / "results-before.json").read_text())["rows"]}
SAME = ("output", "verdict_lines", "raised", "crashed", "visible_ok", "visible_grading_error", "hidden",
        "hidden_errors", "hidden_points", "hidden_total", "auto_label")
for r in res["rows"]:
    changed = [k for k in SAME if r.get(k) != before[r["id"]].get(k)]
    assert not changed, (r["id"], changed)  # a changed message must be read again, not carried over
KEPT = "message unchanged from before (4acc984); label kept: "
labels, md = {}, ["# Labels of the fourteenth set, part b, AFTER (wt-final8, main 5353880)", "",
                  "Read by a helper that did not write the set, message against cause (tests/unseen/README.md 'Classifying', strictly), as strictly as the writer (LABELS-before.md). Every message is the same as before, so every label is the writer's, kept (see make_labels_after.py).", ""]
for r in res["rows"]:
    if r["correct"] in (True, "True"):
        lab = "PASS" if r["auto_label"] == "PASS" else "FAIL"
        note = "visible ok, full hidden marks" if lab == "PASS" else str(r["auto_label"])
    else:
        lab, note = L[r["id"]]
        note = KEPT + note
        assert lab != "FALSE OK" or r["auto_label"] == "FALSE OK", r["id"]
        assert r["auto_label"] in ("?", lab), (r["id"], r["auto_label"])
    labels[r["id"]] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"] in (True, "True"),
                       "label": lab, "note": note}
    first = (r.get("verdict_lines") or [""])[0] if isinstance(r.get("verdict_lines"), list) else ""
    md += [f"## {r['id']}", "", f"- label: **{lab}**", f"- cause: {r['cause']}" if r.get("cause") else "- correct alternative",
           f"- deciding line: `{first[:400]}`" if first else "- deciding line: (none: visible check passed)", f"- note: {note}", ""]
out = {"results": "results-after.json", "commit": res["commit"], "checks_at": res["checks_commit"],
       "date": "2026-12-06",
       "labels_by": "a helper that did not write the set, reading each visible message against the entry's cause (tests/unseen/README.md 'Classifying', strictly, as strictly as the writer's labels-before.json); every message is unchanged from before, so the writer's labels are kept; helpers/checks/ not read",
       "labels": labels}
(HERE / "labels-after.json").write_text(json.dumps(out, indent=1) + "\n")
(HERE / "LABELS-after.md").write_text("\n".join(md))
print(len(labels), "labels")
