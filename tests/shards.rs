//! Studies larger than one run: shards merge into exactly the unsharded result, merge refuses
//! what does not belong together, and sweeps name, count and resume their cells.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::support;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs the binary in `dir`; returns (exit code, stderr).
fn cascade(dir: &Path, args: &[&str]) -> (i32, String) {
    let (code, _, stderr) = support::cascade(dir, args);
    (code, stderr)
}

fn ok(dir: &Path, args: &[&str]) {
    let (code, stderr) = cascade(dir, args);
    assert_eq!(code, 0, "cascade {args:?} failed: {stderr}");
}

const COMPARED: [&str; 4] = ["summary.json", "paths.csv", "timeline.csv", "scenario.toml"];

/// The columns of `paths.csv` that count (positions, venues, rounds, steps, interventions).
const COUNTS: [&str; 6] = [
    "liquidated_positions",
    "insolvent_venues",
    "cascade_rounds",
    "cascade_steps",
    "round_cap_hits",
    "interventions",
];

fn same_files(a: &Path, b: &Path) {
    for f in COMPARED {
        let (x, y) = (fs::read(a.join(f)).unwrap(), fs::read(b.join(f)).unwrap());
        assert!(
            x == y,
            "{f} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn shards_merge_into_exactly_the_unsharded_result() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let scenario = fixture("tiny.toml");
    let s = scenario.to_str().unwrap();
    // 150 paths are three batches of 64: N = 2 splits inside a batch, N = 7 exceeds the number
    // of batches, and N = 200 exceeds the number of paths (some shards are empty).
    ok(
        d,
        &["run", s, "--paths", "150", "--out", "whole", "--quiet"],
    );
    for n in [1u32, 2, 7, 200] {
        let mut dirs = Vec::new();
        for k in 1..=n {
            let name = format!("n{n}-s{k}");
            ok(
                d,
                &[
                    "run",
                    s,
                    "--paths",
                    "150",
                    "--shard",
                    &format!("{k}/{n}"),
                    "--out",
                    &name,
                    "--quiet",
                ],
            );
            dirs.push(name);
        }
        // Shards in reverse order: merge sorts them.
        dirs.reverse();
        let merged = format!("merged-{n}");
        let mut args = vec!["merge"];
        args.extend(dirs.iter().map(String::as_str));
        args.extend(["--out", &merged]);
        let (code, stdout, stderr) = support::cascade(d, &args);
        assert_eq!(code, 0, "{stderr}");
        let shards = if n == 1 {
            "1 shard".to_string()
        } else {
            format!("{n} shards")
        };
        assert!(
            stdout.contains(&format!("merged {shards} into")),
            "{stdout}"
        );
        same_files(&d.join("whole"), &d.join(&merged));
        assert!(
            !d.join(&merged).join("histograms.bin").exists(),
            "a merged result is a whole result"
        );
    }
    // A requeued array task runs its shard again over the first attempt (`--force`, as
    // cluster/slurm/cascade-array.sh does), and a merge is redone the same way: every file
    // either wrote is cascade's own, so --force replaces it, with the same bytes.
    let shard = ["run", s, "--paths", "150", "--shard", "1/2", "--quiet"];
    ok(d, &[&shard[..], &["--out", "n2-s1", "--force"]].concat());
    ok(
        d,
        &["merge", "n2-s1", "n2-s2", "--out", "merged-2", "--force"],
    );
    same_files(&d.join("whole"), &d.join("merged-2"));
}

#[test]
fn a_shard_without_paths_reports_nothing_rather_than_zeros() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let s = fixture("tiny.toml");
    let s = s.to_str().unwrap();
    // Three paths in eight shards: shard 5 holds none.
    let (code, stdout, stderr) = support::cascade(
        d,
        &["run", s, "--paths", "3", "--shard", "5/8", "--out", "empty"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("holds none of the study's 3 paths"),
        "{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.join("empty/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["paths"], 0);
    let policy = &summary["policies"][0];
    for value in [
        &policy["metrics"]["bad_debt"]["mean"],
        &policy["metrics"]["max_drawdown"]["std"],
        &policy["metrics"]["max_drawdown"]["p99"],
        &policy["probabilities"]["any_insolvency"],
        &policy["venues"][0]["liquidated_notional_mean"],
        &summary["comparisons"][0]["metrics"]["bad_debt"]["share_better"],
    ] {
        assert!(value.is_null(), "{value} in {summary}");
    }
    let timeline = fs::read_to_string(d.join("empty/timeline.csv")).unwrap();
    let row = timeline.lines().nth(1).unwrap();
    assert!(row.ends_with(",,,,,,,,,,"), "{row}");
    assert!(!d.join("empty/report.html").exists());
    let (code, stderr) = cascade(d, &["report", "empty"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("holds no paths"), "{stderr}");
}

#[test]
fn merge_refuses_shards_that_do_not_form_one_study() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let s = fixture("tiny.toml");
    let s = s.to_str().unwrap();
    let shard = |k: u32, n: u32, out: &str, extra: &[&str]| {
        let spec = format!("{k}/{n}");
        let mut args = vec![
            "run", s, "--paths", "60", "--shard", &spec, "--out", out, "--quiet",
        ];
        args.extend(extra);
        ok(d, &args);
    };
    shard(1, 3, "a1", &[]);
    shard(2, 3, "a2", &[]);
    shard(3, 3, "a3", &[]);
    shard(3, 3, "seed3", &["--seed", "99"]);
    shard(3, 3, "other3", &["--set", "liquidity.routing=0.2"]);
    let five = [
        "liquidity.routing=0.2",
        "venues.0.liquidation_fee=0.004",
        "venues.0.insurance_fund=2.0e6",
        "venues.0.depth_1pct=6.0e6",
        "venues.0.open_interest=1.1e9",
    ];
    let many: Vec<&str> = five.iter().flat_map(|set| ["--set", set]).collect();
    shard(3, 3, "many3", &many);
    // The same scenario with one policy fewer: a list of another length differs as a whole.
    let text = fs::read_to_string(s).unwrap();
    let (one_policy, _) = text
        .split_once("\n[[policies]]\nname = \"harmonized\"")
        .unwrap();
    let fewer = d.join("fewer.toml");
    fs::write(&fewer, one_policy).unwrap();
    let fewer = fewer.to_str().unwrap();
    ok(
        d,
        &[
            "run", fewer, "--paths", "60", "--shard", "3/3", "--out", "fewer3", "--quiet",
        ],
    );
    shard(2, 4, "four2", &[]);
    shard(3, 3, "steps3", &["--set", "simulation.steps=100"]);
    shard(3, 3, "oi3", &["--set", "venues.1.open_interest=3.0e8"]);
    shard(1, 100_000_000, "tiny1", &[]);
    ok(d, &["run", s, "--paths", "60", "--out", "whole", "--quiet"]);
    // A shard's report counts its own paths (the scenario's whole count once stood there).
    let scenario_text = |dir: &str| fs::read_to_string(d.join(dir).join("report.html")).unwrap();
    assert!(scenario_text("a1").contains("20 Monte Carlo paths (of the scenario&#39;s 60)"));
    assert!(scenario_text("whole").contains("<p>60 Monte Carlo paths"));
    let refused = |args: &[&str], expect: &str| {
        let mut all = vec!["merge"];
        all.extend(args);
        all.extend(["--out", "new/m"]);
        let (code, stderr) = cascade(d, &all);
        assert_eq!(code, 2, "merge {args:?} should be refused: {stderr}");
        assert!(
            stderr.contains(expect),
            "merge {args:?}: expected `{expect}` in: {stderr}"
        );
        // Not even the folder made for it before the shards were read.
        assert!(!d.join("new").exists(), "a refused merge writes nothing");
    };
    refused(&["a1", "a2"], "missing 1 of 3 shards: 3/3");
    // However many are missing, the refusal names a few.
    refused(
        &["tiny1"],
        "missing 99999999 of 100000000 shards: 2/100000000, 3/100000000, 4/100000000, \
         5/100000000, 6/100000000 and 99999994 more",
    );
    refused(&["a1", "a2", "a3", "a3"], "same directory");
    copy_dir(&d.join("a3"), &d.join("a3-copy"));
    refused(
        &["a1", "a2", "a3", "a3-copy"],
        "are both shard 3/3: overlapping",
    );
    // Another build of the same version (the model changes between releases).
    copy_dir(&d.join("a3"), &d.join("rebuilt3"));
    let manifest = d.join("rebuilt3/manifest.json");
    let text = fs::read_to_string(&manifest).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let build = m["build"].as_str().expect("the manifest records the build");
    let (code, version, _) = support::cascade(d, &["--version"]);
    assert_eq!(code, 0);
    assert!(
        version.contains(&format!("({build})")),
        "{version} / {build}"
    );
    fs::write(&manifest, text.replace(build, "git 000000000000")).unwrap();
    refused(&["a1", "a2", "rebuilt3"], "different cascade builds");
    refused(&["a1", "a2", "seed3"], "different seeds");
    // The refusal names what differs, not two hashes.
    refused(
        &["a1", "a2", "other3"],
        "different scenarios (liquidity.routing: 0.7 vs 0.2)",
    );
    refused(
        &["a1", "a2", "fewer3"],
        "different scenarios (policies: [{ name = \"fragmented\" }, { ",
    );
    // Past three differences, the refusal counts the rest.
    refused(&["a1", "a2", "many3"], " and 2 more)");
    refused(&["a1", "a2", "four2"], "different shard counts");
    refused(&["a1", "a2", "whole"], "not a shard result");
    // Damaged histograms are refused, saying how, and never panic.
    let histograms = fs::read(d.join("a3/histograms.bin")).unwrap();
    let mut huge = histograms.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut empty = histograms[..48].to_vec();
    empty[8..40].fill(0);
    let mut renamed = histograms.clone();
    renamed[..8].copy_from_slice(b"NOTCASC1");
    let another = "the file belongs to another result";
    let foreign = "not a cascade histogram file";
    for (dir, bytes, expect) in [
        // Another program's file, even one of the right length, and one too short for a
        // header.
        ("renamed3", renamed, foreign),
        ("stub3", b"CASC".to_vec(), foreign),
        // Histograms of another scenario's shape, or of another open interest, as the
        // scenario of the manifest beside them would never have drawn.
        ("huge3", huge, another),
        ("empty3", empty, another),
        (
            "other-steps3",
            fs::read(d.join("steps3/histograms.bin")).unwrap(),
            another,
        ),
        (
            "other-oi3",
            fs::read(d.join("oi3/histograms.bin")).unwrap(),
            "histograms of open interest 1300000000.0",
        ),
        (
            "short3",
            histograms[..histograms.len() - 1].to_vec(),
            "truncated",
        ),
        (
            "long3",
            [&histograms[..], &[0]].concat(),
            "longer than its header says",
        ),
    ] {
        copy_dir(&d.join("a3"), &d.join(dir));
        fs::write(d.join(dir).join("histograms.bin"), bytes).unwrap();
        refused(&["a1", "a2", dir], expect);
    }
    // A file missing from a shard: both files a merge reads say so in the same words.
    for file in ["paths.csv", "histograms.bin"] {
        copy_dir(&d.join("a3"), &d.join("without3"));
        fs::remove_file(d.join("without3").join(file)).unwrap();
        let expect = format!("without3/{file}: cannot read (");
        refused(&["a1", "a2", "without3"], &expect);
        refused(&["a1", "a2", "without3"], "); is this a shard result?");
        fs::remove_dir_all(d.join("without3")).unwrap();
    }
    refused(&["a1", "a2", "nowhere"], "nowhere");
    // An edited manifest's shard count of 0 is refused, not divided by.
    copy_dir(&d.join("a3"), &d.join("zero3"));
    let manifest = d.join("zero3/manifest.json");
    let text = fs::read_to_string(&manifest).unwrap();
    let edited = text.replace("\"count\": 3", "\"count\": 0");
    assert_ne!(edited, text);
    fs::write(&manifest, edited).unwrap();
    refused(&["a1", "a2", "zero3"], "is not a shard");
    // A path's row given twice (and another's left out) is refused, not read as zeros.
    copy_dir(&d.join("a2"), &d.join("twice2"));
    let rows = d.join("twice2/paths.csv");
    let text = fs::read_to_string(&rows).unwrap();
    let twenty = text
        .lines()
        .find(|l| l.starts_with("fragmented,20,"))
        .unwrap();
    let doubled: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("fragmented,21,") {
                twenty.to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    fs::write(&rows, doubled.join("\n") + "\n").unwrap();
    refused(
        &["a1", "twice2", "a3"],
        "path 20 of policy `fragmented` appears twice",
    );
    // The merge's scenario.toml and summary come from the first shard's scenario.toml: an
    // edited one was merged as if it had been run.
    copy_dir(&d.join("a1"), &d.join("edited1"));
    let toml = d.join("edited1/scenario.toml");
    let text = fs::read_to_string(&toml).unwrap();
    assert!(text.contains("routing = 0.7"), "{text}");
    fs::write(&toml, text.replace("routing = 0.7", "routing = 0.1")).unwrap();
    refused(&["edited1", "a2", "a3"], "is not what the shard ran");
    // Shard 1's copy by index, whatever the order the shards are given in ("in any order"):
    // the first argument's was checked, and shard 1's used.
    refused(&["a2", "edited1", "a3"], "is not what the shard ran");
    copy_dir(&d.join("a2"), &d.join("toml2"));
    let toml = d.join("toml2/scenario.toml");
    fs::write(&toml, text.replace("routing = 0.7", "routing = 0.1")).unwrap();
    for order in [["toml2", "a1", "a3"], ["a1", "toml2", "a3"]] {
        ok(
            d,
            &[&["merge"], &order[..], &["--out", "any-order", "--force"]].concat(),
        );
        same_files(&d.join("whole"), &d.join("any-order"));
    }
    // A figure that is not finite never comes from a run: NaN merged into null statistics.
    // The message names the file's line, past a blank one.
    copy_dir(&d.join("a2"), &d.join("nan2"));
    let rows = d.join("nan2/paths.csv");
    let text = fs::read_to_string(&rows).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let (first, rest) = body.split_once('\n').unwrap();
    let cells: Vec<&str> = first.split(',').collect();
    let damaged = [&cells[..2], &["NaN"], &cells[3..]].concat().join(",");
    fs::write(&rows, format!("{header}\n\n{damaged}\n{rest}")).unwrap();
    refused(
        &["a1", "nan2", "a3"],
        "paths.csv: line 3: `NaN` is not a finite number",
    );
    // Files that read as valid but are not what the shard wrote: a figure edited, another
    // seed's rows of the same paths copied in, histograms of another seed.
    copy_dir(&d.join("a2"), &d.join("edited2"));
    let rows = d.join("edited2/paths.csv");
    let text = fs::read_to_string(&rows).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let (first, rest) = body.split_once('\n').unwrap();
    let mut cells: Vec<String> = first.split(',').map(str::to_string).collect();
    let value: f64 = cells[2].parse().unwrap();
    cells[2] = format!("{:?}", value * 2.0 + 1.0);
    fs::write(&rows, format!("{header}\n{}\n{rest}", cells.join(","))).unwrap();
    let differs = "paths.csv: its SHA-256 differs from the one";
    refused(&["a1", "edited2", "a3"], differs);
    copy_dir(&d.join("a3"), &d.join("swapped3"));
    fs::copy(d.join("seed3/paths.csv"), d.join("swapped3/paths.csv")).unwrap();
    refused(&["a1", "a2", "swapped3"], differs);
    // A path moved to the next price bin at step 1 still counts each path once.
    copy_dir(&d.join("a3"), &d.join("moved3"));
    let histograms = d.join("moved3/histograms.bin");
    let mut bytes = fs::read(&histograms).unwrap();
    let steps = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    let at = |bin: usize| 48 + 4 * bin * steps;
    let count = |bytes: &[u8], bin: usize| {
        u32::from_le_bytes(bytes[at(bin)..at(bin) + 4].try_into().unwrap())
    };
    let bin = (0..).find(|&b| count(&bytes, b) > 0).unwrap();
    let (here, next) = (count(&bytes, bin), count(&bytes, bin + 1));
    bytes[at(bin)..at(bin) + 4].copy_from_slice(&(here - 1).to_le_bytes());
    bytes[at(bin + 1)..at(bin + 1) + 4].copy_from_slice(&(next + 1).to_le_bytes());
    fs::write(&histograms, bytes).unwrap();
    refused(
        &["a1", "a2", "moved3"],
        "histograms.bin: its SHA-256 differs from the one",
    );
    // Shards of builds that recorded no hashes still merge.
    copy_dir(&d.join("a3"), &d.join("unhashed3"));
    let manifest = d.join("unhashed3/manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&manifest).unwrap()).unwrap();
    assert!(m["shard_files"]["paths.csv"].is_string(), "{m}");
    m.as_object_mut().unwrap().remove("shard_files");
    fs::write(&manifest, m.to_string()).unwrap();
    ok(d, &["merge", "a1", "a2", "unhashed3", "--out", "unhashed"]);
    // Nor are histograms that count a path more than once: the first count (policy 0, the
    // lowest price bin, step 1) is 48 bytes in, after the magic and the header's sizes.
    copy_dir(&d.join("a3"), &d.join("hist3"));
    let histograms = d.join("hist3/histograms.bin");
    let mut bytes = fs::read(&histograms).unwrap();
    let count = u32::from_le_bytes(bytes[48..52].try_into().unwrap());
    bytes[48..52].copy_from_slice(&(count + 1).to_le_bytes());
    fs::write(&histograms, bytes).unwrap();
    refused(
        &["a1", "a2", "hist3"],
        "the price histogram of policy 0 counts 21 paths at step 1, where the shard has 20",
    );
    // Writing the merge over one of its shards would lose the shard, even with --force.
    let a1 = fs::read(d.join("a1/paths.csv")).unwrap();
    let (code, stderr) = cascade(d, &["merge", "a1", "a2", "a3", "--out", "./a1", "--force"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("one of the shards"), "{stderr}");
    assert_eq!(fs::read(d.join("a1/paths.csv")).unwrap(), a1);
    // So would writing it over a result directory that holds the shards.
    copy_dir(&d.join("whole"), &d.join("holder"));
    for shard in ["a1", "a2", "a3"] {
        copy_dir(&d.join(shard), &d.join("holder").join(shard));
    }
    let (code, stderr) = cascade(
        d,
        &[
            "merge",
            "holder/a1",
            "holder/a2",
            "holder/a3",
            "--out",
            "holder",
            "--force",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("holds one of the shards"), "{stderr}");
    assert_eq!(fs::read(d.join("holder/a1/paths.csv")).unwrap(), a1);
    ok(d, &["merge", "a1", "a2", "a3", "--out", "m"]);
    same_files(&d.join("whole"), &d.join("m"));
    // The merge's manifest keeps the shards' provenance: the scenario file's path and hash,
    // the overrides, and the compute all shards took together.
    let manifest = |dir: &str| -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(d.join(dir).join("manifest.json")).unwrap())
            .unwrap()
    };
    let (m, a) = (manifest("m"), manifest("a1"));
    for key in [
        "scenario_path",
        "scenario_file_sha256",
        "overrides",
        "scenario_sha256",
    ] {
        assert_eq!(m[key], a[key], "{key}");
    }
    // Absolute: as given, it named nothing outside the directory the command ran in.
    let absolute = |path: &Path| path.canonicalize().unwrap().to_str().unwrap().to_string();
    assert_eq!(m["scenario_path"], absolute(Path::new(s)));
    let seconds: f64 = ["a1", "a2", "a3"]
        .iter()
        .map(|dir| manifest(dir)["simulation_seconds"].as_f64().unwrap())
        .sum();
    // Each written to the microsecond, so their sum is one too, up to a float's last bits.
    let merged = m["simulation_seconds"].as_f64().unwrap();
    assert!((merged - seconds).abs() <= 1e-9, "{merged} vs {seconds}");
    assert!(m["threads"].as_u64().unwrap() >= 1);
    assert!(m["shard"].is_null());
    // A merged result says so, naming its shards in path order; a run's manifest does not.
    let shards: Vec<String> = ["a1", "a2", "a3"].map(|a| absolute(&d.join(a))).into();
    assert_eq!(m["merged_from"], serde_json::json!(shards));
    assert!(a["merged_from"].is_null() && manifest("whole")["merged_from"].is_null());
}

#[test]
fn merge_refuses_shards_that_read_different_data_files() {
    // The resolved scenario names only the snapshot's path: a snapshot refreshed between two
    // array tasks must still make their shards refuse to merge.
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    fs::copy(fixture("snapshot.toml"), d.join("snapshot.toml")).unwrap();
    fs::create_dir(d.join("csv")).unwrap();
    let csv = d.join("csv/positions.csv");
    fs::copy(fixture("csv/positions.csv"), &csv).unwrap();
    let shard = |k: u32, out: &str| {
        let spec = format!("{k}/2");
        ok(
            d,
            &[
                "run",
                "snapshot.toml",
                "--paths",
                "20",
                "--shard",
                &spec,
                "--out",
                out,
                "--quiet",
                "--no-report",
            ],
        );
    };
    shard(1, "s1");
    let original = fs::read_to_string(&csv).unwrap();
    let edited = original.replacen("long,2000000,100,5", "long,92000000,100,5", 1);
    assert_ne!(edited, original, "the fixture's first position");
    fs::write(&csv, &edited).unwrap();
    shard(2, "s2");
    // Each result keeps the bytes its run read.
    assert_eq!(
        fs::read_to_string(d.join("s1/books/venue-0.csv")).unwrap(),
        original
    );
    assert_eq!(
        fs::read_to_string(d.join("s2/books/venue-0.csv")).unwrap(),
        edited
    );
    let (code, stderr) = cascade(d, &["merge", "s1", "s2", "--out", "m"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("different scenarios (the data file books/venue-0.csv differs)"),
        "{stderr}"
    );
    assert!(!d.join("m").exists());
    // With the snapshot restored, the shards are one study again.
    fs::write(&csv, &original).unwrap();
    shard(2, "s2-again");
    ok(d, &["merge", "s1", "s2-again", "--out", "m"]);
}

#[test]
fn merge_refuses_shards_too_large_for_memory_before_reading_their_rows() {
    // Two shards of a real run, edited as if their study held 10^12 paths: each scenario.toml
    // says so, and each manifest carries its hash and its half of the paths. The merge must
    // refuse for memory, as bad input, before it reserves the rows (an abort on allocation)
    // or reads any shard's paths.csv (which still holds 3 rows).
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let s = fixture("tiny.toml");
    let s = s.to_str().unwrap();
    for k in ["1", "2"] {
        let out = format!("a{k}");
        let shard = format!("{k}/2");
        ok(
            d,
            &[
                "run",
                s,
                "--paths",
                "6",
                "--shard",
                &shard,
                "--out",
                &out,
                "--quiet",
                "--no-report",
            ],
        );
        let dir = d.join(&out);
        let toml = fs::read_to_string(dir.join("scenario.toml")).unwrap();
        assert!(toml.contains("\npaths = 6\n"), "{toml}");
        let toml = toml.replace("\npaths = 6\n", "\npaths = 1000000000000\n");
        fs::write(dir.join("scenario.toml"), toml).unwrap();
        let sha = cascade::scenario::Scenario::load(&dir.join("scenario.toml"), &[])
            .unwrap()
            .sha256();
        let path = dir.join("manifest.json");
        let mut m: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        m["scenario_sha256"] = sha.into();
        m["path_range"] = match k {
            "1" => serde_json::json!([0u64, 500_000_000_000u64]),
            _ => serde_json::json!([500_000_000_000u64, 1_000_000_000_000u64]),
        };
        fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    }
    let (code, stderr) = cascade(d, &["merge", "a1", "a2", "--out", "m"]);
    assert_eq!(code, 2, "{stderr}");
    for needle in ["1000000000000 paths", "Merge with more memory"] {
        assert!(stderr.contains(needle), "no {needle:?} in: {stderr}");
    }
    assert!(!d.join("m").exists());
}

/// Runs `cascade args` in `dir`; returns its exit code and its peak resident memory in bytes,
/// from the kernel's account of that child alone (`wait4`).
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also reports its peak memory"
)]
fn peak_memory(dir: &Path, args: &[&str]) -> (i32, f64) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cascade"))
        .current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary runs");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that `wait4` fills in, and `pid` is our child, reaped
    // here rather than by `Child::wait` (dropping a `Child` does not wait).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status), "cascade {args:?} did not exit");
    // Linux counts `ru_maxrss` in KiB.
    (libc::WEXITSTATUS(status), usage.ru_maxrss as f64 * 1024.0)
}

/// The figure in MiB between `before` and `after` in a memory refusal (`about 801 MiB at
/// once`), in bytes.
fn mib_in(stderr: &str, before: &str, after: &str) -> f64 {
    let start = stderr
        .find(before)
        .unwrap_or_else(|| panic!("no {before:?} in {stderr}"))
        + before.len();
    let figure = &stderr[start..];
    let end = figure
        .find(after)
        .unwrap_or_else(|| panic!("no {after:?} in {stderr}"));
    let mib: f64 = figure[..end].parse().expect("MiB as a number");
    mib * 1024.0 * 1024.0
}

#[test]
fn a_merge_holds_no_more_memory_than_its_check_counts() {
    // Reading a shard's histograms held the file's bytes, their decoded counts and the
    // timeline's arrays at once: a merge the check let through peaked at 1.6 times its
    // estimate, and a SLURM merge job sized by it was killed after every shard had run.
    // Histograms dominate here: two policies of 10,000 steps, a few paths.
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let scenario = fixture("tiny.toml");
    let s = scenario.to_str().unwrap();
    for k in ["1", "2"] {
        ok(
            d,
            &[
                "run",
                s,
                "--paths",
                "4",
                "--set",
                "simulation.steps=10000",
                "--shard",
                &format!("{k}/2"),
                "--threads",
                "1",
                "--out",
                &format!("s{k}"),
                "--quiet",
                "--no-report",
            ],
        );
    }
    let (code, stderr) = cascade(d, &["merge", "s1", "s2", "--out", "m", "--memory", "1M"]);
    assert_eq!(code, 2, "{stderr}");
    let estimate = mib_in(&stderr, "about ", " MiB at once")
        + mib_in(&stderr, "plus ", " MiB kept for the process");
    let histograms = mib_in(&stderr, "step histograms ", " MiB (10000 steps");
    assert!(histograms > 100.0 * 1024.0 * 1024.0, "{stderr}");
    let (code, peak) = peak_memory(d, &["merge", "s1", "s2", "--out", "m", "--no-report"]);
    assert_eq!(code, 0);
    assert!(
        peak <= estimate,
        "the merge peaked at {:.0} MiB where its check counts {:.0} MiB",
        peak / 1048576.0,
        estimate / 1048576.0
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn bad_shard_flags_are_bad_input() {
    let tmp = TempDir::new().unwrap();
    let s = fixture("tiny.toml");
    // "-1/4" is read as a value too, and told what a shard is (clap took it for a flag and
    // advised `-- -1`).
    for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/4"] {
        let (code, stderr) = cascade(
            tmp.path(),
            &["run", s.to_str().unwrap(), "--shard", bad, "--out", "x"],
        );
        assert_eq!(code, 2, "--shard {bad}: {stderr}");
        assert!(stderr.contains("is not a shard"), "--shard {bad}: {stderr}");
        assert!(!tmp.path().join("x").exists());
    }
    // Without a fixed seed every shard would draw its own: refused before anything runs,
    // and accepted once --seed fixes it.
    let unseeded = support::without_seed(&fs::read_to_string(&s).unwrap());
    fs::write(tmp.path().join("unseeded.toml"), unseeded).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "unseeded.toml", "--shard", "1/2", "--out", "x"];
        args.extend(extra);
        args.push("--no-report");
        cascade(tmp.path(), &args)
    };
    let (code, stderr) = run(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--seed"), "{stderr}");
    assert!(!tmp.path().join("x").exists());
    let (code, stderr) = run(&["--seed", "5"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_sweep_runs_every_cell_names_it_and_resumes() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let s = fixture("tiny.toml");
    let s = s.to_str().unwrap();
    let args = [
        "sweep",
        s,
        "--paths",
        "20",
        "--quiet",
        "--out",
        "grid",
        "--set",
        "liquidity.routing=0.2..0.8:3",
        "--set",
        "venues.0.initial_margin=0.01,0.05",
        "--set",
        "simulation.steps=120",
    ];
    ok(d, &args);
    let grid = d.join("grid");
    let cells: Vec<String> = fs::read_dir(&grid)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir() && e.file_name() != "charts")
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(cells.len(), 6, "3 x 2 cells: {cells:?}");
    assert!(
        grid.join("liquidity.routing=0.5__venues.0.initial_margin=0.05")
            .join("summary.json")
            .exists()
    );
    let csv = fs::read_to_string(grid.join("grid.csv")).unwrap();
    let policies = 2;
    assert_eq!(csv.lines().count(), 1 + 6 * policies, "{csv}");
    assert!(
        csv.starts_with("cell,liquidity.routing,venues.0.initial_margin,simulation.steps,policy,")
    );
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(grid.join("grid.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 6 * policies);
    assert_grid_is_the_cells(&grid);
    for policy in ["fragmented", "harmonized"] {
        let png = grid.join(format!(
            "charts/heatmap-{policy}-liquidated_notional_mean.png"
        ));
        assert!(
            png.exists(),
            "two swept keys give a heatmap per policy: {}",
            png.display()
        );
    }
    // The policies' heatmaps of a metric share one colour scale, so one colour is one value
    // side by side: the same colour bar (its ticks are the texts after its label) over
    // different cells.
    let texts = |policy: &str| -> Vec<String> {
        let svg = fs::read_to_string(grid.join(format!(
            "charts/heatmap-{policy}-liquidated_notional_mean.svg"
        )))
        .unwrap();
        svg.split("<text")
            .skip(1)
            .map(|t| {
                t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()]
                    .trim()
                    .to_string()
            })
            .collect()
    };
    let bar = |texts: &[String]| -> Vec<String> {
        // The label names the unit after the figure: `mean liquidated notional (USD, ...)`.
        let label = texts
            .iter()
            .rposition(|t| t.starts_with("mean liquidated notional"));
        texts[label.expect("the colour bar's label") + 1..].to_vec()
    };
    let (fragmented, harmonized) = (texts("fragmented"), texts("harmonized"));
    assert_ne!(fragmented, harmonized, "the policies' cells differ");
    assert_eq!(bar(&fragmented), bar(&harmonized));

    // The same grid again without --resume is refused.
    let (code, _) = cascade(d, &args);
    assert_eq!(code, 2);

    // Interrupted: one cell lost, one run left a partial directory behind.
    let kept = grid.join("liquidity.routing=0.2__venues.0.initial_margin=0.01");
    let kept_manifest = fs::read(kept.join("manifest.json")).unwrap();
    let lost = grid.join("liquidity.routing=0.8__venues.0.initial_margin=0.05");
    let lost_summary = fs::read(lost.join("summary.json")).unwrap();
    fs::remove_dir_all(&lost).unwrap();
    fs::create_dir(grid.join(".cascade-partial-abc")).unwrap();
    fs::write(grid.join(".cascade-partial-abc").join("paths.csv"), "half").unwrap();
    // A shard still writing its cell (it holds its directory locked) keeps it.
    let live = grid.join(".cascade-partial-live");
    fs::create_dir(&live).unwrap();
    let writing = fs::File::open(&live).unwrap();
    writing.lock().unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    let (code, stderr) = cascade(d, &resume);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        fs::read(kept.join("manifest.json")).unwrap(),
        kept_manifest,
        "finished cells are skipped"
    );
    assert_eq!(
        fs::read(lost.join("summary.json")).unwrap(),
        lost_summary,
        "the lost cell is recomputed identically"
    );
    assert!(
        !grid.join(".cascade-partial-abc").exists(),
        "partial directories are cleared"
    );
    assert!(
        live.exists(),
        "a partial directory being written is left alone"
    );
    drop(writing);
    fs::remove_dir(&live).unwrap();
    assert!(
        !stderr.contains("skipped"),
        "--quiet says nothing: {stderr}"
    );
    // A cell records the values it ran, as a run of that one cell would record its --set,
    // not the sweep's axes.
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(kept.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["overrides"],
        serde_json::json!([
            "liquidity.routing=0.2",
            "venues.0.initial_margin=0.01",
            "simulation.steps=120"
        ])
    );

    // Resuming with other flags would mix two studies in one grid: refused, nothing touched.
    let mut other = resume.clone();
    other[3] = "30";
    let (code, stderr) = cascade(d, &other);
    assert_eq!(code, 2, "{stderr}");
    // The refusal names what differs rather than printing both plans.
    assert!(
        stderr.contains("holds another sweep (paths: 20 recorded, 30 now; see "),
        "{stderr}"
    );
    assert_eq!(fs::read(kept.join("manifest.json")).unwrap(), kept_manifest);
    // So would another grid, even one whose cells all have new names.
    let mut regrid = resume.clone();
    regrid[8] = "liquidity.routing=0.3,0.6";
    let (code, stderr) = cascade(d, &regrid);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("holds another sweep (axes: "), "{stderr}");
    assert!(
        !grid
            .join("liquidity.routing=0.3__venues.0.initial_margin=0.01")
            .exists()
    );
    // A cell whose scenario changed under the same flags is refused by its manifest.
    let edited = d.join("edited.toml");
    fs::write(
        &edited,
        fs::read_to_string(s)
            .unwrap()
            .replace("insurance_fund = 1.0e6", "insurance_fund = 2.0e6"),
    )
    .unwrap();
    let mut changed = resume.clone();
    changed[1] = edited.to_str().unwrap();
    let (code, stderr) = cascade(d, &changed);
    assert_eq!(code, 2, "{stderr}");
    // It names what changed, as the file ran and as it reads now.
    assert!(
        stderr.contains(
            "another resolved scenario (venues[0].insurance_fund: 1000000.0 vs 2000000.0, as \
             run vs now: "
        ),
        "{stderr}"
    );
    // A finished cell that lost its summary failed only once the grid was written (exit 1),
    // and one that lost its manifest was run again and then refused: both are named before
    // anything runs, and left for the user to remove.
    let summary = fs::read(lost.join("summary.json")).unwrap();
    fs::remove_file(lost.join("summary.json")).unwrap();
    let (code, stderr) = cascade(d, &resume);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("summary.json"), "{stderr}");
    assert!(stderr.contains("resume again to run it anew"), "{stderr}");
    fs::write(lost.join("summary.json"), summary).unwrap();
    let manifest = fs::read(kept.join("manifest.json")).unwrap();
    fs::remove_file(kept.join("manifest.json")).unwrap();
    let (code, stderr) = cascade(d, &resume);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is not a finished cell (no manifest.json)"),
        "{stderr}"
    );
    assert!(
        !kept.join("manifest.json").exists(),
        "the damaged cell was run"
    );
    fs::write(kept.join("manifest.json"), manifest).unwrap();
    // And a directory that is not a sweep is not one to resume.
    ok(
        d,
        &["run", s, "--paths", "20", "--quiet", "--out", "single"],
    );
    let mut into_run = resume.clone();
    into_run[6] = "single";
    let (code, stderr) = cascade(d, &into_run);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a sweep directory"), "{stderr}");
}

