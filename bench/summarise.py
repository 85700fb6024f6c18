#!/usr/bin/env python3
"""Summarises bench/diff-peers.sh's results: per pair and tool, the median wall time, the
median CPU time (user + system), the largest peak memory, and each tool's median wall and
CPU time against billshadow's on the same pair (above 1: billshadow is faster). Failed runs
are counted and left out of the figures.

    summarise.py RESULTS.tsv"""

import csv
import statistics
import sys
from collections import defaultdict


def failed(row):
    # billshadow exits 1 on a mismatch, which is a finished diff.
    return int(row["exit"]) > (1 if row["tool"] == "billshadow" else 0)


runs = defaultdict(list)
failures = defaultdict(int)
with open(sys.argv[1], newline="") as f:
    for row in csv.DictReader(f, delimiter="\t"):
        key = (int(row["lines"]), row["pair"], row["tool"])
        if failed(row):
            failures[key] += 1
        else:
            runs[key].append(row)


def wall(rows):
    return statistics.median(float(r["wall_s"]) for r in rows)


def cpu(rows):
    return statistics.median(float(r["user_s"]) + float(r["sys_s"]) for r in rows)


print(
    "| lines per side | pair | tool | runs | wall, each run (s) | wall median | CPU median "
    "| peak MiB | wall / billshadow's | CPU / billshadow's |"
)
print("|---:|---|---|---:|---|---:|---:|---:|---:|---:|")
for key, rows in sorted(runs.items()):
    lines, pair, tool = key
    peak = max(int(r["peak_kib"]) for r in rows) / 1024
    base = runs.get((lines, pair, "billshadow"))
    ratios = ("", "")
    if base and tool != "billshadow":
        ratios = (f"{wall(rows) / wall(base):.2f}", f"{cpu(rows) / cpu(base):.2f}")
    note = f" ({failures[key]} failed, left out)" if failures[key] else ""
    each = " · ".join(f"{float(r['wall_s']):.2f}" for r in rows)
    print(
        f"| {lines:,} | {pair} | {tool}{note} | {len(rows)} | {each} | {wall(rows):.2f} "
        f"| {cpu(rows):.2f} | {peak:,.0f} | {ratios[0]} | {ratios[1]} |"
    )
