"""Writes labels-before.json and LABELS-before.md from results-before.json and the read labels below."""
import json

L = {
 "07:noisy_batchnorm: scale drawn on a log scale": ("NAMED", "the scale 'must be uniform in [1, 3]', its mean 1.81 against U[1, 3]'s 2: the draw's distribution named", "NoisyBatchNorm noise"),
 "07:noisy_batchnorm: noise applied one call late": ("OBSERVED", "bare max rel. error of the training output (noise judged fine)", "NoisyBatchNorm train"),
 "07:noisy_batchnorm: hand-written batch norm, biased running_var": ("OBSERVED", "running_var located, constant factor 0.9375 = (N-1)/N not recognised", "NoisyBatchNorm train running_var"),
 "07:noisy_batchnorm: hand-written batch norm with the unbiased variance": ("OBSERVED", "bare max rel. error of the training output", "NoisyBatchNorm train"),
 "07:noisy_batchnorm: shift range halved": ("NAMED", "the shift 'must be uniform in [-1.5, 1.5]', values from -0.749 to 0.748: the range named", "NoisyBatchNorm noise"),
 "07:noisy_batchnorm: shift and scale swapped in the formula": ("WRONG CAUSE", "blames the order of last_noise ('must be (shift, scale)'), which is right; the formula applies them in swapped roles", "NoisyBatchNorm train"),
 "07:noisy_batchnorm: scale drawn from [1/spread, spread]": ("NAMED", "the scale 'must be uniform in [1, 3]', values from 0.346: the range named", "NoisyBatchNorm noise"),
 "07:gradient_change: parameters counted as layers": ("NAMED", "'G or G' is off: G' follows a step of all earlier parameters': points at the set of parameters stepped", "gradient_change"),
 "07:gradient_change: biases not stepped": ("NAMED", "'G' follows a step of all earlier parameters': the weights-only step is located", "gradient_change"),
 "07:gradient_change: second pass under torch.no_grad": ("OBSERVED", "the learner's own RuntimeError with its line and candidate causes (no_grad among them)", "gradient_change"),
 "07:gradient_change: cosine over |G| squared": ("NAMED", "'the distance is right; the cosine is <G, G'> / (||G|| ||G'||)'", "gradient_change"),
 "07:gradient_change: distance divided by the learning rate": ("NAMED", "'the cosine is right; the distance is the 2-norm of G - G'': the distance's expression located (factor 2 = 1/lr not named)", "gradient_change"),
 "07:gradient_change: gradients compared in half precision": ("WRONG CAUSE", "'G or G' is off: G' follows a step of all earlier parameters': points at the step, which is right; the cause is float16 rounding of the comparison", "gradient_change"),
 "07:landscape_probe: largest entry of the gradient change": ("NAMED", "'the points are right; take ||grad - g|| over all parameters': the measure of the change named", "landscape_probe"),
 "07:landscape_probe: gradients concatenated without flattening": ("OBSERVED", "the learner's own RuntimeError from torch.cat, with its line, reported as it is", "landscape_probe"),
 "07:landscape_probe: last step size left out": ("OBSERVED", "'6 numbers in all': a count, the missing step size not named", "landscape_probe"),
 "07:landscape_probe: 1 - cosine as the gradient change": ("NAMED", "'the points are right; take ||grad - g|| over all parameters'", "landscape_probe"),
 "07:landscape_probe: first parameter tensor only": ("NAMED", "'take ||grad - g|| over all parameters'", "landscape_probe"),
 "07:landscape_probe: loss divided by the batch size": ("NAMED", "'the gradient changes are right, so the points are: the loss taken there differs (the cross-entropy at w - eta * g itself)': the loss expression located", "landscape_probe"),
 "08:sync_batchnorm_forward: count of ranks instead of examples": ("OBSERVED", "mean and scale 'none of the usual ones': no cause", "sync_batchnorm_forward (3 ranks)"),
 "08:sync_batchnorm_forward: batch term not weighted by momentum": ("WRONG CAUSE", "factor 3.333 = 1/m not recognised, and 'with momentum=0 the running statistics moved: 0 is a momentum, not a missing argument' blames a momentum default that the code does not have", "sync forward momentum=0"),
 "08:sync_batchnorm_forward: squared deviations summed over the channels": ("NAMED", "'all_reduce got tensors of different shapes [(3,), (5,), (6,)]: every rank must send the same shape (e.g. one value per channel)', in the learner's line", "sync_batchnorm_forward"),
 "08:sync_batchnorm_forward: sums all-reduced in float32": ("OBSERVED", "bare max rel. error 8.1e-08 (float32 precision not named)", "sync_batchnorm_forward (3 ranks)"),
 "08:sync_batchnorm_forward: gamma and beta all-reduced": ("OBSERVED", "constant factor 3 (= W) not recognised", "sync_batchnorm_forward (3 ranks)"),
 "08:sync_batchnorm_backward: x_hat term outside the factor gamma * rho": ("OBSERVED", "'mean(dy * x_hat) is none of the usual': the term's effective value, no cause (the learner's mean itself is right)", "sync_batchnorm_backward dx"),
 "08:sync_batchnorm_backward: N * dout form without the 1/N": ("NAMED", "'off by the constant factor 14 = N everywhere'", "sync_batchnorm_backward dx"),
 "08:sync_batchnorm_backward: sums stacked along dim 1": ("OBSERVED", "the learner's own ValueError with its line; the generic gloss '(a tuple returned?)' points at no code of theirs", "sync_batchnorm_backward"),
 "08:sync_batchnorm_backward: divides by the variance, not the standard deviation": ("OBSERVED", "per-feature factors (= rho) not recognised", "sync_batchnorm_backward dx"),
 "08:merge_running_stats: SyncBatchNorm left out": ("NAMED", "'unchanged on this layer ... test isinstance(m, nn.modules.batchnorm._BatchNorm)'", "merge_running_stats BN 5 (SyncBatchNorm) buffers"),
 "08:merge_running_stats: between-rank term not all-reduced": ("OBSERVED", "bare max rel. error of running_var", "merge_running_stats BN 1 var"),
 "08:merge_running_stats: counts left out of the mean's sum": ("OBSERVED", "per-feature factors on mean and var, not recognised", "merge_running_stats BN 1 mean"),
 "08:merge_running_stats: deviations of the means not squared": ("NAMED", "'add sum(count * (mean_r - mean)^2) / (N - 1)': the squared between term named", "merge_running_stats BN 1 var"),
 "08:merge_running_stats: total count accumulated over the layers": ("OBSERVED", "BN 2's mean off by 1/2: a factor located at a layer, the doubled total not named", "merge_running_stats BN 2 mean"),
 "08:sync_bn_layer: variance made unbiased in place before invstd": ("NAMED", "'the saved invstd uses the unbiased variance (divides by N - 1)'", "sync_bn_layer saved invstd"),
 "08:sync_bn_layer: backward returns six gradients": ("NAMED", "'returned a tuple of 6 items; expected a tuple of 5: (dx, dgamma, dbeta, None, None ...)'", "sync_bn_layer backward rank 0"),
 "08:sync_bn_layer: running_mean's in-place result used as the mean": ("OBSERVED", "bare max rel. error of the saved mean", "sync_bn_layer saved mean"),
 "08:sync_bn_layer: dgamma from the raw input": ("OBSERVED", "bare max rel. error of dgamma", "sync_bn_layer backward dgamma"),
 "08:sync_bn_layer: beta saved in gamma's place": ("NAMED", "'saved[1] is not gamma itself; save (x, gamma, mean, invstd, count)'", "sync_bn_layer rank 0"),
}

