"""Writes labels-before.json: the writer's labels of results-before.json (read after every entry
was frozen; FROZEN.sha256), by the rules of tests/unseen/README.md, strictly."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
S, F, BW, BR, SCH = ("03:scratch_batchnorm: ", "03:fold_batchnorm: ", "04:batch_renorm_backward: ",
                     "04:batch_renorm: ", "04:renorm_schedule: ")
L = {
    S + "values per channel counted as a tensor": ("WRONG CAUSE",
        "'running_var = 0.9·old + 0.1·batch; PyTorch's: 0.9·old + 0.1·batch ...: the unbiased factor uses N, "
        "but n counts every value of a channel: N*L or N*H*W' (n is right; the factor is rounded to "
        "float32) and, for momentum=None, 'momentum is applied to the old value (Keras/CS231n style)': "
        "causes the module does not have"),
    S + "Bessel factor without parentheses": ("OBSERVED",
        "'running_var = 0.9·old + 0.08333·batch + -0.1; PyTorch's: 0.9·old + 0.1·batch': the fitted update "
        "describes the difference (a constant -momentum, a factor (n-1)/n) but names no cause"),
    S + "F.batch_norm with eps in the momentum slot": ("NAMED",
        "'running_mean moved by the fraction 1e-05 of the way to the batch's value; PyTorch moves it by 0.1' "
        "and, for eps=0.001, 'the scale divides by sqrt(var + 1e-5): the module's eps (0.001) is not used': "
        "the momentum actually used and the unused eps point at the momentum argument (borderline with "
        "OBSERVED: the swap into F.batch_norm's momentum slot is not said)"),
    S + "4-D channels-last view by permute(0, 3, 2, 1)": ("NAMED",
        "'the right values in the wrong places: ... axes moved to (0, 1, 3, 2) (a reshape without the "
        "transpose it needs, or a transpose not undone?) ... it fails only where the input is 4-D': H and W "
        "exchanged by the reshape back, 4-D only"),
    S + "reset_running_stats assigns num_batches_tracked = 0": ("NAMED",
        "the learner's own TypeError 'cannot assign 'int' as buffer 'num_batches_tracked'' with its line "
        "`self.num_batches_tracked = 0` (reset_running_stats): the line and the reason are shown "
        "(borderline with OBSERVED: the exception is the learner's own, no fix is said)"),
    S + "momentum=None merged as StandardScaler.partial_fit": ("NAMED",
        "'eval after step 2: ... the mean used is none of the usual ones ...; the scale is none of the usual "
        "ones ... (it fails only where momentum=None: a cumulative average, 1/k at the k-th batch)': the "
        "figures are bare, but the branch (momentum=None) is located and torch's rule (a plain 1/k average) "
        "is stated (same reading as round 16's untracked-eval entry; borderline with OBSERVED)"),
    F + "parameters in the order (bn, layer)": ("NAMED",
        "'signature (bn, layer); the exercise's: (layer, bn)'"),
    F + "NotImplementedError for other layers": ("FALSE OK",
        "visible ok, 7/7 hidden: no layer other than Linear/Conv2d is tried (the reference's 17b lines: "
        "raised NotImplementedError, expected TypeError)"),
    F + "Conv2d rebuilt with padding='same'": ("NAMED",
        "'the folded conv's padding is same, the original's (3, 3): copy every setting (stride, padding, "
        "...)' beside the learner's own ValueError for strided convolutions with its line"),
    BW + "staged: x - mu recovered as x_hat / std": ("NAMED",
        "'a multiple of x_hat: the branch through sigma_B is off (missing, or scaled wrong)': the stage of "
        "the staged backward (the variance branch, where x - mu enters) is located"),
    BW + "factored form divided by N, then multiplied by std": ("NAMED",
        "'each feature is off by its own factor, (sigma_B)^2': the recognised factor says dx is std**2 off "
        "(multiplied where it should divide)"),
    BW + "staged: dmu as a mean, then divided by N again": ("NAMED",
        "'a multiple of 1: the branch through the batch mean is off (missing, or scaled wrong)': the mean "
        "stage is located"),
    BR + "trailing comma makes dmax a tuple": ("NAMED",
        "'module.dmax is (0.0,), expected 0.0: store the value passed in ... as a plain attribute'"),
    BR + "running_mean moved towards mean - running_std (typo)": ("OBSERVED",
        "'running_mean is not PyTorch's; (new - (1 - momentum) * old) / momentum is PyTorch's batch statistic "
        "times 1.499, 1.291, 0.528, ...': a per-feature factor whose value is not recognised, no cause"),
    BR + "eval through F.batch_norm with its default eps": ("NAMED",
        "'eval: ... the scale divides by sqrt(v + eps), v = running_std ** 2': eps added again in eval mode"),
    BR + "clip bounds made with torch.tensor (float32)": ("OBSERVED",
        "'the output: only features 0, 2 are off (rel. error up to 1.1e-08); the others are right': a bare "
        "error figure and the features, no cause (the float32 bounds / clipped features are not said)"),
    SCH + "zero-length ramp through np.divide's inf": ("NAMED",
        "'warmup=10, r_steps=0, d_steps=0, ...: step 10: (nan, nan), not (1.0, 0.0): (1, 0) up to warmup; a "
        "0-step ramp jumps to its final value after': the zero-length case at step == warmup and the rule"),
    SCH + "late-binding lambdas: both ramps over d_steps": ("NAMED",
        "'rmax ramps over 20000 steps (d_steps = 20000), the paper's over 35000'"),
    S + "F.instance_norm on (1, C, n) rows, torch.cov diagonal, add_(alpha=)": ("PASS", "visible ok, 7/7 hidden"),
    F + "F.batch_norm on the weight rows minus its value at zero, deepcopy": ("PASS", "visible ok, 7/7 hidden"),
    BR + "log-space clip of r, channel rows, addcmul": ("PASS", "visible ok, 8/8 hidden"),
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
