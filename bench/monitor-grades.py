#!/usr/bin/env python3
"""Grades a labelled corpus (CATEGORY GRADE LANG VOICE TEXT, tab-separated; category `benign`
with grade 0 for an ordinary text) with `haven monitor grade --json` and prints the figures the
issue quotes: grade-5 texts alerting, grade 4-5 alert recall, grade 4-5 captured at 3 or more,
ordinary texts alerting and captured, exact grade and within one, recall by language.

    bench/monitor-grades.py CORPUS.tsv [--haven PATH] [--misses] [-- extra `monitor grade` args]
"""
import json, subprocess, sys, tempfile, os, signal
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
from collections import Counter, defaultdict

args = sys.argv[1:]
extra = []
if "--" in args:
    i = args.index("--"); extra = args[i + 1:]; args = args[:i]
haven = "target/release/haven"
if "--haven" in args:
    i = args.index("--haven"); haven = args[i + 1]; del args[i:i + 2]
misses = "--misses" in args
args = [a for a in args if a != "--misses"]
corpus = args[0]
rows = []
for line in open(corpus, encoding="utf-8"):
    if not line.strip() or line.startswith("#"):
        continue
    f = line.rstrip("\n").split("\t", 4)
    if len(f) != 5:
        print("bad line:", line[:80], file=sys.stderr); continue
    rows.append((f[0], int(f[1]), f[2], f[3], f[4]))
with tempfile.TemporaryDirectory() as d:
    inp = "\n".join(json.dumps({"text": r[4]}, ensure_ascii=False) for r in rows) + "\n"
    out = subprocess.run([haven, "--data-dir", os.path.join(d, "data"), "monitor", "grade", "--json", *extra],
                         input=inp.encode(), capture_output=True, check=True).stdout.decode().splitlines()
outs = [json.loads(l) for l in out]
assert len(outs) == len(rows), (len(outs), len(rows))
c = Counter(); lang = defaultdict(Counter); cat = defaultdict(Counter); bad = []
for (category, grade, lng, voice, text), o in zip(rows, outs):
    g = o["grade"]
    alerted = g >= 4
    if category == "benign":
        c["benign"] += 1; c["benign_alert"] += alerted; c["benign_captured"] += g >= 1; c["benign_captured3"] += g >= 3
        if g >= 1: bad.append(("false", g, o, text))
        continue
    c["concerns"] += 1; c["exact"] += g == grade; c["within1"] += abs(g - grade) <= 1
    c["captured"] += g >= 1
    if grade == 5:
        c["g5"] += 1; c["g5_alert"] += alerted
    if grade >= 4:
        c["g45"] += 1; c["g45_alert"] += alerted; c["g45_cap3"] += g >= 3
        lang[lng]["n"] += 1; lang[lng]["alert"] += alerted
        own = any(x["category"] == category and x["grade"] >= 4 for x in o["categories"])
        cat[category]["n"] += 1; cat[category]["alert"] += own
        if not alerted: bad.append((f"missed {category} {grade}", g, o, text))
    if grade <= 3 and alerted:
        c["low_alert"] += 1
def pct(a, n): return f"{100*a/n:.1f}%" if n else "-"
print(f"corpus {corpus}: {c['concerns']} concerns, {c['benign']} ordinary texts")
print(f"grade 5 alerting:         {c['g5_alert']} of {c['g5']} ({pct(c['g5_alert'], c['g5'])})")
print(f"grade 4-5 alert recall:   {c['g45_alert']} of {c['g45']} ({pct(c['g45_alert'], c['g45'])}); captured at 3+: {pct(c['g45_cap3'], c['g45'])}")
print(f"ordinary texts alerting:  {c['benign_alert']} of {c['benign']} ({pct(c['benign_alert'], c['benign'])}); captured (1+): {pct(c['benign_captured'], c['benign'])}; at 3+: {pct(c['benign_captured3'], c['benign'])}")
print(f"exact grade:              {pct(c['exact'], c['concerns'])}; within one: {pct(c['within1'], c['concerns'])}; concerns captured at all: {pct(c['captured'], c['concerns'])}")
print("grade 4-5 alert recall by language: " + " ".join(f"{l} {pct(v['alert'], v['n'])} (n={v['n']})" for l, v in sorted(lang.items())))
print("grade 4-5 alerting in their own category: " + " ".join(f"{k} {pct(v['alert'], v['n'])}" for k, v in sorted(cat.items())))
if misses:
    for kind, g, o, text in bad:
        m = o.get("model") or {}
        print(f"  {kind}: graded {g} lib {o['library']['grade']} model {m.get('category')} {m.get('grade')} alert {m.get('alert_p', 0):.2f}: {text[:120]}")
