//! Exports as delivered, end to end through the real binary: gzip and zstd (told by their
//! first bytes, whatever their names), standard input, a directory or a glob of parts, and
//! Parquet written by pyarrow, each giving the same JSON result as the plain single files;
//! corrupt, mismatched and empty inputs refused with a located error and exit code 2.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::support::{Run, billshadow, command, repo};

/// `billshadow diff --legacy L… --modern M… --format json` in `dir`, standard input from
/// `stdin` when given.
fn diff(dir: &Path, legacy: &[&str], modern: &[&str], extra: &[&str], stdin: Option<&Path>) -> Run {
    let mut args = vec!["diff", "--legacy"];
    args.extend_from_slice(legacy);
    args.push("--modern");
    args.extend_from_slice(modern);
    args.extend_from_slice(&["--format", "json"]);
    args.extend_from_slice(extra);
    let mut cmd = command(&args, dir);
    cmd.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(dir.join(path)).unwrap()),
        None => Stdio::null(),
    });
    let output = cmd.output().expect("the binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A case: its name, the legacy and modern names given, the file on standard input.
type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], Option<&'a str>);

/// A bad case: the legacy and modern names, the file on standard input, the error expected.
type BadCase<'a> = (&'a [&'a str], &'a [&'a str], Option<&'a str>, &'a str);

/// The result without the names of the inputs: what must not change with how they came.
fn result(run: &Run) -> Value {
    let mut doc = run.json();
    for side in ["legacy", "modern"] {
        let path = &mut doc["inputs"][side]["path"];
        assert!(path.is_string(), "{}", run.transcript());
        *path = Value::Null;
    }
    doc
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}

/// A CSV file's header and rows split into three parts, each with the header.
fn three_parts(csv: &str) -> [String; 3] {
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let third = rows.len().div_ceil(3);
    let part = |i: usize| {
        let chunk = rows.chunks(third).nth(i).unwrap_or(&[]);
        format!("{header}\n{}\n", chunk.join("\n"))
    };
    [part(0), part(1), part(2)]
}

#[test]
fn compressed_stdin_and_parts_give_the_plain_files_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = billshadow(
        &[
            "generate",
            "pair",
            "--accounts",
            "400",
            "--seed",
            "11",
            "--out",
            ".",
        ],
        d,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let plain = diff(d, &["legacy.csv"], &["modern.csv"], &[], None);
    assert_eq!(plain.code, 1, "{}", plain.transcript());
    let expected = result(&plain);
    // Every class of diff the generator makes is in the result compared.
    assert!(
        expected["summary"]["by_class"].as_object().unwrap().len() >= 4,
        "{}",
        expected["summary"]["by_class"]
    );
    for side in ["legacy", "modern"] {
        let csv = std::fs::read_to_string(d.join(format!("{side}.csv"))).unwrap();
        // Told by their first bytes: the zstd file is named as if it were plain CSV.
        std::fs::write(d.join(format!("{side}.csv.gz")), gzip(csv.as_bytes())).unwrap();
        std::fs::write(d.join(format!("{side}-zstd.csv")), zstd(csv.as_bytes())).unwrap();
        // Three parts, in natural order (2 before 10), of three encodings.
        let parts = three_parts(&csv);
        let part_dir = d.join(format!("{side}-parts"));
        std::fs::create_dir(&part_dir).unwrap();
        std::fs::write(part_dir.join("part-1.csv"), &parts[0]).unwrap();
        std::fs::write(part_dir.join("part-2.csv.gz"), gzip(parts[1].as_bytes())).unwrap();
        std::fs::write(part_dir.join("part-10.csv.zst"), zstd(parts[2].as_bytes())).unwrap();
        std::fs::write(part_dir.join(".hidden"), "not a part").unwrap();
    }
    let cases: [Case; 8] = [
        ("gzip", &["legacy.csv.gz"], &["modern.csv.gz"], None),
        ("zstd", &["legacy-zstd.csv"], &["modern-zstd.csv"], None),
        ("stdin legacy", &["-"], &["modern.csv"], Some("legacy.csv")),
        (
            "stdin modern, gzip",
            &["legacy.csv"],
            &["-"],
            Some("modern.csv.gz"),
        ),
        ("directory", &["legacy-parts"], &["modern-parts/"], None),
        (
            "glob",
            &["legacy-parts/part-*"],
            &["modern-parts/*.csv*"],
            None,
        ),
        (
            "files listed",
            &[
                "legacy-parts/part-1.csv",
                "legacy-parts/part-2.csv.gz",
                "legacy-parts/part-10.csv.zst",
            ],
            &["modern-parts"],
            None,
        ),
        ("mixed", &["legacy-parts"], &["modern-zstd.csv"], None),
    ];
    for (name, legacy, modern, stdin) in cases {
        let run = diff(d, legacy, modern, &[], stdin.map(Path::new));
        assert_eq!(run.code, 1, "{name}: {}", run.transcript());
        assert_eq!(result(&run), expected, "{name}");
    }
    // The report names the input as it was given.
    let run = diff(
        d,
        &["-"],
        &["modern-parts"],
        &[],
        Some(Path::new("legacy.csv")),
    );
    let doc = run.json();
    assert_eq!(doc["inputs"]["legacy"]["path"], "-");
    assert_eq!(doc["inputs"]["modern"]["path"], "modern-parts");
    assert_eq!(
        doc["inputs"]["modern"]["records"],
        expected["inputs"]["modern"]["records"]
    );
    // No bar on a pipe: standard error carries nothing but what was asked.
    assert!(!run.stderr.contains("reading"), "{}", run.stderr);
}

/// A bad row in a part is located by the part's name and its own line.
#[test]
fn a_bad_row_is_located_in_its_part() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let header = "account_id,period_start,period_end,charge_code,line_type,quantity,unit_price,amount,currency";
    let row = |a: &str, amount: &str| format!("{a},2026-10-01,2026-10-31,sku,usage,,,{amount},USD");
    std::fs::create_dir(d.join("parts")).unwrap();
    let first = format!("{header}\n{}\n{}\n", row("a", "1.00"), row("b", "2.00"));
    let second = format!("{header}\n{}\n{}\n", row("c", "3.00"), row("d", "x"));
    std::fs::write(d.join("parts/part-1.csv"), first).unwrap();
    std::fs::write(d.join("parts/part-2.csv.gz"), gzip(second.as_bytes())).unwrap();
    std::fs::write(
        d.join("modern.csv"),
        format!("{header}\n{}\n", row("a", "1.00")),
    )
    .unwrap();
    let run = diff(d, &["parts"], &["modern.csv"], &[], None);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("parts/part-2.csv.gz, line 3, column 8 (`amount`)"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_inputs_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let header = "account_id,period_start,period_end,charge_code,line_type,quantity,unit_price,amount,currency";
    let row = "a,2026-10-01,2026-10-31,sku,usage,,,1.00,USD\n";
    let rows = format!("{header}\n{row}");
    let many = format!("{header}\n{}", row.repeat(50));
    std::fs::write(d.join("good.csv"), &rows).unwrap();
    // Corrupt gzip: its checksum does not match its data. Truncated gzip: cut in the middle.
    let mut corrupt = gzip(many.as_bytes());
    let crc = corrupt.len() - 8;
    corrupt[crc] ^= 0x5a;
    std::fs::write(d.join("corrupt.csv.gz"), &corrupt).unwrap();
    std::fs::write(d.join("cut.csv.gz"), &corrupt[..corrupt.len() / 2]).unwrap();
    // Truncated zstd.
    let whole = zstd(many.as_bytes());
    std::fs::write(d.join("truncated.csv.zst"), &whole[..whole.len() / 2]).unwrap();
    // Parts whose headers differ.
    std::fs::create_dir(d.join("mismatched")).unwrap();
    std::fs::write(d.join("mismatched/a.csv"), &rows).unwrap();
    let other = rows.replacen("unit_price,amount", "amount,unit_price", 1);
    std::fs::write(d.join("mismatched/b.csv"), other).unwrap();
    std::fs::create_dir(d.join("empty")).unwrap();
    // A bomb: 64 MiB of the same row, a few kilobytes compressed.
    let mut bomb = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
    bomb.write_all(format!("{header}\n").as_bytes()).unwrap();
    let block = row.repeat(1 << 14);
    for _ in 0..(64 << 20) / block.len() {
        bomb.write_all(block.as_bytes()).unwrap();
    }
    std::fs::write(d.join("bomb.csv.zst"), bomb.finish().unwrap()).unwrap();

    let cases: [BadCase; 8] = [
        (
            &["corrupt.csv.gz"],
            &["good.csv"],
            None,
            "corrupt.csv.gz: the gzip data is corrupt or truncated after",
        ),
        (
            &["good.csv"],
            &["cut.csv.gz"],
            None,
            "cut.csv.gz: the gzip data is corrupt or truncated after",
        ),
        (
            &["truncated.csv.zst"],
            &["good.csv"],
            None,
            "truncated.csv.zst: the zstd data is corrupt or truncated after",
        ),
        (
            &["mismatched"],
            &["good.csv"],
            None,
            "mismatched/b.csv, line 1: the header differs from that of the first part, mismatched/a.csv: column 7 is `amount` here and `unit_price` there",
        ),
        (
            &["empty"],
            &["good.csv"],
            None,
            "empty: the directory has no files; expected the parts of an export",
        ),
        (
            &["nothing-*.csv"],
            &["good.csv"],
            None,
            "nothing-*.csv: no file matches this pattern",
        ),
        (
            &["-"],
            &["-"],
            Some("good.csv"),
            "`-` (standard input) can be one side only",
        ),
        (
            &["bomb.csv.zst"],
            &["good.csv"],
            None,
            "bomb.csv.zst: refused as a decompression bomb",
        ),
    ];
    for (legacy, modern, stdin, expected) in cases {
        let run = diff(d, legacy, modern, &[], stdin.map(Path::new));
        assert_eq!(run.code, 2, "{legacy:?}: {}", run.transcript());
        assert!(run.stderr.contains(expected), "{legacy:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

/// The FOCUS sample as Parquet, written by pyarrow with the types a FOCUS export has (costs
/// as DECIMAL, periods as TIMESTAMP, the rest as strings), diffed against a changed copy.
const WRITE_PARQUET: &str = r#"
import sys
import pyarrow as pa, pyarrow.csv as pc, pyarrow.parquet as pq
source, target, compression = sys.argv[1], sys.argv[2], sys.argv[3]
names = pc.read_csv(source).column_names
decimals = {"BilledCost": 11, "EffectiveCost": 11, "ListCost": 11, "ContractedCost": 11,
            "ConsumedQuantity": 15, "PricingQuantity": 11}
times = {"BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"}
types = {}
for n in names:
    if n in decimals:
        types[n] = pa.decimal128(38, decimals[n])
    elif n in times:
        types[n] = pa.timestamp("ms")
    else:
        types[n] = pa.string()
table = pc.read_csv(source, convert_options=pc.ConvertOptions(
    column_types=types, null_values=["NULL"], strings_can_be_null=True,
    quoted_strings_can_be_null=False))
pq.write_table(table, target, compression=compression, row_group_size=300)
"#;

const FOCUS_SAMPLE: &str = "tests/fixtures/real/focus-sample/focus_sample.csv";

fn write_parquet(csv: &Path, parquet: &Path, compression: &str) {
    let output = std::process::Command::new("python3")
        .args(["-c", WRITE_PARQUET])
        .arg(csv)
        .arg(parquet)
        .arg(compression)
        .output()
        .expect("python3 runs (.ci/test installs pyarrow)");
    assert!(
        output.status.success(),
        "pyarrow could not write {}: {}",
        parquet.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn parquet_focus_gives_its_csv_twins_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sample = std::fs::read_to_string(repo().join(FOCUS_SAMPLE)).unwrap();
    // The modern side: one cost changed, one row gone.
    let mut lines: Vec<String> = sample.lines().map(str::to_owned).collect();
    lines[5] = lines[5].replacen(",0.00", ",1.00", 1);
    lines.remove(9);
    std::fs::write(d.join("legacy.csv"), &sample).unwrap();
    std::fs::write(d.join("modern.csv"), lines.join("\n") + "\n").unwrap();
    write_parquet(&d.join("legacy.csv"), &d.join("legacy.parquet"), "snappy");
    write_parquet(&d.join("modern.csv"), &d.join("modern.parquet"), "zstd");
    write_parquet(
        &d.join("legacy.csv"),
        &d.join("legacy-gzip.parquet"),
        "gzip",
    );
    let focus = ["--legacy-format", "focus", "--modern-format", "focus"];
    let csv = diff(d, &["legacy.csv"], &["modern.csv"], &focus, None);
    assert_eq!(csv.code, 1, "{}", csv.transcript());
    let expected = result(&csv);
    assert!(
        expected["summary"]["diffs_failing"].as_u64().unwrap() >= 2,
        "{expected}"
    );
    let parquet = diff(d, &["legacy.parquet"], &["modern.parquet"], &focus, None);
    assert_eq!(parquet.code, 1, "{}", parquet.transcript());
    assert_eq!(result(&parquet), expected);
    let gzip = diff(d, &["legacy-gzip.parquet"], &["modern.csv"], &focus, None);
    assert_eq!(result(&gzip), expected);
    // `auto` tells FOCUS from the Parquet file's columns.
    let auto = ["--legacy-format", "auto", "--modern-format", "auto"];
    let detected = diff(d, &["legacy.parquet"], &["modern.parquet"], &auto, None);
    assert_eq!(result(&detected), expected, "{}", detected.stderr);
    assert!(
        detected
            .stderr
            .contains("legacy.parquet: detected format `focus`"),
        "{}",
        detected.stderr
    );
    // A truncated Parquet file: refused, located.
    let bytes = std::fs::read(d.join("legacy.parquet")).unwrap();
    std::fs::write(d.join("cut.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let cut = diff(d, &["cut.parquet"], &["modern.csv"], &focus, None);
    assert_eq!(cut.code, 2, "{}", cut.transcript());
    assert!(
        cut.stderr
            .contains("cut.parquet: the file is not a readable Parquet file"),
        "{}",
        cut.stderr
    );
}
