"""Write labels-after.json and LABELS-after.md from results-after.json and the
labels read by hand below (the "?" entries); auto labels for the rest."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
R = json.loads((HERE / "results-after.json").read_text())

READ = {
    # lesson 07: NoisyBatchNorm
    "07:noisy_batchnorm: noise kept as parameters": ("NAMED", "same message as before: 'the noise requires grad: it is a constant, draw it without autograd': the trainable noise named"),
    "07:noisy_batchnorm: batch statistics in eval mode too": ("OBSERVED", "now a bare max rel. error on the eval row (before: 'eval mode uses the batch's statistics, not the running ones', NAMED): the row locates eval mode only, the batch statistics not named (as 'eval mode returns the input')"),
    "07:noisy_batchnorm: last_noise holds scale - 1": ("OBSERVED", "as before (new figures): a bare error on the output and 'the scale must be uniform in [1, 3]: values from 0.00927 to 1.99': true of the stored value, but it does not say that last_noise differs from the scale applied"),
    "07:noisy_batchnorm: noise before the affine map": ("NAMED", "'the noise was applied before gamma and beta: apply it to batch norm's output, super().forward(x)' (before: FALSE OK)"),
    "07:noisy_batchnorm: eval mode returns the input": ("OBSERVED", "as before (new figures): bare max rel. error on the eval row, the identity not named"),
    "07:noisy_batchnorm: noise of shape (C, 1)": ("NAMED", "the learner's own broadcasting RuntimeError in `return out * scale + shift`, now with 'what meets it lines up from the right: one value per feature has the shape (5,) or (1, 5), one per example (16, 1); print the shapes of the tensors combined': the per-feature noise's right shape given at the line where scale and shift are combined (borderline: a generic broadcasting hint that does not say which tensor is (5, 1); OBSERVED under the strictest reading). Before: WRONG CAUSE (the reduction-axis hint)"),
    "07:noisy_batchnorm: shift range taken from spread": ("NAMED", "same message as before: 'the shift (here shift=1.5) must be uniform in [-1.5, 1.5]: values from -2.97 to 2.98'"),
    # lesson 07: gradient_change
    "07:gradient_change: index taken among the Linear layers": ("OBSERVED", "as before (hint reworded 'an index past the end (from 0; -1 last)'): the learner's own IndexError in `layer = linears[index]`, the meaning of index not named"),
    "07:gradient_change: gradient of every parameter": ("OBSERVED", "as before (new figures): distance and cosine got/expected, 'G or G' is off: G' follows a step of all earlier parameters, only': G restricted to layer index's weight not said"),
    "07:gradient_change: angle instead of cosine": ("OBSERVED", "as before (new figures): 'the distance is right; the cosine is <G, G'> / (||G|| ||G'||)': a reminder of the definition, arccos not recognised"),
    "07:gradient_change: learning rate ignored": ("OBSERVED", "as before (new figures): 'G or G' is off: G' follows a step of all earlier parameters, only': candidates and a reminder, lr not named"),
    "07:gradient_change: distance between unit gradients": ("OBSERVED", "as before (new figures): 'the cosine is right; the distance is the 2-norm of G - G'': a reminder, the normalised gradients not recognised"),
    "07:gradient_change: first loss backpropagated again": ("WRONG CAUSE", "the learner's own RuntimeError in `loss.backward()  # the same loss again, after the step`, now with '(a tensor the graph saved was changed in place after it was used (x -= ..., .add_()): compute a new tensor)': the remedy points at the in-place step `p -= lr * p.grad`, which is right (and must change the parameters); the real mistake is backpropagating the old graph instead of a new forward pass. A learner who makes the step out of place (p.data = ...) keeps the stale graph. Before: OBSERVED (the exception bare)"),
    # lesson 07: landscape_probe
    "07:landscape_probe: RMS of the gradient difference": ("OBSERVED", "as before (new figures): changes got/expected and 'take ||grad - g|| over all parameters, from 0': the 1/sqrt(P) factor not recognised"),
    "07:landscape_probe: per-tensor norms added": ("OBSERVED", "as before (new figures): the same reminder; the sum of per-tensor norms not recognised"),
    "07:landscape_probe: loss decrease instead of loss": ("OBSERVED", "'the gradient changes are right, so the points are: the loss taken there differs (the cross-entropy at w - eta * g itself)': locates the losses with a reminder of their definition, true; the decrease L(w) - L(w - eta g) not recognised (the same line would print for any wrong loss at the right points). Before: WRONG CAUSE (the points blamed)"),
    "07:landscape_probe: start point prepended": ("OBSERVED", "same message as before: 'return (losses, grad_changes): 6 numbers in all': a bare count"),
    "07:landscape_probe: loss read from the caller's model": ("NAMED", "'changed its input argument #1's buffer 1.running_mean in place: leave the caller's model as it was: work on a copy (copy.deepcopy)': same meaning as before (NAMED): the caller's model is run somewhere; the one model(x) in the loss line is where the learner will find it"),
    "07:landscape_probe: results inserted at the front": ("OBSERVED", "as before (new figures): 'the right values in the wrong places (a reshape or an index is off)': candidates, the insertion at the front not named"),
    # lesson 08: forward
    "08:sync_batchnorm_forward: momentum 0 taken as missing": ("NAMED", "'with momentum=0 the running statistics moved: 0 is a momentum, not a missing argument (keep the old values)' (before: FALSE OK)"),
    "08:sync_batchnorm_forward: output left in float64": ("NAMED", "'float32 inputs give torch.float64 outputs: keep the input's dtype' (before: FALSE OK)"),
    "08:sync_batchnorm_forward: deviations summed before squaring": ("OBSERVED", "same message as before: 'the scale divides by one number for every column, 0.003162': the figure not recognised, the squaring after summing not named"),
    "08:sync_batchnorm_forward: gamma scaled in place through an alias": ("OBSERVED", "as before (new figures): 'the scale is none of the usual ones (s / sqrt(var + eps): 25.52, ...)': the in-place change of gamma not named"),
    "08:sync_batchnorm_forward: Bessel factor on running_mean too": ("OBSERVED", "same message as before: 'off by the constant factor 1.091 everywhere': N/(N - 1) not recognised"),
    # lesson 08: backward
    "08:sync_batchnorm_backward: dgamma and dbeta summed over channels": ("NAMED", "same message as before: 'dgamma and dbeta have the shapes [(3,), ...] on the ranks, not (4,): sum this rank's examples' contributions over axis 0'"),
    "08:sync_batchnorm_backward: product of means for mean(dout * x_hat)": ("NAMED", "same message as before: 'in dx, mean(dy) is right; mean(dy * x_hat) is missing': the one wrong term singled out"),
    "08:sync_batchnorm_backward: mean of dout as a mean of the ranks' means": ("OBSERVED", "same message as before: 'dx: each feature is shifted by its own offset (...)': describes, the mean of means not named"),
    "08:sync_batchnorm_backward: N - 1 in the backward means": ("NAMED", "same message as before: 'in dx, both terms mean(dy) and mean(dy * x_hat) are divided by N - 1, not N'"),
    # lesson 08: merge
    "08:merge_running_stats: num_batches_tracked as the count": ("OBSERVED", "same message as before: per-feature factors on running_mean and running_var, the weights used not named"),
    "08:merge_running_stats: merged statistics blended with momentum": ("OBSERVED", "same message as before: bare max rel. errors on mean and var"),
    "08:merge_running_stats: spread around the unweighted mean of means": ("OBSERVED", "same message as before: running_var per-feature factor not recognised"),
    # lesson 08: capstone
    "08:sync_bn_layer: parameter gradients returned as None": ("NAMED", "'dgamma or dbeta is a NoneType: return tensors of shape (4,)' (before: CRASH)"),
    "08:sync_bn_layer: running statistics skipped on a rank of one example": ("OBSERVED", "same message as before: 'a batch statistic that is none of the usual ones (ratio to PyTorch's: 1, 1, 1, 1, ...)': the rank that did not update not named"),
    "08:sync_bn_layer: eps left out of invstd": ("OBSERVED", "same message as before: bare max rel. error on the saved invstd, eps not named"),
    "08:sync_bn_layer: x_hat recomputed without invstd": ("OBSERVED", "same message as before: 'mean(dy * x_hat) is none of the usual' and a bare dgamma error: x_hat's missing invstd not named"),
    "08:sync_bn_layer: running_mean's batch term weighted by 1 - momentum": ("OBSERVED", "same message as before: 'off by the constant factor 2.333 everywhere': (1 - m)/m not recognised"),
    "08:sync_bn_layer: backward returns dx last": ("NAMED", "'dx has the shapes [(4,), (4,), (4,)]: each its x's shape' (before the same with 'on the ranks'): the first value returned is not dx; the return order is where the learner will find it"),
}

labels, rows_md = {}, {}
for r in R["rows"]:
    auto = r["auto_label"]
    if r["correct"]:
        label, note = auto, "correct alternative: " + ("visible ok and full hidden marks" if auto == "PASS" else "refused")
    elif auto == "?":
        label, note = READ[r["id"]]
    elif auto == "FALSE OK":
        label = auto
        note = f"visible check passes; hidden tests {r['hidden_points']:g}/{r['hidden_total']:g}"
    else:
        label, note = auto, "auto label"
    labels[r["id"]] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"], "label": label, "note": note}
    lines = " // ".join(l.replace("|", "\\|") for l in r["verdict_lines"]) or ("(visible check passed)" if r["visible_ok"] else "")
    rows_md.setdefault(r["lesson"], []).append(
        f"| {r['name']} ({r['check']}) | **{label}** | {r['cause'] or '(correct)'} | {lines} | {note} |")
missing = set(READ) - set(labels)
assert not missing, missing
unread = [r["id"] for r in R["rows"] if r["auto_label"] == "?" and r["id"] not in READ]
assert not unread, unread
(HERE / "labels-after.json").write_text(json.dumps({
    "results": "results-after.json", "commit": R.get("commit"), "checks_at": R.get("checks_commit"),
    "date": "2026-12-06",
    "labels_by": "a helper that did not write the set, reading each visible message at the lead's frozen checkout against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly, as the writer did; LABELS-before.md read first); helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")
md = ["# Labels of the sixth held-out set, part c (lessons 07, 08), at 6d208b7 (/work/wt-r7base, after the lead's changes)", "",
      "Each wrong entry's label (tests/unseen/README.md, 'Classifying', strictly) and the message line(s) that decided it; "
      "CRASH, FALSE OK, PASS, FAIL are the auto labels of `results-after.json`. Shares: "
      "`run.py --summary results-after.json --labels labels-after.json`.", "",
      "Rule used throughout: a generic reminder of a definition, a bare figure, an unrecognised factor or the "
      "learner's own exception is OBSERVED even where the row locates one output; NAMED needs the message to say "
      "what is wrong (or to single out the wrong term, return or call where the learner will find it).", ""]
for lesson in sorted(rows_md):
    md += [f"## Lesson {lesson}", "", "| entry | label | cause | deciding message line(s) | why |", "|---|---|---|---|---|",
           *rows_md[lesson], ""]
(HERE / "LABELS-after.md").write_text("\n".join(md))
print("ok", len(labels))
