"""Write labels-after.json and LABELS-after.md for part a of the ninth set at /work/wt-after.

Labels of results-after.json read by hand (tests/unseen/README.md 'Classifying', strictly),
by a helper that did not write the set. Where the message is the same as before, the label
is the one of labels-before.json (none of those was plainly inconsistent with the rules);
CHANGED holds the read labels of the entries whose message changed.
Run: /work/wt-after/.venv/bin/python make_labels_after.py
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
before = json.loads((HERE / "labels-before.json").read_text())["labels"]
rb = {r["id"]: r for r in json.loads((HERE / "results-before.json").read_text())["rows"]}
ra = {r["id"]: r for r in json.loads((HERE / "results-after.json").read_text())["rows"]}

# id -> (label, deciding message fragment, why); only entries whose message changed
CHANGED = {
    "00:batch_stats: np.mean given ddof": ("OBSERVED", None,
        "the learner's own TypeError reported as it is (with the line); the added 'in that line: x (16, 5)' names no cause"),
    "00:batch_stats: Bessel correction only below N = 30": ("WRONG CAUSE", None,
        "'var_unbiased is the same array as var: return a copy': the remedy given (a copy) leaves the real mistake "
        "(no Bessel correction for N >= 30); with var.copy() the check goes on to 'this is the biased variance (divides by N)', "
        "but the message shown to this entry is the aliasing one"),
    "00:batch_stats: N remembered from the first call": ("NAMED", None,
        "'changed an attribute of your function during the call: it keeps state between calls ...: compute from the arguments alone': the real mistake"),
    "00:batch_stats: view instead of astype": ("OBSERVED", None,
        "the learner's own ValueError (x.view) reported as it is; 'in that line: x (6, 3)' gives no dtype and no cause"),
    "01:standardize_columns: statistics reshaped with N": ("OBSERVED", None,
        "the learner's own ValueError (reshape) with the generic gloss and 'in that line: X (10, 4)': a figure, no cause (as before)"),
    "01:layer_gradient_norms: loss of the first example only": ("NAMED", None,
        "the line `model(x[:1])` with 'here a batch of one' (as before; 'in that line' added)"),
    "01:layer_gradient_norms: grad read from a detached weight": ("NAMED", None,
        "'a tensor made by a call (.detach(), .clone()) has no .grad: read the parameter's own .grad': the real cause"),
    "01:layer_gradient_norms: return inside the loop": ("OBSERVED", None,
        "'the list of norms has shape (1,), expected (3,)': a correct description, no cause (the axis hint is gone)"),
    "01:activation_percentiles: flattening assumes two dimensions": ("OBSERVED", None,
        "the learner's own IndexError with a generic gloss ('an index past the end') and 'v (40,), v.shape: 1 items': "
        "borderline; read as the own exception with figures, as 'statistics reshaped with N' was; a 1-D special case would keep the 3-D failure"),
    "02:batchnorm_forward: gamma applied with @": ("OBSERVED", None,
        "the learner's broadcasting ValueError with a generic gloss ('what meets it lines up from the right: one value per feature (5,) or (1, 5), "
        "one per example (16, 1), as keepdims=True keeps it') and the line's shapes: no reduction is blamed any more, no cause named; "
        "borderline (keepdims is still mentioned, as a convention, not as the fix)"),
    "02:batchnorm_backward_alt: cache read as a dict": ("OBSERVED", None,
        "the learner's own TypeError reported as it is; 'cache: 4 items' is a figure"),
}

labels, table = {}, {}
for k, r in ra.items():
    auto = r["auto_label"]
    lines = " // ".join(l.split("|", 2)[-1].strip() for l in r["verdict_lines"]) or "(visible check passes: no message)"
    if auto != "?":
        label = auto
        note = f"visible ok {r['visible_ok']}, hidden {r['hidden_points']:g}/{r['hidden_total']:g}"
    elif k in CHANGED:
        label, _, note = CHANGED[k]
    else:
        assert r["verdict_lines"] == rb[k]["verdict_lines"], k
        label, note = before[k]["label"], before[k]["note"] + " (message unchanged; label as before)"
    if k in CHANGED:
        assert r["verdict_lines"] != rb[k]["verdict_lines"], k
    labels[k] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"], "label": label, "note": note}
    table[k] = (r, label, lines, note)

missing = [k for k in ra if ra[k]["auto_label"] == "?" and ra[k]["verdict_lines"] != rb[k]["verdict_lines"] and k not in CHANGED]
assert not missing, missing

out = {"results": "results-after.json", "commit": "01ddf0b", "checks_at": "01ddf0b (/work/wt-after)", "date": "2026-12-06",
       "labels_by": "a helper that did not write the set, reading each visible message against the entry's cause "
                    "(tests/unseen/README.md 'Classifying', strictly); unchanged messages keep the writer's label",
       "labels": labels}
(HERE / "labels-after.json").write_text(json.dumps(out, indent=1) + "\n")

md = ["# Labels of the ninth held-out set, part a (lessons 00-02), at /work/wt-after = 01ddf0b (the checks after)", "",
      "Each wrong entry's label (tests/unseen/README.md, 'Classifying', strictly) and the message line(s) that decided it; "
      "CRASH, FALSE OK, PASS, FAIL are the auto labels of `results-after.json`. 'changed' = the message differs from "
      "results-before.json. Written by `make_labels_after.py`. Shares: `run.py --summary results-after.json --labels labels-after.json`.", ""]
for lesson in ("00", "01", "02"):
    md += [f"## Lesson {lesson}", "", "| entry | before | after | message | deciding message line(s) | why |", "|---|---|---|---|---|---|"]
    for k, (r, label, lines, note) in table.items():
        if r["lesson"] != lesson:
            continue
        ch = "changed" if r["verdict_lines"] != rb[k]["verdict_lines"] else "same"
        esc = lambda s: s.replace("|", "\\|")
        md.append(f"| {r['name']} ({r['check']}) | {before[k]['label']} | **{label}** | {ch} | "
                  f"{esc(lines) if not r['correct'] else '(correct alternative)'} | {esc(note)} |")
    md.append("")
(HERE / "LABELS-after.md").write_text("\n".join(md))
print("written", len(labels))
