"""Writes labels-before.json and LABELS-before.md from the read labels below and
results-before.json (the message lines are taken from the results, not retyped)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
L = {
 "00:batch_stats: mean taken after centring": ("OBSERVED", "mu: 'off by the constant factor -1.306e-18': an unrecognised factor (mu is about 0), no cause", 0),
 "00:batch_stats: np.cov without rowvar=False": ("NAMED", "one value per example, not per feature; take them over axis 0 (np.cov's orientation)", 1),
 "00:batch_stats: sums of the covariance columns": ("OBSERVED", "bare max rel. error on var and var_unbiased", 0),
 "00:batch_stats: N = 1 falls back to the biased variance": ("NAMED", "did not raise ValueError for N=1", 0),
 "00:batch_stats: mean cast to float32": ("NAMED", "mu's values are float32 numbers: compute in float64", 0),
 "00:batch_stats: ddof passed positionally": ("OBSERVED", "the learner's own TypeError with its line, as it is", 0),
 "00:batch_stats: np.var taken as unbiased": ("NAMED", "var_unbiased is the biased variance; np.var's default ddof=0 is the biased one (and var off by (N-1)/N)", 1),
 "00:batch_stats: sum of squares as the biased variance": ("NAMED", "var off by the constant factor 16 = N (a recognised factor: the division by N is missing)", 0),
 "00:batch_stats: one-pass unbiased variance without N on mu squared": ("OBSERVED", "bare max rel. error on var_unbiased", 0),
 "00:batch_stats: variances returned as a pair": ("NAMED", "a tuple of 2 items; expected 3: (mu, var, var_unbiased)", 0),
 "00:batch_stats: Bessel correction left as a TODO": ("NAMED", "var_unbiased is the biased variance (divides by N), should divide by N-1; same array as var", 0),
 "01:standardize_columns: row means, column variances": ("OBSERVED", "bare max rel. error", 0),
 "01:standardize_columns: batch_stats from lesson 00": ("OBSERVED", "the learner's own NameError, as it is", 0),
 "01:standardize_columns: eps added to the sum of squares": ("NAMED", "the scale divides by sqrt(var + e) with e = 1e-06, not eps: locates eps in the scale (the factor 1/N is not named)", 0),
 "01:standardize_columns: eps replaced by nan_to_num": ("NAMED", "divides by sqrt(v) without eps", 0),
 "01:layer_gradient_norms: cross_entropy arguments swapped": ("OBSERVED", "the learner's own exception (log_softmax not implemented for Long) with its line, as it is", 0),
 "01:layer_gradient_norms: root mean square of the gradient": ("NAMED", "each weight gradient's root mean square: return ||dL/dW||", 0),
 "01:layer_gradient_norms: set comprehension": ("WRONG CAUSE", "'the right values in the wrong places (a reshape or an index is off)': the order is lost because the result is a set; there is no reshape or index to fix", 0),
 "01:activation_percentiles: interpolation weights swapped": ("OBSERVED", "bare max rel. error", 0),
 "01:activation_percentiles: q multiplied by 100": ("OBSERVED", "the learner's own ValueError (percentiles must be in [0, 100]) with its line, as it is", 0),
 "01:activation_percentiles: smallest and largest values dropped": ("OBSERVED", "bare max rel. error", 0),
 "01:activation_percentiles: interpolates in the unsorted values": ("OBSERVED", "bare max rel. error", 0),
 "02:batchnorm_forward: gamma and beta tested for truth": ("NAMED", "an array used as True or False: test an optional argument with `is not None`", 0),
 "02:batchnorm_forward: fused shift computed in the caller's beta": ("NAMED", "changed its input argument #3 (beta) in place", 0),
 "02:batchnorm_forward: divides by gamma": ("OBSERVED", "mean right; 'the scale is none of the usual ones' with per-feature values (gamma**2, not recognised)", 0),
 "02:batchnorm_forward: cache holds beta in gamma's slot": ("NAMED", "staged backward: the first wrong stage is dx_hat (= dout * gamma, the one stage reading the cache's gamma); dx off by per-feature factors", 2),
 "02:batchnorm_backward: gradients divided by the batch size": ("NAMED", "dx, dgamma, dbeta off by 1/(N = 16): averaged over the batch; shared gradients are summed", 0),
 "02:batchnorm_backward: drho summed over the features": ("NAMED", "the learner's ValueError at `ds = -drho / std**2` with drho (16,) vs std (5,): one value per feature has shape (5,), one per example (16, 1): drho has the per-example shape", 0),
 "02:batchnorm_backward: placeholder raise left in": ("NAMED", "not implemented yet: replace the `raise NotImplementedError` line", 0),
 "02:batchnorm_backward_alt: x_hat term outside the scale": ("NAMED", "dx's difference is a multiple of x_hat per feature: the branch through the variance is off (missing, or scaled wrong)", 0),
 "02:batchnorm_backward_alt: mean of dout over every axis": ("NAMED", "dx's difference is a multiple of 1 per feature: the branch through the mean is off (locates the dbeta / N term)", 0),
 "02:batchnorm_backward_alt: gamma folded into the cached inv_std in place": ("NAMED", "changed its input argument #2 (item [2], inv_std) in place", 0),
 "02:spatial_batchnorm_forward: channels-last array reshaped to (C, -1)": ("OBSERVED", "bare max rel. error on out (then the backward's errors)", 0),
 "02:spatial_batchnorm_backward: swapaxes to undo the transpose": ("NAMED", "dx has shape (4, 3, 6, 5), expected (4, 3, 5, 6): the axes are swapped (a transpose?)", 0),
 "02:spatial_batchnorm_backward: dout flattened with W before H": ("OBSERVED", "dx's product with x_hat is not PyTorch's; bare errors on dgamma", 0),
 "02:layernorm_forward: RMS norm instead of layer norm": ("OBSERVED", "'the mean used is none of the usual ones; the scale is none of the usual ones': no cause (the mean is not subtracted)", 0),
 "02:layernorm_forward: zeros made with np.ones": ("OBSERVED", "each feature shifted by its own offset, gamma: a recognised offset, but nothing points at the inner batch norm's beta (a learner would suspect beta)", 0),
 "02:layernorm_backward: dout passed without the transposes": ("OBSERVED", "the ValueError from inside batchnorm_backward_alt: (6, 8) and (8, 6) do not line up; no line of layernorm_backward", 0),
 "02:layernorm_backward: dgamma and dbeta of the inner batch norm": ("NAMED", "dgamma / dbeta have shape (6,), expected (8,): reduce over axis 0, not 1 (leads to the layer norm's own sums)", 0),
}
res = json.loads((HERE / "results-before.json").read_text())
rows = {r["id"]: r for r in res["rows"]}
labels = {}
md = ["# Read labels, part a of the eleventh held-out set (lessons 00, 01, 02), before",
      "",
      f"Measured at `{res['repo']}` (commit {res['commit']}); labels by the writer of the set, "
      "reading each visible message against the entry's cause (tests/unseen/README.md 'Classifying', "
      "strictly), after every entry was written. Auto labels (FALSE OK, CRASH, PASS, FAIL) are the "
      "runner's.", ""]
for rid, r in rows.items():
    if r["auto_label"] != "?":
        label, note = r["auto_label"], ""
        line = "(auto label)"
    else:
        label, note, k = L[rid]
        vl = r["verdict_lines"]
        line = vl[k] if k < len(vl) else (vl[0] if vl else "")
    labels[rid] = {"lesson": r["lesson"], "check": r["check"] if "check" in r else rid.split(":")[1],
                   "correct": r["correct"], "label": label, "note": note}
    md += [f"- `{rid}`: **{label}**" + (f" ({note})" if note else ""),
           f"  - message: `{line[:400]}`" if r["auto_label"] == "?" else "  - " + line]
missing = set(L) - set(rows)
assert not missing, missing
(HERE / "labels-before.json").write_text(json.dumps({
    "results": "results-before.json", "commit": res["commit"], "date": "2026-12-06",
    "labels_by": "the helper that wrote the set (part a), reading each visible message against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")
(HERE / "LABELS-before.md").write_text("\n".join(md) + "\n")
print(len(labels), "labels")