#[test]
fn an_unseeded_sweep_draws_one_seed_for_every_cell_and_resumes_with_it() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let unseeded = support::without_seed(&fs::read_to_string(fixture("tiny.toml")).unwrap());
    fs::write(d.join("unseeded.toml"), unseeded).unwrap();
    let args = [
        "sweep",
        "unseeded.toml",
        "--paths",
        "10",
        "--quiet",
        "--no-report",
        "--out",
        "g",
        "--set",
        "liquidity.routing=0.2,0.4,0.6",
    ];
    ok(d, &args);
    let seed_of = |cell: &str| {
        let m: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(d.join("g").join(cell).join("manifest.json")).unwrap(),
        )
        .unwrap();
        m["seed"].as_u64().expect("a seed in the manifest")
    };
    let seed = seed_of("liquidity.routing=0.2");
    for cell in ["liquidity.routing=0.4", "liquidity.routing=0.6"] {
        assert_eq!(
            seed_of(cell),
            seed,
            "{cell} draws from the sweep's one seed"
        );
    }
    let plan: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.join("g/sweep.json")).unwrap()).unwrap();
    assert_eq!(plan["seed"].as_u64(), Some(seed));
    assert!(!d.join("g/charts").exists(), "--no-report: no heatmaps");
    // Cells drawing from different seeds would not compare on common random numbers.
    let (code, stderr) = cascade(
        d,
        &[
            "sweep",
            "unseeded.toml",
            "--set",
            "simulation.seed=1,2",
            "--out",
            "seeds",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("share one seed"), "{stderr}");
    assert!(!d.join("seeds").exists());
    // Resuming finds the seed in sweep.json, so the lost cell is the same cell again.
    let lost = d.join("g/liquidity.routing=0.4");
    let summary = fs::read(lost.join("summary.json")).unwrap();
    fs::remove_dir_all(&lost).unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    ok(d, &resume);
    assert_eq!(fs::read(lost.join("summary.json")).unwrap(), summary);
    // Shards of a job array start together, before any sweep.json: each would draw its own
    // seed, so they need one given.
    let mut sharded = args.to_vec();
    sharded[7] = "sharded";
    sharded.extend(["--shard", "1/2"]);
    let (code, stderr) = cascade(d, &sharded);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--seed"), "{stderr}");
    assert!(!d.join("sharded").exists());
    sharded.extend(["--seed", "3"]);
    ok(d, &sharded);
}

