import json
r = json.load(open("/work/heldout/unseen19b/results-before.json"))
rows = {row["id"]: row for row in r["rows"]}
L = {
 "03:scratch_batchnorm: Bessel factor applied with mul_ to the batch variance": ("NAMED",
   "'the scale divides by sqrt(v + eps), v = the unbiased variance (n - 1): normalise with the biased one': the "
   "variance used to normalise is read exactly, and the only place it becomes unbiased is the var.mul_ line; "
   "(one case, momentum=0.0, reads it instead as an eps of 1.15, a stray wrong reading under the right one)"),
 "03:scratch_batchnorm: affine=False by default (nn.InstanceNorm's signature)": ("NAMED",
   "'affine defaults to False, the exercise's to True'"),
 "03:scratch_batchnorm: 4-D values per channel counted as N * H * H": ("FALSE OK",
   "visible check passes (auto); the hidden tests (non-square 2x5 images) fail, and the reference sees running_var wrong"),
 "03:scratch_batchnorm: `if self.train:` (the method) in place of self.training": ("NAMED",
   "'eval mode changed running_mean: update it only in training', eval output wrong and the training guard raised "
   "in eval ('your own test refused an input'): the training branch runs in eval mode, which points at the mode test"),
 "03:scratch_batchnorm: reset_parameters fills the bias with ones": ("NAMED",
   "'reset_parameters() must ... set weight to 1, bias to 0: bias is 1, 1, 1, 1 after it'"),
 "03:fold_batchnorm: per-channel view with one dimension too many": ("OBSERVED",
   "the learner's RuntimeError (broadcast shape [5, 5, 6] for [5, 6]) with its line and the shapes, plus a generic "
   "'a broadcasting error: print the shapes': the exception as raised, no diagnosis of the extra view dimension"),
 "03:fold_batchnorm: affine=False: scale taken as the std, not 1 / std": ("NAMED",
   "per-feature factors not recognised, but 'it fails only where affine=False: bn.weight and bn.bias are None "
   "(gamma = 1 and beta = 0)' locates the two-line affine=False branch where the scale is wrong"),
 "03:fold_batchnorm: Conv2d settings positional, padding_mode in the bias slot": ("NAMED",
   "'the folded conv's padding_mode is zeros, the original's reflect: copy every setting (..., padding_mode)': the "
   "argument that did not arrive"),
 "04:batch_renorm_backward: staged: dvar with std ** 3 (exponent's minus sign lost)": ("NAMED",
   "'a multiple of x_hat: the branch through sigma_B is off (missing, or scaled wrong)': the stage that is wrong "
   "(dvar), dgamma and dbeta ok"),
 "04:batch_renorm_backward: gamma left out of the projection term": ("NAMED",
   "'a multiple of x_hat: the branch through sigma_B is off (missing, or scaled wrong)': the projection term is that "
   "branch, scaled wrong"),
 "04:batch_renorm_backward: dgamma and dbeta accumulated over range(1, N)": ("OBSERVED",
   "bare error figures for dgamma and dbeta (dx ok): which outputs, no cause (the first example left out)"),
 "04:batch_renorm: running_std moved towards sigma_B - running_mean (typo)": ("OBSERVED",
   "'running_std is not PyTorch's; ... batch statistic times -0.1591, 0.4551, ...': the wrong buffer with an "
   "unrecognised per-feature factor; the typo (running_mean for running_std) not named"),
 "04:batch_renorm: r's lower bound 2 - rmax (symmetric around 1)": ("NAMED",
   "'r is off in features 0, 2: yours 0.5876, 0.5, expected 0.6667 (r before clipping to [0.6667, 1.5] ...)': "
   "the clipping interval's lower bound, with the right one"),
 "04:batch_renorm: r and d made constants with .item()": ("OBSERVED",
   "the learner's RuntimeError with its line; the added '(.item() takes one number, not several)' restates torch's "
   "text; nothing says r and d must stay per-channel tensors, detached"),
 "04:batch_renorm: renorm only when both bounds are relaxed (and for or)": ("FALSE OK",
   "visible check and hidden tests pass (auto); the reference sees the outputs wrong with one bound relaxed"),
 "04:renorm_schedule: warm-up tested as step / warmup <= 1": ("OBSERVED",
   "the learner's ZeroDivisionError with its line and a generic '(a division by a count or length that is 0 here)': "
   "the exception as raised"),
 "04:renorm_schedule: step capped at the ramp length, not warmup + length": ("OBSERVED",
   "values only: 'rmax ramps over 30000 steps, the paper's over 35000; rmax ends at 2.714 ...': describes the "
   "short ramp, names no cause (the step capped at length instead of warmup + length)"),
 "04:renorm_schedule: rmax ramps towards dmax_final (name typo)": ("OBSERVED",
   "values only: 'rmax ends at 5, the paper's at 3': true, but 5 is not recognised as dmax_final"),
}
labels = {}
for rid, row in rows.items():
    if row["correct"]:
        ok = row["auto_label"] == "PASS"
        labels[rid] = {"lesson": row["lesson"], "check": row["check"], "correct": True,
                       "label": row["auto_label"],
                       "note": f"visible ok, hidden points {row['hidden_points']}/{row['hidden_total']}" if ok else "see results"}
        continue
    label, note = L[rid]
    if row["auto_label"] != "?":
        assert row["auto_label"] == label, (rid, row["auto_label"], label)
    labels[rid] = {"lesson": row["lesson"], "check": row["check"], "correct": False, "label": label, "note": note}
assert set(L) == {k for k, v in rows.items() if not v["correct"]}
out = {"results": "results-before.json", "commit": r["commit"], "checks_at": r["checks_commit"], "date": "2026-12-07",
       "labels_by": "the helper that wrote the set (round 19 part b), reading each visible message against the entry's "
                    "cause (tests/unseen/README.md 'Classifying', strictly), after all entries were frozen "
                    "(FROZEN.sha256); helpers/checks/ not read",
       "labels": labels}
json.dump(out, open("/work/heldout/unseen19b/labels-before.json", "w"), indent=1, ensure_ascii=False)
print(json.dumps({k: v["label"] for k, v in labels.items()}, indent=0))
