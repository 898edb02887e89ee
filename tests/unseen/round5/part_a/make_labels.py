"""Write labels-before.json and LABELS-before.md from the labels read below
(results-before.json's messages against each entry's cause)."""
import json

N, O, W, F, C = "NAMED", "OBSERVED", "WRONG CAUSE", "FALSE OK", "CRASH"
L = {
 "00:batch_stats: returns Python lists": (N, "'mu is a list of 5 items, expected one array of shape (5,)'"),
 "00:batch_stats: TypeError for N < 2": (N, "'raised TypeError but ValueError was expected'"),
 "00:batch_stats: Bessel factor from the number of features": (O, "'off by the constant factor 1.172 everywhere' (= (D/(D-1))/(N/(N-1)) with D = 5, N = 16) not recognised"),
 "00:batch_stats: unbiased variance without axis": (N, "'var_unbiased has shape (), expected (5,): it looks reduced over every axis (check the `axis=`)'"),
 "00:batch_stats: N returned as a fourth output": (N, "'returned a tuple of 4 items; expected a tuple of 3: (mu, var, var_unbiased)'"),
 "00:batch_stats: integer division in the Bessel factor": (O, "'this is the biased variance (divides by N); ... var_unbiased divides by N-1 (ddof=1)': a correct description of the result, the floor division n // (n - 1) not named (borderline: it points at the one line)"),
 "00:batch_stats: guard only for exactly one example": (F, "no line printed; hidden 2/2 (N = 0 apparently not tried; checks not read)"),
 "00:batch_stats: pooled variance": (N, "'var has shape (), expected (5,): it looks reduced over every axis (check the `axis=`)'"),
 "00:batch_stats: results cast to the input dtype": (F, "no line printed; hidden 2/2 (integer batches apparently not tried; checks not read)"),
 "00:batch_stats: Welford count off by one": (N, "'mu: off by the constant factor 0.9412 = N/(N+1) with N = 16': the division by one count too many is named"),
 "00:batch_stats: sorts the caller's batch": (N, "'changed its input argument #1 in place: compute new arrays instead of writing into the caller's' (the x.sort(axis=0) line is the in-place write)"),
 "01:standardize_columns: divides by the mean absolute deviation": (O, "'each feature is off by its own factor (1.528, 1.535, 1.08, 1.232)': factors not recognised"),
 "01:standardize_columns: output array like the input": (F, "no line printed; hidden 6/6 (integer X apparently not tried; checks not read)"),
 "01:standardize_columns: last column skipped": (N, "'only feature 3 is off ...; the others are right': the last column located (the loop's range)"),
 "01:standardize_columns: mean subtracted after scaling": (O, "'each feature is shifted by its own offset (-7.238, -416.8, ...)': offsets (mu - mu/s) not recognised, no cause"),
 "01:layer_gradient_norms: only the direct children": (F, "no line printed; hidden 6/6 (nested containers apparently not tried; checks not read)"),
 "01:layer_gradient_norms: norms as tensors": (N, "'returned a list of Tensor: return one float per nn.Linear (.item() gives a tensor's number)'"),
 "01:layer_gradient_norms: softmax before cross_entropy": (O, "bare max rel. error"),
 "01:layer_gradient_norms: takes an SGD step": (N, "'changed its input argument #1's parameter 0.weight in place: leave the caller's model as it was': the weight change (the step) located"),
 "01:activation_percentiles: default q ends at 95": (N, "'activation_percentiles default q | WRONG | ... worst at index (2,)': a bare figure, but on the default-q call at its third value, which is the mistake (borderline)"),
 "01:activation_percentiles: sorts the caller's values": (N, "'changed its input argument #1 in place: compute new arrays instead of writing into the caller's'"),
 "01:activation_percentiles: random subsample of 1000 values": (F, "no line printed; hidden 6/6 (apparently no input above 1000 values; checks not read)"),
 "02:batchnorm_forward: std and inv_std swapped in the cache": (O, "'dx: each feature is off by its own factor, (sigma)^2' and 'your backward pass's xc (as it returns) is not x - mu ... fix it first': true descriptions (sigma^2 hints at std/inv_std), the cache's slot order not named; borderline WRONG CAUSE, as 'fix it first' points at the backward's (right) xc line"),
 "02:batchnorm_forward: output aliases the cached x_hat": (N, "'your forward pass's cache[0] is none of the forward's quantities ...: it equals out'"),
 "02:batchnorm_forward: guard on the number of features": (N, "'batchnorm_forward batch of one | WRONG | did not raise ValueError': the guard located"),
 "02:batchnorm_forward: copy then centre in place": (F, "no line printed; hidden 12/12 (integer x apparently not tried; checks not read)"),
 "02:batchnorm_forward: beta subtracted": (N, "'-2·(beta) ...: beta is subtracted: out = gamma * x_hat + beta'"),
 "02:batchnorm_backward: dgamma and dbeta returned swapped": (N, "'this is dbeta's formula (dgamma and dbeta swapped?)'"),
 "02:batchnorm_backward: gamma not applied to dx_hat": (N, "'dx misses gamma: the gradient reaching x_hat is dout * gamma' and 'the first wrong stage is dx_hat'"),
 "02:batchnorm_backward: x_hat in the variance branch": (N, "'the branch through the variance is off' and 'the first wrong stage is dxc': the variance branch's line located"),
 "02:batchnorm_backward_alt: dgamma not summed": (N, "'dgamma has shape (16, 5), expected (5,): not summed ... add up over the batch (axis 0)'"),
 "02:batchnorm_backward_alt: x_hat squared in the dgamma term": (O, "'dx's sum over the batch per feature is not PyTorch's (...)' and a bare numeric error: no cause"),
 "02:spatial_batchnorm_forward: reshape without moving the channels": (N, "'reshaped to (N*H*W, C) without moving C last: transpose(0, 2, 3, 1) before the reshape, and transpose back after'"),
 "02:spatial_batchnorm_backward: dx reshaped without moving the channels back": (N, "'the right values in the wrong places ... (a reshape without the transpose it needs, or a transpose not undone?)'"),
 "02:layernorm_forward: gamma and beta given to the transposed batch norm": (O, "the learner's own broadcasting ValueError, explained ('(8, 6) is x transposed ... they need the shape (8, 1)'): true, but that gamma and beta do not belong in the transposed batch norm (ones, zeros) is not said; reshaping them to (8, 1) would fix the forward and leave gamma twice in the backward"),
 "02:layernorm_backward: parameter gradients per example": (N, "'dgamma has shape (6,), expected (8,) ... reduce over axis 0, not 1'"),
 "03:scratch_batchnorm: cumulative factor before counting": (N, "the learner's ZeroDivisionError on the factor line plus 'momentum=None is 1/k at the k-th batch: count it first'"),
 "03:scratch_batchnorm: flattened without moving the channels": (N, "'it fails only where the input is 3-D, (N, C, L): a channel's values span N and L' (and 4-D): the 3-D/4-D statistics located"),
 "03:scratch_batchnorm: counter as int32": (N, "'num_batches_tracked is tensor(1, dtype=torch.int32), not tensor(1) (a long)'"),
 "03:scratch_batchnorm: reset keeps the counter": (N, "'reset_running_stats() must set ... num_batches_tracked to 0 ...: num_batches_tracked is 1 after it'"),
 "03:scratch_batchnorm: bias starts at one": (N, "'bias should start as [0.0, 0.0, 0.0, 0.0]'"),
 "03:scratch_batchnorm: computes in float64": (N, "'bfloat16 input gave torch.float64 ...: torch returns the input's dtype (... out.to(x.dtype))'"),
 "03:scratch_batchnorm: first batch copied into the running statistics": (O, "'step 1: running_mean is not PyTorch's; read at step 2: running_mean = 0.9·old + 0.1·batch; PyTorch's: 0.9·old + 0.1·batch': running_mean at step 1 located, but the rule it shows is PyTorch's own (self-contradictory), the copy on the first batch not named"),
 "03:scratch_batchnorm: parameters shaped (1, C)": (O, "'weight should start as [1.0, 1.0, 1.0, 1.0]' and 'the weight gradient differs from PyTorch's': the weight does start as ones; its shape (1, C) is not mentioned (borderline WRONG CAUSE: the line suggests wrong values)"),
 "03:scratch_batchnorm: default eps 1e-3": (N, "'the scale divides by sqrt(var + e) with e = 0.001, not eps = 1e-05'"),
 "03:fold_batchnorm: eps fixed at 1e-5": (N, "'the scale divides by sqrt(running_var + 1e-5): use bn.eps'"),
 "03:fold_batchnorm: beta scaled with the rest": (N, "'beta is scaled too, b' = (b - running_mean) * scale + beta'"),
 "03:fold_batchnorm: affine=False batch norm crashes": (N, "the learner's TypeError on the bn.weight line plus 'it fails only where affine=False: bn.weight and bn.bias are None (gamma = 1 and beta = 0)'"),
 "03:fold_batchnorm: layer.bias or 0": (N, "the learner's own RuntimeError ('Boolean value of Tensor with more than one value is ambiguous') on the line `own = layer.bias or 0.0`, which is the mistake itself (borderline: the exception as it is, but the raising line is the mistake, as round 4's final 'exactly three percentiles')"),
 "03:fold_batchnorm: scale reshaped as a column": (N, "the learner's own broadcasting RuntimeError on the line `layer.weight * scale.view(-1, 1)`, the mistake itself, with 'a broadcasting error: print the shapes of the arrays combined' (borderline, as above)"),
}

