"""Write labels-final.json and LABELS-final.md from results-final.json (the final frozen checkout
/work/wt-final8, main 5353880) and labels-after.json. Round 13 is SEEN here (the lead read its
wrong-cause and false-ok entries before 5353880): a development measurement, not a blind one.
Every entry whose printed output and auto label are the same as in results-after.json keeps its
AFTER label; every entry whose printed lines or auto verdicts differ is read again (strictly,
tests/unseen/README.md 'Classifying') and its label is written in READ below."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
PART = "a"

# id -> (label, deciding message fragment, why); every entry whose output or auto label changed
READ = {}

after_rows = {r["id"]: r for r in json.loads((HERE / "results-after.json").read_text())["rows"]}
after_labels = json.loads((HERE / "labels-after.json").read_text())["labels"]
results = json.loads((HERE / "results-final.json").read_text())
rows = results["rows"]
assert set(after_rows) == {r["id"] for r in rows}

labels, md, changed = {}, [], []
md.append(f"# Labels of the thirteenth held-out set, part {PART}, at /work/wt-final8 (main 5353880: the final frozen checkout; SEEN)\n")
md.append("Round 13 was read by the lead (its wrong-cause and false-ok entries) before these checks were changed, so this is a "
          "development measurement, not a blind one. Entries whose printed lines and auto verdicts are the same as in "
          "`results-after.json` keep their AFTER label (`labels-after.json`); the entries below changed and were read again "
          "with the strict rules (tests/unseen/README.md, 'Classifying'). Shares: "
          "`run.py --summary results-final.json --labels labels-final.json`.\n")
cell = lambda t: " ".join(str(t).split()).replace("|", "\\|")
for r in rows:
    a = after_rows[r["id"]]
    differs = a["output"] != r["output"] or a["auto_label"] != r["auto_label"] or a["verdict_lines"] != r["verdict_lines"]
    auto = r["auto_label"]
    if not differs:
        assert r["id"] not in READ, r["id"]
        labels[r["id"]] = dict(after_labels[r["id"]])
        continue
    if auto == "?":
        label, line, why = READ[r["id"]]
    else:
        label = auto
        if r["id"] in READ:
            _, line, why = READ[r["id"]]
        elif r["correct"]:
            line, why = "(correct alternative)", "visible ok, full hidden marks" if auto == "PASS" else "refused"
        else:
            line = "; ".join(r["verdict_lines"]) or "(nothing but ok lines printed)"
            why = f"visible ok: {r['visible_ok']}, hidden {r['hidden_points']:g}/{r['hidden_total']:g}"
    labels[r["id"]] = {"lesson": r["lesson"], "check": r["check"], "correct": r["correct"], "label": label, "note": why}
    changed.append((r, after_labels[r["id"]]["label"], a["auto_label"], label, line, why))

missing = [k for k in READ if k not in labels]
assert not missing, missing
if changed:
    md.append(f"## Entries whose printed lines or auto verdicts changed ({len(changed)} of {len(rows)})\n")
    md.append("| entry | after (auto) | final (auto) | label | cause | deciding message line(s) | why |\n|---|---|---|---|---|---|---|")
    for r, la, aa, lf, line, why in changed:
        cause = "correct alternative" if r["correct"] else r["cause"]
        md.append(f"| {cell(r['id'])} | {la} ({aa}) | **{lf}** ({r['auto_label']}) | {cell(cause)} | {cell(line)} | {cell(why)} |")
else:
    md.append(f"## Entries whose printed lines or auto verdicts changed: none (0 of {len(rows)})\n\n"
              "Every field of every entry's printed output, verdict lines and auto label is the same as in "
              "`results-after.json`, so every label is the AFTER label.")
md.append("\n## Every entry's final label\n\n| entry | label | changed |\n|---|---|---|")
ch = {c[0]["id"] for c in changed}
for r in rows:
    md.append(f"| {cell(r['id'])} | {labels[r['id']]['label']} | {'yes' if r['id'] in ch else ''} |")
(HERE / "labels-final.json").write_text(json.dumps({
    "results": "results-final.json", "commit": "5353880", "checks_at": "5353880", "date": "2026-12-06",
    "seen": "round 13 was read by the lead before 5353880: a development set from here on, not blind",
    "relabelled_from": "labels-after.json (strict rules; labels read again only where the printed lines or auto verdicts changed)",
    "labels_by": "a helper (not the writer), reading each changed message at 5353880 against the entry's cause "
                 "(tests/unseen/README.md 'Classifying', strictly); helpers/checks/ not read",
    "labels": labels}, indent=1) + "\n")
(HERE / "LABELS-final.md").write_text("\n".join(md) + "\n")
print(len(labels), "labels written;", len(changed), "changed entries")
