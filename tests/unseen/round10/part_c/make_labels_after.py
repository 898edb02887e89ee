"""Write labels-after.json and LABELS-after.md from the labels read below
(each wrong entry's visible message in results-after.json, measured at /work/wt-final,
against its cause). A copy of make_labels.py; the entries whose message changed
are marked "# changed"."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (label, deciding message fragment, why)
READ = {
    # lesson 07
    "shift as plus or minus shift (sign of a normal draw)": ("NAMED", "only 2 distinct values among 512 (repeated: -1.5, 1.5), 512 of them exactly at the ends of the range", "the shift's two point masses at +-shift are named"),
    "noise averaged over the batch's rows": ("OBSERVED", "the shift (here shift=1.5) must be uniform in [-1.5, 1.5]: 512 values from -0.597 to 0.608, mean 0.0239, std 0.221; U[-1.5, 1.5] has mean 0, std 0.866", "a correct description of a too narrow shift; the averaging over examples (and the scale) not named"),
    "cumulative average as the running-statistics momentum": ("NAMED", "running_var moved by the fraction 1 of the way to the batch's value; PyTorch moves it by 0.1", "the running update's fraction (the momentum) is located and the right value given"),
    "dtype passed positionally to torch.rand": ("OBSERVED", "raised TypeError: rand(): argument 'size' failed to unpack ... in your line `shift = (2 * torch.rand(c, out.dtype) - 1) * self.shift` (forward) (in that line: out (16, 5))", "the learner's own TypeError reported as it is (now with the line's shapes)"),  # changed
    "eval mode by hand without eps": ("OBSERVED", "max rel. error 1.2e-02 (expect < 1e-12); worst at index (10, 3): got 9.49631, expected 9.38592", "bare figures (the constant factor 1.012 of before is no longer printed); eps not named"),  # changed
    "scale range hard-coded to [1, 2]": ("NAMED", "the scale (here spread=3) must be uniform in [1, 3]: 512 values from 1 to 2", "with spread=3 the values stop at 2: the unused spread is located"),
    "first gradient cached per index across calls": ("NAMED", "changed a default argument during the call: it keeps state between calls (a cache, a running total), so the next input's answer depends on this one: compute from the arguments alone", "the mutable default used as a cache is named, and the fix"),  # changed (was FALSE OK)
    "cosine of the unflattened weight gradients": ("OBSERVED", "raised RuntimeError: a Tensor with 8 elements cannot be converted to Scalar, in your line `return (g - g2).norm().item(), cosine.item()` (gc_cosine_unflattened) (in that line: cosine (8,), g (8, 8), g2 (8, 8))", "the learner's own RuntimeError reported as it is, with the line's shapes (cosine (8,)); the missing flatten not named"),  # changed
    "earlier layers stepped from work[1:index]": ("OBSERVED", "the distance ||G - G'||: got 7.69919, expected 2.20814; the cosine: got 0.0793199, expected 0.0978155; both differ: G or G' is off", "bare figures; 'G or G' is off' names no cause (the first layer not stepped)"),
    "distance as the sum of column norms": ("NAMED", "the distance ||G - G'||: got 5.93876, expected 2.20814; the cosine: right, 0.0978155; the cosine is right; the distance is the 2-norm of G - G'", "the distance's norm is named"),
    "model and inputs cast to float32": ("NAMED", "its values are float32 numbers and the error is at float32's rounding level (6e-08): compute in float64, as the input is", "the float32 computation is named, and the fix"),  # changed (was OBSERVED)
    "stepped vector never written back": ("OBSERVED", "what is off is what the measurement gives when nothing moves, as many slips do: not computed, nothing moved, or a .grad read that was overwritten", "three candidates, of which the real one ('nothing moved') is one"),  # changed
    "start restored with p.data = p0 (aliasing)": ("NAMED", "the steps piled up: each step size starts from the original weights, w - eta * g", "locates the restore to the start (the piling up the aliasing causes); the aliasing itself is not named"),
    "gradient change on the last layer's weight only": ("NAMED", "the points are right; take ||grad - g|| over all parameters, from 0", "'over all parameters' is the fix (message as before, other figures)"),
    "torch.cat given a generator": ("OBSERVED", "raised TypeError: cat(): argument 'tensors' (position 1) must be tuple of Tensors, not generator, in your line `g = torch.cat(d.flatten() for d in grads)` (lp_cat_generator) (in that line: grads: 10 items)", "the learner's own TypeError reported as it is (now with 'grads: 10 items')"),  # changed
    "gradient change left as a TODO (zeros)": ("OBSERVED", "what is off is what the measurement gives when nothing moves, as many slips do: not computed, nothing moved, or a .grad read that was overwritten", "three candidates, of which the real one ('not computed') is now one (the losses are right)"),  # changed (was WRONG CAUSE)
    "step sizes zipped with the parameters": ("NAMED", "the points w - eta * g are off: each starts from w, all parameters", "'each starts from w, all parameters' locates the one-loop zip that moves one tensor per step size"),
    "change measured against the first probe point's gradient": ("OBSERVED", "the points are right; take ||grad - g|| over all parameters, from 0", "a generic hint of two parts: 'over all parameters' does not apply, 'from 0' (g at the start) does: candidates"),
    # lesson 08
    "Bessel factor inverted in running_var": ("OBSERVED", "running_var averages in a batch statistic that is off by the constant factor 0.8403 everywhere", "factor 0.8403 = ((N-1)/N)^2 not recognised"),
    "x itself all-reduced, summed afterwards": ("NAMED", "raised ValueError: all_reduce got tensors of different shapes [(3, 4), (5, 4), (6, 4)]: every rank must send the same shape (e.g. one va..., in your line `mean = all_reduce(x).sum(0) / count` (fw_x_all_reduced) (in that line: count (1,), x (6, 4))", "the course's all_reduce says why (every rank must send the same shape, one value per channel) at the learner's line"),  # changed
    "running-statistics branch left as NotImplementedError": ("NAMED", "not implemented yet: replace the `raise NotImplementedError` line with your code", "the unfinished branch is located"),
    "running_var from deviations around the updated running_mean": ("OBSERVED", "running_var averages in a batch statistic that is none of the usual ones (ratio to PyTorch's: 2.085, 2.473, 3.181, 2.75, ...)", "the running_var's batch term is off, unrecognised ratios; deviations around the running mean not named"),
    "beta inside the scale: gamma * (x_hat + beta)": ("NAMED", "beta is added before the scale: out = gamma * x_hat + beta", "named"),
    "dgamma and dbeta divided by the number of ranks": ("OBSERVED", "the sum over ranks of dgamma: off by the constant factor 0.3333 everywhere", "factor 1/3 (1 / number of ranks) not recognised"),
    "dx without the batch terms (TODO)": ("OBSERVED", "sync_batchnorm_backward dx | WRONG | max rel. error 1.6e-01 (expect < 1e-10)", "bare max rel. error"),
    "the cached global count all-reduced again": ("OBSERVED", "in dx, both terms mean(dy) and mean(dy * x_hat) are none of the usual; max rel. error 1.1e-01", "both mean terms off, unrecognised; the divisor (world * N) not named"),
    "two tensors passed to all_reduce": ("OBSERVED", "raised TypeError: ... all_reduce() takes 1 positional argument but 2 were given, in your line `sum_dy, sum_dy_xhat = all_reduce(dout.sum(0), (dout * x_hat).sum(0))` (bw_two_arguments) (in that line: dout (3, 4), x_hat (3, 4))", "the learner's own TypeError (a wrong call) reported as it is (now with the line's shapes)"),  # changed
    "N * dout form with this rank's n_r": ("OBSERVED", "sync_batchnorm_backward dx | WRONG | max rel. error 5.8e-01 (expect < 1e-10)", "bare max rel. error"),
    "count all-reduced as a vector of ones": ("NAMED", "raised ValueError: all_reduce got tensors of different shapes [(1,), (4,), (7,)]: every rank must send the same shape (e.g. one value pe..., in your line `count = all_reduce(torch.ones(x.shape[0], dtype=x.dtype))` (cap_fw_count_vector) (in that line: x (4, 4))", "the course's all_reduce says why at the learner's count line"),
    "running statistics never decayed (mul_ forgotten)": ("NAMED", "running_mean = old + momentum * batch: multiply the old by (1 - momentum)", "the missing decay of the old value is named, and the fix"),  # changed (was WRONG CAUSE)
    "beta left out of the output": ("NAMED", "beta is not applied: out = gamma * x_hat + beta", "named"),
    "backward's x_hat recomputed with gamma": ("NAMED", "the sum over ranks of dgamma: each feature is off by its own factor, gamma (0.738, 1.037, 0.9422, 1.145)", "the extra factor gamma is named (and dx's mean(dy * x_hat) term located)"),
    "merged statistics added with add_ instead of copied": ("OBSERVED", "merge_running_stats BN 1 mean | WRONG | max rel. error 2.2e+00 (expect < 1e-12)", "bare max rel. errors"),
    "N - 1 in the mean's denominator too": ("NAMED", "running_mean: off by the constant factor 1.004 = N/(N-1) with N = 270 everywhere", "the factor N/(N-1) on the mean is named"),
    "total count as count * world size": ("OBSERVED", "merge_running_stats BN 1 mean | WRONG | max rel. error 3.5e+00 (expect < 1e-12)", "bare max rel. errors"),
    "merged in float64 and assigned with .data": ("FALSE OK", "merge_running_stats | ok | all 5 BN layers (1d, 2d, 3d, a nested SyncBatchNorm) agree on all 3 ranks", "visible ok and full hidden marks: the float64 buffers (new storage) are not seen"),
}


def main():
    res = json.loads((HERE / "results-after.json").read_text())
    labels, md = {}, {"07": [], "08": []}
    for r in res["rows"]:
        if r["correct"]:
            label, line, why = r["auto_label"], "(correct alternative)", "visible ok, full hidden marks" if r["auto_label"] == "PASS" else "rejected"
        else:
            label, line, why = READ[r["name"]]
            if r["auto_label"] in ("CRASH", "FALSE OK"):
                assert label == r["auto_label"], (r["name"], label, r["auto_label"])
            else:
                assert label in ("NAMED", "OBSERVED", "WRONG CAUSE"), r["name"]
        labels[r["id"]] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"],
                           "label": label, "note": why}
        cause = "correct alternative" if r["correct"] else r["cause"]
        cell = line.replace("|", "\\|")
        md[r["lesson"]].append(f"| {r['name']} ({r['check']}) | **{label}** | {cause} | {cell} | {why} |")
    assert len(READ) == sum(not r["correct"] for r in res["rows"])
    out = {"results": "results-after.json", "commit": res["commit"], "checks_at": res.get("checks_commit"),
           "date": "2026-12-06",
           "labels_by": "a helper (not the writer), reading each visible message at /work/wt-final against the entry's cause "
                        "(tests/unseen/README.md 'Classifying', strictly, as the writer did before); helpers/checks/ not read",
           "labels": labels}
    (HERE / "labels-after.json").write_text(json.dumps(out, indent=1) + "\n")
    text = [f"# Labels of the tenth held-out set, part c (lessons 07, 08) AFTER the lead's changes, at {res['commit']} (/work/wt-final)", "",
            "Each wrong entry's label (tests/unseen/README.md, 'Classifying') and the message line(s) that decided it; "
            "CRASH, FALSE OK, PASS, FAIL are the auto labels of `results-after.json`. Labels read as strictly as the writer's "
            "(`LABELS-before.md`); where the message is the same as before, the label is the same. Shares: "
            "`run.py --summary results-after.json --labels labels-after.json`.", ""]
    for lesson, rows in md.items():
        text += [f"## Lesson {lesson}", "", "| entry | label | cause | deciding message line(s) | why |",
                 "|---|---|---|---|---|", *rows, ""]
    (HERE / "LABELS-after.md").write_text("\n".join(text))


main()
