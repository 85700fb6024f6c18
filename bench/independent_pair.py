#!/usr/bin/env python3
"""A legacy/modern pair of FOCUS 1.x cost-and-usage CSV files from a generator independent of
`billshadow generate pair`: other columns (FOCUS's), other value shapes (timestamps, resource
ids, long descriptions), and other differences, so that speed figures hold on input billshadow
did not design.

    independent_pair.py --lines N --seed S --out DIR

Each account has 20 rows (one per SKU and day); both files share the same columns in the same
order (the peers compare by column position) and a unique key: BillingAccountId,
ChargePeriodStart, SkuId, ResourceId (columns 0, 5, 9, 10). The modern file lists the accounts
in another order and each account's rows backwards; about 1 % of its rows have another amount,
0.2 % are missing, 0.2 % are extra, and 3 % spell the same amount with trailing zeros (equal
money, different text)."""

import argparse
import os
import random

COLUMNS = [
    "BillingAccountId", "SubAccountId", "RegionId", "BillingPeriodStart", "BillingPeriodEnd",
    "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeDescription", "SkuId",
    "ResourceId", "ConsumedQuantity", "ConsumedUnit", "BilledCost", "BillingCurrency",
    "InvoiceId",
]
SKUS = [
    ("AmazonEC2-BoxUsage:m5.large", "Hrs", "0.096"),
    ("AmazonS3-TimedStorage-ByteHrs", "GB-Mo", "0.023"),
    ("AmazonRDS-InstanceUsage:db.r5", "Hrs", "0.24"),
    ("AWSDataTransfer-Out-Bytes", "GB", "0.09"),
    ("AmazonCloudWatch-Requests", "Requests", "0.00001"),
]
CURRENCIES = ["USD", "USD", "USD", "EUR", "GBP", "JPY"]
REGIONS = ["us-east-1", "eu-west-1", "ap-northeast-1", "us-west-2"]
ROWS_PER_ACCOUNT = 20
DAYS = 4  # 20 rows: 5 SKUs x 4 days


def account_rows(rng, index):
    account = f"{700000000000 + index:012d}"
    sub = f"{800000000000 + index % 9973:012d}"
    region = REGIONS[index % len(REGIONS)]
    currency = CURRENCIES[index % len(CURRENCIES)]
    decimals = 0 if currency == "JPY" else 2
    rows = []
    for day in range(DAYS):
        start = f"2026-10-{day + 1:02d}T00:00:00Z"
        end = f"2026-10-{day + 2:02d}T00:00:00Z"
        for sku, unit, price in SKUS:
            quantity = rng.randint(1, 5000)
            cost = round(quantity * float(price) * (1 + rng.random()), decimals)
            cost_text = f"{cost:.{decimals}f}"
            resource = f"arn:aws:{sku.split('-')[0].lower()}:{region}:{account}:r-{rng.getrandbits(40):010x}"
            rows.append([
                account, sub, region, "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z", start, end,
                "Usage", f"{sku} in {region}, {unit}", sku, resource, str(quantity), unit,
                cost_text, currency, f"INV-{index:08d}",
            ])
    return rows


def line(fields):
    return ",".join(f'"{f}"' if "," in f else f for f in fields) + "\n"


def modern_row(rng, row):
    roll = rng.random()
    if roll < 0.002:
        return []  # missing on the modern side
    row = list(row)
    if roll < 0.012:
        cost = row[13]
        bumped = round(float(cost) + 0.01 * rng.randint(1, 99), 2)
        row[13] = f"{bumped:.2f}" if "." in cost else str(int(bumped) + 1)
    elif roll < 0.042:
        row[13] = row[13] + ("00" if "." in row[13] else ".00")
    out = [row]
    if rng.random() < 0.002:
        extra = list(row)
        extra[10] = extra[10] + "-extra"
        out.append(extra)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, required=True, help="about this many rows per side")
    parser.add_argument("--seed", type=int, default=1, help="the random seed")
    parser.add_argument("--out", required=True, help="the directory to write into")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    accounts = max(1, args.lines // ROWS_PER_ACCOUNT)
    # The modern file visits the accounts in another order: a fixed stride through them
    # (coprime with their count), so no list of every account is held.
    stride = 7919
    while accounts % stride == 0 or stride % accounts == 0 and accounts > 1:
        stride += 2
    header = ",".join(COLUMNS) + "\n"
    with open(os.path.join(args.out, "legacy.csv"), "w", buffering=1 << 20) as legacy:
        legacy.write(header)
        for index in range(accounts):
            rng = random.Random(args.seed * 1_000_003 + index)
            legacy.writelines(line(r) for r in account_rows(rng, index))
    with open(os.path.join(args.out, "modern.csv"), "w", buffering=1 << 20) as modern:
        modern.write(header)
        for step in range(accounts):
            index = (step * stride) % accounts
            rng = random.Random(args.seed * 1_000_003 + index)
            rows = account_rows(rng, index)
            noise = random.Random(args.seed * 7_000_001 + index)
            for row in reversed(rows):
                modern.writelines(line(r) for r in modern_row(noise, row))


if __name__ == "__main__":
    main()
