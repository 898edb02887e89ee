"""Write labels-after.json and LABELS-after.md from results-after.json (/work/wt-r7base at
6d208b7, the lead's changes) and the labels read by hand below (label, and the message line(s)
that decided it). A copy of make_labels.py with the after readings; same format."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
N, O, WC, FO = "NAMED", "OBSERVED", "WRONG CAUSE", "FALSE OK"
SAME = " (message as before: label as before)"

READ = {
    "00:batch_stats: Welford update with the old deviation squared": (O, "bare max rel. error on var and var_unbiased ('got 620.003, expected 1.46854')" + SAME),
    "00:batch_stats: pairwise differences not halved": (O, "'var: it is the expected var_unbiased times 1.875 = 2·((N-1)/N with N = 16)' and 'var_unbiased: it is the expected var times 2.133 = 2·(N/(N-1) = 16/15)': a factor 2 shown, framed against the other output; no cause" + SAME),
    "00:batch_stats: warns instead of raising": (N, "'did not raise ValueError: with N=1 the unbiased variance divides by N-1 = 0' (now also 'empty batch: did not raise ValueError: N=0 ...')"),
    "00:batch_stats: 10% trimmed mean": (O, "bare error on mu ('got 10.8978, expected 11.5684') and 'the deviations are taken from your mu, which is wrong: fix mu': mu located as its own output, no cause" + SAME),
    "00:batch_stats: memoised by batch shape": (O, "'batch_stats again, new values mu | WRONG | max rel. error 5.0e-01 ...: got 100.15, expected 199.301' (every other row ok): the case 'called again with new values' shows the difference, a bare figure; that a result is stored and returned again is not said (borderline: the case name points at state between calls)"),
    "00:batch_stats: torch.var's default correction for the biased variance": (N, "'var: this is the unbiased variance (divides by N-1); `var` is the biased one (np.var's default ddof=0)'" + SAME),
    "00:batch_stats: mean rounded to 4 decimals": (O, "bare error on mu ('got 11.5684, expected 11.5684407912749'): the rounding shows in the digits but is not said" + SAME),
    "00:batch_stats: Bessel factor applied in place to var": (N, "'var is the same array as var_unbiased: return a copy': the aliasing named, with the fix"),
    "00:batch_stats: np.float (removed from NumPy)": (N, "the learner's AttributeError on the line `n = np.float(x.shape[0])`, the mistake itself, with NumPy's 'module numpy has no attribute float'" + SAME),
    "00:batch_stats: Bessel factor square-rooted": (O, "'var_unbiased: off by the constant factor 0.9682 everywhere' (= sqrt((N-1)/N), N = 16) not recognised" + SAME),
    "00:batch_stats: mean squared successive difference": (O, "bare max rel. error on var and var_unbiased" + SAME),
    "00:batch_stats: non-zero entries counted as N": (O, "'batch_stats zeros mu | WRONG | max rel. error 2.0e-01 ...: got 1.6, expected 1.14286': the case with exact zeros shows the difference, a bare figure; that N counts the non-zero entries is not said"),
    "00:batch_stats: guard's message formatting fails": (O, "'raised TypeError but ValueError was expected': the learner's own TypeError reported; that the message formatting raises it is not said" + SAME),
    "00:batch_stats: running-average update copied": (O, "'mu: off by the constant factor 0.1 everywhere' and bare errors on the variances: the momentum update not named" + SAME),
    "00:batch_stats: squeezed then made 2-D": (O, "'batch_stats D=1 mu | WRONG | mu has shape (9,), expected (1,)': the shape difference with one feature described, no cause (the former 'reduce over axis=0' advice is gone)"),
    "01:standardize_columns: eps subtracted": (N, "'the scale divides by sqrt(var + e) with e = -1e-05 = -(eps)'" + SAME),
    "01:standardize_columns: trailing comma returns a tuple": (N, "'the output is a tuple of 1 items, expected one array of shape (10, 4)'" + SAME),
    "01:standardize_columns: other eps not implemented": (N, "'not implemented yet: replace the `raise NotImplementedError` line with your code'" + SAME),
    "01:standardize_columns: column loop bounded by the number of rows": (O, "the learner's own IndexError on the line `col = X[:, j]` ('an index past the end (from 0; -1 last)'): the loop bound range(X.shape[0]) on the line above is not named (gloss shortened; label as before)"),
    "01:layer_gradient_norms: spectral norm (ord=2)": (O, "bare max rel. error ('got 0.057108, expected 0.0626172')"),
    "01:layer_gradient_norms: label smoothing": (O, "bare max rel. error ('got 0.208386, expected 0.224635')"),
    "01:layer_gradient_norms: binary cross-entropy copied from fit_logistic": (O, "bare max rel. error ('got 0.101657, expected 0.224635')"),
    "01:layer_gradient_norms: input cast to float32": (N, "the learner's RuntimeError on the line `F.cross_entropy(model(x.float()), y)`, the mistake itself, with 'tensors of two dtypes meet (float32 and float64?): keep the input's' (as before, shortened)"),
    "01:layer_gradient_norms: every parameter named weight": (N, "'every parameter named weight, batch norm's too: take each nn.Linear's'"),
    "01:layer_gradient_norms: dict by module name": (N, "'returned a dict: return one float per nn.Linear (.item() gives a tensor's number)'"),
    "01:activation_percentiles: statistics.quantiles, exclusive method": (N, "'these are numpy.percentile's values with method='weibull'; use its default, linear interpolation' (weibull = the exclusive method)" + SAME),
    "01:activation_percentiles: interpolation position q/100 * N": (O, "bare max rel. error ('got 3.0787, expected 3.06495'); the former 'no interpolation' hint is gone"),
    "01:activation_percentiles: zeros excluded": (O, "'activation_percentiles values with ties | WRONG | max rel. error 1.6e-02 ...: got 1.1, expected 1.05': a bare figure on the case with ties; the zeros left out are not named (the former 'no interpolation' hint is gone)"),
    "01:activation_percentiles: dict keyed by q": (N, "'returned a dict: return a NumPy array (np.percentile gives one)'" + SAME),
    "02:batchnorm_forward: eps keyword ignored": (N, "'ignores its eps argument (a fixed 1e-5?): use the eps passed in'" + SAME),
    "02:batchnorm_forward: gamma and beta swapped": (N, "'gamma and beta are swapped: out = gamma * x_hat + beta'" + SAME),
    "02:batchnorm_forward: cache holds the std without eps": (N, "'batchnorm_backward cache: your forward pass's cache holds quantities made with no eps'" + SAME),
    "02:batchnorm_backward: sqrt stage without the 1/2": (N, "'the first wrong stage is dvar (per autograd)' with 'the branch through the variance is off'"),
    "02:batchnorm_backward: N taken as the cache's length": (N, "'the first wrong stage is dxc (per autograd)': the stage that uses n, located"),
    "02:batchnorm_backward: xc recovered in place in the cached x_hat": (N, "'changed its input argument #2 (item [0]) in place: compute new arrays instead of writing into the caller's' (#2 item 0 is the cached x_hat)" + SAME),
    "02:batchnorm_backward: drho without gamma": (N, "'the first wrong stage is drho (per autograd)'"),
    "02:batchnorm_backward: precedence in dvar": (N, "'the first wrong stage is dvar (per autograd)'"),
    "02:batchnorm_backward_alt: dbeta divided by N in place": (N, "'dbeta: off by the constant factor 0.0625 = 1/(N = 16) everywhere: averaged over the batch; shared gradients are summed'"),
    "02:batchnorm_backward_alt: inverse of the root of the std": (N, "'dx: each feature is off by its own factor, sqrt(sigma)': the 1/sqrt(std) factor named" + SAME),
    "02:batchnorm_backward_alt: dgamma as dout.T @ x_hat": (N, "the learner's broadcasting ValueError on the dx line, explained: 'an array of shape (5, 5) does not line up with it ... one value per feature needs the shape (5,)': names dgamma's (D, D) shape (borderline)" + SAME),
    "02:spatial_batchnorm_forward: H and W swapped in the transpose": (O, "'out: the right values in the wrong places: ... axes moved to (0, 1, 3, 2) (a reshape without the transpose it needs, or a transpose not undone?)': H and W exchanged, described; the cause given as candidates" + SAME),
    "02:spatial_batchnorm_forward: affine applied outside, cache has gamma = 1": (WC, "'spatial_batchnorm_backward dx: dx misses gamma: the gradient reaching x_hat is dout * gamma': points at the backward's formula (which is right); the forward's cache holding gamma = 1 is the slip" + SAME),
    "02:layernorm_forward: ones and zeros sized by the features": (O, "the learner's broadcasting ValueError, explained ('(8, 6) is x transposed: 8 values ... need the shape (8, 1)'): that ones and zeros need length N is not said" + SAME),
    "02:layernorm_backward: whole layer-norm cache passed on": (O, "the learner's ValueError 'not enough values to unpack (expected 4, got 3)' with the gloss '(more or fewer names than values (a tuple returned?))': the learner's own exception with a generic gloss; the wrong cache passed on is not named (gloss shortened; label as before)"),
}


def main():
    res = json.loads((HERE / "results-after.json").read_text())
    labels, md = {}, []
    md.append("# Labels of the sixth held-out set, part a (lessons 00-02), after\n")
    md.append(f"Read from results-after.json ({res['repo']} at {res['commit']}, the lead's changes) by a helper "
              "that did not write the set, with the writer's strict rules (LABELS-before.md); helpers/checks/ not "
              "read. Where the message is the same as before, the label is the writer's. Per entry: label, and "
              "the message line(s) that decided it.\n")
    for row in res["rows"]:
        rid = row["id"]
        if row["correct"]:
            label = row["auto_label"]
            note = "visible ok, full hidden marks" if label == "PASS" else "not passing"
        elif row["auto_label"] in ("CRASH", FO):
            label = row["auto_label"]
            note = (f"visible check passes, no complaint; hidden {row['hidden_points']:g}/{row['hidden_total']:g}"
                    if label == FO else "; ".join(row["verdict_lines"][:2]))
        else:
            label, note = READ[rid]
        labels[rid] = {"lesson": row["lesson"], "check": row["check"], "correct": row["correct"],
                       "label": label, "note": note}
        md.append(f"- **{rid}** ({'correct' if row['correct'] else 'wrong'}): **{label}**: {note}")
    missing = [k for k in READ if k not in labels]
    assert not missing, missing
    unread = [k for k, v in labels.items() if v["label"] == "?"]
    assert not unread, unread
    (HERE / "labels-after.json").write_text(json.dumps({
        "results": "results-after.json", "commit": res["commit"], "date": "2026-12-06",
        "labels_by": "a helper that did not write the set, reading each visible message against the entry's cause "
                     "(tests/unseen/README.md 'Classifying', strictly, as the writer did); helpers/checks/ not read",
        "labels": labels}, indent=1) + "\n")
    (HERE / "LABELS-after.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
