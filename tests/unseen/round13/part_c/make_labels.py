"""Builds labels-before.json and LABELS-before.md from the read labels below and
results-before.json (the auto labels CRASH / FALSE OK / PASS / FAIL are taken from the
results; only the "?" entries are read).  Run: python make_labels.py"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

READ = {
    # lesson 07
    "07:noisy_batchnorm: shift as the difference of two uniforms": ("NAMED", "'the shift must be uniform in [-1.5, 1.5]' with its std against the uniform's: the shift's draw is not uniform"),
    "07:noisy_batchnorm: noise drawn inside fork_rng": ("WRONG CAUSE", "'the same noise at two steps' is right, but the cause given, drawing '(in forward, not in __init__)', is not the learner's: the draw is in forward, the random state is restored by fork_rng"),
    "07:noisy_batchnorm: training forward run in eval mode": ("OBSERVED", "bare max rel. error of the training output"),
    "07:noisy_batchnorm: evenly spaced scales, shuffled": ("NAMED", "'only 64 distinct values among 512 (repeated ...)': the scales are not independent draws, which locates the linspace"),
    "07:gradient_change: label smoothing in the loss": ("OBSERVED", "distance and cosine off, 'G or G' is off': no cause"),
    "07:gradient_change: earlier layers stepped by unit-norm gradients": ("OBSERVED", "distance and cosine off, 'G or G' is off': no cause"),
    "07:gradient_change: nested loop over the earlier layers": ("OBSERVED", "distance and cosine off, 'G or G' is off': no cause"),
    "07:gradient_change: Nesterov momentum in the step": ("OBSERVED", "distance and cosine off, 'G or G' is off': no cause"),
    "07:gradient_change: measured layer's bias included": ("OBSERVED", "distance and cosine off, 'G or G' is off': no cause"),
    "07:landscape_probe: g taken in eval mode": ("WRONG CAUSE", "'the points w - eta * g are off: each starts from w, all parameters': the steps do start from w over all parameters; g itself (taken in eval mode) is wrong"),
    "07:landscape_probe: g taken on the caller's model": ("NAMED", "the caller's running_mean changed in place: 'work on a copy'"),
    "07:landscape_probe: step undone with the new gradient": ("NAMED", "'the points w - eta * g are off: each starts from w': the undone step does not return to w"),
    "07:landscape_probe: step vector used as g": ("NAMED", "losses and points right, 'take ||grad - g||': locates the change's formula, where eta * g stands for g"),
    "07:landscape_probe: g read from the model's stored .grad": ("NAMED", "'p.grad is None here: no backward() has reached it' on the learner's line: g was never computed"),
    "07:landscape_probe: gradient changes in a second loop": ("WRONG CAUSE", "'the points are right; take ||grad - g||': blames the change's formula, but the changes are taken at the wrong points (the second loop's steps accumulate)"),
    # lesson 08
    "08:sync_batchnorm_forward: count created in float64": ("NAMED", "'float32 inputs give torch.float64 outputs: keep the input's dtype' (the float64 count is the one float64 in the code)"),
    "08:sync_batchnorm_forward: x centred on this rank's own mean": ("NAMED", "'the mean used is this rank's own mean'"),
    "08:sync_batchnorm_forward: between-rank correction of this rank only": ("OBSERVED", "'the scale is none of the usual ones' with per-feature ratios"),
    "08:sync_batchnorm_forward: rank's own squared deviations in rho": ("OBSERVED", "'the scale is none of the usual ones' with per-feature ratios"),
    "08:sync_batchnorm_forward: mean by floor division": ("OBSERVED", "'the mean used is none of the usual ones' (offsets), scale none of the usual"),
    "08:sync_batchnorm_backward: all_reduce used as if in place": ("OBSERVED", "'both terms mean(dy) and mean(dy * x_hat) are none of the usual'"),
    "08:sync_batchnorm_backward: dgamma and dbeta summed to scalars": ("NAMED", "shapes () not (4,): 'sum ... over axis 0'"),
    "08:sync_batchnorm_backward: op= keyword passed to all_reduce": ("OBSERVED", "the learner's own TypeError (unexpected keyword 'op') reported as it is, with the line"),
    "08:sync_bn_layer: count decremented through an alias": ("NAMED", "'the saved counts are [11.0, 11.0, 11.0], not N': locates the count decremented by dof -= 1"),
    "08:sync_bn_layer: running statistics updated in a stacked copy": ("NAMED", "'running_mean did not change ... update the one passed in, in place'"),
    "08:sync_bn_layer: centred input squared in place": ("OBSERVED", "bare max rel. error of out"),
    "08:sync_bn_layer: PyTorch's sum_dy_xmu without invstd squared": ("NAMED", "'mean(dy) is right; mean(dy * x_hat) is none of the usual': locates the x_hat term of dx, where (x - mean) stands for x_hat"),
    "08:sync_bn_layer: ValueError for a rank with one example": ("NAMED", "'your own test refused an input the exercise accepts' on the learner's raise"),
    "08:merge_running_stats: layers found by their names": ("WRONG CAUSE", "'write the merged values into them in place (copy_); a return value is unused': the writes are in place; the layers were never selected"),
    "08:merge_running_stats: count moved out of the all-reduce": ("OBSERVED", "bare max rel. error of the mean, per-feature factors of the variance"),
    "08:merge_running_stats: count overwritten by the total": ("NAMED", "'running_mean is the sum over ranks: weigh each by count / N'"),
    "08:merge_running_stats: own variance plus the spread": ("OBSERVED", "bare max rel. error of the variance"),
    "08:merge_running_stats: between-rank term summed over the channels": ("OBSERVED", "'each feature is off by its own factor' (not recognised)"),
}

results = json.loads((HERE / "results-before.json").read_text())
rows = results["rows"]
labels = {}
for r in rows:
    auto = r["auto_label"]
    if auto == "?":
        label, note = READ[r["id"]]
    else:
        label, note = auto, {"FALSE OK": "visible check passes" + (" and full hidden marks" if all(r["hidden"].values()) else ""),
                             "PASS": "visible ok, full hidden marks"}.get(auto, auto)
    labels[r["id"]] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"], "label": label, "note": note}
missing = set(READ) - {r["id"] for r in rows}
assert not missing, missing
(HERE / "labels-before.json").write_text(json.dumps({
    "results": "results-before.json",
    "commit": results["commit"],
    "checks_at": results["checks_commit"],
    "date": "2026-12-06",
    "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")


def cell(t):
    return " ".join(str(t).split()).replace("|", "\\|")


out = ["# Labels of the thirteenth held-out set, part C, at 7b5f3a6 (BEFORE)", "",
       "Each wrong entry's label (tests/unseen/README.md, 'Classifying') and the message line(s) that "
       "decided it; CRASH, FALSE OK, PASS, FAIL are the auto labels of `results-before.json`. Shares: "
       "`run.py --summary results-before.json --labels labels-before.json`.", ""]
for lesson in ("07", "08"):
    out += [f"## Lesson {lesson}", "", "| entry | label | cause | deciding message line(s) | why |", "|---|---|---|---|---|"]
    for r in rows:
        if r["lesson"] != lesson:
            continue
        lab = labels[r["id"]]
        lines = r["verdict_lines"][:3] or ["(no line printed)"]
        if r["auto_label"] in ("FALSE OK", "PASS"):
            lines = [f"(visible ok: {r['visible_ok']}; hidden {r['hidden_points']:g}/{r['hidden_total']:g})"]
        cause = "correct alternative" if r["correct"] else r["cause"]
        out.append(f"| {cell(r['name'])} ({r['check']}) | **{lab['label']}** | {cell(cause)} | "
                   f"{cell(' // '.join(l[:400] for l in lines))} | {cell(lab['note'])} |")
    out.append("")
(HERE / "LABELS-before.md").write_text("\n".join(out))
print("written")
