"""Writes labels-before.json and LABELS-before.md from the labels read by hand below
(the message of results-before.json against each entry's cause; tests/unseen/README.md
'Classifying', strictly)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
R = json.loads((HERE / "results-before.json").read_text())

# id -> (label, deciding message line (a distinctive substring of the verdict lines), why)
READ = {
    "03:scratch_batchnorm: variance detached": ("NAMED", "it is the gradient with the batch variance detached (no_grad, x.detach())", "names the detached variance"),
    "03:scratch_batchnorm: eps outside the square root": ("NAMED", "the scale divides by sqrt(v) + eps (eps outside the root)", "names eps outside the root"),
    "03:scratch_batchnorm: Bessel count from N times the last size": ("NAMED", "(it fails only where the input is 4-D, (N, C, H, W): a channel's values span N, H and W)", "the factor 0.1039 is bare, but 4-D only and 'a channel's values span N, H and W' point at the count"),
    "03:scratch_batchnorm: input centred in place": ("NAMED", "in your line `x -= mean.reshape(shape)  # saves a copy` (_normalise) (a tensor that requires grad is changed in place: compute a new one", "the learner's own error, with the line and the fix (compute a new tensor), which also stops the caller's input being changed"),
    "03:scratch_batchnorm: running_var starts at zero": ("NAMED", "running_var should start as [1.0, 1.0, 1.0, 1.0]", "names the initial value"),
    "03:scratch_batchnorm: eps left out in eval mode": ("NAMED", "eval mode: the output differs from PyTorch's: out = gamma * (x - m) / s + beta per feature, where the mean used is running_mean (right); the scale divides by sqrt(v) without eps, v = running_var", "names eps missing in eval mode"),
    "03:scratch_batchnorm: untracked module keeps buffers": ("NAMED", "running_mean should be None without tracking (register_buffer(name, None))", "names it, with the fix"),
    "03:scratch_batchnorm: running statistics of the output": ("WRONG CAUSE", "running_mean is not PyTorch's; read at step 2: running_mean = 1.9·old + 1.307e-17·batch; PyTorch's: 0.9·old + 0.1·batch (batch = the batch's mean)", "the fitted rule '1.9·old + 0·batch' points at the momentum weighting, which is right (0.9·old + 0.1·value); the real mistake is the value averaged in (the output's statistics); other lines: 'none of the usual ones', 'constant factor -3.119e-18' (borderline with OBSERVED)"),
    "03:scratch_batchnorm: per-channel view built for 4-D only": ("OBSERVED", "step 1 (batch of 8): the output has shape (1, 4, 8, 4), expected (8, 4)", "bare shape; the 3-D case is the learner's own broadcasting error ('print the shapes'); the view is not named"),
    "03:scratch_batchnorm: running statistics as plain attributes": ("NAMED", "running_mean is not a registered buffer: it is a plain attribute: use self.register_buffer(...)", "names it, with the fix"),
    "03:scratch_batchnorm: cumulative average weights the old value by the new count": ("NAMED", "with momentum=None PyTorch averages cumulatively, 1/k at the k-th batch (count the batch first)", "the weights 0.6667/0.3333 vs 0.5/0.5 and 1/k at the k-th batch"),
    "03:scratch_batchnorm: momentum=None left as a TODO": ("NAMED", "not implemented yet: replace the `raise NotImplementedError` line with your code", "locates the unfinished branch"),
    "03:fold_batchnorm: only the first kernel size": ("FALSE OK", "", "visible check and hidden tests pass: no graded case has a non-square kernel"),
    "03:fold_batchnorm: RuntimeError instead of ValueError": ("NAMED", "raised RuntimeError but ValueError was expected", "names the exception type"),
    "03:fold_batchnorm: Conv2d branch left as a TODO": ("NAMED", "not implemented yet: replace the `raise NotImplementedError` line with your code", "locates the unfinished branch"),
    "03:fold_batchnorm: bias divided by the variance": ("WRONG CAUSE", "where the mean used is the mean divided by the scale (x - mu / s needs brackets); the scale divides by sqrt(running_var + eps) (right)", "blames missing brackets around x - mu; the bias is divided by var + eps instead of its root (other lines: 'each feature is shifted by its own offset', bare)"),
    "03:fold_batchnorm: std computed in float32": ("OBSERVED", "max rel. error 3.9e-08 (expect < 1e-10); worst at index (8, 1)", "bare error; float32 not named ('off by its own factor, 1' in one line)"),
    "03:fold_batchnorm: untracked batch norm not refused": ("NAMED", "raised TypeError but ValueError was expected (with track_running_stats=False bn keeps none (running_var is None): say so, not a TypeError)", "names the missing refusal"),
    "03:fold_batchnorm: weight scaled by gamma only": ("NAMED", "the scale divides by one number for every column, 1", "the scale divides by 1 (no sqrt(running_var + eps)) is the real mistake; the same lines also call the mean 'none of the usual ones' or 'divided by the scale (x - mu / s needs brackets)', which is not so (the bias is right)"),
    "03:fold_batchnorm: groups not passed to the new Conv2d": ("OBSERVED", "(it fails only where the conv has dilation=2, groups=2 and padding_mode='reflect')", "the learner's own broadcasting error at the copy_ line; groups among three candidates"),
    "04:batch_renorm_backward: y_hat in the projection term": ("NAMED", "a multiple of x_hat: the branch through sigma_B is off (missing, or scaled wrong)", "locates the projection (sigma_B) term, where the y_hat is"),
    "04:batch_renorm_backward: std recomputed from x_hat": ("OBSERVED", "dx: each feature is off by its own factor (1.116, 1.862, 2.175, 1.524, ...)", "per-feature factor not recognised (it is sigma_B / std(x_hat))"),
    "04:batch_renorm_backward: square root of the cached std": ("NAMED", "dx: each feature is off by its own factor, sqrt(sigma_B)", "factor recognised as sqrt(sigma_B)"),
    "04:batch_renorm_backward: staged dvar without the 1/2": ("NAMED", "a multiple of x_hat: the branch through sigma_B is off (missing, or scaled wrong)", "locates the variance stage of the staged backward"),
    "04:batch_renorm_backward: dbeta multiplied by r": ("NAMED", "dbeta: each feature is off by its own factor, r", "factor recognised as r"),
    "04:batch_renorm: r inverted": ("NAMED", "r is off in features 0, 1, 2, 3, 4: yours 1.5, 0.6667, 1.5, 1.378, 1.019, expected 0.6667, 1.5, 0.6667, 0.7257, 0.981", "locates r (the values are the reciprocals; inversion itself not said)"),
    "04:batch_renorm: eps added again in eval mode": ("NAMED", "the scale divides by sqrt(v + eps), v = running_std ** 2", "names what the eval scale does"),
    "04:batch_renorm: d inside the r factor": ("OBSERVED", "d is off in features 0, 1, 2, 3, 4: yours -0.2092, 0.75, 0.02637, -0.3629, -0.01171, expected -0.3138, 0.5, 0.03956, -0.5, -0.01194", "the effective d is off (it is d * r); d's own formula is right and the placement of d is not named"),
    "04:batch_renorm: weight and bias only in eval mode": ("NAMED", "gamma and beta are not applied: out = gamma * y_hat + beta", "names it (training outputs)"),
    "04:batch_renorm: running_std starts at zero": ("NAMED", "running_std should start as [1.0, 1.0, 1.0, 1.0, 1.0]", "names the initial value"),
    "04:batch_renorm: momentum default 0.1": ("NAMED", "module.momentum is 0.1, expected 0.01", "names the default"),
    "04:batch_renorm: d divided by the batch std": ("NAMED", "d is divided by sigma_B: d = (mu_B - running_mean) / running_std", "names it"),
    "04:batch_renorm: clip applied to the batch std": ("NAMED", "r is off in features 0, 2, 3, 4: yours 0.5263, 0.2222, 0.4762, 0.5, expected 1, 1, 1, 1 (r before clipping to [1, 1]: 0.5876, 0.4833, 0.7257, 0.981)", "locates r and shows r is not clipped to the bounds"),
    "04:renorm_schedule: returns a NumPy array": ("NAMED", "returned a ndarray; expected a tuple of 2: (rmax, dmax)", "names the type"),
    "04:renorm_schedule: zero-length ramp final during warm-up": ("NAMED", "warmup=10, 0-step ramps: step 10 gives (3.0, 5.0), not (1.0, 0.0): (1, 0) up to warmup, final values after", "names the zero-length case and the rule"),
    "04:renorm_schedule: d ramp starts after the r ramp": ("NAMED", "dmax starts moving at step 40001, the paper's after the warm-up, at step 5001", "names where the d ramp starts"),
    "04:renorm_schedule: min and max swapped in the clamp": ("OBSERVED", "rmax stays 3; the paper's goes from 1 to 3; dmax stays 5; the paper's goes from 0 to 5", "describes the output (final from step 0), no cause"),
    "04:renorm_schedule: bounds kept monotone in a global": ("OBSERVED", "warmup=0, r_steps=10, d_steps=20, rmax_final=2, dmax_final=1 at step 10 give (3.0, 5.0), not (2, 0.5)", "bare values; the state carried between calls is not named"),
}

labels, md = {}, []
for number in ("03", "04"):
    md.append(f"\n## Lesson {number}\n\n| entry | label | cause | deciding message line | why |\n|---|---|---|---|---|")
    for r in R["rows"]:
        if r["lesson"] != number:
            continue
        rid = r["id"]
        if r["correct"]:
            lab, line, why = r["auto_label"], "(correct alternative)", "visible ok, full hidden marks" if r["auto_label"] == "PASS" else "rejected"
        else:
            lab, line, why = READ[rid]
            if r["auto_label"] != "?":
                assert r["auto_label"] == lab, (rid, r["auto_label"], lab)
            else:
                assert lab in ("NAMED", "OBSERVED", "WRONG CAUSE"), rid
                verdict = r["verdict_lines"] if isinstance(r["verdict_lines"], str) else json.dumps(r["verdict_lines"])
                assert line in verdict or line in (r["output"] or ""), rid
        labels[rid] = {"lesson": number, "check": r["check"], "correct": r["correct"], "label": lab, "note": why}
        cause = "correct alternative" if r["correct"] else r["cause"]
        md.append(f"| {r['name']} ({r['check']}) | **{lab}** | {cause} | {line.replace('|', '/')} | {why.replace('|', '/')} |")
missing = [r["id"] for r in R["rows"] if r["id"] not in labels]
assert not missing, missing
(HERE / "labels-before.json").write_text(json.dumps({
    "results": "results-before.json", "commit": R.get("commit"), "checks_at": R.get("checks_commit"),
    "date": "2026-12-06",
    "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause (tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
    "labels": labels}, indent=1, ensure_ascii=False) + "\n")
(HERE / "LABELS-before.md").write_text(
    "# Labels of the seventh held-out set, part b (lessons 03, 04), at /work/wt-r7base = main 6d208b7\n\n"
    "Each wrong entry's label (tests/unseen/README.md, 'Classifying', strict) and the message line that "
    "decided it; FALSE OK, CRASH, PASS, FAIL are the auto labels of `results-before.json`. Shares: "
    "`run.py --summary results-before.json --labels labels-before.json`.\n" + "\n".join(md) + "\n")
print(len(labels), "labels")
