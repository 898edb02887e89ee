"""Writes labels-before.json: the labels read (strictly, tests/unseen/README.md 'Classifying') for
results-before.json, after every entry was frozen (FROZEN.sha256)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
R = json.loads((HERE / "results-before.json").read_text())
READ = {
    "momentum=None factor left as the tensor": ("NAMED",
        "'PyTorch's to 5 digits: a rounding difference (a float32 step?)' and 'it fails only where momentum=None: "
        "a cumulative average, 1/k at the k-th batch': the float32 rounding and the 1/k factor where it lies"),
    "decay written .mul(1 - f) without the underscore": ("OBSERVED",
        "'running_mean did not change in 4 training step(s): update it': the effect, correctly; nothing about the "
        "out-of-place mul whose result is discarded ('update it' reads as if no update was written)"),
    "`if self.weight:` in place of `if self.affine:`": ("NAMED",
        "the RuntimeError in the line `if self.weight:` with 'an array used as True or False: test an optional "
        "argument with `is not None`': the line and the fix"),
    "track_running_stats defaults to False": ("NAMED",
        "'track_running_stats defaults to False, the exercise's to True', with both signatures: exactly the slip"),
    "reset_running_stats: running_mean.zero_ without parentheses": ("NAMED",
        "'reset_running_stats() must set running_mean to 0 ...: running_mean is 0.3247, ... after it': the method "
        "and the one buffer it leaves, where the missing call is"),
    "one value per channel switches the module to eval mode": ("NAMED",
        "'did not raise ValueError: one value per channel has no batch variance' (both shapes): the refusal the "
        "eval switch replaces, so the fix (raise instead) is clear"),
    "Linear weight scaled as weight.T * s": ("OBSERVED",
        "the learner's RuntimeError (size 6 vs 5) in the copy_ line with the shapes (new.weight (5, 6), "
        "layer.weight.T (6, 5)) and a generic 'a broadcasting error: print the shapes': torch's text, no diagnosis "
        "of the transposed (Keras) layout"),
    "bias scaled with the weight's per-channel view": ("OBSERVED",
        "the learner's RuntimeError in the bias line with the shapes (per_channel (5, 1)) and a generic "
        "'a broadcasting error: print the shapes': torch's text, no diagnosis that the bias needs the flat scale"),
    "Conv2d scale viewed as (C, 1, 1), one dimension short": ("OBSERVED",
        "the learner's RuntimeError in the Conv2d weight line with the shapes and a generic 'a broadcasting "
        "error: print the shapes': torch's text, nothing about the view being one dimension short"),
    "dgamma as dout.T @ y_hat": ("WRONG CAUSE",
        "'dgamma has shape (5, 5), expected (5,): what (5,) becomes when it meets a term of shape (5, 1) ...: a term "
        "shaped for another layout?': dgamma is located, but the cause given (a (5, 1) term broadcasting) is not "
        "the mistake (a matrix product); a learner would look for a column-shaped term"),
    "gamma @ r (a dot product) for gamma * r": ("OBSERVED",
        "'dx: each feature is off by its own factor (5.805, 3.579, 10.1, 4.307, ...)': factors not recognised "
        "(they are sum(gamma * r) / (gamma_j * r_j)); nothing about the dot product"),
    "staged: dmu added to dx without dividing by N": ("NAMED",
        "'a multiple of 1: the branch through the batch mean is off (missing, or scaled wrong)': the one branch "
        "that is scaled wrong (as round 20 labelled the same message)"),
    "r and d computed, uncorrected x_hat returned": ("NAMED",
        "'read as gamma * (x_hat * r + d) + beta ...: r = 1 and d = 0 in every feature, plain batch norm's; expected "
        "r = ..., d = ...': the correction is not applied in the output, exactly the slip"),
    "`with torch.no_grad:` without the call parentheses": ("OBSERVED",
        "the learner's TypeError ('type' object does not support the context manager protocol) in the line "
        "`with torch.no_grad:`: torch's own text and the line, no diagnosis added (the missing parentheses)"),
    "r and d computed under torch.inference_mode()": ("NAMED",
        "the RuntimeError with 'tensors made under torch.inference_mode() take no part in training: make them "
        "under torch.no_grad()': exactly the fix"),
    "`=+` for `+=` in the running_std update": ("NAMED",
        "'the right formula with one change, in running_std: `momentum * (std - old_std)` where `old_std + "
        "momentum * (std - old_std)` belongs': exactly the missing old_std +"),
    "warm-up and ramp lengths truncated with int()": ("FALSE OK",
        "visible check and hidden tests pass (auto); the reference (21b) sees the fractional lengths of "
        "set_bounds' batch-32 scaling truncated"),
    "returns the ramps' progress, not the bounds": ("OBSERVED",
        "values only: 'rmax starts at 0, the paper's at 1; rmax ends at 1, ...; dmax ends at 1, the paper's at 5': "
        "the wrong range described, no cause (progress returned instead of the bounds)"),
}
labels = {}
for row in R["rows"]:
    if row["correct"]:
        ok = row["auto_label"] == "PASS"
        label, note = row["auto_label"], (f"visible ok, hidden points {row['hidden_points']}/{row['hidden_total']}"
                                          if ok else "correct alternative rejected")
    else:
        key = next(k for k in READ if k in row["name"])
        label, note = READ[key]
        if row["auto_label"] in ("CRASH", "FALSE OK") and label != row["auto_label"]:
            raise SystemExit(f"{row['id']}: auto {row['auto_label']}, read {label}")
    labels[row["id"]] = {"lesson": row["lesson"], "check": row["check"], "correct": row["correct"],
                         "label": label, "note": note}
out = {
    "results": "results-before.json",
    "commit": R["commit"][:7],
    "checks_at": (R.get("checks_commit") or R["commit"])[:7],
    "date": "2026-12-07",
    "labels_by": "the helper that wrote the set (round 21 part b), reading each visible message against the "
                 "entry's cause (tests/unseen/README.md 'Classifying', strictly), after all entries were frozen "
                 "(FROZEN.sha256); helpers/checks/ not read",
    "labels": labels,
}
(HERE / "labels-before.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
print(len(labels), "labels")
