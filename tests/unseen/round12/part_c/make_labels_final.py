"""Write labels-final.json and LABELS-final.md from results-final.json and the
labels read by hand below (tests/unseen/README.md 'Classifying', strictly)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
READ = {  # entry name -> (label, why)
    "noise returned beside the output": ("NAMED", "'the output is a tuple of 2 items, expected one array'"),
    "output divided by the scale": ("OBSERVED", "bare max rel. error on the training output"),
    "input detached before batch norm": ("WRONG CAUSE", "dx is None blamed on a forgotten `return`; the input was detached"),
    "return missing in the eval branch": ("NAMED", "'the noise is applied in eval mode': locates the eval branch"),
    "x.requires_grad as the training flag": ("OBSERVED", "last_noise not the pair after a training-mode call: the symptom, not the flag"),
    "second pass through the caller's model": ("NAMED", "the caller's model was changed: 'work on a copy' points at the use of `model`"),
    "gradients clipped to norm 1 before the step": ("OBSERVED", "'both differ: G or G' is off': bare figures"),
    "step with add_(grad, alpha=lr)": ("OBSERVED", "'both differ: G or G' is off': bare figures"),
    "norm over dim 1": ("NAMED", "the learner's line with '.item() takes one number, not several': locates torch.norm(..., dim=1)"),
    "zip order: start and grads swapped": ("NAMED", "'the points w - eta * g are off: each starts from w': locates the point loop where the zip is"),
    "return inside the loop": ("OBSERVED", "'6 numbers in all': a count, no cause"),
    "step computed with d.mul_(eta)": ("NAMED", "'the points w - eta * g are off: each starts from w': locates the point line with d.mul_"),
    "(loss, change) pairs returned": ("NAMED", "'returned a list of 3 items; expected a tuple of 2'"),
    "gradients zeroed before they are cloned": ("OBSERVED", "'the points are off' at a point line that is right; g is zero: figures only"),
    "running update placed after the return": ("WRONG CAUSE", "'did not change: update the tensor passed in place ... not the name': the update is in place, it is dead code after the return"),
    "Bessel factor N / (N - world size)": ("OBSERVED", "constant factor 1.222 not recognised"),
    "rows all-reduced before summing": ("NAMED", "all_reduce got different shapes in the learner's line: send the sums, not the rows"),
    "dbeta as dout.mean(0)": ("NAMED", "'dbeta is averaged over the slice ... so sum over axis 0'"),
    "mean(dout) added in dx": ("NAMED", "'mean(dy) is of the wrong sign (added, not subtracted)'"),
    "running update only when x or gamma requires grad": ("WRONG CAUSE", "'did not change: update the tensor passed in place ... not the name': the update is in place, behind a requires_grad test"),
    "lerp weight 1 - momentum": ("NAMED", "'moved by the fraction 0.7 = 1 - momentum ...; PyTorch moves it by 0.3'"),
    "num_batches_tracked reset": ("NAMED", "'num_batches_tracked changed: leave it'"),
    "between-rank deviations squared after the all-reduce": ("NAMED", "'misses how far the ranks' means lie ...: add sum(count * (mean_r - mean)^2)': the square inside the sum"),
    "merged mean never written": ("NAMED", "'running_mean is unchanged: merge it as well'"),
}

res = json.loads((HERE / "results-final.json").read_text())
labels, md = {}, {}
for r in res["rows"]:
    auto = r["auto_label"]
    if auto == "?":
        label, why = READ[r["name"]]
    else:
        label, why = auto, "auto label"
    labels[r["id"]] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"], "label": label, "note": why}
    line = " // ".join(l.split("|", 2)[-1].strip() for l in r["verdict_lines"]) or "(no line printed)"
    md.setdefault(r["lesson"], []).append(
        f"| {r['name']} ({r['check']}) | **{label}** | {r['cause'] if not r['correct'] else 'correct alternative'} | "
        f"{line.replace('|', '/')} | {why} |")
assert set(READ) <= {r["name"] for r in res["rows"]}
out = {"results": "results-final.json", "commit": res["commit"], "checks_at": res.get("checks_commit"),
       "date": "2026-12-06",
       "labels_by": "the helper that wrote the set, reading each visible message against the entry's cause "
                    "(tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
       "labels": labels}
(HERE / "labels-final.json").write_text(json.dumps(out, indent=1) + "\n")
text = ["# Labels of the twelfth held-out set, part c, at /work/wt-r12 (88c84c9)", "",
        "Each wrong entry's label (tests/unseen/README.md, 'Classifying') and the message line(s) that "
        "decided it; CRASH, FALSE OK, PASS, FAIL are the auto labels of `results-final.json`. Shares: "
        "`run.py --summary results-final.json --labels labels-final.json`.", ""]
for lesson, rows in md.items():
    text += [f"## Lesson {lesson}", "", "| entry | label | cause | deciding message line(s) | why |",
             "|---|---|---|---|---|", *rows, ""]
(HERE / "LABELS-final.md").write_text("\n".join(text))
