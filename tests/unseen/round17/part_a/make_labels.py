"""Write labels-before.json: the read labels of round 17 part a at /work/wt-r17before (93bdf0e)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
L = {
 "00:batch_stats: torch.from_numpy, centred with sub_": ("NAMED", "changed its input argument in place: compute new arrays instead of writing into the caller's (x = x - mu, not x -= mu): the in-place centring is the fix (from_numpy's shared memory not said, not needed)"),
 "00:batch_stats: torch.float for the unbiased variance": ("NAMED", "var_unbiased alone: float32 numbers at float32's rounding level, compute in float64"),
 "00:batch_stats: integer batch converted to float32": ("NAMED", "only the 'int64 mu' case fails: float32 numbers at float32's rounding level, compute in float64 (locates the integer path)"),
 "00:batch_stats: centred variance minus the mean squared": ("OBSERVED", "bare max rel. error with one got/expected pair (negative var); no cause"),
 "00:batch_stats: np.average with returned=True for the counts": ("PASS", "visible ok, hidden 2/2"),
 "01:standardize_columns: eps positional-only (/ in the signature)": ("OBSERVED", "the learner's own TypeError (positional-only 'eps' passed by keyword) as it is, with the generic 'keep the exercise's parameters: their names and order' (names and order are kept; borderline: Python's own text says it)"),
 "01:standardize_columns: mean tiled by the number of features": ("NAMED", "the learner's broadcast error, then 'in that line: X (10, 4), mu (4, 4)' and 'one value per feature needs the shape (4,) or (1, 4)': points at mu's shape, the fix"),
 "01:layer_gradient_norms: ignore_index=0 in cross_entropy": ("OBSERVED", "bare max rel. error with one got/expected pair"),
 "01:layer_gradient_norms: gradient accumulation over chunks of 8": ("FALSE OK", "visible ok (max rel. error 0, called twice ok), hidden 6/6: the check's batch is a multiple of 8 and its model has no batch norm"),
 "01:activation_percentiles: MATLAB's prctile convention (method='hazen')": ("NAMED", "numpy.percentile's values with method='hazen'; use its default"),
 "01:activation_percentiles: interpolation= keyword of old NumPy": ("OBSERVED", "the learner's own TypeError (unexpected keyword 'interpolation') with the line, as it is; no hint of method="),
 "01:standardize_columns: torch.func.vmap over the columns": ("PASS", "visible ok, hidden 6/6"),
 "02:batchnorm_forward: RuntimeError for N = 1": ("NAMED", "raised RuntimeError but ValueError was expected (batch of one)"),
 "02:batchnorm_forward: x_hat divided by inv_std": ("NAMED", "the right formula with one change in x_hat: (x - mu) * std where (x - mu) / std belongs"),
 "02:batchnorm_backward: floor division in the variance branch": ("NAMED", "stages: the first wrong stage is dxc, everything up to dvar right: locates the variance branch into xc (the // itself not said)"),
 "02:batchnorm_backward: gamma as a column in dx_hat": ("NAMED", "the learner's broadcast error in the line dx_hat = dout * gamma[:, None], with '(5, 1) does not line up ... one value per feature needs the shape (5,) or (1, 5)' and gamma (5,): the fix"),
 "02:batchnorm_backward_alt: dbeta subtracted after the scaling line": ("NAMED", "dx differs by a per-feature multiple of 1: 'the branch through the mean is off (missing, or scaled wrong)': the dbeta / N term, scaled wrong; x_hat and 1/sqrt agree"),
 "02:spatial_batchnorm_backward: dgamma and dbeta summed again to scalars": ("NAMED", "dgamma and dbeta have shape (), expected (C,): reduced over every axis, check the axis= (the extra .sum() has none)"),
 "02:layernorm_forward: zeros left out of the inner call (eps lands in beta)": ("OBSERVED", "out: each feature shifted by its own offset (1.3e-05, 8.6e-06, ...): not recognised as gamma * eps nor traced to the inner call's beta"),
 "02:layernorm_forward: BERT's layer_norm_eps 1e-12 as the default eps": ("NAMED", "signature's eps defaults to 1e-12, the exercise's to 1e-05"),
 "02:spatial_batchnorm_forward: through (N, C, H*W) and back, both passes": ("PASS", "visible ok, hidden 12/12"),
}
out = {
    "results": "results-before.json",
    "commit": "93bdf0e",
    "checks_at": "93bdf0e",
    "date": "2026-12-07",
    "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause (tests/unseen/README.md 'Classifying', strictly), after all entries were frozen; helpers/checks/ not read",
    "labels": {k: {"lesson": k[:2], "check": k[3:].split(":")[0], "correct": v[0] in ("PASS", "FAIL"),
                   "label": v[0], "note": v[1]} for k, v in L.items()},
}
(HERE / "labels-before.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
