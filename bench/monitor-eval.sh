#!/usr/bin/env bash
# The risk library against an evaluation corpus (bench/monitor/corpus.tsv): per category, the
# recall and precision of an alert (grade 4 or 5 in that category), and how many benign
# school-context texts would alert (grade 4 or 5) or be noted at all (grade 1 to 3).
#
#   bench/monitor-eval.sh [CORPUS] [--library FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${1:-bench/monitor/corpus.tsv}
shift || true
cargo build --release -q -p haven
HAVEN=$PWD/target/release/haven
WORK=$(mktemp -d /tmp/haven-monitor-eval.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
python3 - "$CORPUS" > "$WORK/in.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("#") or not line.strip():
        continue
    label, text = line.rstrip("\n").split("\t", 1)
    print(json.dumps({"text": text, "label": label}, ensure_ascii=False))
PY
"$HAVEN" --data-dir "$WORK/data" monitor grade --json "$@" < "$WORK/in.jsonl" > "$WORK/out.jsonl"
python3 - "$WORK/in.jsonl" "$WORK/out.jsonl" <<'PY'
import json, sys
from collections import Counter
ins = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
outs = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
assert len(ins) == len(outs)
labels = sorted({i["label"] for i in ins if i["label"] != "benign"})
tp, fn, fp = Counter(), Counter(), Counter()
misses, false_alerts, noted = [], [], []
for i, o in zip(ins, outs):
    alerted = {c["category"] for c in o["categories"] if c["grade"] >= 4}
    if i["label"] == "benign":
        if alerted:
            false_alerts.append((i["text"], o["grade"], sorted(alerted)))
        elif o["grade"] > 0:
            noted.append((i["text"], o["grade"]))
        for c in alerted:
            fp[c] += 1
        continue
    if i["label"] in alerted:
        tp[i["label"]] += 1
    else:
        fn[i["label"]] += 1
        misses.append((i["label"], i["text"], o["grade"], [c["category"] for c in o["categories"]]))
    for c in alerted - {i["label"]}:
        fp[c] += 1
benign = sum(1 for i in ins if i["label"] == "benign")
print(f"{'category':16} {'texts':>6} {'recall':>7} {'precision':>10}")
for c in labels:
    n = tp[c] + fn[c]
    prec = tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] else float("nan")
    print(f"{c:16} {n:>6} {tp[c]/n:>7.2f} {prec:>10.2f}")
all_tp, all_fn = sum(tp.values()), sum(fn.values())
print(f"{'all concerning':16} {all_tp+all_fn:>6} {all_tp/(all_tp+all_fn):>7.2f}")
print(f"benign texts: {benign}; alerting (grade 4-5): {len(false_alerts)} ({len(false_alerts)/benign:.1%}); noted (grade 1-3): {len(noted)} ({len(noted)/benign:.1%})")
for t, g, c in false_alerts:
    print(f"  false alert: grade {g} {c}: {t}")
for l, t, g, c in misses:
    print(f"  missed {l}: grade {g} {c}: {t}")
PY
