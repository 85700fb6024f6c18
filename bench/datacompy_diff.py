#!/usr/bin/env python3
"""The datacompy peer of the diff benchmarks: reads both CSV files with pandas and compares
them with datacompy on the given key columns (by name), numbers with no tolerance.

    datacompy_diff.py LEGACY MODERN KEY[,KEY...]"""

import sys

import datacompy
import pandas as pd


def main():
    legacy_path, modern_path, keys = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    key_types = {k: str for k in keys}
    legacy = pd.read_csv(legacy_path, dtype=key_types, keep_default_na=False)
    modern = pd.read_csv(modern_path, dtype=key_types, keep_default_na=False)
    # `Compare` before datacompy 0.17, `PandasCompare` since.
    compare_class = getattr(datacompy, "PandasCompare", None) or datacompy.Compare
    compare = compare_class(
        legacy, modern, join_columns=keys, abs_tol=0, rel_tol=0,
        df1_name="legacy", df2_name="modern", cast_column_names_lower=False,
    )
    unequal = compare.all_mismatch().shape[0]
    print(
        f"legacy only {len(compare.df1_unq_rows)} modern only {len(compare.df2_unq_rows)} "
        f"rows with a different value {unequal}"
    )


if __name__ == "__main__":
    main()
