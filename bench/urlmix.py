#!/usr/bin/env python3
"""URL mixes for the squidGuard comparison, and the comparison of the two programs' verdicts.

    urlmix.py generate UT1_DIR OUT_FILE COUNT CATEGORY...   write a Squid helper input mix
    urlmix.py compare UT1_DIR MIX HAVEN_OUT SQUIDGUARD_OUT CATEGORY...

The mix (seeded, so every run is the same): listed domains with www./cdn./m. prefixes and paths,
URL-list entries, hosts from UT1 categories that are not blocked, invented unlisted hosts, and
CONNECT lines. `compare` counts agreement and explains every disagreement it can classify.
"""
import random
import sys
from pathlib import Path


def read_list(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    yield line
    except FileNotFoundError:
        return


def norm_host(h):
    h = h.lower().rstrip(".")
    if h.startswith("www.") and "." in h[4:]:
        h = h[4:]
    return h


def blocked_sets(ut1, categories):
    domains, urls = set(), set()
    for c in categories:
        for d in read_list(ut1 / c / "domains"):
            domains.add(norm_host(d.lstrip(".")))
        for u in read_list(ut1 / c / "urls"):
            urls.add(u.lower())
    return domains, urls


def generate(ut1, out, count, categories):
    rng = random.Random(20261122)
    domains, urls = blocked_sets(ut1, categories)
    listed = sorted(d for d in domains if not d.replace(".", "").isdigit())
    url_entries = sorted(u for u in urls if "/" in u and " " not in u)
    others = []
    for c in sorted(p.name for p in ut1.iterdir() if p.is_dir()):
        if c in categories:
            continue
        for d in read_list(ut1 / c / "domains"):
            d = norm_host(d.lstrip("."))
            if d not in domains and not d.replace(".", "").isdigit():
                others.append(d)
    others = sorted(set(others))
    prefixes = ["", "www.", "cdn.", "m.", "static."]
    paths = ["/", "/index.html", "/news/today", "/img/logo.png", "/search?q=maths", "/a/b/c.js?v=3"]
    with open(out, "w") as f:
        for i in range(count):
            r = rng.random()
            if r < 0.30:
                f.write(f"http://{rng.choice(prefixes)}{rng.choice(listed)}{rng.choice(paths)} 10.0.0.{i % 250 + 1}/- - GET\n")
            elif r < 0.40:
                f.write(f"http://{rng.choice(url_entries)}{rng.choice(['', 'x', '/more'])} 10.0.0.{i % 250 + 1}/- - GET\n")
            elif r < 0.85:
                f.write(f"http://{rng.choice(prefixes)}{rng.choice(others)}{rng.choice(paths)} 10.0.0.{i % 250 + 1}/- - GET\n")
            elif r < 0.95:
                host = rng.choice(listed) if rng.random() < 0.5 else rng.choice(others)
                f.write(f"{host}:443 10.0.0.{i % 250 + 1}/- - CONNECT\n")
            else:
                f.write(f"http://h{rng.randrange(10**9)}.unlisted-example.net/ 10.0.0.{i % 250 + 1}/- - GET\n")
    print(f"wrote {count:,} lines: {len(listed):,} listed domains, {len(url_entries):,} URL entries, {len(others):,} other hosts")


def verdict(line):
    line = line.strip()
    return "block" if line.startswith("OK") and "url=" in line else "pass"


def host_of(request):
    url = request.split()[0]
    if "://" in url:
        url = url.split("://", 1)[1]
    host = url.split("/", 1)[0].split("?", 1)[0]
    return norm_host(host.rsplit(":", 1)[0] if host.count(":") == 1 else host)


def compare(ut1, mix, haven_out, sg_out, categories):
    domains, urls = blocked_sets(ut1, categories)
    url_hosts = {norm_host(u.split("/", 1)[0]) for u in urls}
    # Listed domains that also have a listed subdomain: squidGuard's known blind spot.
    has_listed_child = set()
    for d in domains:
        labels = d.split(".")
        for i in range(1, len(labels) - 1):
            has_listed_child.add(".".join(labels[i:]))
    # Listed URLs that are a prefix of a longer listed URL: squidGuard's blind spot for URLs.
    url_norm = sorted({norm_host(u.split("/", 1)[0]) + "/" + u.split("/", 1)[1] for u in urls if "/" in u})
    has_longer_url = {a for a, b in zip(url_norm, url_norm[1:]) if b.startswith(a)}
    reqs = Path(mix).read_text().splitlines()
    hv = [verdict(l) for l in Path(haven_out).read_text().splitlines()]
    sg = [verdict(l) for l in Path(sg_out).read_text().splitlines()]
    if not (len(reqs) == len(hv) == len(sg)):
        print(f"LINE COUNTS DIFFER: mix {len(reqs)}, haven {len(hv)}, squidGuard {len(sg)}")
        return 1
    classes = {}
    for req, h, s in zip(reqs, hv, sg):
        if h == s:
            continue
        host = host_of(req)
        ancestors = [".".join(host.split(".")[i:]) for i in range(len(host.split(".")))]
        url = req.split()[0].split("://", 1)[-1]
        hostpath = host + ("/" + url.split("/", 1)[1] if "/" in url else "")
        if h == "block" and any(a in domains and a in has_listed_child for a in ancestors):
            why = "squidGuard misses a listed domain whose subdomain is also listed"
        elif h == "block" and any(hostpath.startswith(e) for e in has_longer_url if e.split("/", 1)[0] == host):
            why = "squidGuard misses a listed URL when a longer URL under it is also listed"
        elif h == "block" and any(a in url_hosts for a in ancestors[1:]):
            why = "URL entry on a parent host: Haven matches subdomains, squidGuard only the exact host"
        elif h == "block" and "%" in req.split()[0]:
            why = "percent-encoded URL: Haven decodes entry and request alike, squidGuard never matches"
        elif h == "block" and "./" in url:
            why = "URL entry with a path segment ending in a dot: squidGuard misses URLs under it"
        elif h == "block" and req.split()[0].count("//") > 1:
            why = "URL with doubled slashes: Haven normalises, squidGuard does not match"
        else:
            why = f"haven {h}, squidGuard {s}: unexplained"
        classes.setdefault(why, []).append(req.split()[0])
    same = len(reqs) - sum(len(v) for v in classes.values())
    print(f"verdicts: {same:,} of {len(reqs):,} the same ({100.0 * same / len(reqs):.3f}%); "
          f"haven blocked {hv.count('block'):,}, squidGuard blocked {sg.count('block'):,}")
    unexplained = 0
    for why, examples in sorted(classes.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(examples):>8,}  {why}")
        for e in examples[:3]:
            print(f"            e.g. {e}")
        if "unexplained" in why:
            unexplained += len(examples)
    return 1 if unexplained else 0


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    cmd, ut1 = sys.argv[1], Path(sys.argv[2])
    if cmd == "generate":
        generate(ut1, sys.argv[3], int(sys.argv[4]), sys.argv[5:])
        return 0
    if cmd == "compare":
        return compare(ut1, sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
