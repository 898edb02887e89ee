"""Write labels-after.json and LABELS-after.md from the read labels below and
results-after.json (measured at /work/wt-r7base, the lead's changes) (the deciding message lines are taken from the results)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
R = json.loads((HERE / "results-after.json").read_text())

# id -> (label, note, substring of the deciding verdict line or None)
L = {
 "03:scratch_batchnorm: Bessel factor with integer division": ("NAMED", "same message as before: 'the biased batch variance; PyTorch stores the unbiased one (times n / (n - 1))': what n // (n - 1) = 1 stores; points at the factor", "ScratchBatchNorm (N, C) "),
 "03:scratch_batchnorm: momentum=0 read as None": ("OBSERVED", "row 'momentum=0.0': running_mean = 0.5 old + 0.5 batch vs PyTorch's 1 old + 0 batch: the weights at one step, correct; neither 'momentum 0 read as None' nor the cumulative average (1/k) is named (before: FALSE OK)", "momentum=0.0"),
 "03:scratch_batchnorm: half-precision input computed in float32, not cast back": ("NAMED", "'bfloat16 input gave torch.float32 ... then out.to(x.dtype)' (reworded, same meaning)", "bfloat16"),
 "03:scratch_batchnorm: reset_parameters ignores affine=False": ("NAMED", "the learner's AttributeError at `nn.init.ones_(self.weight)` in reset_parameters with '(with affine=False: nothing to reset, as in torch)': the missing affine check named (before: FALSE OK)", "reset_*()"),
 "03:scratch_batchnorm: reset_running_stats ignores track_running_stats=False": ("NAMED", "the learner's AttributeError at `self.running_mean.zero_()` in reset_running_stats with '(with track_running_stats=False: nothing to reset, as in torch)' (before: FALSE OK)", "reset_*()"),
 "03:scratch_batchnorm: one-value guard in eval mode too": ("NAMED", "row 'eval, one example': the learner's ValueError '... in training' from _guard with 'your own test refused an input the exercise accepts (called with inputs of shape (1, 4))': locates the guard firing in eval (as 'guard refuses two values per channel' before: NAMED) (before: FALSE OK)", "eval, one example"),
 "03:scratch_batchnorm: statistics computed inside no_grad": ("NAMED", "'the gradient with the batch statistics detached (no_grad, x.detach())' (reworded, same meaning)", "ScratchBatchNorm (N, C) "),
 "03:scratch_batchnorm: counter a Python int": ("NAMED", "same message: 'num_batches_tracked is not a registered buffer' (plus 'is 1, not tensor(1) (a long)')", "buffers"),
 "03:scratch_batchnorm: reduction dims cached at the first call": ("FALSE OK", "visible check passes, hidden 7/7 (the 2-D-then-3-D case is not checked)", None),
 "03:scratch_batchnorm: guard refuses two values per channel": ("NAMED", "same message: the learner's ValueError with 'your own test refused an input the exercise accepts (called with inputs of shape (2, 4))'", "ScratchBatchNorm (N, C) "),
 "03:scratch_batchnorm: Bessel factor applied to the running mean too": ("OBSERVED", "same message: running_mean = 0.9 old + 0.12 batch vs 0.1: an unrecognised weight, no cause", "ScratchBatchNorm (N, C) "),
 "03:scratch_batchnorm: keepdim statistics added into the buffers": ("OBSERVED", "same message: the learner's own broadcasting RuntimeError at the buffer update with a generic 'print the shapes' hint; keepdim not named", "ScratchBatchNorm (N, C) "),
 "03:scratch_batchnorm: running variance measured around the running mean": ("OBSERVED", "same message: 'a batch statistic that is none of the usual ones' with bare ratios", "ScratchBatchNorm (N, C) "),
 "03:fold_batchnorm: copy.copy of the layer": ("NAMED", "same message: 'changed its input argument #1's parameter weight in place ... work on a copy (copy.deepcopy)'", "fold_batchnorm linear "),
 "03:fold_batchnorm: assert for the training-mode refusal": ("NAMED", "same message: 'raised AssertionError but ValueError was expected'", "training BN"),
 "03:fold_batchnorm: refusal condition inverted": ("NAMED", "same message: the learner's ValueError with 'your own test refused an input the exercise accepts' on eval-mode bns", "fold_batchnorm linear "),
 "03:fold_batchnorm: missing layer bias replaced by bn.bias": ("NAMED", "same message: per-feature offsets and 'it fails only where the layer has no bias (fold into a new bias)'", "linear (no bias)"),
 "03:fold_batchnorm: one std for all channels": ("NAMED", "same message: 'the scale divides by one number for every column'", "fold_batchnorm linear "),
 "03:fold_batchnorm: eps added to running_var in place": ("NAMED", "'changed its input argument #2's buffer running_var in place ... work on a copy': the aliased buffer named (before: 'changed the original bn in place', NAMED)", "fold_batchnorm linear "),
 "03:fold_batchnorm: folded layer wrapped in nn.Sequential": ("NAMED", "same message: 'returned a Sequential: return one Linear'", "fold_batchnorm linear "),
 "04:batch_renorm_backward: gamma in dgamma": ("OBSERVED", "same message: 'dgamma uses x_hat * a + b' with a = gamma * r, b = gamma * d not recognised", "dgamma"),
 "04:batch_renorm_backward: projection term from dout": ("NAMED", "same message: 'the branch through sigma_B is off (missing, or scaled wrong)': the stage located", "dx"),
 "04:batch_renorm_backward: dx returned transposed": ("NAMED", "same message: 'dx has shape (5, 12), expected (12, 5): the axes are swapped (a transpose?)'", "dx"),
 "04:batch_renorm_backward: N taken as dout.size": ("OBSERVED", "same message: 'the branches through the batch mean and sigma_B (one or both)': candidates, the wrong N not named", "dx"),
 "04:batch_renorm_backward: r averaged over the features": ("OBSERVED", "same message: 'each feature is off by its own factor' with bare factors", "dx"),
 "04:batch_renorm: plain batch-norm shortcut skips the running update": ("NAMED", "rows 'rmax=1 dmax=0 running_mean / running_std' only: 'running_mean did not change in a training step; it should move a fraction 0.01 of the way': the missing update, in the rmax=1 dmax=0 case where the shortcut is (before: FALSE OK)", "rmax=1 dmax=0 running_mean"),
 "04:batch_renorm: whole training normalisation inside no_grad": ("NAMED", "'the input gradient is None: backward() did not reach it: the graph is cut (torch.no_grad(), .detach() or NumPy on the way)': the cut graph named, no_grad first among the ways of cutting it (as 'statistics computed inside no_grad' in lesson 03: NAMED) (before: WRONG CAUSE, 'did you forget the return')", "rmax=1 dmax=0 gradient"),
 "04:batch_renorm: buffers registered with persistent=False": ("NAMED", "same message: 'registered with persistent=False: state_dict() leaves it out'", "buffers"),
 "04:batch_renorm: channel count checked for 2-D input only": ("NAMED", "row 'wrong channels, 4-D': 'raised RuntimeError but ValueError was expected (3 channels for num_features=5)': the missing refusal for 4-D input located (as 'assert for the training-mode refusal': NAMED) (before: FALSE OK)", "wrong channels, 4-D"),
 "04:batch_renorm: eval mode not reshaped for 4-D input": ("OBSERVED", "row 'eval NCHW': the learner's own broadcasting RuntimeError at `return (x - self.running_mean) / self.running_std` with the generic 'print the shapes' hint; the missing reshape not named (as 'keepdim statistics added into the buffers': OBSERVED) (before: FALSE OK)", "eval NCHW"),
 "04:batch_renorm: running_std updated with the whole batch's std": ("OBSERVED", "same message: 'a batch statistic that is none of the usual ones' with bare ratios", "rmax=1 dmax=0 running_std"),
 "04:batch_renorm: lower bound 1/rmax fixed at construction": ("OBSERVED", "same message: r is 1 where [0.6667, 1.5] clips it to 0.6667 or leaves it below 1; the stale 1/rmax not named", "NC output"),
 "04:batch_renorm: input centred in place": ("NAMED", "row 'image batch of one': 'changed its input argument #1 in place: compute new arrays instead of writing into the caller's (e.g. x = x - mu, not x -= mu)', and the RuntimeError rows now say 'a tensor that requires grad is changed in place: compute a new one, ...' (before: WRONG CAUSE, 'a parameter ... under no_grad')", "image batch of one"),
 "04:batch_renorm: rmax and dmax swapped in __init__": ("NAMED", "same message: 'module.rmax is 0.0, expected 1.0: store the value passed in'", "buffers"),
 "04:renorm_schedule: d ramp over r_steps": ("NAMED", "same message: 'dmax ramps over 35000 steps (r_steps = 35000)'", "renorm_schedule"),
 "04:renorm_schedule: dmax capped at rmax_final": ("OBSERVED", "same message: 'dmax ramps over 12000 steps' beside 'dmax ends at 3, the paper's at 5'; 3 = rmax_final not recognised", "renorm_schedule"),
 "04:renorm_schedule: r_steps and d_steps read as absolute end steps": ("NAMED", "same message: 'rmax ramps over 30000 steps, the paper's over 35000; dmax over 15000, the paper's 20000'", "renorm_schedule"),
 "04:renorm_schedule: both bounds final once the r ramp ends": ("OBSERVED", "'warmup=0, r_steps=10, d_steps=20, rmax_final=2, dmax_final=1 at step 10 give (2.0, 1.0), not (2, 0.5)': the values at one step, correct (d is final half-way through its ramp); no cause, and the wrong 'rmax_final and dmax_final are ignored' is gone (before: WRONG CAUSE)", "renorm_schedule"),
 "04:renorm_schedule: final values hard-coded 3 and 5": ("NAMED", "same message: 'rmax_final and dmax_final are ignored'", "renorm_schedule"),
}

rows = {r["id"] if r["id"].startswith(r["lesson"] + ":") else f'{r["lesson"]}:{r["id"]}': r for r in R["rows"]}
labels = {}
md = ["# Labels of the sixth held-out set, part b (lessons 03, 04), at 6d208b7 (/work/wt-r7base, after the lead's changes)", "",
      "Each wrong entry's label (tests/unseen/README.md, 'Classifying', strictly) and the message line that decided it; "
      "FALSE OK, CRASH, PASS, FAIL are the auto labels of `results-after.json`. Shares: "
      "`run.py --summary results-after.json --labels labels-after.json`.", ""]
for lesson in ("03", "04"):
    md += [f"## Lesson {lesson}", "", "| entry | label | cause | deciding message line | why |", "|---|---|---|---|---|"]
    for rid, r in rows.items():
        if r["lesson"] != lesson:
            continue
        if r["correct"]:
            lab, note, line = r["auto_label"], "visible ok, full hidden marks" if r["auto_label"] == "PASS" else "", "(correct alternative)"
        else:
            lab, note, key = L[rid]
            if lab in ("FALSE OK", "CRASH"):
                assert r["auto_label"] == lab, (rid, r["auto_label"])
            else:
                assert r["auto_label"] == "?", (rid, r["auto_label"])
            if key is None:
                line = f"(visible ok: {r['visible_ok']}; hidden {r['hidden_points']:g}/{r['hidden_total']:g})"
            else:
                line = next(v for v in r["verdict_lines"] if key in v)
        labels[rid] = {"lesson": lesson, "check": r["check"], "correct": r["correct"], "label": lab, "note": note,
                       "message": line}
        cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        md.append(f"| {cell(r['name'])} ({r['check']}) | **{lab}** | {cell(r['cause'] or 'correct alternative')} | "
                  f"{cell(line)} | {cell(note)} |")
    md.append("")
assert set(L) <= set(rows), set(L) - set(rows)
(HERE / "labels-after.json").write_text(json.dumps({
    "results": "results-after.json", "commit": R.get("commit"), "checks_at": R.get("checks_commit"),
    "date": "2026-12-06",
    "labels_by": "a helper that did not write the set, reading each visible message against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")
(HERE / "LABELS-after.md").write_text("\n".join(md) + "\n")
print(len(labels), "labels")
