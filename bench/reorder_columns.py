#!/usr/bin/env python3
"""Rewrites a CSV file with its columns in the order of another file's header, for the peers
that compare by column position (not timed).

    reorder_columns.py IN REFERENCE OUT"""

import csv
import sys

with open(sys.argv[2], newline="") as ref:
    order = next(csv.reader(ref))
with open(sys.argv[1], newline="") as src, open(sys.argv[3], "w", newline="") as dst:
    reader = csv.reader(src)
    header = next(reader)
    index = [header.index(name) for name in order]
    writer = csv.writer(dst, lineterminator="\n")
    writer.writerow(order)
    for row in reader:
        writer.writerow([row[i] for i in index])
