#!/usr/bin/env python3
"""Which risk-library phrases alert on ordinary texts: for each phrase matched in a text the
library alone grades 4 or more, how often that text is ordinary (`benign`: a false alert) and
how often a concern of grade 3 or more (kept), with an example, worst first. Run it on the
training texts (config/model/train/*.tsv), never on an evaluation corpus.

    bench/library-precision.py HAVEN_BINARY LABELLED.tsv...
"""
import json, subprocess, sys, tempfile, os
from collections import Counter, defaultdict
haven = sys.argv[1]; rows = []
for path in sys.argv[2:]:
    for line in open(path, encoding="utf-8"):
        f = line.rstrip("\n").split("\t", 4)
        if len(f) == 5: rows.append((f[0], int(f[1]), f[4]))
with tempfile.TemporaryDirectory() as d:
    inp = "\n".join(json.dumps({"text": r[2]}, ensure_ascii=False) for r in rows) + "\n"
    out = subprocess.run([haven, "--data-dir", os.path.join(d, "x"), "monitor", "grade", "--json", "--no-model"],
                         input=inp.encode(), capture_output=True, check=True).stdout.decode().splitlines()
fp = Counter(); tp = Counter(); ex = defaultdict(list)
for (cat, g, text), l in zip(rows, out):
    o = json.loads(l)
    if o["library"]["grade"] < 4: continue
    for m in set(o["library"]["matched"]):
        if cat == "benign": fp[m] += 1; ex[m].append(text[:90])
        elif g >= 3: tp[m] += 1
for m, n in fp.most_common():
    print(f"{n:3d} false {tp[m]:3d} kept  {m!r}  e.g. {ex[m][0]!r}")
