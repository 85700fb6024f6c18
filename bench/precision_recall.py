#!/usr/bin/env python3
"""Checks a `billshadow diff --format json` report against the answer file `billshadow
generate pair` wrote beside the pair: how many of the expected diffs were reported.

    python3 bench/precision_recall.py PAIR/answers.json REPORT.json

A diff is matched by its owner (the account, or the customer for a customer's total), class,
charge code, currency and delta (the delta only for the classes about money), as the test
`diff::generated_pair_has_precision_and_recall_of_exactly_one` matches them. Prints the
expected, reported and matched counts: precision and recall are exactly 1.0 when all three
are equal.
"""
import json
import sys
from collections import Counter
from decimal import Decimal

NOT_MONEY = ("currency_mismatch", "quantity_mismatch", "unit_price_mismatch", "description_changed")


def ident(diff, by_customer):
    owner = ("c", diff.get("customer_id")) if by_customer else ("a", diff.get("account_id"))
    money = diff.get("delta") and diff["class"] not in NOT_MONEY
    delta = str(Decimal(diff["delta"]).normalize()) if money else ""
    return (owner, diff["class"], diff.get("charge_code"), delta, diff.get("currency"))


def main(answers_path, report_path):
    with open(answers_path) as f:
        answers = json.load(f)
    with open(report_path) as f:
        report = json.load(f)
    expected = Counter()
    for diff in answers["diffs"]:
        diff = dict(diff)
        if diff["class"] == "total_mismatch":
            diff["charge_code"] = None
        expected[ident(diff, diff.get("customer_id") is not None)] += 1
    reported = Counter(ident(d, d.get("scope") == "customer") for d in report["diffs"])
    matched = sum(min(n, reported[k]) for k, n in expected.items())
    print("expected", sum(expected.values()), "reported", sum(reported.values()),
          "matched", matched)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
