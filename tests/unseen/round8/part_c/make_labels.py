"""Writes labels-before.json and LABELS-before.md from the labels below (read by the
helper that wrote the set, each message against the entry's cause, round 3's strict rules)
and results-before.json (auto labels, messages)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
L = {
 # lesson 07
 "07:noisy_batchnorm: scale centred on 1": ("NAMED", "the scale 'must be uniform in [1, 3]' with its values 0.009..1.99: names the scale's range"),
 "07:noisy_batchnorm: noise folded into gamma and beta, beta not scaled": ("OBSERVED", "per-feature offsets (1.582, 0.1786, 0, ...) not recognised as beta * (scale - 1)"),
 "07:noisy_batchnorm: noise sized by the batch": ("NAMED", "the learner's broadcasting error, with the hint that one value per feature has shape (5,) and one per example (16, 1): the noise has the examples' size"),
 "07:noisy_batchnorm: one uniform draw for both shift and scale": ("NAMED", "'the shift and the scale are correlated (r = 1.00) ... draw each from its own torch.rand'"),
 "07:noisy_batchnorm: grad mode used as the training flag": ("NAMED", "'the noise is applied in eval mode: no noise at inference' locates the mode test (the last_noise line is the same test's other side)"),
 "07:noisy_batchnorm: drawn shift stored in self.shift": ("OBSERVED", "the shift's spread is too small (std 0.358 vs 0.866): a correct description, no cause (the draw formula itself is right; self.shift is overwritten)"),
 "07:noisy_batchnorm: last_noise kept from the first call": ("WRONG CAUSE", "'the same noise at two steps: draw a new shift and scale at every training-mode call (in forward, not in __init__)': the noise IS drawn at every call; the stale thing is last_noise"),
 "07:gradient_change: spectral norm as the distance": ("OBSERVED", "locates the distance (cosine right), but 'the distance is the 2-norm of G - G'' is what the learner believes linalg.norm(., 2) computes: the matrix 2-norm (spectral) vs the Frobenius norm is not named"),
 "07:gradient_change: softmax before cross_entropy": ("OBSERVED", "'both differ: G or G' is off' and bare values"),
 "07:gradient_change: Adam step of the earlier layers": ("OBSERVED", "'both differ: G or G' is off' and bare values"),
 "07:gradient_change: eval mode left as NotImplementedError": ("NAMED", "'not implemented yet: replace the raise NotImplementedError line'"),
 "07:gradient_change: layers taken from model.modules()": ("OBSERVED", "'both differ: G or G' is off' and bare values"),
 "07:gradient_change: results rounded to 4 decimals": ("WRONG CAUSE", "'both differ: G or G' is off': the gradients are right, the results are rounded (0.3933 vs 0.393336)"),
 "07:landscape_probe: step_sizes consumed with pop": ("OBSERVED", "'return (losses, grad_changes): 0 numbers in all': the empty result described, its cause (the caller's list emptied by pop) not named"),
 "07:landscape_probe: .item without the call": ("OBSERVED", "'return (losses, grad_changes): 6 numbers in all': says nothing of the bound methods"),
 "07:landscape_probe: copy cached between calls": ("WRONG CAUSE", "'the probe ran in training mode: keep the model's mode (eval here)': the learner changes no mode; the probe used the first model's cached copy"),
 "07:landscape_probe: results as dicts keyed by step size": ("OBSERVED", "'return (losses, grad_changes): 6 numbers in all': the dicts not named"),
 # lesson 08
 "08:sync_batchnorm_forward: variance pooled over the channels": ("NAMED", "'the scale divides by one number for every column, 5.191'"),
 "08:sync_batchnorm_forward: Chan merge with var_mean's unbiased default": ("WRONG CAUSE", "the first line ('a rank of 1 example has n_r - 1 = 0') points near the NaN, but the second, 'with momentum=0 the running statistics moved: 0 is a momentum', names a cause that is not there (NaN * 0 is NaN)"),
 "08:sync_batchnorm_forward: eps as a floor on the variance": ("NAMED", "'the scale divides by sqrt(v) without eps': the fix (add eps) is the real one"),
 "08:sync_batchnorm_forward: running_mean updated with the global sum": ("OBSERVED", "running_mean's batch statistic 'off by the constant factor 12': 12 = N (the sum, not the mean) not recognised"),
 "08:sync_batchnorm_forward: count from torch.tensor(x.shape)": ("OBSERVED", "the learner's own broadcasting error at the mean's line with a generic 'print the shapes'"),
 "08:sync_batchnorm_backward: mean(dout) in the x_hat term": ("NAMED", "'in dx, mean(dy) is right; mean(dy * x_hat) is none of the usual': locates the x_hat term's mean"),
 "08:sync_batchnorm_backward: mean(dout) term left out of dx": ("NAMED", "'in dx, mean(dy) is missing'"),
 "08:sync_batchnorm_backward: cached x_hat scaled in place": ("OBSERVED", "dgamma: bare max rel. error; the in-place change of x_hat not named"),
 "08:sync_batchnorm_backward: parameter gradients left as zeros (TODO)": ("NAMED", "'dgamma: every value is 0', 'dbeta: every value is 0': the learner finds the TODO"),
 "08:sync_bn_layer: eps and momentum swapped in the signature": ("OBSERVED", "saved invstd: bare max rel. error 1.1e-2; the swapped arguments not named"),
 "08:sync_bn_layer: section 2 reused, running statistics updated again": ("OBSERVED", "'moved by the fraction 0.51 ...; PyTorch moves it by 0.3': 0.51 = 1 - 0.7^2 (two steps) not recognised"),
 "08:sync_bn_layer: the global sum saved as the mean": ("OBSERVED", "'the saved mean: off by the constant factor 12': 12 = N (the sum) not recognised"),
 "08:sync_bn_layer: statistics treated as constants in the backward": ("OBSERVED", "backward dx: bare max rel. error"),
 "08:merge_running_stats: between-rank term weighted by the total count": ("OBSERVED", "running_var off by per-feature factors, not recognised"),
 "08:merge_running_stats: precedence: / total - 1": ("OBSERVED", "running_var off by per-feature factors, not recognised"),
 "08:merge_running_stats: BatchNorm3d and SyncBatchNorm left as NotImplementedError": ("NAMED", "'not implemented yet: replace the raise NotImplementedError line'"),
}
res = json.loads((HERE / "results-before.json").read_text())
rows = res["rows"]
labels, md = {}, {"07": [], "08": []}
for r in rows:
    if r["auto_label"] == "?":
        label, note = L[r["id"]]
    else:
        label = r["auto_label"]
        note = {"PASS": "visible ok, full hidden marks", "FALSE OK": "visible check passes and full hidden marks"}.get(label, "")
        if r["id"] in L:
            raise SystemExit(f"{r['id']}: labelled but auto {label}")
    labels[r["id"]] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"], "label": label, "note": note}
    lines = " // ".join(v for v in r["verdict_lines"] if "| ok" not in v) or "(none: the visible check passes)"
    lines = lines.replace("|", "\\|")
    cause = "correct alternative" if r["correct"] else r["cause"]
    md[r["lesson"]].append(f"| {r['name']} ({r['check']}) | **{label}** | {cause} | {lines} | {note} |")
missing = set(L) - set(labels)
assert not missing, missing
(HERE / "labels-before.json").write_text(json.dumps({
    "results": "results-before.json", "commit": "b7b8629", "checks_at": "b7b8629", "date": "2026-12-06",
    "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")
out = ["# Labels of the eighth held-out set, part c, at b7b8629 (/work/wt-r8base)", "",
       "Each wrong entry's label (tests/unseen/README.md, 'Classifying', strictly) and the message line(s) "
       "that decided it; CRASH, FALSE OK, PASS, FAIL are the auto labels of `results-before.json`. "
       "Shares: `run.py --summary results-before.json --labels labels-before.json`.", ""]
for lesson in ("07", "08"):
    out += [f"## Lesson {lesson}", "", "| entry | label | cause | deciding message line(s) | why |", "|---|---|---|---|---|"]
    out += md[lesson] + [""]
(HERE / "LABELS-before.md").write_text("\n".join(out))
print("ok", len(labels))
