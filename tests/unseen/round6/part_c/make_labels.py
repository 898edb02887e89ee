"""Write labels-before.json and LABELS-before.md from results-before.json and the
labels read by hand below (the "?" entries); auto labels for the rest."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
R = json.loads((HERE / "results-before.json").read_text())

READ = {
    # lesson 07: NoisyBatchNorm
    "07:noisy_batchnorm: noise kept as parameters": ("NAMED", "'the noise requires grad: it is a constant, draw it without autograd': the trainable noise named"),
    "07:noisy_batchnorm: batch statistics in eval mode too": ("NAMED", "'eval mode uses the batch's statistics, not the running ones'"),
    "07:noisy_batchnorm: last_noise holds scale - 1": ("OBSERVED", "a bare error on the output and 'the scale must be uniform in [1, 3]: values from 0.00927 to 1.99': true of the stored value, but it does not say that last_noise differs from the scale applied; a learner may change the draw instead"),
    "07:noisy_batchnorm: eval mode returns the input": ("OBSERVED", "bare max rel. error on the eval row: the identity is not named (the row locates eval mode only)"),
    "07:noisy_batchnorm: noise of shape (C, 1)": ("WRONG CAUSE", "the learner's own broadcasting RuntimeError comes with a hint that blames a statistic's reduction axis ('a statistic of length 16 is one per example (taken over axis 1) ... reduce over the axis you mean with keepdims=True'); there is no reduction: the noise's shape (C, 1) is the cause"),
    "07:noisy_batchnorm: shift range taken from spread": ("NAMED", "'the shift (here shift=1.5) must be uniform in [-1.5, 1.5]: values from -2.97 to 2.98'"),
    # lesson 07: gradient_change
    "07:gradient_change: index taken among the Linear layers": ("OBSERVED", "the learner's own IndexError in `layer = linears[index]` with a generic hint ('an index past the end'): reported as it is, the meaning of index not named"),
    "07:gradient_change: gradient of every parameter": ("OBSERVED", "distance and cosine got/expected, 'G or G' is off' and a reminder of the step: does not say that G must be layer index's weight gradient only"),
    "07:gradient_change: angle instead of cosine": ("OBSERVED", "'the distance is right; the cosine is <G, G'> / (||G|| ||G'||)': locates the cosine with a reminder of its definition; arccos not recognised"),
    "07:gradient_change: learning rate ignored": ("OBSERVED", "'G or G' is off: G' follows a step of all earlier parameters, only' (cut off): candidates G or G' and a reminder of the step; lr not named"),
    "07:gradient_change: distance between unit gradients": ("OBSERVED", "'the cosine is right; the distance is the 2-norm of G - G'': locates the distance with a reminder; the normalised gradients not recognised"),
    "07:gradient_change: first loss backpropagated again": ("OBSERVED", "the learner's own RuntimeError ('modified by an inplace operation') in `loss.backward()`, reported as it is"),
    # lesson 07: landscape_probe
    "07:landscape_probe: RMS of the gradient difference": ("OBSERVED", "losses and points right, changes got/expected and the reminder 'take ||grad - g|| over all parameters': the factor 1/sqrt(P) (a mean) not recognised"),
    "07:landscape_probe: per-tensor norms added": ("OBSERVED", "losses and points right, changes got/expected and the same reminder: the sum of per-tensor norms not recognised"),
    "07:landscape_probe: loss decrease instead of loss": ("WRONG CAUSE", "'the points w - eta * g are off: each starts from w, all parameters': blames the points (the steps), which are right (the gradient changes are right); the loss recorded as L(w) - L(w - eta g) is the cause"),
    "07:landscape_probe: start point prepended": ("OBSERVED", "'return (losses, grad_changes): 6 numbers in all': a bare count"),
    "07:landscape_probe: loss read from the caller's model": ("NAMED", "'the model's 1.running_mean changed: measure on a copy, copy.deepcopy(model)': the caller's model is run somewhere; the one model(x) in the loss line is where the learner will find it"),
    "07:landscape_probe: results inserted at the front": ("OBSERVED", "'the right values in the wrong places (a reshape or an index is off)' with the reversed lists: candidates, the insertion at the front not named"),
    # lesson 08: forward
    "08:sync_batchnorm_forward: deviations summed before squaring": ("OBSERVED", "'the scale divides by one number for every column, 0.003162': true (sqrt(eps): the variance is about 0) but the figure is not recognised and the squared-after-summing not named (borderline: the phrase could suggest a global reduction)"),
    "08:sync_batchnorm_forward: gamma scaled in place through an alias": ("OBSERVED", "'the scale is none of the usual ones (s / sqrt(var + eps): 5.052, ...)': the in-place change of gamma not named"),
    "08:sync_batchnorm_forward: Bessel factor on running_mean too": ("OBSERVED", "'running_mean ... off by the constant factor 1.091 everywhere': 1.091 = 12/11 = N/(N - 1) not recognised"),
    # lesson 08: backward
    "08:sync_batchnorm_backward: dgamma and dbeta summed over channels": ("NAMED", "'dgamma and dbeta have the shapes [(3,), ...] on the ranks, not (4,): sum this rank's examples' contributions over axis 0'"),
    "08:sync_batchnorm_backward: product of means for mean(dout * x_hat)": ("NAMED", "'in dx, mean(dy) is right; mean(dy * x_hat) is missing': the one wrong term singled out; the learner's code has no mean(dy * x_hat), only mean(dy) * mean(x_hat)"),
    "08:sync_batchnorm_backward: mean of dout as a mean of the ranks' means": ("OBSERVED", "'dx: each feature is shifted by its own offset (-0.00278, ...)': describes, the mean of means not named"),
    "08:sync_batchnorm_backward: N - 1 in the backward means": ("NAMED", "'in dx, both terms mean(dy) and mean(dy * x_hat) are divided by N - 1, not N'"),
    # lesson 08: merge
    "08:merge_running_stats: num_batches_tracked as the count": ("OBSERVED", "per-feature factors on running_mean and running_var (3.01, -1.773, ...): the weights used not named"),
    "08:merge_running_stats: merged statistics blended with momentum": ("OBSERVED", "bare max rel. errors on mean and var"),
    "08:merge_running_stats: spread around the unweighted mean of means": ("OBSERVED", "running_var per-feature factor (1.663, 1.495, 1, ...) not recognised"),
    # lesson 08: capstone
    "08:sync_bn_layer: running statistics skipped on a rank of one example": ("OBSERVED", "'running_mean averages in a batch statistic that is none of the usual ones (ratio to PyTorch's: 1, 1, 1, 1, ...)': the rank that did not update is not named"),
    "08:sync_bn_layer: eps left out of invstd": ("OBSERVED", "bare max rel. error on the saved invstd (3.7e-07): eps not named (the row locates invstd only)"),
    "08:sync_bn_layer: x_hat recomputed without invstd": ("OBSERVED", "'in dx, mean(dy) is right; mean(dy * x_hat) is none of the usual' and a bare dgamma error: x_hat's missing invstd not named"),
    "08:sync_bn_layer: running_mean's batch term weighted by 1 - momentum": ("OBSERVED", "'running_mean ... off by the constant factor 2.333 everywhere': 2.333 = 0.7/0.3 = (1 - m)/m not recognised"),
    "08:sync_bn_layer: backward returns dx last": ("NAMED", "'dx has the shapes [(4,), (4,), (4,)] on the ranks: each its x's shape': the first value returned is not dx; the return order is where the learner will find it"),
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
(HERE / "labels-before.json").write_text(json.dumps({
    "results": "results-before.json", "commit": R.get("commit"), "checks_at": R.get("checks_commit"),
    "date": "2026-12-06",
    "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly), after every entry was written; helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")
md = ["# Labels of the sixth held-out set, part c (lessons 07, 08), at d294ce3 (/work/wt-r6base)", "",
      "Each wrong entry's label (tests/unseen/README.md, 'Classifying', strictly) and the message line(s) that decided it; "
      "CRASH, FALSE OK, PASS, FAIL are the auto labels of `results-before.json`. Shares: "
      "`run.py --summary results-before.json --labels labels-before.json`.", "",
      "Rule used throughout: a generic reminder of a definition, a bare figure, an unrecognised factor or the "
      "learner's own exception is OBSERVED even where the row locates one output; NAMED needs the message to say "
      "what is wrong (or to single out the wrong term, return or call where the learner will find it).", ""]
for lesson in sorted(rows_md):
    md += [f"## Lesson {lesson}", "", "| entry | label | cause | deciding message line(s) | why |", "|---|---|---|---|---|",
           *rows_md[lesson], ""]
(HERE / "LABELS-before.md").write_text("\n".join(md))
print("ok", len(labels))