#[test]
fn sweep_shards_share_one_directory_and_resume_writes_the_grid() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let s = fixture("tiny.toml");
    let sweep = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "sweep",
            s.to_str().unwrap(),
            "--paths",
            "10",
            "--quiet",
            "--no-report",
            "--out",
            out,
            "--set",
            "liquidity.routing=0.1..0.9:5",
        ];
        args.extend(extra);
        cascade(d, &args)
    };
    let (code, stderr) = sweep("whole", &[]);
    assert_eq!(code, 0, "{stderr}");
    // Shards start together: the first to look finds another's plan in flight, which a
    // directory just being started holds, and starts the sweep all the same.
    fs::create_dir(d.join("split")).unwrap();
    let in_flight = format!("{}plan", cascade::results::WRITE_PREFIX);
    fs::write(d.join("split").join(&in_flight), "{").unwrap();
    // Cells 1, 3, 5 and 2, 4, as a two-task job array would run them.
    for k in ["2/2", "1/2"] {
        let (code, stderr) = sweep("split", &["--shard", k]);
        assert_eq!(code, 0, "--shard {k}: {stderr}");
        assert!(!d.join("split/grid.csv").exists(), "a shard writes no grid");
    }
    let routing = ["0.1", "0.3", "0.5", "0.7", "0.9"];
    for r in routing {
        let cell = format!("liquidity.routing={r}");
        assert_eq!(
            fs::read(d.join("split").join(&cell).join("summary.json")).unwrap(),
            fs::read(d.join("whole").join(&cell).join("summary.json")).unwrap(),
            "{cell}"
        );
    }
    let manifests = |dir: &str| -> Vec<Vec<u8>> {
        routing
            .iter()
            .map(|r| {
                fs::read(
                    d.join(dir)
                        .join(format!("liquidity.routing={r}/manifest.json")),
                )
                .unwrap()
            })
            .collect()
    };
    // The other shard's file has not been renamed yet (it never will be).
    fs::remove_file(d.join("split").join(in_flight)).unwrap();
    let before = manifests("split");
    let (code, stderr) = sweep("split", &["--resume"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        manifests("split"),
        before,
        "every cell was done: none runs again"
    );
    for f in ["grid.csv", "grid.json", "sweep.json"] {
        assert_eq!(
            fs::read(d.join("split").join(f)).unwrap(),
            fs::read(d.join("whole").join(f)).unwrap(),
            "{f}"
        );
        // Readable by others, as the cells' files are: not private like a temporary file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            let cell = d.join("split/liquidity.routing=0.1/summary.json");
            assert_eq!(mode(&d.join("split").join(f)), mode(&cell), "{f}");
        }
    }
    // One shard must not wipe the others' directory.
    let (code, _) = sweep("split", &["--shard", "1/2", "--force"]);
    assert_eq!(code, 2);
    assert!(d.join("split/grid.csv").exists());
}

