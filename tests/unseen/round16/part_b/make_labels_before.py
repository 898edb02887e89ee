"""Writes labels-before.json: the writer's labels of results-before.json (read after every entry
was frozen; FROZEN.sha256), by the rules of tests/unseen/README.md, strictly."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
S, F, BW, BR, SCH = ("03:scratch_batchnorm: ", "03:fold_batchnorm: ", "04:batch_renorm_backward: ",
                     "04:batch_renorm: ", "04:renorm_schedule: ")
L = {
    S + "track_running_stats=False: eval returns the input": ("NAMED",
        "'eval after step 2: ... the mean used is none of the usual ones ...; the scale is none of the usual "
        "ones ... (it fails only where track_running_stats=False: batch statistics in both modes, no "
        "buffers)': the figures are bare, but the branch (untracked, eval) is located and the rule it breaks "
        "(batch statistics in both modes) is stated"),
    S + "default eps 1e-3 (Keras's epsilon)": ("NAMED",
        "'signature (num_features, eps=0.001, ...); the exercise's: (num_features, eps=1e-05, ...): eps "
        "defaults to 0.001, the exercise's to 1e-05', and 'divides by sqrt(var + e) with e = 0.001, not eps "
        "= 1e-05'"),
    S + "one-value guard for 2-D input only": ("FALSE OK",
        "visible ok, 7/7 hidden: no (1, C, 1) or (1, C, 1, 1) training batch is tried (the reference's "
        "16b lines: did not raise ValueError)"),
    S + "deviations from the mean without the per-channel view": ("NAMED",
        "the learner's own RuntimeError, but with its line (`var = ((x - mean) ** 2).mean(dim=dims)`), "
        "'a broadcasting error', the operands' shapes 'x (8, 4, 5), mean (4,)' and 'it fails only where "
        "the input is 3-D': the line and the unviewed mean are shown (borderline with OBSERVED: the "
        "exception is the learner's own, no fix is said)"),
    S + "running_var made with torch.full((C,), 1)": ("WRONG CAUSE",
        "most lines: the learner's own RuntimeError 'result type Float can't be cast to the desired output "
        "type Long' in the running update line (running_var's int64 dtype is not said); the 'eval, "
        "untrained' line names causes that are not the mistake: 'a step in float32 (.float(), "
        "np.float32), or a term that small left out' (the float32 arithmetic comes from the int64 buffer "
        "promoted to the default dtype, there is no .float(); borderline with OBSERVED)"),
    S + "buffers named moving_mean and moving_variance": ("WRONG CAUSE",
        "'running_mean is not a registered buffer: it does not exist ...' and 'register it in __init__' "
        "point at the missing name, but the bfloat16 line says 'the buffers changed dtype: keep them "
        "float32', which is not the mistake (moving_mean and moving_variance stay float32)"),
    F + "padding_mode not copied": ("NAMED",
        "'the folded conv's padding_mode is zeros, the original's reflect: copy every setting (stride, "
        "padding, dilation, groups, padding_mode)'"),
    F + "parameters filled with copy_ outside torch.no_grad": ("NAMED",
        "the learner's RuntimeError with its copy_ line, and 'a tensor that requires grad is changed in "
        "place: compute a new one, or update a parameter under torch.no_grad()': the fix"),
    F + "eps hard-coded to 1e-5": ("NAMED",
        "'the scale divides by sqrt(running_var + 1e-5): use bn.eps ... (it fails only where bn.eps is "
        "1e-3, not the default 1e-5)'"),
    BW + "np.cov with its default N - 1": ("NAMED",
        "'dx: the difference from the right answer is, feature by feature, a multiple of x_hat: the branch "
        "through sigma_B is off (missing, or scaled wrong)': locates the projection term (the branch through "
        "sigma_B), whose coefficient np.cov scales by N / (N - 1)"),
    BW + "projection averaged per example (axis=1, keepdims)": ("NAMED",
        "'dx mixes the features: dout in feature 0 alone changed others; mean on axis 0': the mean over "
        "axis 1 is the mixing, and the axis to use is said"),
    BW + "feature loop starts at 1": ("NAMED",
        "'dx: only feature 0 is off by the factor(s) 0; the others are right': the untouched first column "
        "is located"),
    BR + "Keras-style training argument": ("OBSERVED",
        "'the eval-mode output: only features 0, 1, 2, 3 are off (rel. error up to 4.0e-01)' (bare "
        "figures), and the learner's own training-guard ValueError raised in eval mode, reported as "
        "'your own test refused an input the exercise accepts': self.training being ignored is not said"),
    BR + "parentheses dropped in the running_std update": ("OBSERVED",
        "'running_std is not PyTorch's; (new - (1 - momentum) * old) / momentum is PyTorch's batch "
        "statistic times -167.5, -52.18, ...': bare per-feature factors, no cause"),
    BR + "running buffers of shape (1, C)": ("WRONG CAUSE",
        "'running_mean has shape (1, 5), expected (5,): an axis of size 1 kept (keepdims=True?)' says the "
        "shape (the keepdims guess is not the cause: the buffers are created as rows), and 'eval mode "
        "changed running_mean: update only in training' names a mistake the module does not make"),
    BR + "torch.lerp with start and end swapped": ("NAMED",
        "'running_mean moved by the fraction 0.99 = 1 - momentum of the way to the batch's value; PyTorch "
        "moves it by 0.01: momentum weighs the old value; here mu <- mu + momentum * (mu_B - mu)': the "
        "swapped weighting the lerp order makes, with the update to write"),
    SCH + "step clamped for the r ramp, then reused for d": ("OBSERVED",
        "'warmup=0, r_steps=10, d_steps=20, ...: step 20: (2.0, 0.5), not (2.0, 1.0)': the values at one "
        "step, no cause"),
    SCH + "zero-length ramp replaced by the paper's length": ("NAMED",
        "'warmup=10, r_steps=0, d_steps=0, ...: step 11: (1.00006, 0.00025), not (3.0, 5.0): (1, 0) up to "
        "warmup; a 0-step ramp jumps to its final value after': locates the zero-length case and states "
        "the rule"),
    S + "F.group_norm with one group per channel, EMA as old + a * (new - old)": ("PASS",
        "visible ok, 7/7 hidden"),
    BW + "centring matrix on the left, einsum projection, ones @ dout": ("PASS", "visible ok, 8/8 hidden"),
    BR + "movedim, std_mean and hypot(std, sqrt(eps))": ("PASS", "visible ok, 8/8 hidden"),
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
