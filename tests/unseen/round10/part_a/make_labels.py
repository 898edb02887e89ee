"""Writes labels-before.json and LABELS-before.md from results-before.json and
the labels read by hand below (label, index of the deciding message line, note)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
READ = {
    "00:batch_stats: precedence in the squared deviations": ("OBSERVED", 0, "a shape (N, D) for var, no cause (the missing reduction is not named)"),
    "00:batch_stats: Bessel factor rounded to two decimals": ("OBSERVED", 0, "a bare constant factor 1.003, not recognised"),
    "00:batch_stats: shortcut for two examples": ("NAMED", 0, "says var is the unbiased variance at N = 2: the N == 2 branch uses the unbiased formula"),
    "00:batch_stats: one variance for the whole batch": ("OBSERVED", 0, "every value the same figure; no cause"),
    "00:batch_stats: N - 1 examples for the unbiased variance": ("OBSERVED", 0, "bare error figure"),
    "00:batch_stats: mean converted with .item()": ("OBSERVED", 0, "the learner's own exception with its line, nothing added"),
    "00:batch_stats: correlation diagonal": ("OBSERVED", 0, "bare figures (got 1); correlation not named"),
    "00:batch_stats: return inside the column loop": ("OBSERVED", 0, "got 0 at one index; the loop/return not named"),
    "00:batch_stats: mean of the squares divided by N again": ("NAMED", 0, "factor recognised as 1/N"),
    "00:batch_stats: refuses non-float64 input": ("NAMED", 0, "says the learner's own test refused a float32 input the exercise accepts"),
    "00:batch_stats: shifted mean not shifted back": ("OBSERVED", 0, "bare error figure on mu"),
    "00:batch_stats: Bessel factor on the mean of squares only": ("OBSERVED", 0, "bare error figure"),
    "01:standardize_columns: variance of the rows": ("OBSERVED", 0, "bare error figure"),
    "01:standardize_columns: first row of the covariance matrix": ("OBSERVED", 0, "NaN with candidates (division by zero, square root of a negative): the mechanism, not the cause (covariances instead of variances)"),
    "01:standardize_columns: variance about the grand mean": ("OBSERVED", 0, "a per-feature factor, not recognised"),
    "01:layer_gradient_norms: gradients computed on a deep copy": ("NAMED", 0, "says a model's deepcopy does not copy .grad"),
    "01:layer_gradient_norms: only the first layer zeroed": ("OBSERVED", 0, "a second call differs; zero_grad / accumulation not named"),
    "01:layer_gradient_norms: mean of per-example gradient norms": ("OBSERVED", 0, "the learner's own exception (batch of one through batch norm) explained; the per-example averaging is not named, and model.eval() would silence it"),
    "01:layer_gradient_norms: bias gradients instead of weight gradients": ("OBSERVED", 0, "the learner's own exception explained (the layer has no bias); weight vs bias not named"),
    "01:activation_percentiles: first unit only": ("OBSERVED", 0, "bare error figure"),
    "01:activation_percentiles: tensor branch left as a TODO": ("NAMED", 0, "points at the raise NotImplementedError line"),
    "01:activation_percentiles: q deduplicated with a set": ("OBSERVED", 0, "right values in the wrong places (the order); the candidates 'a reshape or an index' loosely cover a permutation, set() not named"),
    "01:activation_percentiles: keepdims=True": ("NAMED", 0, "axes of size 1 added, return shape (3,)"),
    "01:activation_percentiles: centred on the mean": ("OBSERVED", 0, "a constant offset whose value (the mean) is not recognised"),
    "02:batchnorm_forward: gamma read as one scale": ("OBSERVED", 0, "only features 1.. are off; gamma not named"),
    "02:batchnorm_forward: einsum keeps the batch index": ("NAMED", 0, "a statistic of length N is one per example: reduce over the axis you mean"),
    "02:batchnorm_forward: centred array squared in place": ("OBSERVED", 0, "bare error figure"),
    "02:batchnorm_backward: direct branch multiplied by s": ("NAMED", 2, "first wrong stage dxc"),
    "02:batchnorm_backward: mean branch over N - 1": ("NAMED", 0, "the branch through the mean is off (scaled wrong)"),
    "02:batchnorm_backward: gamma averaged over the features": ("NAMED", 2, "first wrong stage dx_hat"),
    "02:batchnorm_backward: cached std read as the variance": ("NAMED", 2, "xc (recovered with the wrong s) is not x - mu: locates the misread s"),
    "02:batchnorm_backward_alt: dout centred in place": ("NAMED", 0, "changed its input argument #1 in place"),
    "02:batchnorm_backward_alt: feature loop stops one early": ("NAMED", 0, "only the last feature is off by the factor 0: the loop bound"),
    "02:spatial_batchnorm_forward: statistics per channel and width": ("NAMED", 0, "statistics over axes (0, 2) instead of (0, 2, 3)"),
    "02:spatial_batchnorm_backward: dx reshaped as (N, W, H, C)": ("NAMED", 0, "right values in the wrong places, a reshape is off"),
    "02:spatial_batchnorm_backward: dgamma and dbeta as (1, C, 1, 1)": ("NAMED", 0, "shape (1, C, 1, 1), return (C,)"),
    "02:layernorm_forward: statistics of the whole batch": ("NAMED", 0, "statistics over axes (0, 1) instead of (1,)"),
    "02:layernorm_backward: x_hat taken from batch norm's cache": ("OBSERVED", 0, "the learner's own broadcasting error with a (D, N) array; the transposed x_hat from batch norm's cache is not named (no line quoted)"),
}
rows = json.loads((HERE / "results-before.json").read_text())["rows"]
labels, md = {}, ["# Labels of the tenth set, part a (lessons 00-02), measured at /work/wt-r8base (b7b8629)", "",
                  "Read by hand, message against cause (round 3's rules); auto labels (FALSE OK, PASS) need no reading.", ""]
for r in rows:
    rid = r["id"]
    if r["auto_label"] != "?":
        label, line, note = r["auto_label"], "", "auto: " + ("visible check passes" if r["visible_ok"] else "full hidden marks")
        if r["correct"]:
            note = f"auto: visible ok, {r['hidden_points']:g}/{r['hidden_total']:g}"
        elif r["auto_label"] == "FALSE OK":
            note = f"auto: visible check passes (hidden {r['hidden_points']:g}/{r['hidden_total']:g})"
    else:
        label, k, note = READ[rid]
        line = r["verdict_lines"][k]
    labels[rid] = {"lesson": rid[:2], "label": label, "note": note, "message": line}
    md += [f"- **{label}** `{rid}`: {note}" + (f"\n  > {line[:400]}" if line else "")]
missing = [rid for rid in READ if rid not in labels]
assert not missing, missing
(HERE / "labels-before.json").write_text(json.dumps({"repo": "/work/wt-r8base", "commit": "b7b8629", "labels": labels}, indent=1) + "\n")
(HERE / "LABELS-before.md").write_text("\n".join(md) + "\n")
print(len(labels))
