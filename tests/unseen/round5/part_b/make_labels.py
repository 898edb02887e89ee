"""Write labels-before.json and LABELS-before.md from results-before.json and the
labels read by hand below (the "?" entries); auto labels for the rest."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
R = json.loads((HERE / "results-before.json").read_text())

READ = {
    # lesson 04
    "04:batch_renorm_backward: y_hat multiplied in place": ("NAMED", "'changed its input argument #2 (item [1]) in place': item 1 of the cache is y_hat, the array the learner multiplies in place"),
    "04:batch_renorm_backward: mean term taken from dout": ("NAMED", "'the branch through the batch mean is off (missing, or scaled wrong)': locates the mean term that uses dout instead of g"),
    "04:batch_renorm_backward: dbeta as a mean": ("NAMED", "'off by the constant factor 1/(N = 12) ... averaged over the batch; ... gradients add up (sum)'"),
    "04:batch_renorm_backward: batch size read from shape[1]": ("NAMED", "'the direct term is right; what differs lies in the branches through the batch mean and sigma_B': locates the two divided sums where N = shape[1] is (as round 4 labelled sums-instead-of-means)"),
    "04:batch_renorm_backward: cache unpacked with std and r swapped": ("OBSERVED", "per-feature factor (2.804, 1.54, ...) not recognised; the unpacking order is not named"),
    "04:batch_renorm_backward: torch's dim= on NumPy arrays": ("OBSERVED", "the learner's own TypeError ('unexpected keyword argument dim') with its line, reported as it is"),
    "04:batch_renorm: weight and bias of shape (1, C, 1, 1)": ("OBSERVED", "'setting weight, bias, running_mean and running_std failed' with torch's broadcast error: four candidates, the wrong shape of weight/bias not named"),
    "04:batch_renorm: assert instead of ValueError": ("NAMED", "'raised AssertionError but ValueError was expected'"),
    "04:batch_renorm: running statistics started from the first batch": ("NAMED", "'running_mean moved by the fraction 1 of the way to the batch's value; PyTorch moves it by 0.2': the running update copies the batch value"),
    "04:batch_renorm: super().__init__() called after the parameters": ("OBSERVED", "the learner's own AttributeError from torch ('cannot assign parameters before Module.__init__() call') with its line, reported as it is (torch's text is explicit)"),
    "04:renorm_schedule: ramp one step early": ("NAMED", "'rmax starts moving at step 5000, the paper's after the warm-up, at step 5001' (same for dmax): one step early"),
    "04:renorm_schedule: default rmax_final and dmax_final swapped": ("NAMED", "'rmax ends at 5, the paper's at 3; dmax ends at 3, the paper's at 5': the final values are swapped (the defaults)"),
    "04:renorm_schedule: rmax as max(1, rmax_final * progress)": ("OBSERVED", "where rmax starts moving (16667) and how long it ramps (23334 steps): describes, the formula max(1, rmax_final * p) is not named"),
    "04:renorm_schedule: bare return during warm-up": ("NAMED", "'returned None: did you forget `return`?': the bare return found at once"),
    # lesson 07
    "07:noisy_batchnorm: Gaussian shift": ("NAMED", "'the shift ... must be uniform in [-1.5, 1.5]: values from -4.72 to 4.25 ... std 1.5'"),
    "07:noisy_batchnorm: scale from [1, 1 + spread]": ("NAMED", "'the scale (here spread=3) must be uniform in [1, 3]: values from 1.01 to 3.99'"),
    "07:noisy_batchnorm: forward under torch.no_grad": ("OBSERVED", "'the check could not use what your function returned (RuntimeError: element 0 of tensors does not require grad ...)': the output has no graph; torch.no_grad not named"),
    "07:noisy_batchnorm: last_noise stored as lists": ("NAMED", "'the noise is list (5,), list (5,): ... tensors of shape (5,)'"),
    "07:noisy_batchnorm: shift added before scaling": ("OBSERVED", "'each feature is shifted by its own offset (2.231, ...)': the offset is shift * (scale - 1), not recognised; the order of shift and scale not named"),
    "07:gradient_change: nll_loss on logits": ("OBSERVED", "distance and cosine got/expected, 'G or G' is off' and a reminder of how G' is stepped: the loss is not named (the reminder leans toward the step, which is right)"),
    "07:gradient_change: first gradient taken on the caller's model": ("OBSERVED", "the learner's own TypeError in `p -= lr * p.grad` with candidates ('a .grad before backward() or after zero_grad(), ...'), of which the real one (the copy never ran backward) is one"),
    "07:gradient_change: cross_entropy's arguments swapped": ("WRONG CAUSE", "'not implemented yet: replace the `raise NotImplementedError` line with your code': torch's NotImplementedError from cross_entropy(y, logits) (log_softmax on Long) is read as the exercise's placeholder; there is no such line to replace"),
    "07:landscape_probe: indices used as step sizes": ("NAMED", "'the points w - eta * g are off' with the losses and a gradient change of 0 at the first point: locates the step sizes used for the points"),
    "07:landscape_probe: gradient change divided by the step size": ("OBSERVED", "losses and points right, changes got/expected and a reminder of the definition: the ratio 1/eta is not recognised"),
    "07:landscape_probe: first step size skipped": ("OBSERVED", "'return (losses, grad_changes): 6 numbers in all': a bare count; the missing first step size is not named"),
    # lesson 08
    "08:sync_batchnorm_forward: running statistics updated unconditionally": ("OBSERVED", "the learner's own AttributeError on None with candidates (.grad, return, bias) of which none is 'running_mean not given': own exception as it is"),
    "08:sync_batchnorm_forward: `if running_mean:` as the presence test": ("OBSERVED", "the learner's own RuntimeError ('Boolean value of Tensor ... ambiguous') in `if running_mean:`, reported as it is"),
    "08:sync_batchnorm_forward: count from x.shape[1]": ("OBSERVED", "'the mean used is none of the usual ones ... the scale is none of the usual ones': describes, the count not named"),
    "08:sync_batchnorm_forward: default eps 1e-3": ("NAMED", "'the scale divides by sqrt(var + e) with e = 0.001, not eps = 1e-05'"),
    "08:sync_batchnorm_backward: dgamma multiplied by gamma": ("OBSERVED", "bare max rel. error on dgamma"),
    "08:sync_batchnorm_backward: sums all-reduced twice": ("OBSERVED", "'in dx, both terms mean(dy) and mean(dy * x_hat) are none of the usual' (as round 4 labelled this line)"),
    "08:sync_batchnorm_backward: five outputs as in the capstone": ("NAMED", "'returned a tuple of 5 items; expected a tuple of 3: (dx, dgamma, dbeta)'"),
    "08:sync_batchnorm_backward: gamma only on dout in dx": ("OBSERVED", "'in dx, both terms mean(dy) and mean(dy * x_hat) are none of the usual': true (they miss gamma) but gamma's place is not named"),
    "08:sync_batchnorm_backward: a list passed to all_reduce": ("NAMED", "'all_reduce takes a torch.Tensor, got list, in your line ...'"),
    "08:merge_running_stats: count passed to all_reduce as a Python int": ("NAMED", "'all_reduce takes a torch.Tensor, got int, in your line `total = all_reduce(count)`'"),
    "08:merge_running_stats: running_mean scaled in place": ("OBSERVED", "running_var 'each feature is off by its own factor (777.5, 8281, ...)': the in-place mul_ on the buffer is not named"),
    "08:merge_running_stats: standard deviations pooled": ("OBSERVED", "per-feature factor (0.9843, 0.9864, ...) not recognised"),
    "08:merge_running_stats: between-rank term over N": ("OBSERVED", "per-feature factor (0.998, 0.9984, ...) not recognised"),
    "08:sync_bn_layer: forward returns only the output": ("NAMED", "'returned a Tensor; expected a tuple of 2: (out, saved)'"),
    "08:sync_bn_layer: gamma * invstd saved as invstd": ("NAMED", "'saved invstd | WRONG | ... got 0.306344, expected 0.204603': locates the wrong saved slot (the stage), though the factor gamma is not named"),
    "08:sync_bn_layer: saved tensors unpacked with mean and gamma swapped": ("OBSERVED", "bare max rel. errors on dx and dgamma"),
    "08:sync_bn_layer: backward computed in float32": ("NAMED", "'its values are float32 numbers ... compute in float64, as the input is'"),
    "08:sync_bn_layer: saved x centred in place": ("NAMED", "'changed an input tensor in place on rank 0: compute new tensors': the in-place x -= mean in backward (the example names dout, but the kind is right)"),
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
(HERE / "labels-before.json").write_text(json.dumps({
    "results": "results-before.json", "commit": R.get("commit"), "checks_at": R.get("checks_commit"),
    "date": "2026-12-06",
    "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly), after every entry was written; helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")
md = ["# Labels of the fifth held-out set, part b (lessons 04, 07, 08), at 17021da (/work/wt-r5base)", "",
      "Each wrong entry's label (tests/unseen/README.md, 'Classifying', strictly) and the message line(s) that decided it; "
      "CRASH, FALSE OK, PASS, FAIL are the auto labels of `results-before.json`. Shares: "
      "`run.py --summary results-before.json --labels labels-before.json`.", ""]
for lesson in sorted(rows_md):
    md += [f"## Lesson {lesson}", "", "| entry | label | cause | deciding message line(s) | why |", "|---|---|---|---|---|",
           *rows_md[lesson], ""]
(HERE / "LABELS-before.md").write_text("\n".join(md))
print("ok", len(labels))
