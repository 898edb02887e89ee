"""Write labels-final.json and LABELS-final.md from results-final.json and the
labels read by hand below (the helper who wrote the set; helpers/checks not read)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
READ = {  # name -> (label, why); FALSE OK / PASS come from auto_label
    "sorted along the feature axis": ("OBSERVED", "bare max rel. errors on mu, var, var_unbiased"),
    "var_unbiased returned twice": ("NAMED", "var 'is the unbiased variance'; 'var is the same array as var_unbiased'"),
    "sum returned as the mean": ("NAMED", "`x.sum(axis=0)` where `x.mean(axis=0)` belongs"),
    "prints instead of returning": ("NAMED", "returned None: did you forget `return`?"),
    "statistics stacked into one (D, 3) table": ("NAMED", "returned a ndarray; expected a tuple of 3"),
    "memoised by id(x)": ("NAMED", "names the global `_MEMO` cache that keeps state between calls"),
    "N < 2 branch returns zeros (TODO)": ("NAMED", "did not raise ValueError with N=1 / N=0: locates the guard branch"),
    "reshape instead of a transpose": ("OBSERVED", "bare max rel. errors"),
    "divides by the largest absolute deviation": ("OBSERVED", "per-feature factors, not recognised"),
    "exponent -1/2 without parentheses": ("OBSERVED", "per-feature factors, not recognised"),
    "norms read before backward": ("NAMED", "the learner's AttributeError with 'm.weight.grad is None here: no backward() has reached it', at the line"),
    "norms of the update lr * grad": ("OBSERVED", "constant factor 0.1, no cause named"),
    "norms formatted as strings": ("NAMED", "returned a list of str: return one float per nn.Linear"),
    "np.percentile method='lower'": ("NAMED", "these are numpy.percentile's values with method='lower'"),
    "tensor flattened with view(-1)": ("NAMED", "RuntimeError at the learner's .view(-1) line with 'after a transpose, use .reshape()'"),
    "list comprehension over q": ("NAMED", "returned a list: return a NumPy array (np.percentile gives one)"),
    "eps only in the cached std": ("NAMED", "`var` where `var + eps` belongs"),
    "xc squared in the variance branch": ("NAMED", "first wrong stage is dxc (after dvar): the variance branch into xc"),
    "dvar with inv_std squared, not cubed": ("NAMED", "first wrong stage is dvar"),
    "sqrt stage divides by 2(var + eps)": ("NAMED", "first wrong stage is dvar, ds still right: the sqrt stage"),
    "dx built in a float32 buffer": ("NAMED", "its values are float32 numbers ...: compute in float64"),
    "dbeta in the x_hat term": ("NAMED", "difference a multiple of x_hat: the branch through the variance (the x_hat term) is off"),
    "gamma and beta applied twice": ("OBSERVED", "effective mean and scale 'none of the usual ones', no cause"),
    "inner gradients unpacked as (dx, dbeta, dgamma)": ("NAMED", "dgamma holds the expected dbeta and the other way round"),
    "dout scaled by gamma in place before dgamma and dbeta": ("OBSERVED", "names the in-place write into dout (real), not that dgamma and dbeta are taken from the gamma-scaled dout: `dout = dout * gamma` would keep them wrong (strict: partly named)"),
}
res = json.loads((HERE / "results-final.json").read_text())
labels, md = {}, {}
for row in res["rows"]:
    auto = row["auto_label"]
    if row["correct"] or auto in ("FALSE OK", "CRASH", "NOT RUN"):
        label, why = auto, "auto label"
    else:
        label, why = READ[row["name"]]
    lines = row["verdict_lines"] or ([f"raised {row['raised']}"] if row["raised"] else [])
    if label == "FALSE OK":
        lines = [f"visible_ok={row['visible_ok']}, hidden {row['hidden_points']:g}/{row['hidden_total']:g}"]
    labels[row["id"]] = {"lesson": row["lesson"], "check": row["check"], "correct": row["correct"],
                         "label": label, "note": why}
    md.setdefault(row["lesson"], []).append(
        f"| {row['name']} ({row['check']}) | **{label}** | {row['cause']} | "
        f"{' // '.join(l.split('|', 2)[-1].strip() for l in lines[:3]).replace('|', '/')[:400]} | {why} |")
(HERE / "labels-final.json").write_text(json.dumps({
    "results": "results-final.json", "commit": res["commit"], "checks_at": res["checks_commit"],
    "date": "2026-12-06",
    "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause (tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")
out = ["# Labels of the twelfth held-out set, part a, at /work/wt-r12 (88c84c9)", "",
       "Each entry's label and the message line(s) that decided it; FALSE OK, CRASH, PASS, FAIL are the auto labels of `results-final.json`.", ""]
for lesson, rows in md.items():
    out += [f"## Lesson {lesson}", "", "| entry | label | cause | deciding message line(s) | why |", "|---|---|---|---|---|", *rows, ""]
(HERE / "LABELS-final.md").write_text("\n".join(out))