res = json.load(open("results-before.json"))
labels, md = {}, ["# Labels of the fifth held-out set, part a (lessons 00-03), before",
                  "", f"Read from results-before.json ({res['repo']} at {res['commit']}) by the helper that wrote the set; "
                  "helpers/checks/ not read. Per entry: label, and the message line(s) that decided it.", ""]
for r in res["rows"]:
    rid = r["id"]
    if r["correct"]:
        lab = "PASS" if r["visible_ok"] and r["hidden_points"] == r["hidden_total"] else "FAIL"
        note = f"correct alternative: visible ok {r['visible_ok']}, hidden {r['hidden_points']}/{r['hidden_total']}"
    else:
        lab, note = L[rid]
        if r["crashed"] and lab != C:
            raise SystemExit(f"{rid}: crashed but labelled {lab}")
        if r["visible_ok"] and lab != F:
            raise SystemExit(f"{rid}: visible ok but labelled {lab}")
    labels[rid] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"], "label": lab, "note": note}
    md.append(f"- **{rid}** ({'correct' if r['correct'] else 'wrong'}): **{lab}**: {note}")
missing = set(L) - set(labels)
assert not missing, missing
json.dump({"results": "results-before.json", "commit": res["commit"], "checks_at": res["checks_commit"],
           "date": "2026-12-06",
           "labels_by": "the helper that wrote the set (issue 28, fifth set part a), reading each visible message against the entry's cause (tests/unseen/README.md 'Classifying', strictly, as round 3); helpers/checks/ not read",
           "labels": labels}, open("labels-before.json", "w"), indent=1)
open("LABELS-before.md", "w").write("\n".join(md) + "\n")
print(len(labels), "labels")
