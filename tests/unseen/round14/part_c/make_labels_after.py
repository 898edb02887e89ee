"""Write labels-after.json and LABELS-after.md for part C from results-after.json.

Every message but one is the same as in results-before.json (checked below), so those
entries keep the read label of labels-before.json (re-read against the rules; none plainly
inconsistent). The one changed message is read again here (CHANGED)."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
before = json.loads((HERE / "results-before.json").read_text())
after = json.loads((HERE / "results-after.json").read_text())
lb = json.loads((HERE / "labels-before.json").read_text())
brows = {f"{r['lesson']}:{r['check']}: {r['name']}": r for r in before["rows"]}

CHANGED = {
    "07:landscape_probe: norm of the new gradient as the change": (
        "NAMED",
        "losses and points right, changes wrong, '||grad - g|| at each point, over all parameters': "
        "names the difference the learner left out (was 'take ||grad - g|| over all parameters, from 0'; "
        "same reading)"),
}


def message(r):
    if r["auto_label"] in ("FALSE OK", "PASS", "FAIL") or (r["visible_ok"] and not r["verdict_lines"]):
        return f"(visible ok, hidden {r['hidden_points']}/{r['hidden_total']})"
    return r["verdict_lines"][0] if r["verdict_lines"] else r["output"].strip().splitlines()[-1]


labels, md = {}, ["# Labels, fourteenth set part C, after (/work/wt-final8 at 5353880)", "",
                  "Read by a helper other than the writer, with the writer's rules; every message that is the "
                  "same as before keeps the writer's label (none found plainly inconsistent).", ""]
for r in after["rows"]:
    key = f"{r['lesson']}:{r['check']}: {r['name']}"
    old = lb["labels"][key]
    same = brows[key]["verdict_lines"] == r["verdict_lines"] and brows[key]["auto_label"] == r["auto_label"] \
        and brows[key]["visible_ok"] == r["visible_ok"] and brows[key]["hidden_points"] == r["hidden_points"]
    if key in CHANGED:
        assert not same, key
        label, note = CHANGED[key]
    else:
        assert same, f"message changed, read it: {key}"
        label, note = old["label"], old["note"] + (" (message unchanged)" if old["note"] else "")
    if r["auto_label"] != "?":
        assert label == r["auto_label"], (key, label, r["auto_label"])
    labels[key] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"], "label": label, "note": note}
    md += [f"- **{label}** `{key}`  ", f"  cause: {r['cause'] or '(correct alternative)'}  ",
           f"  message: `{message(r)}`  ", f"  note: {note}"]
out = {"results": "results-after.json", "commit": "5353880", "checks_at": "5353880", "date": "2026-12-06",
       "labels_by": "a helper other than the writer (issue 28), reading each visible message against the entry's "
                    "cause (tests/unseen/README.md 'Classifying', strictly); unchanged messages keep the writer's "
                    "label; helpers/checks/ not read",
       "labels": labels}
(HERE / "labels-after.json").write_text(json.dumps(out, indent=1) + "\n")
(HERE / "LABELS-after.md").write_text("\n".join(md) + "\n")
print(len(labels), "labels written")
