"""Writes labels-before.json: the writer's labels of results-before.json (read after every entry
was frozen; FROZEN.sha256), by the rules of tests/unseen/README.md, strictly."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
L = {
    "03:scratch_batchnorm: var_mean unpacked as (mean, var)": ("WRONG CAUSE",
        "most lines: 'the mean used is none of the usual ones (...); the scale is none of the usual ones' "
        "(bare figures), but the momentum=None line names a cause that is not the mistake: 'the mean used "
        "is the running mean after the step (training mode uses the batch's own statistics)' (a "
        "coincidence: with 1/k = 1 the running mean takes the swapped 'mean', i.e. the variance)"),
    "03:scratch_batchnorm: Bessel factor n / (n + 1)": ("OBSERVED",
        "'running_var = 0.9*old + 0.07143*batch; PyTorch's 0.9*old + 0.1*batch (batch = the unbiased "
        "variance)': a correct description, the factor (n-1)/(n+1) is not recognised, no cause"),
    "03:scratch_batchnorm: running_var blended with the running mean": ("OBSERVED",
        "'(new - (1 - momentum) * old) / momentum is PyTorch's batch statistic times 1.119, 1.075, ...': "
        "bare per-feature factors, no cause"),
    "03:scratch_batchnorm: weight and running_var share one tensor": ("OBSERVED",
        "only the bfloat16 line (float32 buffers) fails: 'changed your module's parameter weight in place: "
        "a forward pass leaves parameters to the optimizer; what it updates (running statistics) are "
        "buffers (register_buffer)': the fact is right, the shared tensor is not named and the learner "
        "already uses register_buffer (borderline with WRONG CAUSE; read as a general rule, not a cause)"),
    "03:scratch_batchnorm: momentum=None average weighted by batch size": ("NAMED",
        "'(it fails only where momentum=None: a cumulative average, 1/k at the k-th batch)': locates the "
        "momentum=None branch and states the rule the learner's weighting breaks"),
    "03:scratch_batchnorm: default momentum 0.01": ("NAMED",
        "'signature (..., momentum=0.01, ...); the exercise's: (..., momentum=0.1, ...): momentum defaults "
        "to 0.01, the exercise's to 0.1'"),
    "03:fold_batchnorm: folded inside torch.inference_mode": ("FALSE OK",
        "visible ok, 7/7 hidden: the folded layer is never used with autograd (the reference's input that "
        "requires grad raises 'Inference tensors cannot be saved for backward')"),
    "03:fold_batchnorm: dilation and groups swapped positionally": ("OBSERVED",
        "the learner's own TypeError reported with its line ('in your line `new = nn.Conv2d(...`', 'a tuple "
        "(a shape?) compared with a number: len(x)'): the swap of dilation and groups is not named and the "
        "len(x) guess does not apply (borderline: the Conv2d line is located)"),
    "03:fold_batchnorm: missing bias created in the default dtype": ("NAMED",
        "'each feature is shifted by its own offset (3.5e-09, 2.8e-08, ...) ... (it fails only where the "
        "layer has no bias (fold into a new bias))': locates the one-line branch that creates the new bias; "
        "offsets at float32 rounding (borderline: the dtype is not said)"),
    "03:scratch_batchnorm: F.layer_norm on channel rows, var_mean, add_(alpha=)": ("PASS", "visible ok, 7/7 hidden"),
    "04:batch_renorm_backward: 1 // n for 1 / n": ("OBSERVED",
        "'dx: every value is -0': a correct description, no cause (the integer division is not named)"),
    "04:batch_renorm_backward: only the projection term divided by std": ("OBSERVED",
        "'max rel. error 8.5e-01; worst at index (11, 1): got -2.00764, expected -1.08426': bare error figure"),
    "04:batch_renorm_backward: dgamma summed over axis 1": ("NAMED",
        "'dgamma has shape (12,), expected (5,): ... reduce over axis 0, not 1'"),
    "04:batch_renorm_backward: np.cov per feature, dgamma split into r and d parts": ("PASS", "visible ok, 8/8 hidden"),
    "04:batch_renorm: running update outside torch.no_grad": ("NAMED",
        "'running_mean, running_std require grad after training steps: ... (updated outside torch.no_grad()) "
        "... Update the buffers under torch.no_grad()'"),
    "04:batch_renorm: eval F.batch_norm with bias and weight swapped": ("NAMED",
        "'BatchRenorm eval | WRONG | gamma and beta are swapped' (eval mode only; training lines ok)"),
    "04:batch_renorm: d left out of the training output": ("NAMED",
        "'read as gamma * (x_hat * r + d) + beta ...: d is off in features 0..4: yours 0, 0, 0, 0, 0, "
        "expected ...': says the output carries no d"),
    "04:batch_renorm: r divided by the running mean": ("NAMED",
        "'r is off in features 1, 2, 3, 4: yours 0.9308, ..., expected 1.5, ... (r before clipping ...)': "
        "locates the wrong term, r (d, buffers and eval ok)"),
    "04:batch_renorm: recursion on channels-last rows, detach, lerp into .data": ("PASS", "visible ok, 8/8 hidden"),
    "04:renorm_schedule: ramp helper called with step and warmup swapped": ("OBSERVED",
        "'rmax starts at 1.286, the paper's at 1; starts moving at step 1 ...; ramps over 5000 steps "
        "(warmup = 5000) ...; ends at 1, the paper's at 3': a correct description, the swap is not named"),
    "04:renorm_schedule: progress taken modulo the ramp length": ("NAMED",
        "'rmax is still moving at step 100000: cap it at the final value' (and the same for dmax): the fix "
        "of the wrap-around"),
}

results = json.loads((HERE / "results-before.json").read_text())
labels = {}
for row in results["rows"]:
    label, note = L[row["id"]]
    if row["auto_label"] != "?":
        assert row["auto_label"] == label, (row["id"], row["auto_label"], label)
    labels[row["id"]] = {"lesson": row["lesson"], "check": row["check"], "correct": row["correct"],
                         "label": label, "note": note}
assert set(labels) == set(L), set(L) ^ set(labels)
out = {
    "results": "results-before.json",
    "commit": results["commit"],
    "checks_at": results["checks_commit"],
    "date": "2026-12-07",
    "labels_by": "the helper that wrote the set, after every entry was frozen (FROZEN.sha256), reading "
                 "each visible message against the entry's cause (tests/unseen/README.md 'Classifying', "
                 "strictly); helpers/checks/ not read",
    "labels": labels,
}
(HERE / "labels-before.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
print(f"{len(labels)} labels written")
