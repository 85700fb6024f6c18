#!/usr/bin/env bash
# The `billshadow diff` peer benchmark: generated pairs of 1 M, 10 M (and 50 M) lines per side,
# each diffed by billshadow, by the csv-diff crate and by datacompy (pandas), and parsed by the
# csv crate alone on one thread (the floor), in alternating rounds; wall time, CPU time and
# peak memory of each run from /usr/bin/time. See BENCHMARKS.md, "billshadow diff against its
# peers", for the figures and how to read them.
#
#   cargo build --release --locked && cargo build --release --locked --example csv-parse
#   PEER_CSVDIFF=/path/to/csv-diff-driver PEER_PYTHON=/path/to/venv/bin/python \
#     bench/diff-peers.sh
#
# Environment (all optional):
#   BILLSHADOW     the billshadow binary (default: $CARGO_TARGET_DIR or target, release)
#   CSV_PARSE      the csv-parse example (the same folder's examples/csv-parse)
#   PEER_CSVDIFF   a driver of the csv-diff crate: `DRIVER LEFT RIGHT KEYCOLS` (0-based column
#                  numbers, comma-separated); skipped, and said so, when unset or absent
#   PEER_PYTHON    a Python with datacompy and pandas installed; skipped when they are not
#   DATA           where the pairs are written (default target/bench-data/peers); each pair is
#                  deleted once measured unless KEEP_DATA=1
#   SIZES          lines per side (default "1000000 10000000"; add 50000000 for the 50 M pair)
#   SEEDS          seeds of `billshadow generate pair` (default "1 2"); the independent pair
#                  (bench/independent_pair.py) is made with the first seed
#   ROUNDS_SMALL   rounds at sizes up to 1 M lines (default 5); ROUNDS_LARGE above (default 2)
#   DATACOMPY_MAX  the largest size datacompy is run at (default 1000000: it holds both files
#                  as pandas frames, several GB at 10 M lines)
#   CSVDIFF_MAX    the largest size csv-diff is run at (default 10000000: it held 8.1 GB at
#                  10 M lines, so 50 M would not fit in this machine's 23 GiB)
#   GZIP_MAX       the largest size whose first pair is also gzipped and diffed as .csv.gz
#                  (default 10000000: gzip -6 of a 50 M-line side takes minutes)
#   DIFF_ARGS      extra arguments for `billshadow diff` (e.g. a memory limit)
#   PAIRS          which pairs (default "generated independent")
# Results: one row per run in $DATA/results.tsv, and a summary (medians, ratios) at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target=${CARGO_TARGET_DIR:-$root/target}
BILLSHADOW=${BILLSHADOW:-$target/release/billshadow}
CSV_PARSE=${CSV_PARSE:-$target/release/examples/csv-parse}
PEER_CSVDIFF=${PEER_CSVDIFF:-}
PEER_PYTHON=${PEER_PYTHON:-python3}
DATA=${DATA:-$target/bench-data/peers}
SIZES=${SIZES:-"1000000 10000000"}
SEEDS=${SEEDS:-"1 2"}
ROUNDS_SMALL=${ROUNDS_SMALL:-5}
ROUNDS_LARGE=${ROUNDS_LARGE:-2}
DATACOMPY_MAX=${DATACOMPY_MAX:-1000000}
CSVDIFF_MAX=${CSVDIFF_MAX:-10000000}
GZIP_MAX=${GZIP_MAX:-10000000}
DIFF_ARGS=${DIFF_ARGS:-}
PAIRS=${PAIRS:-"generated independent"}

for tool in "$BILLSHADOW" "$CSV_PARSE"; do
    [[ -x $tool ]] || { echo "missing $tool: build it first (see the top of $0)" >&2; exit 2; }
done
have_csvdiff=0
if [[ -n $PEER_CSVDIFF && -x $PEER_CSVDIFF ]]; then
    have_csvdiff=1
else
    echo "csv-diff: skipped (PEER_CSVDIFF is unset or not an executable: '${PEER_CSVDIFF}')" >&2
fi
have_datacompy=0
if "$PEER_PYTHON" -c 'import datacompy, pandas' 2>/dev/null; then
    have_datacompy=1
else
    echo "datacompy: skipped ($PEER_PYTHON cannot import datacompy and pandas)" >&2
fi

mkdir -p "$DATA"
results=$DATA/results.tsv
[[ -f $results ]] || printf 'lines\tpair\ttool\tround\twall_s\tuser_s\tsys_s\tpeak_kib\texit\n' >"$results"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "$(free -g | awk '/Mem:/ {print $2}') GiB; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# measure LINES PAIR TOOL ROUND COMMAND...: one run, timed, appended to the results.
measure() {
    local lines=$1 pair=$2 tool=$3 round=$4
    shift 4
    local times=$DATA/time.txt code=0
    /usr/bin/time -o "$times" -f '%e\t%U\t%S\t%M' "$@" >"$DATA/last.out" 2>"$DATA/last.err" || code=$?
    # billshadow exits 1 on a mismatch, which is a finished diff.
    if [[ $code -gt 1 || ($code -eq 1 && $tool != billshadow*) ]]; then
        echo "$tool on $pair failed (exit $code):" >&2
        tail -n 5 "$DATA/last.err" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$lines" "$pair" "$tool" "$round" \
        "$(tail -n 1 "$times")" "$code" >>"$results"
    printf '  %-14s round %s: %s\n' "$tool" "$round" "$(tail -n 1 "$times" | tr '\t' ' ')" >&2
}

