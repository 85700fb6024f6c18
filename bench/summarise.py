#!/usr/bin/env python3
"""Summarises bench/diff-peers.sh's results: per pair and tool, the median wall time, the
median CPU time (user + system), the largest peak memory, and each tool's median wall time
against billshadow's on the same pair (above 1: billshadow is faster).

    summarise.py RESULTS.tsv"""

import csv
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
with open(sys.argv[1], newline="") as f:
    for row in csv.DictReader(f, delimiter="\t"):
        runs[(int(row["lines"]), row["pair"], row["tool"])].append(row)

print("| lines per side | pair | tool | runs | wall, each run (s) | wall median | CPU median | peak MiB | wall / billshadow's |")
print("|---:|---|---|---:|---|---:|---:|---:|---:|")
for (lines, pair, tool), rows in sorted(runs.items()):
    walls = [float(r["wall_s"]) for r in rows]
    cpus = [float(r["user_s"]) + float(r["sys_s"]) for r in rows]
    peak = max(int(r["peak_kib"]) for r in rows) / 1024
    base = runs.get((lines, pair, "billshadow"))
    ratio = ""
    if base and tool != "billshadow":
        ratio = f"{statistics.median(walls) / statistics.median(float(r['wall_s']) for r in base):.2f}"
    failed = sum(1 for r in rows if int(r["exit"]) > (1 if tool == "billshadow" else 0))
    note = f" ({failed} failed)" if failed else ""
    print(
        f"| {lines:,} | {pair} | {tool}{note} | {len(rows)} | {' · '.join(f'{w:.2f}' for w in walls)} "
        f"| {statistics.median(walls):.2f} | {statistics.median(cpus):.2f} | {peak:,.0f} | {ratio} |"
    )