#[test]
fn sweep_resume_refuses_an_out_with_nothing_to_resume() {
    // A mistyped --out with --resume used to start a whole new sweep there, exit code 0.
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let s = fixture("tiny.toml");
    fs::create_dir(d.join("empty")).unwrap();
    fs::write(d.join("plain"), "").unwrap();
    for (out, extra, why) in [
        ("nonexist", &[][..], "it does not exist"),
        ("nonexist", &["--shard", "1/2"][..], "it does not exist"),
        ("empty", &[][..], "it is not a sweep directory"),
        (
            "empty",
            &["--shard", "1/2"][..],
            "it is not a sweep directory",
        ),
        ("plain", &[][..], "it is not a sweep directory"),
    ] {
        let mut args = vec![
            "sweep",
            s.to_str().unwrap(),
            "--paths",
            "10",
            "--quiet",
            "--no-report",
            "--set",
            "price.stress.drop=0.1,0.2",
            "--out",
            out,
            "--resume",
        ];
        args.extend(extra);
        let (code, stderr) = cascade(d, &args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("nothing to resume in {out}: {why}")),
            "{args:?}: {stderr}"
        );
    }
    assert!(!d.join("nonexist").exists(), "nothing was written");
    assert_eq!(fs::read_dir(d.join("empty")).unwrap().count(), 0);
    // Without --resume, an existing directory that is no sweep is refused for what it is:
    // neither --resume nor --force would take it.
    let (code, stderr) = cascade(
        d,
        &[
            "sweep",
            s.to_str().unwrap(),
            "--set",
            "price.stress.drop=0.1,0.2",
            "--out",
            "empty",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("empty already exists and is not a sweep directory (no sweep.json)"),
        "{stderr}"
    );
}

