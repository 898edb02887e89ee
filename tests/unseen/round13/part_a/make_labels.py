"""Write labels-before.json and LABELS-before.md from results-before.json and the
labels read by hand below (round 3's format)."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

# id -> (label, deciding message fragment, why)
READ = {
    "00:batch_stats: three results from one chained assignment": ("NAMED", "mu is the same array as var_unbiased: compute each as its own array", "names the aliasing of the three outputs"),
    "00:batch_stats: n = x.shape without [0]": ("OBSERVED", "raised ValueError: operands could not be broadcast together with shapes (5,) (2,), in your line `return mu, var, var * n / (n - 1)` ... (in that line: mu (5,), var (5,), n: 2 items)", "the learner's own broadcasting error reported as it is, with the line and 'n: 2 items' (as 'cache: 5 items' before): n = x.shape not named"),
    "00:batch_stats: loop variable n shadows the batch size": ("OBSERVED", "var_unbiased: off by the constant factor 1.25 everywhere", "constant factor 1.25 not recognised"),
    "00:batch_stats: column loop indexes rows": ("OBSERVED", "max rel. error 7.5e-01 ... got 25.2225, expected 100.15 (mu, var, var_unbiased)", "bare errors"),
    "00:batch_stats: statistics of the standardised batch": ("OBSERVED", "mu: off by the constant factor 9.239e-19 everywhere // var: got 1, expected 467.631", "an unrecognised factor and bare errors; standardising first not named"),
    "00:batch_stats: a bare Exception for N < 2": ("NAMED", "raised Exception but ValueError was expected", "names the exception type"),
    "00:batch_stats: mean as a moving average over the examples": ("OBSERVED", "mu: max rel. error 1.8e-01 ... // the deviations are taken from your mu, which is wrong: fix mu", "points at mu with a bare error; the moving average not named"),
    "00:batch_stats: chunk sums overwritten": ("OBSERVED", "batch_stats N=48 mu | WRONG | max rel. error 7.1e-01", "bare error for N=48 (only large batches): the chunking not named"),
    "00:batch_stats: ZeroDivisionError expected from a NumPy division": ("NAMED", "did not raise ValueError: with N=1 the unbiased variance divides by N-1 = 0", "did not raise ValueError with N=1: locates the missing guard"),
    "00:batch_stats: unbiased variance over axis 1": ("NAMED", "var_unbiased has shape (16,), expected (5,): one value per example ... take them over axis 0", "axis named for var_unbiased"),
    "00:batch_stats: column norms not squared": ("OBSERVED", "var: max rel. error 9.9e-01 ... got 5.40619, expected 467.631", "bare errors"),
    "00:batch_stats: accumulator not reset between the two passes": ("OBSERVED", "var: max rel. error 2.1e-01 ... got 101.619, expected 1.46854", "bare errors (var + mu not recognised)"),
    "00:batch_stats: N < 2 guard nested in the 1-D branch": ("NAMED", "did not raise ValueError: with N=1 the unbiased variance divides by N-1 = 0", "locates the guard"),
    "01:standardize_columns: a fresh nn.BatchNorm1d in eval mode": ("OBSERVED", "the mean used is none of the usual ones (m - batch mean: -9.761, ...); the scale divides by one number for every column, 1", "a correct description (not centred, not scaled), no cause: eval mode / running statistics not named"),
    "01:standardize_columns: whitened with the covariance matrix": ("OBSERVED", "max rel. error 6.4e-01 (expect < 1e-10); worst at index (3, 2)", "bare error"),
    "01:standardize_columns: centred the wrong way round": ("OBSERVED", "the mean used is the column mean (right); the scale divides by sqrt(var + e) with e = 1e-05 = eps; max rel. error 2.0e+00", "mean and scale said right with an error of 2: the sign is not named (no other cause named either)"),
    "01:standardize_columns: default eps typed 1e5": ("NAMED", "standardize_columns called without eps (the signature's default eps=1e-5) | WRONG | each feature is off by its own factor", "the failing case is the call with the default eps, and the message says the default should be 1e-5: locates the typo"),
    "01:standardize_columns: standardised in chunks of 32 rows": ("OBSERVED", "standardize_columns eps=0, N=40 | WRONG | max rel. error 3.6e-01", "bare error on the N=40 case; chunking not named"),
    "01:layer_gradient_norms: grad.zero_() on gradients that do not exist yet": ("NAMED", "raised AttributeError ... in your line `p.grad.zero_()` ... (`p.grad` is None here: no backward() has reached it ...)", "the learner's line with 'p.grad is None here: no backward() has reached it' (as 'norms read before backward' in round 12)"),
    "01:layer_gradient_norms: biases frozen to skip their gradients": ("NAMED", "changed its input argument #1's parameter 0.bias in place: detach_() or requires_grad_() changed it", "names requires_grad_() changing the caller's bias (the fix suggested, '.detach(), a new one', is beside the point but the cause is named)"),
    "01:layer_gradient_norms: weight decay added to the loss": ("OBSERVED", "max rel. error 1.0e-03 (expect < 1e-09)", "bare error"),
    "01:layer_gradient_norms: autograd.grad over all parameters indexed as weights": ("OBSERVED", "max rel. error 9.6e-01 (expect < 1e-09)", "bare error"),
    "01:activation_percentiles: percentiles of the sigmoid of the values": ("OBSERVED", "q=3 values | WRONG | max rel. error 6.9e-01", "bare error"),
    "01:activation_percentiles: np.sort sorts only the last axis": ("OBSERVED", "q=3 values | WRONG | max rel. error 3.8e-01", "bare error"),
    "01:activation_percentiles: torch.sort's (values, indices) pair taken as the values": ("OBSERVED", "q=3 values | WRONG | max rel. error 6.3e+01", "bare error"),
    "01:activation_percentiles: interpolation positions returned": ("OBSERVED", "q=3 values | WRONG | max rel. error 7.6e+01", "bare error"),
    "02:batchnorm_forward: scale and shift before normalising": ("OBSERVED", "the mean used is none of the usual ones ...; the scale is none of the usual ones ...", "'none of the usual ones': no cause"),
    "02:batchnorm_backward: direct branch reads dout, not dx_hat": ("NAMED", "the first wrong stage is dxc (per autograd)", "first wrong stage dxc: the direct branch"),
    "02:batchnorm_backward: drho not summed over the batch": ("NAMED", "the first wrong stage is drho (per autograd)", "first wrong stage drho"),
    "02:batchnorm_backward: no chain rule through the square root": ("NAMED", "the first wrong stage is dvar (per autograd) // the branch through the variance is off (missing, or scaled wrong)", "first wrong stage dvar"),
    "02:batchnorm_backward: last line adds the mean branch to dx_hat": ("NAMED", "x_hat, ..., dxc, dmu agree; what differs comes after // dx's sum over the batch per feature is not PyTorch's", "every stage up to dmu agrees: only the final line dx = ... comes after, so it is located"),
    "02:batchnorm_backward_alt: rho only on the dout term": ("NAMED", "the direct term dout * gamma / sigma is right; what differs lies in the branches through the mean and the variance", "locates the two terms (dbeta/N and x_hat*dgamma/N) that lack rho"),
    "02:batchnorm_backward_alt: dgamma used before it is computed": ("OBSERVED", "raised UnboundLocalError: cannot access local variable 'dgamma' ... in your line `dx = gamma * inv_std * (...)`", "the learner's own exception reported as it is (with its line and shapes); self-explanatory, but nothing added (strict, as round 11/12)"),
    "02:batchnorm_backward_alt: the scaling line not assigned": ("WRONG CAUSE", "it is the right formula with one change, in the dx_hat that dx uses: `std` where `gamma` belongs", "names a substitution (std for gamma) that the code does not contain: the common factor gamma * rho is computed but not assigned; std * rho = 1 makes it coincide"),
    "02:spatial_batchnorm_forward: statistics per image and channel": ("NAMED", "the statistics are taken over axes (2, 3); this normalisation takes them over axes (0, 2, 3)", "axes named"),
    "02:spatial_batchnorm_forward: gamma reshaped to (1, C, 1)": ("OBSERVED", "raised ValueError: operands could not be broadcast together with shapes (1,3,1) (4,3,5,6), in your line `out = gamma.reshape(1, c, 1) * x_hat + ...`", "the learner's own broadcasting error with its line and shapes; the missing axis not named (as 'weight and bias of shape (C, 1)')"),
    "02:spatial_batchnorm_forward: gamma reshaped for 4-D, then given to the (N, D) function": ("OBSERVED", "raised ValueError: cannot reshape array of size 1080 into shape (4,5,6,3)", "the learner's own reshape error (no line shown); the 4-D gamma not named"),
    "02:layernorm_backward: gamma taken from the inner batch-norm cache": ("OBSERVED", "raised ValueError: operands could not be broadcast together with shapes (6,8) (6,) (x is (6, 8): ... one per example (6, 1) ...)", "the learner's own broadcasting error with the general alignment rule; which array is (6,) not named"),
    "02:layernorm_backward: row-wise closed form divided by N": ("OBSERVED", "layernorm_backward dx | WRONG | max rel. error 7.5e-02", "bare error"),
}

results = json.loads((HERE / "results-before.json").read_text())
rows = results["rows"]
labels, md = {}, []
md.append("# Labels of the thirteenth held-out set, part a, at /work/wt-r13base (main 7b5f3a6: BEFORE)\n")
md.append("Each wrong entry's label (tests/unseen/README.md, 'Classifying', strictly) and the message line(s) that decided it; "
          "CRASH, FALSE OK, PASS, FAIL are the auto labels of `results-before.json`. "
          "Shares: `run.py --summary results-before.json --labels labels-before.json`.\n")
lesson = None
for r in rows:
    if r["lesson"] != lesson:
        lesson = r["lesson"]
        md.append(f"\n## Lesson {lesson}\n\n| entry | label | cause | deciding message line(s) | why |\n|---|---|---|---|---|")
    auto = r["auto_label"]
    if auto == "?":
        label, line, why = READ[r["id"]]
    else:
        label = auto
        if r["correct"]:
            line, why = "(correct alternative)", "visible ok, full hidden marks" if auto == "PASS" else "refused"
        else:
            line = "; ".join(r["verdict_lines"]) or "(nothing but ok lines printed)"
            why = f"visible ok: {r['visible_ok']}, hidden {r['hidden_points']:g}/{r['hidden_total']:g}"
    labels[r["id"]] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"], "label": label, "note": why}
    cause = "correct alternative" if r["correct"] else r["cause"]
    cell = lambda t: " ".join(str(t).split()).replace("|", "\\|")
    md.append(f"| {cell(r['name'])} ({r['check']}) | **{label}** | {cell(cause)} | {cell(line)} | {cell(why)} |")

missing = [k for k in READ if k not in labels]
assert not missing, missing
(HERE / "labels-before.json").write_text(json.dumps({
    "results": "results-before.json", "commit": "7b5f3a6", "checks_at": "7b5f3a6", "date": "2026-12-06",
    "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")
(HERE / "LABELS-before.md").write_text("\n".join(md) + "\n")
print(len(labels), "labels written")