# bench_pair LINES PAIR DIR FORMAT KEYCOLS KEYNAMES: every tool on one pair, alternating.
bench_pair() {
    local lines=$1 pair=$2 dir=$3 format=$4 keycols=$5 keynames=$6
    local rounds=$ROUNDS_SMALL
    [[ $lines -le 1000000 ]] || rounds=$ROUNDS_LARGE
    local legacy=$dir/legacy.csv modern=$dir/modern.csv
    # csv-diff compares by column position: it gets the modern file with legacy's column
    # order (rewritten once, not timed). datacompy joins by column name and reads both as
    # they are.
    local peer_modern=$modern
    if [[ $have_csvdiff == 1 && $lines -le $CSVDIFF_MAX && $(head -n 1 "$legacy") != $(head -n 1 "$modern") ]]; then
        peer_modern=$dir/modern-legacy-order.csv
        [[ -f $peer_modern ]] || python3 "$here/reorder_columns.py" "$modern" "$legacy" "$peer_modern"
    fi
    echo "$pair: $(($(wc -l <"$legacy") - 1)) and $(($(wc -l <"$modern") - 1)) lines" >&2
    for round in $(seq 1 "$rounds"); do
        # shellcheck disable=SC2086
        measure "$lines" "$pair" billshadow "$round" "$BILLSHADOW" diff --legacy "$legacy" \
            --modern "$modern" --legacy-format "$format" --modern-format "$format" \
            --format json --out "$DATA/diff.json" $DIFF_ARGS
        measure "$lines" "$pair" csv-parse "$round" "$CSV_PARSE" "$legacy" "$modern"
        if [[ $have_csvdiff == 1 && $lines -le $CSVDIFF_MAX ]]; then
            measure "$lines" "$pair" csv-diff "$round" "$PEER_CSVDIFF" "$legacy" "$peer_modern" "$keycols"
        fi
        if [[ $have_datacompy == 1 && $lines -le $DATACOMPY_MAX ]]; then
            measure "$lines" "$pair" datacompy "$round" "$PEER_PYTHON" "$here/datacompy_diff.py" \
                "$legacy" "$modern" "$keynames"
        fi
    done
}

# bench_gzip LINES PAIR DIR FORMAT: the pair gzipped, through billshadow and through zcat alone.
bench_gzip() {
    local lines=$1 pair=$2 dir=$3 format=$4
    local rounds=$ROUNDS_SMALL
    [[ $lines -le 1000000 ]] || rounds=$ROUNDS_LARGE
    for side in legacy modern; do
        [[ -f $dir/$side.csv.gz ]] || gzip -k -6 "$dir/$side.csv"
    done
    for round in $(seq 1 "$rounds"); do
        # shellcheck disable=SC2086
        measure "$lines" "$pair.gz" billshadow "$round" "$BILLSHADOW" diff \
            --legacy "$dir/legacy.csv.gz" --modern "$dir/modern.csv.gz" \
            --legacy-format "$format" --modern-format "$format" \
            --format json --out "$DATA/diff.json" $DIFF_ARGS
        measure "$lines" "$pair.gz" zcat "$round" sh -c 'zcat "$1" "$2" >/dev/null' zcat \
            "$dir/legacy.csv.gz" "$dir/modern.csv.gz"
    done
}

for lines in $SIZES; do
    # About 12.5 lines per account in `generate pair` (12 and the injected ones).
    accounts=$((lines * 2 / 25))
    first=1
    [[ $PAIRS == *generated* ]] || SEEDS_HERE=""
    for seed in ${SEEDS_HERE-$SEEDS}; do
        dir=$DATA/gen-$lines-s$seed
        if [[ ! -f $dir/modern.csv ]]; then
            "$BILLSHADOW" generate pair --accounts "$accounts" --lines-per-account 12 \
                --seed "$seed" --inject-percent 2 --out "$dir" -q
        fi
        # The canonical columns account_id, period_start, charge_code, line_type,
        # description, usage_start: unique per line in these pairs.
        bench_pair "$lines" "gen-s$seed" "$dir" canonical 0,4,6,7,8,14 \
            account_id,period_start,charge_code,line_type,description,usage_start
        if [[ $first == 1 && $lines -le $GZIP_MAX ]]; then
            bench_gzip "$lines" "gen-s$seed" "$dir" canonical
            first=0
        fi
        [[ ${KEEP_DATA:-0} == 1 ]] || rm -rf "$dir"
    done
    [[ $PAIRS == *independent* ]] || continue
    seed=${SEEDS%% *}
    dir=$DATA/independent-$lines-s$seed
    [[ -f $dir/modern.csv ]] || python3 "$here/independent_pair.py" --lines "$lines" --seed "$seed" --out "$dir"
    bench_pair "$lines" "independent-s$seed" "$dir" focus 0,5,9,10 \
        BillingAccountId,ChargePeriodStart,SkuId,ResourceId
    [[ ${KEEP_DATA:-0} == 1 ]] || rm -rf "$dir"
done

echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 "$here/summarise.py" "$results"