/// `--force` keeps the old sweep whole until the new one is complete: a forced sweep refused
/// before it starts, or interrupted halfway, leaves the old sweep as it was; one that finishes
/// leaves only itself.
#[test]
fn a_forced_sweep_keeps_the_old_sweep_until_the_new_one_is_complete() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    let sweep = |extra: &[&'static str]| -> Vec<String> {
        let mut args = vec![
            "sweep",
            s.to_str().unwrap(),
            "--quiet",
            "--no-report",
            "--threads",
            "1",
            "--out",
            "g",
        ];
        args.extend(extra);
        args.into_iter().map(String::from).collect()
    };
    let ok = |args: Vec<String>| ok(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    ok(sweep(&[
        "--paths",
        "5",
        "--set",
        "liquidity.routing=0.2,0.8",
    ]));
    let grid = fs::read(d.join("g/grid.csv")).unwrap();
    let old_cells = ["g/liquidity.routing=0.2", "g/liquidity.routing=0.8"];
    let unchanged = |when: &str| {
        assert_eq!(fs::read(d.join("g/grid.csv")).unwrap(), grid, "{when}");
        for cell in old_cells {
            assert!(
                d.join(cell).join("summary.json").is_file(),
                "{when}: {cell}"
            );
        }
        let names: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["g"], "{when}: nothing beside it");
    };
    // Refused before it starts (a cell too large for memory).
    let args = sweep(&["--force", "--set", "simulation.paths=10,200000000000"]);
    let (code, stderr) = cascade(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{stderr}");
    unchanged("refused");
    // Run from inside the sweep it replaces: it took the working directory along when moved
    // aside, and the new sweep finished (exit 0) beside the old one, neither of them at `g`.
    let mut args = sweep(&["--force", "--paths", "5"]);
    let out = args.iter().position(|a| a == "g").unwrap();
    args[out] = "../g".to_string();
    args.extend(["--set".to_string(), "liquidity.routing=0.3".to_string()]);
    let (code, stderr) = cascade(
        &d.join("g"),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("../g holds the current directory"),
        "{stderr}"
    );
    unchanged("refused from inside");
    // Interrupted in its first cell: the old sweep is put back, its finished cells too.
    let args = sweep(&[
        "--force",
        "--paths",
        "2000000",
        "--set",
        "liquidity.routing=0.3,0.7",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stderr) = support::interrupted(d, &args, "-INT");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    unchanged("interrupted");
    // A notebook put beside the results, at the top or in a cell, or a plot among the charts
    // or the data copies: --force would delete it, so the sweep is refused and the file named.
    for notebook in [
        "g/notes.ipynb",
        "g/liquidity.routing=0.8/notes.ipynb",
        "g/charts/notes.png",
        "g/liquidity.routing=0.8/charts/notes.png",
        "g/liquidity.routing=0.8/books/notes.csv",
    ] {
        let made = !d.join(notebook).parent().unwrap().exists();
        fs::create_dir_all(d.join(notebook).parent().unwrap()).unwrap();
        fs::write(d.join(notebook), "analysis").unwrap();
        let args = sweep(&["--force", "--paths", "5"]);
        let (code, stderr) = cascade(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains(
                notebook
                    .rsplit_once("=0.8/")
                    .map_or(&notebook[2..], |(_, n)| n)
            ) && stderr.contains("cascade did not write"),
            "{stderr}"
        );
        assert_eq!(fs::read_to_string(d.join(notebook)).unwrap(), "analysis");
        unchanged(notebook);
        fs::remove_file(d.join(notebook)).unwrap();
        if made {
            fs::remove_dir(d.join(notebook).parent().unwrap()).unwrap();
        }
    }
    // Finished: the new sweep alone.
    ok(sweep(&[
        "--force",
        "--paths",
        "5",
        "--set",
        "liquidity.routing=0.3,0.7",
    ]));
    assert!(d.join("g/liquidity.routing=0.7/summary.json").is_file());
    assert!(!d.join(old_cells[0]).exists());
    assert_eq!(fs::read_dir(d).unwrap().count(), 1, "the old sweep is gone");
}

#[test]
fn sweep_values_are_validated_before_anything_runs() {
    let tmp = TempDir::new().unwrap();
    let s = fixture("tiny.toml");
    for (axis, expect) in [
        // The refusal names the cell, as a refusal for its memory does.
        (
            "liquidity.routing=0.5,1.5",
            "cell 2/2 liquidity.routing=1.5: ",
        ),
        // Every refused cell is named, the first few of them, and the rest counted.
        (
            "liquidity.routing=1.5,0.5,2,3,4,5",
            "cell 1/6 liquidity.routing=1.5: ",
        ),
        (
            "liquidity.routing=1.5,0.5,2,3,4,5",
            "cell 3/6 liquidity.routing=2: ",
        ),
        (
            "liquidity.routing=1.5,0.5,2,3,4,5",
            "cell 4/6 liquidity.routing=3: ",
        ),
        ("liquidity.routing=1.5,0.5,2,3,4,5", "\n(and 2 more cells)"),
        ("liquidity.routing=0.1..0.9", "FROM..TO:N"),
        // An integer TOML cannot hold is refused as such, not as a string of the wrong type.
        (
            "simulation.steps=10,99999999999999999999",
            "-2^63 to 2^63 - 1",
        ),
        // Two values that would share a cell directory: the second must not reuse the first.
        ("venues.0.name=a/b,a_b", "would both be written"),
        // One value spelled twice would run one cell twice.
        ("liquidity.routing=0.5,0.50", "0.50 is given twice (as 0.5)"),
        (
            "venues.0.insurance_fund=1e8,5e7,100000000",
            "100000000 is given twice (as 1e8)",
        ),
        ("liquidity.routing=nan,nan", "nan is given twice"),
        // A cell too large for any machine's memory fails before the first cell runs (it
        // failed when its turn came, after the cells before it had run).
        (
            "simulation.paths=10,200000000000",
            "cell 2/2 simulation.paths=200000000000",
        ),
        // The seed reached through its table: the cells would not share common draws.
        (
            "simulation={paths=5,steps=240,step_seconds=60,seed=1},\
             {paths=5,steps=240,step_seconds=60,seed=2}",
            "would draw from seed 2 and cell 1 from seed 1",
        ),
    ] {
        let (code, stderr) = cascade(
            tmp.path(),
            &["sweep", s.to_str().unwrap(), "--out", "g", "--set", axis],
        );
        assert_eq!(code, 2, "{axis}: {stderr}");
        assert!(stderr.contains(expect), "{axis}: {stderr}");
        assert!(!tmp.path().join("g").exists(), "{axis}");
    }
    // A key twice: the grid would be labelled with both values and run with the last.
    let (code, stderr) = cascade(
        tmp.path(),
        &[
            "sweep",
            s.to_str().unwrap(),
            "--out",
            "g",
            "--set",
            "liquidity.routing=0.1",
            "--set",
            "liquidity.routing=0.2,0.3",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is given twice"), "{stderr}");
    assert!(!tmp.path().join("g").exists());
    // --force never deletes a directory that merely holds another program's grid.json.
    let theirs = tmp.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    fs::write(theirs.join("grid.json"), "{}").unwrap();
    fs::write(theirs.join("keep.txt"), "mine").unwrap();
    let (code, stderr) = cascade(
        tmp.path(),
        &[
            "sweep",
            s.to_str().unwrap(),
            "--out",
            "theirs",
            "--force",
            "--set",
            "liquidity.routing=0.2,0.3",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a sweep directory"), "{stderr}");
    assert_eq!(fs::read_to_string(theirs.join("keep.txt")).unwrap(), "mine");
}

#[test]
fn parquet_holds_the_same_table_as_paths_csv() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;

    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let s = fixture("tiny.toml");
    ok(
        d,
        &[
            "run",
            s.to_str().unwrap(),
            "--paths",
            "30",
            "--out",
            "r",
            "--parquet",
            "--quiet",
            "--no-report",
        ],
    );
    // The timeline's bands are doubles, written as such (after the policy and the step).
    let timeline = fs::read_to_string(d.join("r/timeline.csv")).unwrap();
    for line in timeline.lines().skip(1) {
        for band in line.split(',').skip(2) {
            assert!(band.contains('.'), "{band} in {line}");
        }
    }
    let csv = fs::read_to_string(d.join("r/paths.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let reader =
        SerializedFileReader::new(fs::File::open(d.join("r/paths.parquet")).unwrap()).unwrap();
    let fields: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(fields, header, "same columns in the same order");
    let integers: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .filter(|c| c.physical_type() == parquet::basic::Type::INT64)
        .map(|c| c.name().to_string())
        .collect();
    let expected: Vec<&str> = ["path"].into_iter().chain(COUNTS).collect();
    assert_eq!(integers, expected, "the path and the counts are integers");
    let mut rows = 0;
    for (row, line) in reader.get_row_iter(None).unwrap().zip(lines) {
        let row = row.unwrap();
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(row.get_string(0).unwrap(), cells[0]);
        assert_eq!(row.get_long(1).unwrap().to_string(), cells[1]);
        for (k, cell) in cells.iter().enumerate().skip(2) {
            // Counts are integers, every other figure a double.
            // In the CSV too, so that pandas and polars type a column alike whatever its
            // values: a double always has its decimal point (a column of zeros was `0`, an
            // integer column to pandas, and polars refused the file at its first fraction).
            let value = if COUNTS.contains(&header[k]) {
                assert!(cell.parse::<i64>().is_ok(), "{}: {cell}", header[k]);
                row.get_long(k).unwrap() as f64
            } else {
                assert!(cell.contains('.'), "{}: {cell}", header[k]);
                row.get_double(k).unwrap()
            };
            assert_eq!(value, cell.parse::<f64>().unwrap(), "column {}", header[k]);
        }
        rows += 1;
    }
    assert_eq!(rows, 2 * 30, "every policy and path");

    // Shards run with --parquet merge into the same file, --parquet or not: the merge writes
    // what the unsharded run wrote.
    for k in 1..=2 {
        let spec = format!("{k}/2");
        let out = format!("s{k}");
        let args = [
            "run",
            s.to_str().unwrap(),
            "--paths",
            "30",
            "--shard",
            &spec,
            "--out",
            &out,
            "--parquet",
            "--quiet",
        ];
        ok(d, &args);
    }
    ok(d, &["merge", "s1", "s2", "--out", "m", "--no-report"]);
    assert_eq!(
        fs::read(d.join("m/paths.parquet")).unwrap(),
        fs::read(d.join("r/paths.parquet")).unwrap()
    );
    // Only some shards with it: the merge writes none, and says so rather than silently.
    fs::remove_file(d.join("s2/paths.parquet")).unwrap();
    let (code, stderr) = cascade(d, &["merge", "s1", "s2", "--out", "mixed", "--no-report"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("1 of 2 shards were run with --parquet"),
        "{stderr}"
    );
    assert!(!d.join("mixed/paths.parquet").exists());
    // --quiet, as a batch script passes it to every step, keeps the warning back.
    let args = [
        "merge",
        "s1",
        "s2",
        "--out",
        "still",
        "--no-report",
        "--quiet",
    ];
    let (code, stderr) = cascade(d, &args);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(d.join("still/summary.json").is_file());
}

/// Every figure of `grid/grid.json` is the one in its cell's `summary.json`, written the same
/// to the last digit, so a notebook can join the two exactly; returns how many were compared.
///
/// The comparison is of the numbers' text: parsed by a parser that rounds as the binary's
/// did, a figure one unit in the last place off would compare equal.
fn assert_grid_is_the_cells(grid: &Path) -> usize {
    let text = fs::read_to_string(grid.join("grid.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut compared = 0;
    // The grid records, as a result does, the version, the build, the seed and what each
    // cell ran.
    let plan: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(grid.join("sweep.json")).unwrap()).unwrap();
    for key in ["version", "build", "seed", "paths", "axes", "scenario"] {
        assert_eq!(json[key], plan[key], "{key}");
    }
    assert!(json["seed"].is_u64() && json["version"].is_string());
    for row in json["rows"].as_array().unwrap() {
        let cell = row["cell"].as_str().unwrap();
        let manifest: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(grid.join(cell).join("manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            row["scenario_sha256"], manifest["scenario_sha256"],
            "{cell}"
        );
        let summary = fs::read_to_string(grid.join(cell).join("summary.json")).unwrap();
        let written = number_texts(&summary);
        let row_text = serde_json::to_string(&row["figures"]).unwrap();
        for number in number_texts(&row_text) {
            assert!(
                written.contains(&number),
                "{number} in the grid's row of {cell} is not in its summary.json"
            );
            compared += 1;
        }
    }
    compared
}

/// The numbers of a JSON text as written (outside strings).
fn number_texts(json: &str) -> BTreeSet<String> {
    let (mut out, mut current) = (BTreeSet::new(), String::new());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            (in_string, escaped) = (escaped || c != '"', !escaped && c == '\\');
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii_digit() || "-+.eE".contains(c) {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            out.insert(std::mem::take(&mut current));
        }
    }
    out
}

#[test]
fn a_grid_holds_the_cells_figures_to_the_last_bit() {
    // Read back without a correctly rounding parser, 18 of this grid's 126 figures were one
    // unit in the last place off the cells' own (max_drawdown_mean 0.19505396316094598 in the
    // cell, 0.195053963160946 in the grid).
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    ok(
        d,
        &[
            "sweep",
            s.to_str().unwrap(),
            "--paths",
            "200",
            "--quiet",
            "--no-report",
            "--out",
            "grid",
            "--set",
            "liquidity.routing=0.1..0.9:3",
        ],
    );
    let compared = assert_grid_is_the_cells(&d.join("grid"));
    assert!(compared >= 30, "{compared} figures compared");
}

#[test]
fn a_sweep_over_paths_records_no_one_path_count_and_nests_its_cells() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let s = fixture("tiny.toml");
    ok(
        d,
        &[
            "sweep",
            s.to_str().unwrap(),
            "--quiet",
            "--no-report",
            "--out",
            "g",
            "--set",
            "simulation.paths=10,20",
        ],
    );
    let plan: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.join("g/sweep.json")).unwrap()).unwrap();
    assert!(plan["paths"].is_null(), "{plan}");
    // One seed for every cell: the 20-path cell's first 10 paths are the 10-path cell's.
    let rows = |cell: &str| -> Vec<String> {
        let csv = fs::read_to_string(d.join("g").join(cell).join("paths.csv")).unwrap();
        csv.lines().map(String::from).collect()
    };
    let (ten, twenty) = (rows("simulation.paths=10"), rows("simulation.paths=20"));
    assert_eq!(ten.len(), 1 + 2 * 10, "a row per path and policy");
    for row in &ten {
        assert!(twenty.contains(row), "{row} is not in the 20-path cell");
    }
}

/// A default sweep directory is named by the second it started; one taken already (another
/// sweep started in the same second) gets a `-2`, as a run's does, rather than failing.
#[test]
fn default_sweep_directories_never_collide() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    // Every name the sweep could stamp in the next minute is taken.
    let now = chrono::Utc::now();
    for s in -1..60 {
        let t = now + chrono::Duration::seconds(s);
        let name = format!("sweep-{}", t.format("%Y-%m-%dT%H-%M-%SZ"));
        fs::create_dir_all(d.join("output/tiny").join(name)).unwrap();
    }
    let s = fixture("tiny.toml");
    let args = [
        "sweep",
        s.to_str().unwrap(),
        "--paths",
        "5",
        "--quiet",
        "--no-report",
        "--set",
        "liquidity.routing=0.2,0.8",
    ];
    ok(d, &args);
    let written: Vec<String> = fs::read_dir(d.join("output/tiny"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("grid.csv").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(written[0].ends_with("Z-2"), "{written:?}");
}
