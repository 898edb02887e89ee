"""Writes labels-before.json and LABELS-before.md from results-before.json and the
read labels below (auto labels FALSE OK / CRASH / PASS / FAIL are taken as they are)."""
import ast
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
READ = {
    "03:scratch_batchnorm: train/eval decided by grad mode": ("OBSERVED",
        "'eval mode changed running_mean: update it only in training': one symptom, correctly described; grad mode vs self.training not named, and gating only the update leaves eval mode on batch statistics"),
    "03:scratch_batchnorm: Bessel factor on the blended running variance": ("NAMED",
        "'running_var = 1.08·old + 0.1·batch; PyTorch's: 0.9·old + 0.1·batch': the batch term right, the old value's weight wrong: locates the factor on the old value"),
    "03:scratch_batchnorm: weight and bias applied before normalising": ("OBSERVED",
        "'each feature is shifted by its own offset': correct description, no cause"),
    "03:scratch_batchnorm: output reshaped back without moving the channels": ("NAMED",
        "'the right values in the wrong places ... a reshape without the transpose it needs, or a transpose not undone?'"),
    "03:scratch_batchnorm: buffers converted to the input's dtype": ("NAMED",
        "'the buffers changed dtype: keep them float32'"),
    "03:scratch_batchnorm: 5-D input accepted": ("NAMED",
        "'5-D input: did not raise ValueError: only (N, C), (N, C, L), (N, C, H, W) are taken'"),
    "03:scratch_batchnorm: channel check reads len(self.weight)": ("NAMED",
        "the learner's TypeError in the line `len(self.weight)` with '`self.weight` is None here' and 'it fails only where affine=False': located (as round 3 labelled 'layer without a bias crashes')"),
    "03:scratch_batchnorm: weight and bias created with requires_grad=False": ("OBSERVED",
        "'no weight gradient: the output is not connected to it': true, but requires_grad=False not named"),
    "03:fold_batchnorm: running_var in place of running_mean in the bias": ("OBSERVED",
        "'each feature is shifted by its own offset': no cause"),
    "03:fold_batchnorm: zeros sized by out_features": ("NAMED",
        "the learner's AttributeError ('Conv2d' has no out_features) in their line, 'it fails only where the conv has no bias': located (as round 3's 'layer without a bias crashes')"),
    "03:fold_batchnorm: eps as a floor on the variance": ("NAMED",
        "'the scale divides by sqrt(v) without eps': the clamp adds no eps; adding eps inside the root is the fix"),
    "03:fold_batchnorm: training-mode bn switched to eval": ("NAMED",
        "'did not raise ValueError: in training mode bn has no fixed statistics ... check bn.training'"),
    "03:fold_batchnorm: weight left unscaled (TODO)": ("OBSERVED",
        "'the mean used is none of the usual ones ...; the scale is none of the usual ones': no cause (the unscaled weight is not named)"),
    "03:fold_batchnorm: bn.momentum in place of bn.eps": ("NAMED",
        "'the scale divides by sqrt(var + e) with e = 0.1, not eps = 1e-05': 0.1 is bn.momentum; the wrong eps located"),
    "04:batch_renorm_backward: dgamma summed over every axis": ("NAMED",
        "'dgamma has shape (), expected (5,): it looks reduced over every axis (check the `axis=`)'"),
    "04:batch_renorm_backward: staged dx without the factor 2 of the variance branch": ("NAMED",
        "'a multiple of x_hat: the branch through sigma_B is off (missing, or scaled wrong)': the stage located"),
    "04:batch_renorm_backward: r reshaped as a column": ("NAMED",
        "the learner's broadcasting ValueError in the line `r[:, None]` with 'one value per feature needs the shape (5,) or (1, 5)'"),
    "04:batch_renorm_backward: returns (dx, (dgamma, dbeta))": ("NAMED",
        "'returned a tuple of 2 items; expected a tuple of 3: (dx, ...)'"),
    "04:batch_renorm_backward: dgamma multiplied by r": ("OBSERVED",
        "'dgamma uses x_hat * a + b with a = (0.4444, 2.25, ...)': a = r^2 and b = d*r not recognised; no cause"),
    "04:batch_renorm_backward: batch statistics held constant too": ("NAMED",
        "'the direct term is right; what differs lies in the branches through the batch mean and sigma_B (one or both)': both branches are missing, and that is where it points"),
    "04:batch_renorm: running statistics moved towards the clipped values": ("NAMED",
        "'running_mean did not change in a training step; it should move a fraction 0.01 of the way to the batch's value' and 'averages in a batch statistic that is none of the usual ones': the update's target located"),
    "04:batch_renorm: r as a ratio of variances": ("NAMED",
        "'r is off in features 3, 4: yours 0.6667, 0.9624, expected 0.7257, 0.981 (r before clipping ...)': locates r (the square is not named, but r is one line)"),
    "04:batch_renorm: rmax and dmax stored as r_max and d_max": ("NAMED",
        "'module.rmax is None, expected 1.0: store the value passed in ... as a plain attribute'; 'module.rmax, module.dmax set after construction changed nothing: read them in forward()'"),
    "04:batch_renorm: running std kept in a buffer named running_var": ("NAMED",
        "'running_std is not a registered buffer: it does not exist'"),
    "04:batch_renorm: eval mode for images left as a TODO": ("NAMED",
        "'not implemented yet: replace the `raise NotImplementedError` line with your code'"),
    "04:renorm_schedule: computed in float32": ("OBSERVED",
        "'the largest difference: at step 23000 (rmax, dmax) = (2.02857, 4.5), expected (2.02857, 4.5)': a bare difference (invisible at 6 digits), float32 not named"),
    "04:renorm_schedule: one ramp length r_steps + d_steps for both": ("NAMED",
        "'rmax ramps over 55000 steps, the paper's over 35000; dmax ramps over 55000 steps, the paper's over 20000': the ramp length located (55000 = 35000 + 20000)"),
    "04:renorm_schedule: counts its calls instead of reading step": ("OBSERVED",
        "'rmax stays 1; the paper's goes from 1 to 3; dmax stays 0': correct description, the ignored step argument not named"),
    "04:renorm_schedule: ramp length includes the warm-up": ("NAMED",
        "'rmax ramps over 40000 steps, the paper's over 35000; dmax ramps over 25000 steps, the paper's over 20000': the ramp length located (5000 = the warm-up)"),
    "04:renorm_schedule: zero-length ramp never finishes": ("NAMED",
        "'warmup=10, 0-step ramps: step 11 gives (1.0, 0.0), not (3.0, 5.0): (1, 0) up to warmup, final values after'"),
}

