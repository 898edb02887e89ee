"""Write labels-before.json and LABELS-before.md from the read labels below and
results-before.json (the deciding message lines are taken from the results)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
R = json.loads((HERE / "results-before.json").read_text())

# id -> (label, note, substring of the deciding verdict line or None)
L = {
 "03:scratch_batchnorm: Bessel factor with integer division": ("NAMED", "'the biased batch variance; PyTorch stores the unbiased one (times n / (n - 1))': effectively what n // (n - 1) = 1 stores; points at the factor, where the // is", "ScratchBatchNorm (N, C) "),
 "03:scratch_batchnorm: momentum=0 read as None": ("FALSE OK", "visible check passes, hidden 7/7", None),
 "03:scratch_batchnorm: half-precision input computed in float32, not cast back": ("NAMED", "'bfloat16 input gave torch.float32 ... then out.to(x.dtype)'", "bfloat16"),
 "03:scratch_batchnorm: reset_parameters ignores affine=False": ("FALSE OK", "visible check passes, hidden 7/7", None),
 "03:scratch_batchnorm: reset_running_stats ignores track_running_stats=False": ("FALSE OK", "visible check passes, hidden 7/7", None),
 "03:scratch_batchnorm: one-value guard in eval mode too": ("FALSE OK", "visible check passes, hidden 7/7", None),
 "03:scratch_batchnorm: statistics computed inside no_grad": ("NAMED", "'the gradient with the batch statistics detached (under no_grad ...)'", "ScratchBatchNorm (N, C) "),
 "03:scratch_batchnorm: counter a Python int": ("NAMED", "'num_batches_tracked is not a registered buffer'", "buffers"),
 "03:scratch_batchnorm: reduction dims cached at the first call": ("FALSE OK", "visible check passes, hidden 7/7", None),
 "03:scratch_batchnorm: guard refuses two values per channel": ("NAMED", "the learner's ValueError with 'your own test refused an input the exercise accepts (called with inputs of shape (2, 4))': locates the guard and the valid n = 2", "ScratchBatchNorm (N, C) "),
 "03:scratch_batchnorm: Bessel factor applied to the running mean too": ("OBSERVED", "running_mean = 0.9 old + 0.12 batch vs 0.1: an unrecognised weight (8/7 * 0.1 etc.), no cause", "ScratchBatchNorm (N, C) "),
 "03:scratch_batchnorm: keepdim statistics added into the buffers": ("OBSERVED", "the learner's own broadcasting RuntimeError at the buffer update with a generic 'print the shapes' hint; keepdim not named", "ScratchBatchNorm (N, C) "),
 "03:scratch_batchnorm: running variance measured around the running mean": ("OBSERVED", "'a batch statistic that is none of the usual ones' with bare ratios", "ScratchBatchNorm (N, C) "),
 "03:fold_batchnorm: copy.copy of the layer": ("NAMED", "'changed its input argument #1's parameter weight in place ... work on a copy (copy.deepcopy)'", "fold_batchnorm linear "),
 "03:fold_batchnorm: assert for the training-mode refusal": ("NAMED", "'raised AssertionError but ValueError was expected'", "training BN"),
 "03:fold_batchnorm: refusal condition inverted": ("NAMED", "the learner's ValueError with 'your own test refused an input the exercise accepts' on eval-mode bns: locates the inverted refusal", "fold_batchnorm linear "),
 "03:fold_batchnorm: missing layer bias replaced by bn.bias": ("NAMED", "per-feature offsets and 'it fails only where the layer has no bias (fold into a new bias)': locates the no-bias path", "linear (no bias)"),
 "03:fold_batchnorm: one std for all channels": ("NAMED", "'the scale divides by one number for every column'", "fold_batchnorm linear "),
 "03:fold_batchnorm: eps added to running_var in place": ("NAMED", "'changed the original bn in place'", "fold_batchnorm linear "),
 "03:fold_batchnorm: folded layer wrapped in nn.Sequential": ("NAMED", "'returned a Sequential: return one Linear'", "fold_batchnorm linear "),
 "04:batch_renorm_backward: gamma in dgamma": ("OBSERVED", "'dgamma uses x_hat * a + b' with a = gamma * r and b = gamma * d not recognised; the learner does use y_hat", "dgamma"),
 "04:batch_renorm_backward: projection term from dout": ("NAMED", "'the branch through sigma_B is off (missing, or scaled wrong)': the stage located", "dx"),
 "04:batch_renorm_backward: dx returned transposed": ("NAMED", "'dx has shape (5, 12), expected (12, 5): the axes are swapped (a transpose?)'", "dx"),
 "04:batch_renorm_backward: N taken as dout.size": ("OBSERVED", "'the branches through the batch mean and sigma_B (one or both)': candidates, the wrong N not named", "dx"),
 "04:batch_renorm_backward: r averaged over the features": ("OBSERVED", "'each feature is off by its own factor' with bare factors", "dx"),
 "04:batch_renorm: plain batch-norm shortcut skips the running update": ("FALSE OK", "visible check passes, hidden 8/8", None),
 "04:batch_renorm: whole training normalisation inside no_grad": ("WRONG CAUSE", "'the input gradient is None: did you forget the `return` statement?': a missing return is not the cause", "gradient"),
 "04:batch_renorm: buffers registered with persistent=False": ("NAMED", "'registered with persistent=False: state_dict() leaves it out'", "buffers"),
 "04:batch_renorm: channel count checked for 2-D input only": ("FALSE OK", "visible check passes, hidden 8/8", None),
 "04:batch_renorm: eval mode not reshaped for 4-D input": ("FALSE OK", "visible check passes, hidden 8/8", None),
 "04:batch_renorm: running_std updated with the whole batch's std": ("OBSERVED", "'a batch statistic that is none of the usual ones' with bare ratios", "NC running_std"),
 "04:batch_renorm: lower bound 1/rmax fixed at construction": ("OBSERVED", "r is 1 where [0.6667, 1.5] clips it to 0.6667 or leaves it below 1: correct description, the stale 1/rmax not named", "NC output"),
 "04:batch_renorm: input centred in place": ("WRONG CAUSE", "the learner's RuntimeError at `x -= ...` with the hint 'a parameter is changed in place while autograd records: update it under torch.no_grad()': the input, not a parameter; no_grad would cut the gradient", "BatchRenorm rmax=1 dmax=0"),
 "04:batch_renorm: rmax and dmax swapped in __init__": ("NAMED", "'module.rmax is 0.0, expected 1.0: store the value passed in'", "buffers"),
 "04:renorm_schedule: d ramp over r_steps": ("NAMED", "'dmax ramps over 35000 steps (r_steps = 35000)'", "renorm_schedule"),
 "04:renorm_schedule: dmax capped at rmax_final": ("OBSERVED", "'dmax ramps over 12000 steps' (a misreading of the cap) beside the right 'dmax ends at 3, the paper's at 5'; 3 = rmax_final not recognised (as round 3's '(dmax, rmax)': OBSERVED)", "renorm_schedule"),
 "04:renorm_schedule: r_steps and d_steps read as absolute end steps": ("NAMED", "'rmax ramps over 30000 steps, the paper's over 35000; dmax over 15000, the paper's 20000': the ramp lengths r_steps - warmup, d_steps - warmup located", "renorm_schedule"),
 "04:renorm_schedule: both bounds final once the r ramp ends": ("WRONG CAUSE", "'rmax_final and dmax_final are ignored': they are not; d jumps to its final value early", "renorm_schedule"),
 "04:renorm_schedule: final values hard-coded 3 and 5": ("NAMED", "'rmax_final and dmax_final are ignored'", "renorm_schedule"),
}

rows = {r["id"] if r["id"].startswith(r["lesson"] + ":") else f'{r["lesson"]}:{r["id"]}': r for r in R["rows"]}
labels = {}
md = ["# Labels of the sixth held-out set, part b (lessons 03, 04), at d294ce3 (/work/wt-r6base)", "",
      "Each wrong entry's label (tests/unseen/README.md, 'Classifying', strictly) and the message line that decided it; "
      "FALSE OK, CRASH, PASS, FAIL are the auto labels of `results-before.json`. Shares: "
      "`run.py --summary results-before.json --labels labels-before.json`.", ""]
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
(HERE / "labels-before.json").write_text(json.dumps({
    "results": "results-before.json", "commit": R.get("commit"), "checks_at": R.get("checks_commit"),
    "date": "2026-12-06",
    "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")
(HERE / "LABELS-before.md").write_text("\n".join(md) + "\n")
print(len(labels), "labels")
