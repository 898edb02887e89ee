"""Write labels-before.json and LABELS-before.md from results-before.json and the
labels read below (label, note, and a prefix of the message line that decided it)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
L = {
 "00:batch_stats: guard returns the ValueError": ("NAMED", "the N < 2 guard did not raise: points to the guard", "batch_stats batch of one"),
 "00:batch_stats: deviations from the first example": ("OBSERVED", "bare max rel. error on var and var_unbiased", "batch_stats var "),
 "00:batch_stats: statistics of every batch seen so far": ("OBSERVED", "bare errors, the learner's own concatenate ValueError; the state between calls not named", "batch_stats again, new values mu"),
 "00:batch_stats: ddof taken as the divisor": ("NAMED", "var_unbiased recognised as var times N (no division by N - 1)", "batch_stats var_unbiased"),
 "00:batch_stats: variance loop stops one example early": ("OBSERVED", "bare max rel. error", "batch_stats var "),
 "00:batch_stats: guard refuses a single feature": ("NAMED", "your own test refused an input the exercise accepts, shape (9, 1), the guard line shown", "batch_stats D=1"),
 "00:batch_stats: float32 branch left as NotImplementedError": ("NAMED", "the NotImplementedError line, on the float32 input", "batch_stats float32"),
 "00:batch_stats: unbiased variance left as Ellipsis": ("NAMED", "var_unbiased is an ellipsis", "batch_stats var_unbiased"),
 "00:batch_stats: first feature left out": ("OBSERVED", "shapes (4,) vs (5,) only; which feature is missing and why is not said", "batch_stats mu"),
 "00:batch_stats: biased variance over N + 1": ("NAMED", "factor N/(N+1) recognised", "batch_stats var "),
 "00:batch_stats: astype without a copy, centred in place": ("NAMED", "input changed in place, fix x = x - mu applies to the learner's x -= mu", "batch_stats "),
 "00:batch_stats: mean of the two halves' means": ("OBSERVED", "bare max rel. error on mu (D=1, zeros)", "batch_stats D=1 mu"),
 "00:batch_stats: unbiased variance divides var by N - 1": ("NAMED", "factor 1/N recognised: a factor N missing", "batch_stats var_unbiased"),
 "00:batch_stats: sum accumulated into the first row": ("NAMED", "input changed in place: compute new arrays instead of writing into the caller's (mu += row writes into x[0])", "batch_stats "),
 "01:standardize_columns: eps passed positionally into momentum": ("NAMED", "the eps argument is ignored", "standardize_columns eps=0.01"),
 "01:standardize_columns: F.batch_norm left in evaluation mode": ("OBSERVED", "the learner's own RuntimeError as it is", "standardize_columns "),
 "01:standardize_columns: multiplies by the standard deviation": ("OBSERVED", "per-feature factors not recognised (they are var + eps)", "standardize_columns "),
 "01:standardize_columns: output renormalised to variance 1": ("OBSERVED", "correct description (scale sqrt(v) without eps) but the learner's code has + eps: the renormalisation that cancels it is not named", "standardize_columns "),
 "01:standardize_columns: eps parameter renamed epsilon": ("OBSERVED", "the learner's own TypeError as it is", "standardize_columns "),
 "01:standardize_columns: scale from the mean of squares": ("OBSERVED", "per-feature factors not recognised", "standardize_columns "),
 "01:layer_gradient_norms: L1 norm of the gradient": ("OBSERVED", "bare max rel. error", "layer_gradient_norms "),
 "01:layer_gradient_norms: targets cast to float": ("WRONG CAUSE", "the hint blames float32 and float64 tensors meeting (keep the input's dtype); the targets must be integer class indices", "layer_gradient_norms "),
 "01:layer_gradient_norms: list kept between calls": ("WRONG CAUSE", "blames gradient accumulation (call model.zero_grad()), which the learner does; the returned list grows; also prints 'nanx the first'", "layer_gradient_norms "),
 "01:layer_gradient_norms: every other module taken as a Linear": ("OBSERVED", "the learner's own AttributeError as it is", "layer_gradient_norms "),
 "01:layer_gradient_norms: norm divided by the batch size": ("NAMED", "factor 1/N recognised", "layer_gradient_norms "),
 "01:activation_percentiles: sorted largest first": ("OBSERVED", "right values in the wrong places, candidates 'a reshape or an index'", "activation_percentiles q=3 values"),
 "01:activation_percentiles: percentiles read from a histogram": ("OBSERVED", "bare max rel. error", "activation_percentiles q=3 values"),
 "01:activation_percentiles: percentiles of the per-unit means": ("OBSERVED", "bare max rel. error", "activation_percentiles q=3 values"),
 "02:batchnorm_forward: normalises with a running average": ("OBSERVED", "mean and scale 'none of the usual ones'", "batchnorm_forward out"),
 "02:batchnorm_forward: math.sqrt on an array": ("OBSERVED", "the learner's own TypeError as it is", "batchnorm_forward "),
 "02:batchnorm_backward: dmu as a mean, divided by N again": ("NAMED", "branch through the mean; first wrong stage dmu", "batchnorm_backward stages"),
 "02:batchnorm_backward: variance branch not divided by N": ("NAMED", "branch through the variance; first wrong stage dxc (where the variance branch is added)", "batchnorm_backward stages"),
 "02:batchnorm_backward: cache unpacked into three names": ("NAMED", "more or fewer names than values, the unpacking line shown", "batchnorm_backward "),
 "02:batchnorm_backward: direct branch scaled in place in dx_hat": ("NAMED", "first wrong stage dx_hat (it is scaled in place there)", "batchnorm_backward stages"),
 "02:batchnorm_backward: mean stage reads dx_hat": ("NAMED", "branch through the mean; first wrong stage dmu", "batchnorm_backward stages"),
 "02:batchnorm_backward_alt: dbeta floor-divided by N": ("NAMED", "the mean branch (the dbeta / N term) is off", "batchnorm_backward_alt dx"),
 "02:batchnorm_backward_alt: x_hat term without gamma": ("NAMED", "the variance branch (the x_hat term) is off", "batchnorm_backward_alt dx"),
 "02:spatial_batchnorm_backward: dx left channels last": ("NAMED", "axes swapped, a transpose", "spatial_batchnorm_backward dx"),
 "02:spatial_batchnorm_backward: cache wrapped by the forward, not unwrapped": ("OBSERVED", "unpacking ValueError inside batchnorm_backward_alt with a generic hint; the wrapped cache is not named", "spatial_batchnorm_backward "),
 "02:spatial_batchnorm_forward: per-position variances averaged": ("OBSERVED", "scale 'none of the usual ones' (0.88..)", "spatial_batchnorm_forward out"),
 "02:spatial_batchnorm_backward: dout transposed but not reshaped": ("OBSERVED", "the einsum ValueError with a generic broadcasting hint", "spatial_batchnorm_backward "),
 "02:layernorm_forward: cache holds the transposed x_hat": ("OBSERVED", "broadcasting error (6, 8) vs (8, 6) in layernorm_backward with the generic per-feature/per-example shapes; the forward's cache is not named", "layernorm_backward "),
}
res = json.loads((HERE / "results-before.json").read_text())
labels, md = {}, ["# Labels, before (results-before.json, /work/wt-r7base = main 6d208b7)", "",
                  "Per wrong entry: label, why, and the message line that decided it. Correct alternatives: PASS / FAIL (auto).", ""]
for r in res["rows"]:
    rid = r["id"]
    if r["correct"] or r["auto_label"] in ("FALSE OK", "CRASH", "NOT RUN"):
        lab, note = r["auto_label"], ("auto" if r["correct"] else
                                     f"auto: visible_ok={r['visible_ok']}, hidden {r['hidden_points']:g}/{r['hidden_total']:g}")
        line = ""
        if r["auto_label"] == "FALSE OK":
            fails = [v for v in r["verdict_lines"] if "WRONG" in v or "ERROR" in v]
            line = fails[0] if fails else "(every visible line ok)"
            if r["hidden_errors"]:
                line += " | hidden: " + "; ".join(f"{k}: {str(v)[:200]}" for k, v in r["hidden_errors"].items())
    else:
        lab, note, prefix = L[rid]
        cand = [v for v in r["verdict_lines"] if v.startswith(prefix)] or r["verdict_lines"]
        line = cand[0] if cand else ""
    labels[rid] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"], "label": lab, "note": note}
    md.append(f"- `{rid}`: **{lab}** ({note})" + (f"\n  > {line.strip()}" if line else ""))
missing = set(L) - set(labels)
assert not missing, missing
(HERE / "labels-before.json").write_text(json.dumps({
    "results": "results-before.json", "commit": "6d208b7", "checks_at": "6d208b7", "date": "2026-12-06",
    "labels_by": "the helper that wrote the set (part a), reading each visible message against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")
(HERE / "LABELS-before.md").write_text("\n".join(md) + "\n")