results = json.loads((HERE / "results-before.json").read_text())
labels, md = {}, {}
for row in results["rows"]:
    rid, auto = row["id"], row["auto_label"]
    correct = row["correct"] in (True, "True")
    lines = row["verdict_lines"]
    lines = ast.literal_eval(lines) if isinstance(lines, str) else (lines or [])
    deciding = " // ".join(l.split("|", 2)[-1].strip() for l in lines[:2]) or ""
    if auto == "?":
        label, note = READ[rid]
    else:
        assert rid not in READ, rid
        label = auto
        if auto == "FALSE OK":
            hp, ht = row["hidden_points"], row["hidden_total"]
            note = f"visible check passes (hidden {hp}/{ht})"
            deciding = "(visible check passes)"
        else:
            note = "visible ok, full hidden marks" if auto == "PASS" else "auto"
            deciding = "(correct alternative)"
    labels[rid] = {"lesson": row["lesson"], "check": row["check"], "correct": correct, "label": label, "note": note}
    md.setdefault(row["lesson"], []).append((row["name"], row["check"], label, "correct alternative" if correct else row["cause"], deciding, note))
assert set(READ) <= set(labels)
out = {"results": "results-before.json", "commit": results.get("commit"), "checks_at": results.get("checks_commit"),
       "date": "2026-12-06",
       "labels_by": "the helper that wrote the set (part b of the eighth), reading each visible message against the entry's cause (tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
       "labels": labels}
(HERE / "labels-before.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
text = ["# Labels of the eighth held-out set, part b (lessons 03 and 04), at /work/wt-r8base (main b7b8629)", "",
        "Each wrong entry's label (tests/unseen/README.md, 'Classifying') and the message line(s) that decided it; "
        "FALSE OK, CRASH, PASS, FAIL are the auto labels of `results-before.json`. Shares: "
        "`run.py --summary results-before.json --labels labels-before.json`.", ""]
for lesson, items in md.items():
    text += [f"## Lesson {lesson}", "", "| entry | label | cause | deciding message line(s) | why |", "|---|---|---|---|---|"]
    for name, check, label, cause, deciding, note in items:
        esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
        text.append(f"| {esc(name)} ({check}) | **{label}** | {esc(cause)} | {esc(deciding[:600])} | {esc(note)} |")
    text.append("")
(HERE / "LABELS-before.md").write_text("\n".join(text))
print("ok", len(labels))
