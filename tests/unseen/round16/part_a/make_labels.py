"""Write labels-before.json: the read labels of round 16 part a at /work/wt-r16before (afb4ecd)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
L = {
 "00:batch_stats: torch.Tensor(x) for a tensor": ("NAMED", "says every statistic is float32 at float32's rounding level: compute in float64 as the input is"),
 "00:batch_stats: MATLAB's var(x, 1) flag": ("NAMED", "var has shape (16,): one value per example, not per feature; take them over axis 0 (the guess 'not x.T' is beside the point, the fix is right)"),
 "00:batch_stats: mean divided by N twice": ("NAMED", "mu off by the constant factor 1/N; var: deviations from your wrong mu, fix mu"),
 "00:batch_stats: column loop with a 1-based index": ("OBSERVED", "'the right values in the wrong places' for mu, var, var_unbiased: a permutation, not said which (rotated by one feature) nor why"),
 "00:batch_stats: least squares on a column of ones": ("PASS", "visible ok, hidden 2/2"),
 "01:standardize_columns: default eps typed 10e-5": ("NAMED", "only the case 'called without eps (the signature's default eps=1e-5)' fails, every explicit eps passes: locates the default (borderline: the factors '1, 0.6016, 1' read oddly)"),
 "01:standardize_columns: ** 1/2 without parentheses": ("OBSERVED", "each feature off by its own factor (0.1292, 69.99, ...); no cause"),
 "01:layer_gradient_norms: every module with a weight, BatchNorm included": ("NAMED", "every parameter named weight, batch norm's too: take each nn.Linear's"),
 "01:layer_gradient_norms: summed loss divided by the number of classes": ("WRONG CAUSE", "constant factor 2.667 explained as 2*(N/(N-2)) with N = 8; the real factor is N/C = 8/3 (a coincidence of values)"),
 "01:activation_percentiles: method='nearest' (TensorFlow Probability's default)": ("NAMED", "numpy.percentile's values with method='nearest'; use the default"),
 "01:activation_percentiles: interpolation without the difference": ("OBSERVED", "bare max rel. error with one got/expected pair"),
 "01:standardize_columns: F.group_norm of the transpose, one group per feature": ("PASS", "visible ok, hidden 6/6"),
 "02:batchnorm_forward: eps keyword-only": ("FALSE OK", "the check calls it with eps by name or not at all: visible ok, its own cell passes; the spatial and layernorm cells fail with the learner's TypeError"),
 "02:batchnorm_forward: guard refuses N = 2": ("NAMED", "N=2 case: the learner's own ValueError, 'your own test refused an input the exercise accepts', with the line"),
 "02:batchnorm_backward: default eps in the variance stage": ("FALSE OK", "the check's forward uses the default eps only: every case ok, hidden 12/12"),
 "02:batchnorm_backward: cache read as (x_hat, inv_std, std, gamma)": ("NAMED", "stages: the xc recovered from the cache is not x - mu, fix it first (the first wrong stage, where the swapped std is read); dx off by a per-feature factor (sigma)^2"),
 "02:batchnorm_backward_alt: N - 1 as the batch size (degrees of freedom)": ("NAMED", "direct term right, the difference lies in the branches through the mean and the variance (the two terms divided by n); x_hat and 1/sqrt agree (borderline: n itself not named)"),
 "02:spatial_batchnorm_forward: columns cast to float32": ("WRONG CAUSE", "forward: bare max rel. error 3.9e-05; backward dx: 'only channel 1 is off; the one with a tiny variance, where eps matters': an eps guess, the cause is float32"),
 "02:layernorm_backward: dx reshaped instead of transposed back": ("NAMED", "right values in the wrong places, axes moved to (1, 0): 'a reshape without the transpose it needs, or a transpose not undone?' (both describe the mistake)"),
 "02:layernorm_forward: inner ones and zeros made as (N, 1) columns": ("WRONG CAUSE", "the learner's broadcast ValueError (8,6) with (6,1), then a hint that 8 values need the shape (8, 1): points at a shape that is not the learner's; the fix is a 1-D (6,)"),
 "02:layernorm_forward: F.layer_norm forward, autograd backward": ("FAIL", "layernorm_backward: the check could not deep-copy the cache (non-leaf torch tensors); forward ok"),
}
out = {
    "results": "results-before.json",
    "commit": "afb4ecd",
    "checks_at": "afb4ecd",
    "date": "2026-12-07",
    "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause (tests/unseen/README.md 'Classifying', strictly), after all entries were frozen; helpers/checks/ not read",
    "labels": {k: {"lesson": k[:2], "check": k[3:].split(":")[0], "correct": v[0] in ("PASS", "FAIL"),
                   "label": v[0], "note": v[1]} for k, v in L.items()},
}
(HERE / "labels-before.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
