"""Labels of this set (round 20 part b) on results-before.json, read after all entries were frozen."""
import json
r = json.load(open("/work/heldout/unseen20b/results-before.json"))
rows = {row["id"]: row for row in r["rows"]}
L = {
 "03:scratch_batchnorm: weight and bias from np.ones / np.zeros (float64 parameters)": ("NAMED",
   "'weight is torch.float64, not torch.float32 as in PyTorch's module': the parameter and its wrong dtype"),
 "03:scratch_batchnorm: counter registered as num_batches": ("NAMED",
   "'num_batches_tracked is not a registered buffer: it does not exist': the missing buffer name"),
 "03:scratch_batchnorm: momentum stored as float(momentum)": ("NAMED",
   "the TypeError in the line self.momentum = float(momentum), with '`momentum` is None here ... test `is not None`' "
   "and 'it fails only where momentum=None': the line and the unhandled None"),
 "03:scratch_batchnorm: one-value guard only when running statistics are tracked": ("FALSE OK",
   "visible check and hidden tests pass (auto); the reference sees one value per channel not refused without "
   "running statistics"),
 "03:scratch_batchnorm: reset_parameters assigns new float32 tensors to .data": ("FALSE OK",
   "visible check and hidden tests pass (auto); the reference sees float32 parameters after .double() and "
   "reset_parameters()"),
 "03:fold_batchnorm: eps read as Keras's bn.epsilon (default 1e-3)": ("NAMED",
   "'the scale divides by sqrt(var + e) with e = 0.001, not eps = 1e-05': the wrong eps and the right one"),
 "03:fold_batchnorm: gamma, beta, mean, var read positionally from state_dict": ("NAMED",
   "the ValueError in the unpacking line with 'more or fewer names than values: what is unpacked there?' and "
   "'it fails only where affine=False: bn.weight and bn.bias are None': the line and why it has fewer values"),
 "03:fold_batchnorm: only nn.BatchNorm2d accepted": ("NAMED",
   "the learner's TypeError in the type-check line with 'your own test refused an input the exercise accepts' "
   "(Linear cases), and TypeError where ValueError is expected: the over-strict check itself"),
 "04:batch_renorm_backward: the two batch means swapped between the terms": ("OBSERVED",
   "'a combination of 1 and x_hat: the direct term is right; what differs lies in the branches through the batch "
   "mean and sigma_B (one or both)': where dx differs (everything but the direct term), no cause (the swap)"),
 "04:batch_renorm_backward: r left out of the mean term": ("NAMED",
   "'a multiple of 1: the branch through the batch mean is off (missing, or scaled wrong)': the one term that is "
   "scaled wrong"),
 "04:batch_renorm_backward: gamma scaled in place by r (scale = gamma; scale *= r)": ("NAMED",
   "'changed its input argument #2 (item [4]) in place: compute new arrays instead of writing into the caller's': "
   "the cache's gamma, changed in place"),
 "04:batch_renorm: only d detached, r left in the graph": ("OBSERVED",
   "'backward failed: a per-channel tensor ... changed in place after the output used it: a batch statistic "
   "updated in place (std.mul_(m)?), or the running buffers if r and d hold them: compute r and d from detached "
   "statistics': two candidate causes, the real one (r holds running_std, not detached) only one of them"),
 "04:batch_renorm: running_std moved towards x.std() (no eps)": ("NAMED",
   "'running_std averages in sqrt(var_B), without eps': exactly the update's statistic"),
 "04:batch_renorm: d's clamp applied to running_std (misplaced parenthesis)": ("NAMED",
   "'d is off in features ...: yours ..., expected ... (d before clipping ...)' (and NaN/inf for dmax = 0): "
   "locates the d line, where the clamp is misplaced"),
 "04:batch_renorm: torch.maximum / torch.minimum with Python-float bounds": ("OBSERVED",
   "the learner's TypeError with its line and shapes: torch's own text, no diagnosis added"),
 "04:renorm_schedule: arguments checked with isinstance(value, int)": ("FALSE OK",
   "visible check and hidden tests pass (auto); the reference sees NumPy integer steps refused"),
 "04:renorm_schedule: warm-up subtracted twice (helper given step - warmup)": ("OBSERVED",
   "values only: 'rmax starts moving at step 10001, the paper's ... at step 5001': the late start described, "
   "no cause (warmup subtracted twice)"),
 "04:renorm_schedule: ramp end tested with == (no cap past it)": ("NAMED",
   "'rmax is still moving at step 100000: cap it at the final value' (dmax too): the missing cap"),
}
labels = {}
for rid, row in rows.items():
    if row["correct"]:
        ok = row["auto_label"] == "PASS"
        labels[rid] = {"lesson": row["lesson"], "check": row["check"], "correct": True, "label": row["auto_label"],
                       "note": f"visible ok, hidden points {row['hidden_points']}/{row['hidden_total']}" if ok else "see results"}
        continue
    label, note = L[rid]
    if row["auto_label"] != "?":
        assert row["auto_label"] == label, (rid, row["auto_label"], label)
    else:
        assert label not in ("FALSE OK", "CRASH"), rid
    labels[rid] = {"lesson": row["lesson"], "check": row["check"], "correct": False, "label": label, "note": note}
assert set(L) == {k for k, v in rows.items() if not v["correct"]}
out = {"results": "results-before.json", "commit": r["commit"], "checks_at": r["checks_commit"], "date": "2026-12-07",
       "labels_by": "the helper that wrote the set (round 20 part b), reading each visible message against the entry's "
                    "cause (tests/unseen/README.md 'Classifying', strictly), after all entries were frozen "
                    "(FROZEN.sha256); helpers/checks/ not read",
       "labels": labels}
json.dump(out, open("/work/heldout/unseen20b/labels-before.json", "w"), indent=1, ensure_ascii=False)
from collections import Counter
for les in ("03", "04", None):
    c = Counter(v["label"] for v in labels.values() if les is None or v["lesson"] == les)
    print(les or "all", dict(c))
