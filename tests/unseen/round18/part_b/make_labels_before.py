import json
r = json.load(open("/work/heldout/unseen18b/results-before.json"))
rows = {row["id"]: row for row in r["rows"]}
L = {
 "03:scratch_batchnorm: buffers aliased in a dict made in __init__": ("OBSERVED",
   "'running_mean did not change in 4 training step(s): update it' (and, for momentum=0.0, an error of float32's rounding size with a list of candidates): true of the registered buffer, but the learner does update (the stale alias); nothing points at .double() replacing the buffers behind the dict"),
 "03:scratch_batchnorm: running update with lerp_ on the batch's dtype": ("OBSERVED",
   "the learner's RuntimeError with its line (lerp_) and the bfloat16 input, as raised; the added hint guesses the wrong pair '(float32 and float64?)' and says 'keep the input's' dtype, which for the buffers is not the fix (they stay float32; the batch statistic must be cast): not NAMED, the exception itself carries the information"),
 "03:scratch_batchnorm: momentum=None counted with a Python int that reset does not zero": ("FALSE OK",
   "visible check and hidden tests pass (auto); the reference sees the buffers wrong after reset_running_stats() then momentum=None training"),
 "03:scratch_batchnorm: Keras's center and scale in place of affine": ("NAMED",
   "'signature (..., center=True, scale=True, ...); the exercise's: (..., affine=True, ...)': the two signatures side by side show the replaced parameter"),
 "03:scratch_batchnorm: sklearn's zero-std guard in place of eps": ("NAMED",
   "'the scale divides by sqrt(v) without eps'"),
 "03:scratch_batchnorm: tf.nn.batch_normalization's (offset, scale) order": ("NAMED",
   "'gamma and beta are swapped'"),
 "03:fold_batchnorm: Conv2d stride passed as stride[0]": ("FALSE OK",
   "visible check and hidden tests pass (auto); the reference's stride (2, 1) convolution gives the wrong output width"),
 "03:fold_batchnorm: folded layers cached by (id(layer), id(bn))": ("NAMED",
   "'changed a default argument during the call: it keeps state between calls (a cache, ...): compute from the arguments alone'"),
 "03:fold_batchnorm: missing gamma and beta added to the batch norm": ("FALSE OK",
   "visible check and hidden tests pass (auto); the reference sees parameters and state_dict keys added to an affine=False bn"),
 "04:batch_renorm_backward: E[g * x_hat] taken as E[g] * E[x_hat]": ("NAMED",
   "'the difference ... is a multiple of x_hat: the branch through sigma_B is off (missing, or scaled wrong)': the projection term is the missing one"),
 "04:batch_renorm_backward: parameters in the order (cache, dout)": ("NAMED",
   "'signature (cache, dout); the exercise's: (dout, cache)'"),
 "04:batch_renorm_backward: staged: mean branch divided by std twice": ("NAMED",
   "'a multiple of 1: the branch through the batch mean is off': the stage that is wrong"),
 "04:batch_renorm: Keras's renorm_clipping dict in place of rmax and dmax": ("NAMED",
   "TypeError 'unexpected keyword argument rmax' with the check's own '(keep the exercise's parameters: their names and order)'"),
 "04:batch_renorm: r and d fixed with requires_grad_(False)": ("OBSERVED",
   "the learner's RuntimeError with its line (r.requires_grad_(False)), as raised (torch's own text suggests .detach()); the check adds no diagnosis of its own"),
 "04:batch_renorm: rmax and dmax left to class attributes": ("NAMED",
   "'module.rmax is 1.0, expected 2.0: store the value passed in ... as a plain attribute'"),
 "04:batch_renorm: dmax = 0 read as 'no clipping'": ("NAMED",
   "'rmax=1 dmax=0 output ... d not clipped to [-dmax, dmax]'"),
 "04:renorm_schedule: a schedule factory (Keras LearningRateSchedule style)": ("NAMED",
   "'signature (warmup, r_steps, d_steps, ...); the exercise's: (step, warmup, r_steps, d_steps, ...)'"),
 "04:renorm_schedule: ramp table indexed by step - warmup, negative in the warm-up": ("OBSERVED",
   "values only: 'rmax starts at 2.714, the paper's at 1 ... at step 4500 (rmax, dmax) = (2.97, 4.88), expected (1, 0)': shows the warm-up is wrong, names no cause (the unclamped negative index)"),
}
labels = {}
for eid, row in rows.items():
    if row["correct"]:
        lab = "PASS" if row["auto_label"] == "PASS" else "FAIL"
        labels[eid] = dict(lesson=row["lesson"], check=row["check"], correct=True, label=lab,
                           note=f"auto: visible ok {row['visible_ok']}, hidden {row['hidden_points']:g}/{row['hidden_total']:g}")
    else:
        lab, note = L[eid]
        if row["auto_label"] in ("FALSE OK", "CRASH"):
            assert lab == row["auto_label"], eid
        else:
            assert row["auto_label"] == "?", eid
        labels[eid] = dict(lesson=row["lesson"], check=row["check"], correct=False, label=lab, note=note)
assert len(labels) == 21 and not set(L) - set(rows)
out = {"results": "results-before.json", "commit": "2490868", "checks_at": "2490868", "date": "2026-12-07",
       "labels_by": "the helper that wrote the set, after every entry was frozen (FROZEN.sha256), reading each visible message against the entry's cause (tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
       "labels": labels}
json.dump(out, open("/work/heldout/unseen18b/labels-before.json", "w"), indent=1, ensure_ascii=False)
from collections import Counter
for les in ("03", "04", None):
    c = Counter(v["label"] for v in labels.values() if les is None or v["lesson"] == les)
    print(les or "all", dict(c))