res = json.load(open("results-before.json"))
labels = {}
md = ["# Labels of the seventh held-out set, part c, at 6d208b7 (/work/wt-r7base)", "",
      "Each wrong entry's label (tests/unseen/README.md, 'Classifying', strictly) and the message line(s) that "
      "decided it; CRASH, FALSE OK, PASS, FAIL are the auto labels of `results-before.json`. Shares: "
      "`run.py --summary results-before.json --labels labels-before.json`.", ""]
current = None
for r in res["rows"]:
    if r["lesson"] != current:
        current = r["lesson"]
        md += ["", f"## Lesson {current}", "", "| entry | label | cause | deciding message line(s) | why |", "|---|---|---|---|---|"]
    rid = r["id"]
    if r["correct"]:
        lab, note, lines = r["auto_label"], "visible ok, full hidden marks" if r["auto_label"] == "PASS" else "see results", "(correct alternative)"
        cause = "correct alternative"
    elif r["auto_label"] in ("CRASH", "FALSE OK"):
        lab = r["auto_label"]
        note = f"auto: visible ok {r['visible_ok']}, hidden {r['hidden_points']}/{r['hidden_total']}"
        lines = "(the visible check printed only ok lines)"
        cause = r["cause"]
    else:
        lab, note, key = L[rid]
        out = [ln for ln in r["output"].splitlines() if "| WRONG" in ln or "| ERROR" in ln]
        pick = [ln for ln in out if ln.startswith(key)] or out
        lines = " // ".join(ln.split("|", 2)[2].strip() for ln in pick)
        cause = r["cause"]
    labels[rid] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"], "label": lab, "note": note}
    name = rid.split(": ", 1)[1]
    md.append(f"| {name} ({r['check']}) | **{lab}** | {cause} | {lines.replace('|', '/')} | {note} |")
missing = set(L) - set(labels)
assert not missing, missing
json.dump({"results": "results-before.json", "commit": "6d208b7", "checks_at": "6d208b7", "date": "2026-12-06",
           "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause "
                        "(tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
           "labels": labels}, open("labels-before.json", "w"), indent=1)
open("LABELS-before.md", "w").write("\n".join(md) + "\n")
print(len(labels), "labels")
