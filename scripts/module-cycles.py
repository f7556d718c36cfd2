#!/usr/bin/env python3
"""Lists dependency cycles among the top-level modules of node/src and exits 1 if there is one.

An edge A -> B is any mention of `crate::B` (a path or a `use`) in A's files, comments and
test modules left out. Run from the repository root: `python3 scripts/module-cycles.py`.
"""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else "node/src"
mods = {}
for f in os.listdir(root):
    if f.endswith(".rs") and f not in ("lib.rs", "main.rs"):
        mods[f[:-3]] = [os.path.join(root, f)]
for m in list(mods):
    d = os.path.join(root, m)
    if os.path.isdir(d):
        for dp, _, fs in os.walk(d):
            mods[m] += [os.path.join(dp, x) for x in fs if x.endswith(".rs")]
edges = {m: set() for m in mods}
pat = re.compile(r"\bcrate::(\w+)")
usepat = re.compile(r"use crate::\{([^}]*)\}", re.S)
for m, files in mods.items():
    for f in files:
        if os.path.basename(f) == "tests.rs" or "/tests/" in f:
            continue
        text = open(f).read()
        # Test modules sit at the end of a file (`#[cfg(test)] mod tests`): not a dependency.
        cut = re.search(r"#\[cfg\(test\)\]\s*mod tests\b", text)
        if cut:
            text = text[: cut.start()]
        # drop comments (doc links included: they do not make a dependency)
        text = "\n".join(l.split("//")[0] for l in text.splitlines())
        found = set(pat.findall(text))
        for group in usepat.findall(text):
            found |= {p.strip().split("::")[0] for p in group.split(",")}
        edges[m] |= {t for t in found if t in mods and t != m}
# Tarjan SCC
index, low, stack, on, sccs, i = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v: break
        if len(c) > 1: sccs.append(sorted(c))
for v in sorted(edges):
    if v not in index: strong(v)
for c in sccs:
    print("cycle among:", ", ".join(c))
    for a in c:
        print("  ", a, "->", ", ".join(sorted(edges[a] & set(c))))
sys.exit(1 if sccs else 0)
