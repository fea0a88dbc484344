//! Tests of the `cascade` binary as users call it.
//!
//! Every command runs in a fresh temporary directory (its current directory), so nothing is
//! written into the repository and "no result directory was created" can be checked by
//! listing that directory. Scenarios are tiny (tens of paths, a few hundred steps and
//! positions) so the whole module runs in seconds in a debug build.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::support;

/// The per-path metrics INTERFACE.md names: `summary.json` keys and `paths.csv` columns.
const METRICS: [&str; 12] = [
    "liquidated_notional",
    "liquidated_positions",
    "max_drawdown",
    "exogenous_drawdown",
    "amplification",
    "bad_debt",
    "insurance_fund_drawn",
    "adl_notional",
    "unabsorbed_loss",
    "insolvent_venues",
    "max_venue_gap",
    "cascade_rounds",
];

/// The statistics every metric carries in `summary.json`.
const STATS: [&str; 11] = [
    "mean", "std", "p50", "p90", "p95", "p99", "p999", "max", "es95", "es99", "es999",
];

/// The files every result directory holds.
const RESULT_FILES: [&str; 5] = [
    "manifest.json",
    "scenario.toml",
    "summary.json",
    "paths.csv",
    "timeline.csv",
];

/// The files that must not depend on the thread count.
const DETERMINISTIC_FILES: [&str; 3] = ["summary.json", "paths.csv", "timeline.csv"];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// What one call of the binary did.
#[derive(Debug)]
struct Outcome {
    /// Exit code; `None` if killed by a signal.
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Panics with the whole output unless the command exited with `code`.
    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "the binary panicked:\n{}",
            self.stderr
        );
        self
    }

    /// Panics unless stderr contains every one of `needles`.
    #[track_caller]
    fn expect_stderr(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr does not contain {needle:?}:\n{}",
                self.stderr
            );
        }
        self
    }

    /// The first line of stderr that contains `needle`; panics if there is none.
    #[track_caller]
    fn stderr_line(&self, needle: &str) -> &str {
        let line = self.stderr.lines().find(|l| l.contains(needle));
        line.unwrap_or_else(|| panic!("no line of stderr contains {needle:?}:\n{}", self.stderr))
    }
}

/// Runs `cascade ARGS` with `cwd` as the current directory.
fn cascade(cwd: &Path, args: &[&str]) -> Outcome {
    cascade_with(cwd, &[], args)
}

/// [`cascade`] with environment variables `vars` set.
fn cascade_with(cwd: &Path, vars: &[(&str, &str)], args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_BACKTRACE")
        .envs(vars.iter().copied())
        .output()
        .expect("the cascade binary runs");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture's absolute path as a string argument.
fn fixture(name: &str) -> String {
    let path = fixtures().join(name);
    assert!(path.exists(), "missing fixture {}", path.display());
    path.to_str().expect("fixture paths are UTF-8").to_string()
}

/// [`cascade`] with the arguments written as one line (none holds a space).
fn cascade_line(cwd: &Path, line: &str) -> Outcome {
    cascade(cwd, &line.split_whitespace().collect::<Vec<_>>())
}

/// A fresh scratch directory holding a copy of the fixture `name` (run it as `name`).
fn scratch_with(name: &str) -> TempDir {
    let tmp = TempDir::new().expect("a temporary directory");
    fs::copy(fixtures().join(name), tmp.path().join(name)).expect("copy the fixture");
    tmp
}

/// Names of the entries of `dir`, sorted.
fn entries(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .expect("readable directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_json(path: &Path) -> Json {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file of a result directory, by name, as bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    entries(dir)
        .into_iter()
        .filter(|name| dir.join(name).is_file())
        .map(|name| {
            let bytes = fs::read(dir.join(&name)).expect("readable result file");
            (name, bytes)
        })
        .collect()
}

/// The directory a successful run reports on its `results:` line.
fn results_dir(cwd: &Path, outcome: &Outcome) -> PathBuf {
    let line = outcome
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .unwrap_or_else(|| panic!("no `results:` line in stdout:\n{}", outcome.stdout));
    cwd.join(line.trim())
}

/// Runs `cascade run SCENARIO --quiet ARGS...` in `cwd` and expects success.
fn run_ok(cwd: &Path, scenario: &str, args: &[&str]) -> Outcome {
    let mut all = vec!["run", scenario, "--quiet"];
    all.extend_from_slice(args);
    let outcome = cascade(cwd, &all);
    outcome.expect_code(0);
    outcome
}

/// A metric statistic of one policy in `summary.json`.
fn stat(summary: &Json, policy: usize, metric: &str, stat: &str) -> f64 {
    summary["policies"][policy]["metrics"][metric][stat]
        .as_f64()
        .unwrap_or_else(|| panic!("policies[{policy}].metrics.{metric}.{stat} is not a number"))
}

/// Parses a CSV file into its header and rows (no quoting is used in result files).
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = read(path);
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_else(|| panic!("{} is empty", path.display()))
        .split(',')
        .map(str::to_string)
        .collect();
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            row.len(),
            header.len(),
            "{} row {} has {} cells, the header {}",
            path.display(),
            i + 2,
            row.len(),
            header.len()
        );
    }
    (header, rows)
}

/// Parses a numeric CSV cell and checks it is finite.
#[track_caller]
fn finite_cell(file: &str, column: &str, cell: &str) -> f64 {
    let v: f64 = cell
        .parse()
        .unwrap_or_else(|e| panic!("{file} column {column}: `{cell}` is not a number: {e}"));
    assert!(
        v.is_finite(),
        "{file} column {column}: `{cell}` is not finite"
    );
    v
}

// ---------------------------------------------------------------------------------------------
// 1. Invalid scenarios
// ---------------------------------------------------------------------------------------------

/// Every file in `tests/fixtures/invalid/` is rejected by `validate` and by `run` (with and
/// without `--out`) with exit code 2, an error naming the file and every `# expect:` substring
/// and no `# absent:` one, no panic, and nothing written to disk.
#[test]
fn invalid_scenarios_are_rejected_with_their_key_paths() {
    let dir = fixtures().join("invalid");
    let files: Vec<PathBuf> = entries(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".toml"))
        .map(|n| dir.join(n))
        .collect();
    assert!(
        files.len() >= 15,
        "expected at least 15 invalid fixtures, found {}",
        files.len()
    );

    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = read(file);
        let tagged = |tag: &str| -> Vec<&str> {
            text.lines()
                .filter_map(|l| l.strip_prefix(tag))
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .collect()
        };
        let expects = tagged("# expect:");
        // `# absent:` lines name what must not be reported (a problem the fixture's own
        // errors would only fake).
        let absents = tagged("# absent:");
        if expects.is_empty() {
            failures.push(format!("{name}: no `# expect: <substring>` line"));
            continue;
        }
        let path = file.to_str().expect("UTF-8 fixture path");
        let commands: [(&str, Vec<&str>); 3] = [
            ("validate", vec!["validate", path]),
            ("run", vec!["run", path, "--quiet"]),
            ("run --out", vec!["run", path, "--quiet", "--out", "result"]),
        ];
        for (label, args) in commands {
            let tmp = TempDir::new().expect("a temporary directory");
            let out = cascade(tmp.path(), &args);
            let mut wrong = Vec::new();
            if out.code != Some(2) {
                wrong.push(format!("exit code {:?}, expected 2", out.code));
            }
            if out.stderr.contains("panicked") {
                wrong.push("the binary panicked".to_string());
            }
            if !out.stderr.contains(&name) {
                wrong.push("the error does not name the file".to_string());
            }
            for e in &expects {
                if !out.stderr.contains(e) {
                    wrong.push(format!("stderr lacks {e:?}"));
                }
            }
            for a in &absents {
                if out.stderr.contains(a) {
                    wrong.push(format!("stderr has {a:?}"));
                }
            }
            if label == "validate" && !out.stdout.is_empty() {
                wrong.push("validate printed a scenario for an invalid file".to_string());
            }
            let left = entries(tmp.path());
            if !left.is_empty() {
                wrong.push(format!("files were written: {left:?}"));
            }
            if !wrong.is_empty() {
                failures.push(format!(
                    "{name} ({label}): {}\n    stderr: {}",
                    wrong.join("; "),
                    out.stderr.trim_end().replace('\n', "\n    ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid fixtures were not rejected as expected:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_closed_standard_error_stops_no_command() {
    // `cascade sweep ... 2>&1 | head -1`: the reader is gone after the first line. Every note
    // after it (progress, warnings, the error itself) must be dropped, not panic (exit 101)
    // and stop the work half done.
    let tmp = TempDir::new().unwrap();
    let spawn = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cascade"))
            .current_dir(tmp.path())
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stderr.take());
        child.wait().unwrap().code()
    };
    let tiny = fixtures().join("tiny.toml");
    let tiny = tiny.to_str().unwrap();
    let sweep = [
        "sweep",
        tiny,
        "--paths",
        "4",
        "--no-report",
        "--out",
        "grid",
        "--set",
        "liquidity.routing=0.2,0.4",
    ];
    assert_eq!(spawn(&sweep), Some(0));
    assert!(tmp.path().join("grid/grid.csv").exists());
    // An error keeps its exit code.
    assert_eq!(spawn(&["run", "nowhere.toml"]), Some(2));
}

#[test]
fn output_lost_to_a_full_disk_fails_and_a_closed_pipe_does_not() {
    // `cascade schema > file` on a full disk left a schema cut short, with exit code 0.
    let tmp = TempDir::new().unwrap();
    let tiny = fixtures().join("tiny.toml");
    let tiny = tiny.to_str().unwrap();
    let spawn = |args: &[&str], stdout: std::process::Stdio| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cascade"))
            .current_dir(tmp.path())
            .args(args)
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A reader that has gone: dropped before the command writes.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // What validate and schema print is all they make: lost, they fail. A run's table is
    // also in its files: a log that hit its quota warns, and the finished run succeeds.
    let run = ["run", tiny, "--paths", "4", "--no-report", "--out", "r"];
    for (args, lost) in [
        (&["schema"][..], Some(1)),
        (&["validate", tiny], Some(1)),
        (&run, Some(0)),
    ] {
        let (code, stderr) = spawn(args, std::process::Stdio::piped());
        assert_eq!(code, Some(0), "{args:?} with a closed pipe: {stderr}");
        if Path::new("/dev/full").exists() {
            let _ = fs::remove_dir_all(tmp.path().join("r"));
            let full = fs::File::create("/dev/full").unwrap();
            let (code, stderr) = spawn(args, full.into());
            assert_eq!(code, lost, "{args:?} > /dev/full: {stderr}");
            assert!(
                stderr.contains("cannot write to standard output"),
                "{stderr}"
            );
        } else {
            eprintln!("SKIPPED: no /dev/full on this system to fill standard output");
        }
    }
    assert!(tmp.path().join("r/summary.json").exists());
}

#[test]
fn a_missing_scenario_file_is_bad_input() {
    let tmp = TempDir::new().unwrap();
    cascade(tmp.path(), &["run", "no-such-scenario.toml", "--quiet"])
        .expect_code(2)
        .expect_stderr(&["no-such-scenario.toml"]);
    cascade(tmp.path(), &["validate", "no-such-scenario.toml"])
        .expect_code(2)
        .expect_stderr(&["no-such-scenario.toml"]);
    // A file that never ends is refused at a bound, not read until memory runs out.
    #[cfg(unix)]
    cascade(tmp.path(), &["run", "/dev/zero", "--quiet"])
        .expect_code(2)
        .expect_stderr(&["/dev/zero is invalid", "is longer than 64 MiB"]);
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn bad_flags_are_bad_input() {
    let tmp = scratch_with("tiny.toml");
    for args in [
        &["run", "tiny.toml", "--threads", "0"][..],
        // Tens of thousands of threads ran for minutes, then overflowed a stack.
        &["run", "tiny.toml", "--threads", "1025"],
        &["run", "tiny.toml", "--paths", "0"],
        &["run", "tiny.toml", "--paths", "many"],
        &["run", "tiny.toml", "--seed", "-1"],
        &["run", "tiny.toml", "--no-such-flag"],
        &["run"],
        &["no-such-command"],
    ] {
        let out = cascade(tmp.path(), args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.contains("panicked"), "{args:?}: {out:?}");
    }
    // A negative number is a value out of range, not something to pass after `--`; 0 and -5
    // are told the bound the scenario's own check gives, and `10_000` reads as in a file.
    for paths in ["-5", "0"] {
        cascade(tmp.path(), &["run", "tiny.toml", "--paths", paths])
            .expect_code(2)
            .expect_stderr(&[&format!(
                "'{paths}' for '--paths <PATHS>': expected a whole number, at least 1\n"
            )]);
    }
    cascade(
        tmp.path(),
        &["validate", "tiny.toml", "--set", "simulation.paths=0"],
    )
    .expect_code(2)
    .expect_stderr(&["simulation.paths: must be at least 1"]);
    let spaced = cascade(
        tmp.path(),
        &[
            "run",
            "tiny.toml",
            "--paths",
            "1_0",
            "--quiet",
            "--no-report",
            "--out",
            "r",
        ],
    );
    spaced.expect_code(0);
    let summary = read(&tmp.path().join("r/summary.json"));
    assert!(summary.contains("\"paths\": 10,"), "{summary}");
    fs::remove_dir_all(tmp.path().join("r")).unwrap();
    // calibrate's numbers take negative values too, and say what is wrong with them.
    for (flag, expect) in [
        (
            "--max-evaluations",
            "'-1' for '--max-evaluations <MAX_EVALUATIONS>': expected a whole number, at least 2",
        ),
        (
            "--tolerance",
            "--tolerance -1: must be a finite non-negative number",
        ),
    ] {
        let args = [
            "calibrate",
            "tiny.toml",
            "--target",
            "max_drawdown=0.1",
            flag,
            "-1",
        ];
        cascade(tmp.path(), &args)
            .expect_code(2)
            .expect_stderr(&[expect]);
    }
    // A refusal names what the user typed: the flag, or the key the override set, once.
    for (args, named, unnamed) in [
        (
            &["run", "tiny.toml", "--paths", "18446744073709551615"][..],
            "'--paths <PATHS>'",
            "--set",
        ),
        (
            &[
                "validate",
                "tiny.toml",
                "--set",
                "simulation.step_seconds=1e300",
            ],
            "simulation.step_seconds: 1e300 must be positive and at most 31536000 (a year)",
            "annual_volatility",
        ),
        (
            &[
                "validate",
                "tiny.toml",
                "--set",
                "price.annual_volatility=inf",
            ],
            "price.annual_volatility: inf must be a finite number, zero or more",
            "standard deviation of inf",
        ),
    ] {
        let out = cascade(tmp.path(), args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.contains(named), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains(unnamed), "{args:?}: {}", out.stderr);
    }
    assert_eq!(
        entries(tmp.path()),
        BTreeSet::from(["tiny.toml".to_string()])
    );
}

// ---------------------------------------------------------------------------------------------
// 2. --set
// ---------------------------------------------------------------------------------------------

#[test]
fn set_with_an_unknown_key_suggests_the_nearest_valid_key() {
    let tmp = scratch_with("tiny.toml");
    for command in ["validate", "run"] {
        let out = cascade(
            tmp.path(),
            &[command, "tiny.toml", "--set", "venues.0.intial_margin=0.05"],
        );
        out.expect_code(2)
            .expect_stderr(&["venues[0].intial_margin", "`initial_margin`"]);
        assert!(out.stdout.is_empty(), "{command} printed: {}", out.stdout);
    }
    let out = cascade(
        tmp.path(),
        &["validate", "tiny.toml", "--set", "liquidity.routng=0.3"],
    );
    out.expect_code(2)
        .expect_stderr(&["liquidity.routng", "`routing`"]);
    assert_eq!(
        entries(tmp.path()),
        BTreeSet::from(["tiny.toml".to_string()])
    );
}

#[test]
fn set_inside_a_defaulted_table_keeps_its_other_defaults() {
    // Venue 1 of tiny.toml gives no leverage mixes: validate prints the defaults (long median
    // 10, dispersion 0.8; short median 3, dispersion 0.6), and setting one key keeps the other.
    let tmp = scratch_with("tiny.toml");
    let out = cascade_line(
        tmp.path(),
        "validate tiny.toml --set venues.1.book.long_leverage.median=5 \
         --set venues[1].book.short_leverage.dispersion=0.3",
    );
    out.expect_code(0);
    let resolved: toml::Table = toml::from_str(&out.stdout).unwrap();
    let book = &resolved["venues"][1]["book"];
    let mix = |side: &str| {
        let m = &book[side];
        (m["median"].as_float(), m["dispersion"].as_float())
    };
    assert_eq!(mix("long_leverage"), (Some(5.0), Some(0.8)));
    assert_eq!(mix("short_leverage"), (Some(3.0), Some(0.3)));
}

#[test]
fn set_of_a_whole_table_changes_only_the_keys_it_names() {
    // An inline table merges into the file's table key by key: replaced whole, `liquidity`
    // lost the file's `impact = "sqrt"` and depth to their defaults, and venue 0's book its
    // leverage mix, without a word.
    let tmp = scratch_with("tiny.toml");
    let out = cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "liquidity={routing=0.3}",
            "--set",
            "venues.0.book={positions=20}",
            "--set",
            "venues.1={insurance_fund=2e5, book={long_leverage={median=5.0}}}",
        ],
    );
    out.expect_code(0);
    let resolved: toml::Table = toml::from_str(&out.stdout).unwrap();
    let liquidity = &resolved["liquidity"];
    assert_eq!(liquidity["routing"].as_float(), Some(0.3));
    assert_eq!(liquidity["impact"].as_str(), Some("sqrt"));
    assert_eq!(liquidity["shared_depth_1pct"].as_float(), Some(5.0e7));
    let venues = resolved["venues"].as_array().unwrap();
    let book = &venues[0]["book"];
    assert_eq!(book["positions"].as_integer(), Some(20));
    assert_eq!(book["long_leverage"]["median"].as_float(), Some(20.0));
    assert_eq!(book["long_leverage"]["dispersion"].as_float(), Some(0.6));
    // A list entry merges too, and a table it lacks starts from its defaults, as `--set` of
    // one of its keys does (long dispersion 0.8).
    assert_eq!(venues[1]["name"].as_str(), Some("onshore"));
    assert_eq!(venues[1]["insurance_fund"].as_float(), Some(2.0e5));
    assert_eq!(venues[1]["book"]["positions"].as_integer(), Some(100));
    let long = &venues[1]["book"]["long_leverage"];
    assert_eq!(long["median"].as_float(), Some(5.0));
    assert_eq!(long["dispersion"].as_float(), Some(0.8));
}

#[test]
fn a_problem_names_the_override_that_caused_it_not_one_its_message_mentions() {
    let tmp = scratch_with("tiny.toml");
    // The unknown key's message lists the valid keys, `steps` and `paths` among them: neither
    // override caused it.
    let out = cascade_line(
        tmp.path(),
        "run tiny.toml --paths 5 --set simulation.foo=1 --set simulation.steps=50",
    );
    out.expect_code(2).expect_stderr(&[
        "simulation.foo: unknown key `foo`",
        "(command-line override `simulation.foo = 1`)",
    ]);
    let first = out.stderr_line("simulation.foo");
    assert!(
        !first.contains("simulation.steps =") && !first.contains("simulation.paths ="),
        "{first}"
    );
    // A key the file has no table for: the override created the table whose keys are missing.
    let out = cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "venues.1.opening.notional=1e8",
        ],
    );
    out.expect_code(2);
    let missing: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("missing field"))
        .collect();
    assert_eq!(missing.len(), 3, "{}", out.stderr);
    for line in missing {
        assert!(
            line.contains("(command-line override `venues.1.opening.notional"),
            "{line}"
        );
    }
    // A table the file has, missing a key the file never gave: the override of another of its
    // keys did not cause that.
    let opening = "\n[venues.opening]\nnotional = 1.0e8\nlong_leverage = { median = 4.5, dispersion = 0.6 }\nshort_leverage = { median = 4.5, dispersion = 0.6 }\n\n[[venues]]\nname = \"onshore\"";
    fs::write(
        tmp.path().join("no-levels.toml"),
        read(&tmp.path().join("tiny.toml")).replace("\n[[venues]]\nname = \"onshore\"", opening),
    )
    .unwrap();
    let out = cascade_line(
        tmp.path(),
        "validate no-levels.toml --set venues.0.opening.notional=2e8",
    );
    out.expect_code(2)
        .expect_stderr(&["venues[0].opening: missing field `levels`"]);
    assert!(
        !out.stderr.contains("command-line override"),
        "{}",
        out.stderr
    );
    // A file's own unknown key is no override's doing, whatever the message lists.
    fs::write(
        tmp.path().join("typo.toml"),
        read(&tmp.path().join("tiny.toml")).replace("seed = 11", "seed = 11\nstesp = 3"),
    )
    .unwrap();
    let out = cascade(
        tmp.path(),
        &["validate", "typo.toml", "--set", "simulation.steps=50"],
    );
    out.expect_code(2).expect_stderr(&["simulation.stesp"]);
    assert!(
        !out.stderr.contains("command-line override"),
        "{}",
        out.stderr
    );
}

#[test]
fn one_path_gives_no_confidence_interval() {
    // The spread of one paired difference is unknown: an interval of zero width would look
    // conclusive. The summary holds null, the terminal and the report say n/a.
    let tmp = scratch_with("tiny.toml");
    let out = cascade(
        tmp.path(),
        &["run", "tiny.toml", "--paths", "1", "--out", "one"],
    );
    out.expect_code(0);
    assert!(
        out.stdout.contains("95% CI n/a (one path)"),
        "{}",
        out.stdout
    );
    let summary: Json = serde_json::from_str(&read(&tmp.path().join("one/summary.json"))).unwrap();
    let metrics = summary["comparisons"][0]["metrics"]
        .as_object()
        .expect("a comparison");
    for (name, m) in metrics {
        assert!(m["ci95"].is_null(), "{name}: {}", m["ci95"]);
    }
    // Nor has a single path a standard deviation: 0 would read as no spread.
    for policy in summary["policies"].as_array().unwrap() {
        for (name, m) in policy["metrics"].as_object().unwrap() {
            assert!(m["std"].is_null(), "{name}: {}", m["std"]);
            assert!(m["mean"].is_number(), "{name}: {}", m["mean"]);
        }
    }
    assert!(read(&tmp.path().join("one/report.html")).contains("n/a (one path)"));
}

#[test]
fn set_with_an_index_out_of_range_is_bad_input() {
    let tmp = scratch_with("tiny.toml");
    // tiny.toml has two venues and two policies.
    for (set, path) in [
        ("venues.2.initial_margin=0.05", "venues[2]"),
        ("policies.7.routing=0.5", "policies[7]"),
        ("venues.x.initial_margin=0.05", "venues"),
    ] {
        for command in ["validate", "run"] {
            let out = cascade(tmp.path(), &[command, "tiny.toml", "--set", set]);
            out.expect_code(2).expect_stderr(&[path]);
        }
    }
    assert_eq!(
        entries(tmp.path()),
        BTreeSet::from(["tiny.toml".to_string()])
    );
}

/// A syntax error quotes its line around the error: a 5 MB line was echoed whole, 10 MB of
/// stderr.
#[test]
fn a_syntax_error_on_a_long_line_quotes_the_part_around_it() {
    let tmp = scratch_with("tiny.toml");
    let long = format!(
        "name = \"long\"\nnotes = \"{}\" junk\n",
        "a".repeat(100_000)
    );
    fs::write(tmp.path().join("long.toml"), long).unwrap();
    let out = cascade(tmp.path(), &["validate", "long.toml"]);
    out.expect_code(2).expect_stderr(&[
        "not valid TOML",
        "at line 2, column 100012: ...aaa",
        "aaa\" junk... (a line of 100015 characters)",
    ]);
    assert!(out.stderr.len() < 400, "{}", out.stderr);
}

#[test]
fn set_that_is_not_key_equals_value_is_bad_input() {
    let tmp = scratch_with("tiny.toml");
    for set in ["liquidity.routing", "=0.3", "liquidity..routing=0.3"] {
        let out = cascade(tmp.path(), &["run", "tiny.toml", "--set", set]);
        out.expect_code(2).expect_stderr(&["--set"]);
    }
    // A value where a table is needed.
    cascade(
        tmp.path(),
        &["run", "tiny.toml", "--set", "simulation.paths.x=3"],
    )
    .expect_code(2)
    .expect_stderr(&["simulation.paths"]);
    // A key thousands of tables deep overflowed the stack (exit 134), not refused.
    let deep = format!("observed{}=1", ".a".repeat(8000));
    let out = cascade(tmp.path(), &["run", "tiny.toml", "--set", &deep]);
    out.expect_code(2).expect_stderr(&[
        "--set observed.a.a",
        "... (16010 characters): the key has 8001 parts; a scenario's keys have at most 32",
    ]);
    // The message names the flag by its start: it echoed all 16 KB of it.
    assert!(out.stderr.len() < 400, "{}", out.stderr);
    // So does the value it echoes: an integer of 500 digits appears twice.
    let wide = format!("simulation.paths={}", "9".repeat(500));
    let out = cascade(tmp.path(), &["run", "tiny.toml", "--set", &wide]);
    out.expect_code(2)
        .expect_stderr(&["... (500 characters) is outside the integers"]);
    assert!(out.stderr.len() < 400, "{}", out.stderr);
    // A value is one TOML value: what follows a line end is not silently dropped.
    cascade(
        tmp.path(),
        &["run", "tiny.toml", "--set", "price.start=1\n[x]"],
    )
    .expect_code(2)
    .expect_stderr(&["price.start: invalid type: string \"1\\n[x]\", expected a number"]);
    assert_eq!(
        entries(tmp.path()),
        BTreeSet::from(["tiny.toml".to_string()])
    );
}

#[test]
fn set_values_are_validated_like_file_values() {
    let tmp = scratch_with("tiny.toml");
    cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "venues.1.maintenance_margin=0.5",
        ],
    )
    .expect_code(2)
    .expect_stderr(&[
        "venues[1].maintenance_margin",
        "initial_margin",
        // The file is fine: the message says the value came from the command line.
        "(command-line override `venues.1.maintenance_margin = 0.5`)",
    ]);
    // A tiny float is echoed as written, not as TOML's hundreds of digits.
    cascade(
        tmp.path(),
        &["validate", "tiny.toml", "--set", "liquidity.routing=1e-300"],
    )
    .expect_code(0);
    cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "liquidity.shared_depth_1pct=-1e-300",
        ],
    )
    .expect_code(2)
    .expect_stderr(&["(command-line override `liquidity.shared_depth_1pct = -1e-300`)"]);
    cascade(
        tmp.path(),
        &["validate", "tiny.toml", "--set", "simulation.paths=many"],
    )
    .expect_code(2)
    .expect_stderr(&[
        "simulation.paths",
        "(command-line override `simulation.paths = \"many\"`)",
    ]);
    // A number as people write it but TOML does not reads as text: the problem says why.
    let paths = cascade(
        tmp.path(),
        &["validate", "tiny.toml", "--set", "simulation.paths=5."],
    );
    paths
        .expect_code(2)
        .expect_stderr(&["takes a whole number: write 5"]);
    for (value, hint) in [
        (".5", "write 0.5"),
        ("-5.", "write -5.0"),
        ("NaN", "TOML writes these nan, inf and -inf"),
        ("1e400", "1e400 is beyond the largest number"),
        // A number quoted reads as text too; a list or range of values is a sweep's.
        (
            "\"0.5\"",
            "it is quoted, so it reads as text: leave out the quotes",
        ),
        ("0.3,0.5", "a list or range of values is for a sweep"),
        (
            "0.3..0.5:3",
            "cascade sweep SCENARIO --set liquidity.routing=0.3..0.5:3",
        ),
    ] {
        let set = format!("liquidity.routing={value}");
        let out = cascade(tmp.path(), &["validate", "tiny.toml", "--set", &set]);
        out.expect_code(2)
            .expect_stderr(&["liquidity.routing", hint]);
    }
    // And text that reads as a number is a number: the problem says how to quote it.
    cascade(tmp.path(), &["validate", "tiny.toml", "--set", "name=2024"])
        .expect_code(2)
        .expect_stderr(&["quote it: --set 'name=\"2024\"'"]);
    // A problem the override causes at another key names it too.
    cascade(
        tmp.path(),
        &["validate", "tiny.toml", "--set", "simulation.steps=10"],
    )
    .expect_code(2)
    .expect_stderr(&[
        "price.stress.start_step",
        "(command-line override `simulation.steps = 10`)",
    ]);
    // An integer TOML cannot hold would silently become a string.
    cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "simulation.seed=18446744073709551615",
        ],
    )
    .expect_code(2)
    .expect_stderr(&["simulation.seed", "-2^63 to 2^63 - 1"]);
    // A flag and a --set of the same key: one would be dropped silently.
    // A run refused before it writes anything.
    let refused = |args: &[&str], expect: &str| {
        let mut all = vec!["run", "tiny.toml"];
        all.extend(args);
        all.extend(["--out", "x"]);
        cascade(tmp.path(), &all)
            .expect_code(2)
            .expect_stderr(&[expect]);
        assert!(!tmp.path().join("x").exists());
    };
    refused(
        &["--set", "simulation.paths=abc", "--paths", "5"],
        "--paths and --set simulation.paths",
    );
    // An entry of a list the file does not have: said so, not "expected a sequence".
    let out = cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "venues.0.margin_tiers.0.above=1",
        ],
    );
    out.expect_code(2).expect_stderr(&[
        "venues[0].margin_tiers[0].above",
        "`venues[0].margin_tiers` is not in the scenario, so it has no entry 0",
    ]);
    assert!(!out.stderr.contains("sequence"), "{}", out.stderr);
    cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "venues.0.margin_tiers.x=1",
        ],
    )
    .expect_code(2)
    .expect_stderr(&["`x` is not an index: `venues[0].margin_tiers` is a list"]);
    // A venue or policy addressed by its name: the key that reaches it is given.
    cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "venues.onshore.insurance_fund=0",
        ],
    )
    .expect_code(2)
    .expect_stderr(&[
        "`onshore` is not an index: the entry named `onshore` is at index 1, so write \
         `venues.1.insurance_fund`",
    ]);
    // A refused override made nothing: the file's own problem where it pointed is the
    // file's, not the override's.
    let no_cooperating = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/invalid/policy-levers-without-cooperating.toml");
    let out = cascade(
        tmp.path(),
        &[
            "validate",
            no_cooperating.to_str().unwrap(),
            "--set",
            "policies.1.cooperating.0=eu",
        ],
    );
    out.expect_code(2).expect_stderr(&[
        "`policies[1].cooperating` is not in the scenario, so it has no entry 0",
        "policies[1].cooperating: is empty",
    ]);
    let file_s = out.stderr_line("policies[1].cooperating: is empty");
    assert!(!file_s.contains("command-line override"), "{file_s}");
    // A map's entry whose name looks like an index is the entry, in a map the file leaves
    // out as in one it has: a venue named `007`.
    let out = cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "venues.0.name=\"007\"",
            "--set",
            "observed.price_drop=0.1",
            "--set",
            "observed.venue_liquidated.007=1e6",
        ],
    );
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("[observed.venue_liquidated]\n007 = 1000000.0"),
        "{}",
        out.stdout
    );
    let observed = |entry: &str| {
        let set = ["observed.price_drop=0.1", entry];
        cascade(
            tmp.path(),
            &["validate", "tiny.toml", "--set", set[0], "--set", set[1]],
        )
    };
    observed("observed.venue_liquidated.007=1e6")
        .expect_code(2)
        .expect_stderr(&["observed.venue_liquidated.007: names no venue of this scenario"]);
    // A table made where a figure belongs is the override's doing, and says so, and how to
    // name an entry holding a dot.
    observed("observed.venue_liquidated.onshore.x=1e6")
        .expect_code(2)
        .expect_stderr(&[
            "observed.venue_liquidated.onshore: invalid type: map, expected a number (command-line \
         override `observed.venue_liquidated.onshore.x = 1000000.0`); if `onshore.x` is one \
         name, put it in double quotes: --set 'observed.venue_liquidated.\"onshore.x\"=...'",
        ]);
    // Quoted, as TOML quotes it, a name holding a dot is one key: reached, and named so in
    // problems.
    let dotted = |entry: &str| {
        let set = [
            "venues.1.name=\"on.shore\"",
            "observed.price_drop=0.1",
            entry,
        ];
        let mut args = vec!["validate", "tiny.toml"];
        args.extend(set.iter().flat_map(|s| ["--set", s]));
        cascade(tmp.path(), &args)
    };
    let out = dotted("observed.venue_liquidated.\"on.shore\"=2e6");
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("[observed.venue_liquidated]\n\"on.shore\" = 2000000.0"),
        "{}",
        out.stdout
    );
    dotted("observed.venue_liquidated.\"on.shore\"=-1")
        .expect_code(2)
        .expect_stderr(&[
            "observed.venue_liquidated.\"on.shore\": -1 must be zero or more (command-line \
             override `observed.venue_liquidated.\"on.shore\" = -1`)",
        ]);
    // Nor do the tables such an override would have created on the way (an `opening` with
    // none of its required keys) add problems of their own.
    let out = cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "venues.0.opening.levels.0=0.1",
        ],
    );
    out.expect_code(2)
        .expect_stderr(&["`venues[0].opening.levels` is not in the scenario"]);
    assert!(!out.stderr.contains("missing"), "{}", out.stderr);
    // A duplicate name set on the command line is attributed to it, though reported at the
    // venue that comes later.
    cascade(
        tmp.path(),
        &["validate", "tiny.toml", "--set", "venues.0.name=onshore"],
    )
    .expect_code(2)
    .expect_stderr(&[
        "venues[1].name: `onshore` is also venues[0].name",
        "command-line override `venues.0.name",
    ]);
    // A key given twice: one value would be dropped silently. So would a key inside a table
    // that another override sets whole, whichever comes last.
    refused(
        &["--set", "simulation.seed=1", "--set", "simulation.seed=2"],
        "--set simulation.seed is given twice",
    );
    // The same index in brackets is the same key; written another way (`00`, `+0`) it is
    // refused, since it escaped this check and the last of them was kept.
    for (other, expect) in [
        (
            "venues[0].depth_1pct",
            "--set venues.0.depth_1pct is given twice",
        ),
        ("venues.00.depth_1pct", "write the index `00` as 0"),
        ("venues.+0.depth_1pct", "write the index `+0` as 0"),
    ] {
        let other = format!("{other}=6e7");
        refused(
            &["--set", "venues.0.depth_1pct=5e7", "--set", &other],
            expect,
        );
    }
    refused(
        &[
            "--set",
            "liquidity.routing=0.3",
            "--set",
            "liquidity={routing=0.9}",
        ],
        "--set liquidity.routing and --set liquidity set the same value",
    );
    refused(
        &[
            "--set",
            "simulation={paths=5,steps=100,seed=3}",
            "--paths",
            "7",
        ],
        "--paths and --set simulation both set simulation.paths",
    );
    // Brackets must close around an index: `venues[0.x` is not `venues.0.x`; quotes close too.
    for key in [
        "venues[0.initial_margin=0.05",
        "observed.venue_liquidated.\"on.shore=1",
        "observed.venue_liquidated.\"on\"shore=1",
    ] {
        refused(&["--set", key], "the key must be a dotted path");
    }
    // A quoted part is the same key as the part bare.
    refused(
        &[
            "--set",
            "liquidity.routing=0.3",
            "--set",
            "\"liquidity\".\"routing\"=0.9",
        ],
        "--set liquidity.routing is given twice",
    );
    // Keys as the problems print them: `venues[1]` is `venues.1`.
    let out = cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "venues[1].initial_margin=0.25",
        ],
    );
    out.expect_code(0);
    assert!(
        out.stdout.contains("initial_margin = 0.25"),
        "{}",
        out.stdout
    );
}

#[test]
fn set_overrides_reach_the_resolved_scenario_and_the_results() {
    let tmp = scratch_with("tiny.toml");
    let out = cascade(
        tmp.path(),
        &[
            "validate",
            "tiny.toml",
            "--set",
            "liquidity.routing=0.3",
            "--set",
            "venues.1.initial_margin=0.2",
            "--set",
            "price.stress.drop=0.05",
        ],
    );
    out.expect_code(0);
    let resolved: toml::Table = toml::from_str(&out.stdout).expect("validate prints TOML");
    assert_eq!(resolved["liquidity"]["routing"].as_float(), Some(0.3));
    assert_eq!(
        resolved["venues"][1]["initial_margin"].as_float(),
        Some(0.2)
    );
    assert_eq!(
        resolved["venues"][0]["initial_margin"].as_float(),
        Some(0.01)
    );
    assert_eq!(resolved["price"]["stress"]["drop"].as_float(), Some(0.05));

    let run = run_ok(
        tmp.path(),
        "tiny.toml",
        &[
            "--out",
            "res",
            "--paths",
            "25",
            "--seed",
            "99",
            "--set",
            "liquidity.routing=0.3",
        ],
    );
    let dir = results_dir(tmp.path(), &run);
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["seed"], 99);
    assert_eq!(summary["paths"], 25);
    let manifest = read_json(&dir.join("manifest.json"));
    assert_eq!(manifest["seed"], 99);
    assert_eq!(manifest["paths"], 25);
    let scenario: toml::Table = toml::from_str(&read(&dir.join("scenario.toml"))).unwrap();
    assert_eq!(scenario["simulation"]["seed"].as_integer(), Some(99));
    assert_eq!(scenario["simulation"]["paths"].as_integer(), Some(25));
    assert_eq!(scenario["liquidity"]["routing"].as_float(), Some(0.3));
    let (_, rows) = read_csv(&dir.join("paths.csv"));
    assert_eq!(rows.len(), 2 * 25, "two policies x 25 paths");
}

// ---------------------------------------------------------------------------------------------
// 3. validate, schema, init
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_prints_a_resolved_scenario_that_validates_to_itself() {
    let tmp = TempDir::new().unwrap();
    // tiny.toml without its seed and without max_rounds: both must be filled in.
    let text = read(&fixtures().join("tiny.toml"));
    assert!(text.contains("\nseed = 11\n") && !text.contains("max_rounds"));
    fs::write(
        tmp.path().join("noseed.toml"),
        text.replace("\nseed = 11\n", "\n"),
    )
    .unwrap();

    // The seed is drawn anew each time; eight draws make a seed the format cannot hold (TOML
    // integers are signed 64-bit), or one a JSON reader rounds (above 2^53), all but certain to
    // turn up if the draw allows one.
    for _ in 0..8 {
        let first = cascade(tmp.path(), &["validate", "noseed.toml"]);
        first.expect_code(0);
        let resolved: toml::Table = toml::from_str(&first.stdout)
            .unwrap_or_else(|e| panic!("validate did not print TOML: {e}\n{}", first.stdout));
        let sim = &resolved["simulation"];
        assert_eq!(
            sim["max_rounds"].as_integer(),
            Some(64),
            "default max_rounds"
        );
        let seed = sim["seed"].as_integer().expect("the drawn seed is printed");
        assert!(
            (0..1 << 53).contains(&seed),
            "{seed} is not exact as a double"
        );
        assert_eq!(
            resolved["liquidity"]["permanent_fraction"].as_float(),
            Some(0.5)
        );
        let book = &resolved["venues"][1]["book"];
        assert_eq!(book["size_tail"].as_float(), Some(1.5), "book defaults");
        assert!(book["long_leverage"]["median"].as_float().is_some());

        // The printed scenario is a valid scenario, and a fixed point: same seed, same text.
        fs::write(tmp.path().join("resolved.toml"), &first.stdout).unwrap();
        let second = cascade(tmp.path(), &["validate", "resolved.toml"]);
        second.expect_code(0);
        assert_eq!(second.stdout, first.stdout);
    }

    // With the seed given, it is the one printed.
    let tiny = fixture("tiny.toml");
    let with_seed = cascade(tmp.path(), &["validate", &tiny]);
    with_seed.expect_code(0);
    let resolved: toml::Table = toml::from_str(&with_seed.stdout).unwrap();
    assert_eq!(resolved["simulation"]["seed"].as_integer(), Some(11));

    // validate writes nothing.
    assert_eq!(
        entries(tmp.path()),
        BTreeSet::from(["noseed.toml".to_string(), "resolved.toml".to_string()])
    );
}

/// A seed given on the command line is recorded so that the result's scenario.toml reruns it.
/// TOML integers are signed 64-bit, so seeds above `i64::MAX` must either work the same way or
/// be refused up front as bad input with a message about the seed (not a confusing type error).
#[test]
fn large_seeds_run_and_are_recorded_reproducibly() {
    let tmp = scratch_with("tiny.toml");
    let largest_toml = i64::MAX.to_string();
    run_ok(
        tmp.path(),
        "tiny.toml",
        &["--seed", &largest_toml, "--paths", "20", "--out", "res"],
    );
    let manifest = read_json(&tmp.path().join("res/manifest.json"));
    assert_eq!(manifest["seed"].as_u64(), Some(i64::MAX as u64));
    cascade(tmp.path(), &["validate", "res/scenario.toml"]).expect_code(0);
    run_ok(tmp.path(), "res/scenario.toml", &["--out", "again"]);
    assert_eq!(
        fs::read(tmp.path().join("res/paths.csv")).unwrap(),
        fs::read(tmp.path().join("again/paths.csv")).unwrap()
    );

    let largest = u64::MAX.to_string();
    let out = cascade(
        tmp.path(),
        &[
            "run",
            "tiny.toml",
            "--quiet",
            "--seed",
            &largest,
            "--paths",
            "20",
            "--out",
            "big",
        ],
    );
    if out.code == Some(0) {
        cascade(tmp.path(), &["validate", "big/scenario.toml"]).expect_code(0);
    } else {
        out.expect_code(2).expect_stderr(&["seed"]);
        assert!(
            !out.stderr.contains("invalid type: string"),
            "a numeric --seed is reported as a string:\n{}",
            out.stderr
        );
        assert!(!tmp.path().join("big").exists());
    }
}

/// Visits every node of the scenario's JSON Schema under `node` with its dotted key in a
/// scenario (index 0 in lists of tables, so that it reaches the first venue or policy) and
/// the `$defs` table it was reached through, if any.
fn walk_schema(
    root: &Json,
    node: &Json,
    key: &str,
    visit: &mut dyn FnMut(&str, Option<&str>, &Json),
) {
    let mut node = node;
    let mut table = None;
    while let Some(r) = node.get("$ref").and_then(Json::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        table = Some(name);
        node = &root["$defs"][name];
    }
    visit(key, table, node);
    let join = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    for (k, child) in node["properties"].as_object().into_iter().flatten() {
        walk_schema(root, child, &join(k), visit);
    }
    if node["items"].is_object() {
        walk_schema(root, &node["items"], &join("0"), visit);
    }
    for option in node["anyOf"].as_array().into_iter().flatten() {
        walk_schema(root, option, key, visit);
    }
}

/// Every number the schema bounds, as `(dotted key, bound keyword, value)`.
fn schema_bounds(schema: &Json) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    walk_schema(schema, schema, "", &mut |key, _, node| {
        let numeric = match &node["type"] {
            Json::String(t) => t == "number",
            Json::Array(ts) => ts.iter().any(|t| t == "number"),
            _ => false,
        };
        for bound in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
            if let Some(v) = node[bound].as_f64().filter(|_| numeric) {
                out.push((key.to_string(), bound.to_string(), v));
            }
        }
    });
    out
}

#[test]
fn schema_bounds_are_the_validations() {
    use cascade::error::Error;
    use cascade::scenario::{Override, Scenario};
    let schema = cascade::scenario::load::schema_json();
    let bounds = schema_bounds(&schema);
    // The fixture holds every table with bounded keys; keys a model alone reads are probed
    // under that model (elsewhere they are ignored, with a warning).
    let base = fixtures().join("every-bound.toml");
    Scenario::load(&base, &[]).expect("the fixture is valid");
    let problems_at = |key: &str, value: f64| -> Vec<String> {
        // The second policy: the first, the baseline, takes no levers.
        let key = key.replace("policies.0.", "policies.1.");
        let key = key.as_str();
        let mut sets = vec![format!("{key}={value:?}")];
        if ["price.omega", "price.alpha", "price.beta"].contains(&key) {
            sets.push("price.model=\"garch\"".into());
        }
        let overrides: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
        // As problems write it: `venues[0].initial_margin`.
        let path = key
            .split('.')
            .map(|p| {
                if p.parse::<u32>().is_ok() {
                    format!("[{p}]")
                } else {
                    format!(".{p}")
                }
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string();
        match Scenario::load(&base, &overrides) {
            Ok(_) => Vec::new(),
            Err(Error::InvalidScenario { problems, .. }) => problems
                .into_iter()
                .filter(|p| p.path == path)
                .map(|p| p.message)
                .collect(),
            Err(e) => panic!("{key}={value}: {e}"),
        }
    };
    let mut wrong = Vec::new();
    for (key, bound, b) in &bounds {
        let step = 1e-6 * b.abs().max(1.0);
        let (inside, outside) = match bound.as_str() {
            "minimum" => (*b, b - step),
            "exclusiveMinimum" => (b + step, *b),
            "maximum" => (*b, b + step),
            _ => (b - step, *b),
        };
        // What the schema allows the validation takes, and what it refuses is refused.
        let (at_inside, at_outside) = (problems_at(key, inside), problems_at(key, outside));
        if !at_inside.is_empty() || at_outside.is_empty() {
            wrong.push(format!(
                "{key} ({bound} {b}): at {inside:?} {at_inside:?}; at {outside:?} {at_outside:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The bounds reach every kind of table: simulation, price, stress, liquidity, a venue,
    // its book and cohorts, a policy and its levers, and the observed episode.
    let keys: BTreeSet<&str> = bounds.iter().map(|(k, _, _)| k.as_str()).collect();
    assert!(bounds.len() >= 50, "{} bounds: {keys:?}", bounds.len());
    for key in [
        "simulation.step_seconds",
        "price.stress.drop",
        "liquidity.routing",
        "venues.0.initial_margin",
        "venues.0.book.entry_dispersion",
        "venues.0.book.long_leverage.median",
        "venues.0.opening.notional",
        "policies.0.margin_floor.initial",
        "policies.0.pooled_default_fund.stress_move",
        "policies.0.supervision.add_on",
        "observed.price_drop",
    ] {
        assert!(keys.contains(key), "no bound on {key}: {keys:?}");
    }
}

#[test]
fn schema_requirements_are_the_validations() {
    use cascade::error::Error;
    use cascade::scenario::Scenario;
    let schema = cascade::scenario::load::schema_json();
    // Where each table sits in the fixture (a policy's levers at index 1: the baseline, at
    // 0, has none).
    let mut tables: Vec<(String, String)> = Vec::new();
    walk_schema(&schema, &schema, "", &mut |key, table, _| {
        if let Some(name) = table {
            tables.push((name.to_string(), key.replace("policies.0", "policies.1")));
        }
    });
    let text = fs::read_to_string(fixtures().join("every-bound.toml")).unwrap();
    let tmp = TempDir::new().unwrap();
    let mut checked = Vec::new();
    for (name, def) in schema["$defs"].as_object().unwrap() {
        let Some((_, at)) = tables.iter().find(|(n, _)| n == name) else {
            continue;
        };
        for rule in def["allOf"].as_array().into_iter().flatten() {
            // The setting the rule names, given as the schema states it, and each key it
            // requires left out: the validation must say that key is required.
            let (condition, value) = rule["if"]["properties"]
                .as_object()
                .and_then(|p| p.iter().next())
                .unwrap();
            let value = match (&value["const"], &value["exclusiveMinimum"]) {
                (Json::String(c), _) => toml_edit::value(c.as_str()),
                (_, Json::Number(m)) => toml_edit::value(m.as_f64().unwrap() + 0.5),
                _ => panic!("{name}: a rule of another kind: {rule}"),
            };
            for required in rule["then"]["required"].as_array().unwrap() {
                let required = required.as_str().unwrap();
                let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
                let mut item = doc.as_item_mut();
                for part in at.split('.').filter(|p| !p.is_empty()) {
                    item = match part.parse::<usize>() {
                        Ok(i) => item.get_mut(i),
                        Err(_) => item.get_mut(part),
                    }
                    .unwrap_or_else(|| panic!("the fixture has no {at}"));
                }
                let table = item.as_table_like_mut().unwrap();
                table.insert(condition, value.clone());
                table.remove(required);
                let file = tmp.path().join("rule.toml");
                fs::write(&file, doc.to_string()).unwrap();
                let key = format!("{at}.{required}")
                    .split('.')
                    .map(|p| match p.parse::<u32>() {
                        Ok(_) => format!("[{p}]"),
                        Err(_) => format!(".{p}"),
                    })
                    .collect::<String>();
                let key = key.trim_start_matches('.');
                let told = match Scenario::load(&file, &[]) {
                    Err(Error::InvalidScenario { problems, .. }) => problems
                        .iter()
                        .any(|p| p.path == key && p.message.contains("required")),
                    _ => false,
                };
                assert!(
                    told,
                    "{key} left out with {condition} = {value}: not refused"
                );
                checked.push(key.to_string());
            }
        }
    }
    // Every kind of rule: a model's parameters, a stress recovery's length, a partial
    // liquidation's slice, a cover-2 pool's stress and a supervisor's settings.
    for key in [
        "price.degrees_of_freedom",
        "price.jump_stdev",
        "price.returns_csv",
        "price.stress.recovery_steps",
        "venues[0].partial_fraction",
        "policies[1].pooled_default_fund.stress_move",
        "policies[1].supervision.window_steps",
        "policies[1].supervision.halt_steps",
    ] {
        assert!(
            checked.iter().any(|k| k == key),
            "no rule for {key}: {checked:?}"
        );
    }
}

#[test]
fn schema_is_json_with_the_scenario_properties() {
    let tmp = TempDir::new().unwrap();
    let out = cascade(tmp.path(), &["schema"]);
    out.expect_code(0);
    let schema: Json = serde_json::from_str(&out.stdout).expect("schema prints JSON");
    let props = schema["properties"]
        .as_object()
        .expect("a `properties` object");
    for key in [
        "name",
        "simulation",
        "price",
        "liquidity",
        "venues",
        "policies",
    ] {
        assert!(props.contains_key(key), "schema lacks property {key}");
    }
    for key in ["initial_margin", "maintenance_margin", "positions_csv"] {
        assert!(out.stdout.contains(key), "schema never mentions {key}");
    }
    // Strict like the CLI: an editor using the schema flags unknown keys in every table.
    let mut tables = vec![&schema];
    tables.extend(schema["$defs"].as_object().expect("$defs").values());
    let open: Vec<String> = tables
        .iter()
        .filter(|t| t.get("properties").is_some())
        .filter(|t| t["additionalProperties"] != Json::Bool(false))
        .map(|t| t["title"].as_str().unwrap_or("?").to_string())
        .collect();
    assert!(open.is_empty(), "tables that allow unknown keys: {open:?}");
    // What the parser refuses for its type, the schema refuses too: an unsigned integer
    // beyond its Rust type (u64 ones beyond TOML's signed integers), and an empty list where
    // one entry is needed.
    let steps = &schema["$defs"]["Simulation"]["properties"]["steps"];
    assert_eq!(
        steps["maximum"].as_u64(),
        Some(u64::from(u32::MAX)),
        "{steps}"
    );
    let seed = &schema["$defs"]["Simulation"]["properties"]["seed"];
    assert_eq!(seed["maximum"].as_u64(), Some(i64::MAX as u64), "{seed}");
    let unbounded = out
        .stdout
        .matches("\"format\": \"uint")
        .count()
        .saturating_sub(out.stdout.matches("\"maximum\"").count());
    assert_eq!(unbounded, 0, "unsigned integers without a maximum");
    for list in [
        &props["venues"],
        &props["policies"],
        &schema["$defs"]["Opening"]["properties"]["levels"],
    ] {
        assert_eq!(list["minItems"].as_u64(), Some(1), "{list}");
    }
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn the_readme_scenario_example_is_valid_as_printed() {
    // Readers copy it: it once set `migration` with every jurisdiction cooperating, which
    // validation refuses.
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let (_, rest) = readme
        .split_once("```toml\n")
        .expect("the README documents the scenario format with a TOML example");
    let (example, _) = rest.split_once("```").expect("a closed block");
    assert!(example.contains("[[policies]]") && example.contains("[price.stress]"));
    let tmp = TempDir::new().unwrap();
    fs::write(tmp.path().join("example.toml"), example).unwrap();
    let out = cascade(tmp.path(), &["validate", "example.toml"]);
    out.expect_code(0);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn the_readme_documents_every_key_a_result_holds() {
    // Notebooks are written against the README: a metric, probability or statistic added
    // to the result files without a word there is one no reader can find.
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let tmp = scratch_with("tiny.toml");
    run_ok(
        tmp.path(),
        "tiny.toml",
        &["--paths", "4", "--out", "r", "--no-report"],
    );
    let dir = tmp.path().join("r");
    let summary = read_json(&dir.join("summary.json"));
    let keys = |v: &Json| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let policy = &summary["policies"][0];
    let comparison = &summary["comparisons"][0];
    let mut documented = keys(&summary);
    documented.extend(keys(policy));
    documented.extend(keys(&policy["metrics"]));
    documented.extend(keys(&policy["metrics"]["bad_debt"]));
    documented.extend(keys(&policy["probabilities"]));
    documented.extend(keys(&policy["funds"][0]));
    documented.extend(keys(comparison));
    documented.extend(keys(&comparison["metrics"]["bad_debt"]));
    let paths = read(&dir.join("paths.csv"));
    let header = paths.lines().next().unwrap();
    // Venue columns are `<venue>.<figure>`: the figure is what is documented.
    documented.extend(
        header
            .split(',')
            .map(|c| c.rsplit('.').next().unwrap().to_string()),
    );
    let timeline = read(&dir.join("timeline.csv"));
    documented.extend(
        timeline
            .lines()
            .next()
            .unwrap()
            .split(',')
            .map(String::from),
    );
    let sweep = [
        "sweep",
        "tiny.toml",
        "--set",
        "liquidity.routing=0.5",
        "--paths",
        "4",
        "--out",
        "s",
        "--no-report",
        "--quiet",
    ];
    cascade(tmp.path(), &sweep).expect_code(0);
    let grid = read(&tmp.path().join("s/grid.csv"));
    // Its figures are doubles, written with their decimal point whatever their values (a
    // probability of 0 was `0`, which pandas read as an integer column): past the cell, the
    // swept value and the policy.
    for line in grid.lines().skip(1) {
        for figure in line.split(',').skip(3) {
            assert!(figure.contains('.'), "{figure} in {line}");
        }
    }
    // Its statistics columns are documented as `<metric>_mean`, `_p50` and `_p99`.
    for column in grid.lines().next().unwrap().split(',') {
        match column.rsplit_once('_') {
            _ if column == "liquidity.routing" => {}
            Some((metric, stat)) if ["mean", "p50", "p99"].contains(&stat) => {
                documented.extend([metric.to_string(), format!("_{stat}")]);
            }
            _ => documented.push(column.to_string()),
        }
    }
    // As a whole word: `bad_debt` inside `bad_debt_mean` does not count.
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let named = |key: &str| {
        readme.match_indices(key).any(|(at, _)| {
            !word(readme[..at].chars().next_back())
                && !word(readme[at + key.len()..].chars().next())
        })
    };
    let missing: Vec<&String> = documented.iter().filter(|key| !named(key)).collect();
    assert!(missing.is_empty(), "not in the README: {missing:?}");
}

#[test]
fn the_readme_says_how_to_get_cascade_before_calling_it() {
    // Its examples call a bare `cascade`, which a fresh clone does not have on its PATH.
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let first_call = readme
        .find("`cascade ")
        .expect("the README has `cascade ...` examples");
    for how in ["cargo install --path .", "target/release/cascade"] {
        let said = readme.find(how).unwrap_or(usize::MAX);
        assert!(
            said < first_call,
            "`{how}` is not said before the first `cascade ...`"
        );
    }
}

#[test]
fn init_writes_a_valid_scenario_and_refuses_to_overwrite() {
    let tmp = TempDir::new().unwrap();
    cascade(tmp.path(), &["init", "mine.toml"]).expect_code(0);
    let starter = read(&tmp.path().join("mine.toml"));
    cascade(tmp.path(), &["validate", "mine.toml"]).expect_code(0);

    fs::write(tmp.path().join("mine.toml"), "# my own work\n").unwrap();
    cascade(tmp.path(), &["init", "mine.toml"])
        .expect_code(2)
        .expect_stderr(&["mine.toml", "--force"]);
    assert_eq!(read(&tmp.path().join("mine.toml")), "# my own work\n");

    cascade(tmp.path(), &["init", "mine.toml", "--force"]).expect_code(0);
    assert_eq!(read(&tmp.path().join("mine.toml")), starter);

    // Without a path it writes scenario.toml in the current directory.
    cascade(tmp.path(), &["init"]).expect_code(0);
    assert_eq!(read(&tmp.path().join("scenario.toml")), starter);
    cascade(tmp.path(), &["init"]).expect_code(2);

    // A directory that is not there is a mistyped path: bad input.
    cascade(tmp.path(), &["init", "no-such-dir/mine.toml"])
        .expect_code(2)
        .expect_stderr(&["no-such-dir does not exist"]);
    // And a file where a directory should be is named as one, for a scenario and a result.
    fs::write(tmp.path().join("afile"), "").unwrap();
    cascade(tmp.path(), &["init", "afile/mine.toml"])
        .expect_code(2)
        .expect_stderr(&["cannot write afile/mine.toml: afile is not a directory"]);
    cascade(
        tmp.path(),
        &["run", "mine.toml", "--paths", "2", "--out", "afile/sub/res"],
    )
    .expect_code(2)
    .expect_stderr(&["cannot create afile/sub for the results: afile is a file, not a directory"]);

    // A directory is a path without its file name: bad input with or without --force (it
    // used to fail writing, "Is a directory", exit code 1).
    fs::create_dir(tmp.path().join("dir")).unwrap();
    for force in [&[][..], &["--force"]] {
        let args = [&["init", "dir"][..], force].concat();
        cascade(tmp.path(), &args)
            .expect_code(2)
            .expect_stderr(&["dir is a directory", "dir/scenario.toml"]);
    }
    assert_eq!(fs::read_dir(tmp.path().join("dir")).unwrap().count(), 0);

    // A symbolic link is refused, as for --out: written through, --force replaced the file it
    // points to, and a dangling one created its target.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("mine.toml", tmp.path().join("lnk.toml")).unwrap();
        std::os::unix::fs::symlink("nowhere.toml", tmp.path().join("dangling.toml")).unwrap();
        fs::write(tmp.path().join("mine.toml"), "# my own work\n").unwrap();
        for (link, to) in [("lnk.toml", "mine.toml"), ("dangling.toml", "nowhere.toml")] {
            cascade(tmp.path(), &["init", link, "--force"])
                .expect_code(2)
                .expect_stderr(&[&format!(
                    "{link} is a symbolic link (to {to}); give the file it points to"
                )]);
        }
        assert_eq!(read(&tmp.path().join("mine.toml")), "# my own work\n");
        assert!(!tmp.path().join("nowhere.toml").exists());
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Result directories
// ---------------------------------------------------------------------------------------------

#[test]
fn run_with_out_writes_every_file_and_refuses_to_overwrite_without_force() {
    let tmp = scratch_with("tiny.toml");
    let first = run_ok(tmp.path(), "tiny.toml", &["--out", "res"]);
    let dir = tmp.path().join("res");
    assert_eq!(results_dir(tmp.path(), &first), dir);
    for f in RESULT_FILES {
        assert!(dir.join(f).is_file(), "{f} missing from the result");
    }
    let before = snapshot(&dir);

    let again = cascade(tmp.path(), &["run", "tiny.toml", "--quiet", "--out", "res"]);
    again.expect_code(2).expect_stderr(&["res", "--force"]);
    assert_eq!(snapshot(&dir), before, "a refused run changed the result");
    assert_eq!(
        entries(tmp.path()),
        BTreeSet::from(["res".to_string(), "tiny.toml".to_string()]),
        "a refused run left files behind"
    );

    run_ok(tmp.path(), "tiny.toml", &["--out", "res", "--force"]);
    for f in RESULT_FILES {
        assert!(dir.join(f).is_file(), "{f} missing after --force");
    }
    assert_eq!(
        entries(tmp.path()),
        BTreeSet::from(["res".to_string(), "tiny.toml".to_string()]),
        "--force left temporary files behind"
    );
    // A notebook put beside the results would go with them: --force is refused, naming it.
    fs::write(dir.join("notes.ipynb"), "analysis").unwrap();
    cascade(
        tmp.path(),
        &["run", "tiny.toml", "--quiet", "--out", "res", "--force"],
    )
    .expect_code(2)
    .expect_stderr(&[
        "res holds what cascade did not write (notes.ipynb), which --force would delete; \
         move it out first, or remove the directory yourself",
    ]);
    assert_eq!(read(&dir.join("notes.ipynb")), "analysis");
    fs::remove_file(dir.join("notes.ipynb")).unwrap();
    // Same scenario and seed: the replaced result has the same deterministic files.
    let after = snapshot(&dir);
    for (name, bytes) in &before {
        if DETERMINISTIC_FILES.contains(&name.as_str()) {
            let new = &after.iter().find(|(n, _)| n == name).unwrap().1;
            assert_eq!(new, bytes, "{name} differs after --force");
        }
    }
}

/// `--force` replaces a result with its `charts/` and `books/`, and `cascade report` rebuilds
/// `charts/` whole: a file cascade did not write in them is refused like one beside the
/// results, named, and nothing changes. Only the top level was checked, and a plot of the
/// user's kept among the charts was deleted without a word.
#[test]
fn force_and_report_refuse_what_cascade_did_not_write_in_charts_and_books() {
    let tmp = TempDir::new().unwrap();
    let scenario = fixture("snapshot.toml");
    run_ok(tmp.path(), &scenario, &["--out", "res"]);
    let dir = tmp.path().join("res");
    // What cascade wrote there is its own: replaced and rebuilt without a word.
    assert!(dir.join("books/venue-0.csv").is_file());
    assert!(dir.join("charts/price-fan.svg").is_file());
    run_ok(tmp.path(), &scenario, &["--out", "res", "--force"]);
    cascade(tmp.path(), &["report", "res"]).expect_code(0);
    // (file written, what the refusal names, whether `report` would delete it)
    for (file, named, in_charts) in [
        ("charts/my-own-plot.png", "charts/my-own-plot.png", true),
        ("charts/drafts/v2.svg", "charts/drafts", true),
        ("charts/price-fan.svg.bak", "charts/price-fan.svg.bak", true),
        ("books/notes.txt", "books/notes.txt", false),
        ("books/venue-00.csv", "books/venue-00.csv", false),
    ] {
        let path = dir.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "mine").unwrap();
        let before = snapshot(&dir.join("charts"));
        cascade(
            tmp.path(),
            &["run", &scenario, "--quiet", "--out", "res", "--force"],
        )
        .expect_code(2)
        .expect_stderr(&[&format!(
            "res holds what cascade did not write ({named}), which --force would delete"
        )]);
        let report = cascade(tmp.path(), &["report", "res"]);
        if in_charts {
            report.expect_code(2).expect_stderr(&[&format!(
                "res holds what cascade did not write ({named}), which `cascade report` would \
                 delete"
            )]);
            assert_eq!(snapshot(&dir.join("charts")), before, "{file}");
        } else {
            report.expect_code(0);
        }
        assert_eq!(read(&path), "mine", "{file}");
        fs::remove_file(&path).unwrap();
        if named.ends_with("drafts") {
            fs::remove_dir(path.parent().unwrap()).unwrap();
        }
    }
}

/// `--out res/.` is `res` and `--force` replaces it whole; `.` (from inside a result) and a link
/// name no directory that can be replaced, so they are refused and change nothing: replacing
/// `res/.` literally removed `res`'s files and then failed, and replacing a link (`latest`)
/// left a directory where every later run expects the link.
#[test]
fn force_replaces_the_directory_a_path_names_and_never_a_dot_or_a_link() {
    let tmp = scratch_with("tiny.toml");
    run_ok(tmp.path(), "tiny.toml", &["--out", "res"]);
    let dir = tmp.path().join("res");
    run_ok(tmp.path(), "tiny.toml", &["--out", "res/.", "--force"]);
    for f in RESULT_FILES {
        assert!(
            dir.join(f).is_file(),
            "{f} missing after --out res/. --force"
        );
    }
    let before = snapshot(&dir);
    cascade(
        &dir,
        &["run", "../tiny.toml", "--quiet", "--out", ".", "--force"],
    )
    .expect_code(2)
    .expect_stderr(&["--out .", "must name the result directory"]);
    assert_eq!(
        snapshot(&dir),
        before,
        "a refused --out . changed the result"
    );
    // Nor `../res` from inside it: moved aside, it took the working directory along, and
    // the new result went beside the old one, which was left in `.cascade-replaced-*`.
    let listed = entries(tmp.path());
    cascade(
        &dir,
        &[
            "run",
            "../tiny.toml",
            "--quiet",
            "--out",
            "../res",
            "--force",
        ],
    )
    .expect_code(2)
    .expect_stderr(&["../res holds the current directory"]);
    assert_eq!(
        snapshot(&dir),
        before,
        "a refused ../res changed the result"
    );
    assert_eq!(entries(tmp.path()), listed, "a refused ../res left files");

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("res", tmp.path().join("link")).unwrap();
        cascade(
            tmp.path(),
            &["run", "tiny.toml", "--quiet", "--out", "link", "--force"],
        )
        .expect_code(2)
        .expect_stderr(&["link", "symbolic link"]);
        assert!(
            fs::symlink_metadata(tmp.path().join("link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(snapshot(&dir), before, "a refused link changed the result");

        // The same for `latest`; and a `latest` that became a directory some other way is
        // found before the run, not after it when the link cannot replace it.
        run_ok(tmp.path(), "tiny.toml", &[]);
        let root = tmp.path().join("output/tiny");
        cascade(
            tmp.path(),
            &[
                "run",
                "tiny.toml",
                "--quiet",
                "--out",
                "output/tiny/latest",
                "--force",
            ],
        )
        .expect_code(2)
        .expect_stderr(&["latest", "symbolic link"]);
        fs::remove_file(root.join("latest")).unwrap();
        fs::create_dir(root.join("latest")).unwrap();
        let listed = entries(&root);
        cascade(tmp.path(), &["run", "tiny.toml", "--quiet"])
            .expect_code(2)
            .expect_stderr(&["output/tiny/latest", "is a directory"]);
        assert_eq!(entries(&root), listed, "a refused run wrote a result");
        // A file there is someone's, not the link: it was replaced without a word.
        fs::remove_dir(root.join("latest")).unwrap();
        fs::write(root.join("latest"), "my notes").unwrap();
        let listed = entries(&root);
        cascade(tmp.path(), &["run", "tiny.toml", "--quiet"])
            .expect_code(2)
            .expect_stderr(&["output/tiny/latest is a file, not the link"]);
        assert_eq!(entries(&root), listed, "a refused run wrote a result");
        assert_eq!(fs::read_to_string(root.join("latest")).unwrap(), "my notes");
    }
}

#[test]
fn force_never_replaces_a_directory_that_is_not_a_result() {
    let tmp = scratch_with("tiny.toml");
    fs::create_dir(tmp.path().join("precious")).unwrap();
    fs::write(tmp.path().join("precious/thesis.tex"), "years of work").unwrap();
    // Without --force, the refusal does not suggest the flag that would be refused too.
    let out = cascade(
        tmp.path(),
        &["run", "tiny.toml", "--quiet", "--out", "precious"],
    );
    out.expect_code(2).expect_stderr(&[
        "precious already exists; it is not a cascade result directory, which --force never \
         replaces: choose another --out",
    ]);
    cascade(
        tmp.path(),
        &[
            "run",
            "tiny.toml",
            "--quiet",
            "--out",
            "precious",
            "--force",
        ],
    )
    .expect_code(2)
    .expect_stderr(&["precious"]);
    assert_eq!(
        entries(&tmp.path().join("precious")),
        BTreeSet::from(["thesis.tex".to_string()])
    );
    assert_eq!(
        read(&tmp.path().join("precious/thesis.tex")),
        "years of work"
    );
    // Nor one that holds some other program's manifest.json (a web app, a browser extension).
    fs::write(
        tmp.path().join("precious/manifest.json"),
        r#"{"name": "my app"}"#,
    )
    .unwrap();
    cascade(
        tmp.path(),
        &[
            "run",
            "tiny.toml",
            "--quiet",
            "--out",
            "precious",
            "--force",
        ],
    )
    .expect_code(2)
    .expect_stderr(&["precious", "not a cascade result directory"]);
    assert_eq!(
        read(&tmp.path().join("precious/thesis.tex")),
        "years of work"
    );
}

/// An `--out` that cannot be a directory (its parent is a regular file) is a bad path: exit 2.
#[test]
fn run_with_an_unusable_out_path_is_bad_input() {
    let tmp = scratch_with("tiny.toml");
    fs::write(tmp.path().join("a-file"), "not a directory").unwrap();
    let out = cascade(
        tmp.path(),
        &["run", "tiny.toml", "--quiet", "--out", "a-file/res"],
    );
    out.expect_code(2).expect_stderr(&["a-file"]);
    assert_eq!(read(&tmp.path().join("a-file")), "not a directory");
    // A name the file system refuses (longer than its 255 bytes) is found before the run,
    // not after it; and `init` says the same of a file it cannot create.
    let long = "x".repeat(300);
    cascade(tmp.path(), &["run", "tiny.toml", "--quiet", "--out", &long])
        .expect_code(2)
        .expect_stderr(&["cannot create", &long]);
    cascade(tmp.path(), &["init", &format!("{long}.toml")])
        .expect_code(2)
        .expect_stderr(&["cannot write", &long]);
    assert_eq!(
        entries(tmp.path()),
        BTreeSet::from(["a-file".to_string(), "tiny.toml".to_string()])
    );
}

#[test]
fn default_output_directories_never_collide_and_latest_is_the_newest() {
    let tmp = scratch_with("tiny.toml");
    let first = run_ok(tmp.path(), "tiny.toml", &[]);
    let second = run_ok(tmp.path(), "tiny.toml", &[]);
    let a = results_dir(tmp.path(), &first);
    let b = results_dir(tmp.path(), &second);
    assert_ne!(a, b, "two runs wrote to the same directory");

    let root = tmp.path().join("output/tiny");
    for dir in [&a, &b] {
        assert_eq!(
            dir.parent().map(fs::canonicalize).and_then(Result::ok),
            Some(fs::canonicalize(&root).unwrap()),
            "{} is not under output/tiny/",
            dir.display()
        );
        for f in RESULT_FILES {
            assert!(dir.join(f).is_file(), "{f} missing from {}", dir.display());
        }
    }
    let names = entries(&root);
    assert_eq!(names.len(), 3, "two results and `latest`: {names:?}");
    assert!(names.contains("latest"));

    let latest = root.join("latest");
    let target = if fs::symlink_metadata(&latest)
        .unwrap()
        .file_type()
        .is_symlink()
    {
        fs::canonicalize(&latest).unwrap()
    } else {
        fs::canonicalize(root.join(read(&latest).trim())).unwrap()
    };
    assert_eq!(
        target,
        fs::canonicalize(&b).unwrap(),
        "latest is not the newest"
    );
    assert!(latest.join("summary.json").is_file());
    // Nothing else (no temporary directories) is left in the scratch directory.
    assert_eq!(
        entries(tmp.path()),
        BTreeSet::from(["output".to_string(), "tiny.toml".to_string()])
    );
}

#[test]
fn quiet_run_prints_nothing_on_stderr() {
    let tmp = scratch_with("tiny.toml");
    let out = run_ok(tmp.path(), "tiny.toml", &["--out", "res", "--paths", "20"]);
    assert!(out.stderr.is_empty(), "stderr: {}", out.stderr);
}

#[test]
fn a_sweep_switches_a_setting_whose_keys_the_file_gives() {
    // The onshore venue liquidates partially, with a partial_fraction: under full liquidation
    // that key is ignored with a warning, not refused, so the sweep runs both cells.
    let tmp = scratch_with("tiny.toml");
    let out = cascade(
        tmp.path(),
        &[
            "sweep",
            "tiny.toml",
            "--paths",
            "5",
            "--no-report",
            "--out",
            "grid",
            "--set",
            "venues.1.liquidation=partial,full",
        ],
    );
    out.expect_code(0).expect_stderr(&[
        "warning: tiny.toml: venues[1].partial_fraction: is only used with liquidation = \
         \"partial\": ignored, and left out of the resolved scenario (in 1 of 2 cells, first \
         venues.1.liquidation=full)",
    ]);
    // The headline figures print as a table, a line per cell and policy.
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("venues.1.liquidation  policy      liquidated mean"),
        "{}",
        out.stdout
    );
    assert!(lines[2].starts_with("partial               fragmented "));
    assert!(lines[5].starts_with("full                  harmonized "));
    assert!(
        lines[6].starts_with("2 cells x 2 policies: "),
        "{}",
        out.stdout
    );
    let resolved = |cell: &str| {
        fs::read_to_string(tmp.path().join("grid").join(cell).join("scenario.toml")).unwrap()
    };
    assert!(resolved("venues.1.liquidation=partial").contains("partial_fraction = 0.25"));
    assert!(!resolved("venues.1.liquidation=full").contains("partial_fraction"));
}

#[test]
fn values_in_a_likely_wrong_unit_are_warned_about_not_refused() {
    let tmp = scratch_with("tiny.toml");
    let wrong = [
        "--set",
        "price.annual_volatility=50",
        "--set",
        "venues.0.depth_1pct=20",
        "--set",
        "venues.1.open_interest=5",
        "--set",
        "simulation.steps=45",
    ];
    let out = cascade(
        tmp.path(),
        &[&["validate", "tiny.toml"], &wrong[..]].concat(),
    );
    out.expect_code(0).expect_stderr(&[
        "warning: tiny.toml: price.annual_volatility: 50 is an annual volatility of 5000%",
        "warning: tiny.toml: venues[0].depth_1pct: USD 20 moves the price by 1%",
        "warning: tiny.toml: venues[1].open_interest: USD 5 per side is tiny",
    ]);
    // A stress drop cut short by the horizon (steps 30..60 of 45): half of it is applied.
    out.expect_stderr(&[
        "warning: tiny.toml: price.stress.duration_steps: the drop runs to step 60, past the \
         horizon of 45 steps: only 50% of it",
    ]);
    assert!(
        out.stdout.contains("annual_volatility = 50"),
        "{}",
        out.stdout
    );
    // A sweep warns about every cell, each warning once: one that only some cells give says
    // how many and names the first (the second cell here, not the one that names the study).
    let out = cascade(
        tmp.path(),
        &[
            "sweep",
            "tiny.toml",
            "--paths",
            "5",
            "--no-report",
            "--out",
            "grid",
            "--set",
            "venues.0.depth_1pct=1e7,20,30",
            "--set",
            "price.annual_volatility=50",
        ],
    );
    out.expect_code(0).expect_stderr(&[
        "venues[0].depth_1pct: USD 20 moves the price by 1%, a book thinner than any venue's; \
         is it in millions? (write 2.0e7 for USD 20M) (in 1 of 3 cells, first \
         venues.0.depth_1pct=20)",
        "venues[0].depth_1pct: USD 30 moves",
    ]);
    assert_eq!(
        out.stderr.matches("annual volatility of 5000%").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr
            .contains("5000%; is it a percentage? (a share: 0.5 is 50%) (in"),
        "{}",
        out.stderr
    );
    // The shipped values warn about nothing; --quiet keeps stderr empty all the same.
    let out = cascade(tmp.path(), &["validate", "tiny.toml"]);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let out = run_ok(
        tmp.path(),
        "tiny.toml",
        &[&["--out", "res", "--paths", "5"], &wrong[..]].concat(),
    );
    assert!(out.stderr.is_empty(), "stderr: {}", out.stderr);
}

#[test]
fn snapshot_positions_the_venue_could_not_hold_are_warned_about() {
    // The venue allows 10x (initial margin 10%) and the start price is 100. The shipped
    // snapshot warns about nothing; one with a 15x long and longs entered at 130 (at 5x,
    // liquidated below 109.5, so past it at the start) warns about each, with its share.
    let tmp = scratch_with("snapshot.toml");
    fs::create_dir(tmp.path().join("csv")).unwrap();
    let good = read(&fixtures().join("csv/positions.csv"));
    fs::write(tmp.path().join("csv/positions.csv"), &good).unwrap();
    let out = cascade(tmp.path(), &["validate", "snapshot.toml"]);
    out.expect_code(0);
    assert!(out.stderr.is_empty(), "{}", out.stderr);

    let bad = format!("{good}long,1000000,100,15\nlong,600000,130,5\n");
    fs::write(tmp.path().join("csv/positions.csv"), bad).unwrap();
    let out = cascade(tmp.path(), &["validate", "snapshot.toml"]);
    out.expect_code(0).expect_stderr(&[
        "warning: snapshot.toml: venues[0].book.positions_csv: 1 of 6 positions (15% of the \
         notional) carry more leverage than the venue's initial_margin allows for their size \
         (up to 10x)",
        "warning: snapshot.toml: venues[0].book.positions_csv: 1 of 6 positions (9% of the \
         notional) are already past their liquidation price at price.start (100)",
    ]);
}

// ---------------------------------------------------------------------------------------------
// 5. Determinism and the result contract
// ---------------------------------------------------------------------------------------------

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let tmp = scratch_with("tiny.toml");
    // 300 paths: several batches, so four threads really split the work.
    let common = ["--paths", "300", "--seed", "21"];
    let one = tmp.path().join("one");
    let four = tmp.path().join("four");
    run_ok(
        tmp.path(),
        "tiny.toml",
        &[&common[..], &["--threads", "1", "--out", "one"]].concat(),
    );
    run_ok(
        tmp.path(),
        "tiny.toml",
        &[&common[..], &["--threads", "4", "--out", "four"]].concat(),
    );
    for f in DETERMINISTIC_FILES {
        let (a, b) = (
            fs::read(one.join(f)).unwrap(),
            fs::read(four.join(f)).unwrap(),
        );
        assert!(a == b, "{f} differs between --threads 1 and --threads 4");
    }
    assert_eq!(
        read(&one.join("scenario.toml")),
        read(&four.join("scenario.toml"))
    );

    let m1 = read_json(&one.join("manifest.json"));
    let m4 = read_json(&four.join("manifest.json"));
    assert_eq!(m1["seed"], 21);
    assert_eq!(m1["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m1["paths"], 300);
    assert_eq!(m1["threads"], 1);
    assert_eq!(m4["threads"], 4);
    let sha = m1["scenario_sha256"].as_str().expect("scenario_sha256");
    assert_eq!(
        sha,
        sha256_hex(&fs::read(one.join("scenario.toml")).unwrap()),
        "scenario_sha256 is the SHA-256 of the resolved scenario.toml"
    );
    assert_eq!(m4["scenario_sha256"], m1["scenario_sha256"]);
    assert_eq!(
        m1["scenario_file_sha256"].as_str(),
        Some(sha256_hex(&fs::read(tmp.path().join("tiny.toml")).unwrap()).as_str())
    );

    // Not vacuous: another seed gives other paths.
    run_ok(
        tmp.path(),
        "tiny.toml",
        &["--paths", "300", "--seed", "22", "--out", "other"],
    );
    assert!(
        fs::read(one.join("paths.csv")).unwrap()
            != fs::read(tmp.path().join("other/paths.csv")).unwrap(),
        "paths.csv does not depend on the seed"
    );
}

/// Walks a JSON value; returns the paths of non-finite numbers and of nulls outside `relative`.
fn bad_json_values(value: &Json, at: &str, out: &mut Vec<String>) {
    match value {
        Json::Null if !at.ends_with(".relative") => out.push(format!("{at} is null")),
        Json::Number(n) if !n.as_f64().is_some_and(f64::is_finite) => {
            out.push(format!("{at} = {n} is not finite"))
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                bad_json_values(v, &format!("{at}[{i}]"), out);
            }
        }
        Json::Object(map) => {
            for (k, v) in map {
                bad_json_values(v, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn result_files_follow_the_interface() {
    let tmp = scratch_with("tiny.toml");
    run_ok(tmp.path(), "tiny.toml", &["--out", "res"]);
    let dir = tmp.path().join("res");
    let (paths, steps) = (40, 240);
    let policies = ["fragmented", "harmonized"];
    let venues = ["offshore", "onshore"];

    // summary.json
    let text = read(&dir.join("summary.json"));
    for bad in ["NaN", "Infinity"] {
        assert!(!text.contains(bad), "summary.json contains {bad}");
    }
    let s: Json = serde_json::from_str(&text).unwrap();
    // serde_json writes NaN and infinities as null: every figure must be a finite number
    // (`relative` is documented as null where the baseline mean is zero).
    let mut bad = Vec::new();
    bad_json_values(&s["policies"], "policies", &mut bad);
    bad_json_values(&s["comparisons"], "comparisons", &mut bad);
    assert!(bad.is_empty(), "summary.json: {bad:#?}");
    assert_eq!(s["schema_version"], 1);
    assert_eq!(s["scenario"], "tiny");
    assert_eq!(s["seed"], 11);
    assert_eq!(s["paths"], paths);
    let ps = s["policies"].as_array().expect("policies");
    let names: Vec<&str> = ps.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, policies);
    for (i, p) in ps.iter().enumerate() {
        for metric in METRICS {
            for st in STATS {
                stat(&s, i, metric, st);
            }
            let v = |st| stat(&s, i, metric, st);
            let tol = 1e-9 * v("max").abs().max(1.0);
            let ordered = [v("p50"), v("p90"), v("p95"), v("p99"), v("p999"), v("max")];
            assert!(
                ordered.windows(2).all(|w| w[0] <= w[1] + tol),
                "{metric}: quantiles out of order {ordered:?}"
            );
            assert!(v("std") >= 0.0, "{metric}: negative std");
            assert!(v("mean") <= v("max") + tol, "{metric}: mean above max");
            assert!(
                v("p95") <= v("es95") + tol
                    && v("es95") <= v("es99") + tol
                    && v("es99") <= v("es999") + tol
                    && v("p999") <= v("es999") + tol
                    && v("es999") <= v("max") + tol,
                "{metric}: expected shortfalls out of order"
            );
        }
        for prob in ["any_insolvency", "adl", "round_cap_hit"] {
            let x = p["probabilities"][prob]
                .as_f64()
                .unwrap_or_else(|| panic!("probabilities.{prob}"));
            assert!((0.0..=1.0).contains(&x), "probabilities.{prob} = {x}");
        }
        let vs = p["venues"].as_array().expect("venues");
        let vnames: Vec<&str> = vs.iter().filter_map(|v| v["name"].as_str()).collect();
        assert_eq!(vnames, venues);
        for v in vs {
            assert!(v["liquidated_notional_mean"].as_f64().is_some());
            let ip = v["insolvency_probability"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&ip));
        }
        // Each venue's jurisdiction, and its open interest as the file gives it (the
        // generated positions add up to it only to rounding).
        for (v, (jurisdiction, oi)) in vs.iter().zip([("offshore", 1.0e9), ("eu", 2.0e8)]) {
            assert_eq!(v["jurisdiction"], jurisdiction);
            assert_eq!(v["open_interest"].as_f64(), Some(oi));
        }
        let js = p["jurisdictions"].as_array().expect("jurisdictions");
        assert!(js.iter().all(|j| j.get("jurisdiction").is_none()), "{js:?}");
    }
    // The stress liquidates something, so the statistics are not trivially zero.
    assert!(stat(&s, 0, "liquidated_notional", "max") > 0.0);
    let cs = s["comparisons"].as_array().expect("comparisons");
    assert_eq!(cs.len(), 1, "one comparison per policy after the baseline");
    assert_eq!(cs[0]["policy"], "harmonized");
    assert_eq!(cs[0]["baseline"], "fragmented");
    for metric in METRICS {
        let m = &cs[0]["metrics"][metric];
        assert!(m["mean_difference"].as_f64().is_some(), "{metric}");
        assert_eq!(m["ci95"].as_array().map(Vec::len), Some(2), "{metric}");
        assert!(
            m["relative"].is_f64() || m["relative"].is_null(),
            "{metric}"
        );
    }

    // paths.csv: `policy,path,` then the metrics; one row per policy and path.
    let (header, rows) = read_csv(&dir.join("paths.csv"));
    assert_eq!(&header[..2], ["policy", "path"]);
    for metric in METRICS {
        assert!(
            header.iter().any(|h| h == metric),
            "paths.csv lacks {metric}"
        );
    }
    assert_eq!(rows.len(), policies.len() * paths);
    for (r, row) in rows.iter().enumerate() {
        assert_eq!(row[0], policies[r / paths]);
        assert_eq!(row[1], (r % paths).to_string());
        for (h, cell) in header.iter().zip(row).skip(2) {
            finite_cell("paths.csv", h, cell);
        }
    }
    // The CSV agrees with the summary.
    let col = header
        .iter()
        .position(|h| h == "liquidated_notional")
        .unwrap();
    let max = rows[..paths]
        .iter()
        .map(|r| finite_cell("paths.csv", "liquidated_notional", &r[col]))
        .fold(f64::MIN, f64::max);
    let summary_max = stat(&s, 0, "liquidated_notional", "max");
    // serde_json's default float parser may be one ulp off; the values are the same number.
    assert!(
        (max - summary_max).abs() <= 1e-12 * summary_max.abs(),
        "paths.csv max {max} != summary.json max {summary_max}"
    );

    // timeline.csv: per policy and step, five quantiles of price and of liquidations.
    let (header, rows) = read_csv(&dir.join("timeline.csv"));
    assert_eq!(&header[..2], ["policy", "step"]);
    assert_eq!(header.len(), 2 + 2 * 5, "five quantiles of two series");
    assert_eq!(rows.len(), policies.len() * steps);
    for row in &rows {
        let values: Vec<f64> = header
            .iter()
            .zip(row)
            .skip(2)
            .map(|(h, c)| finite_cell("timeline.csv", h, c))
            .collect();
        for band in values.chunks(5) {
            assert!(
                band.windows(2).all(|w| w[0] <= w[1]),
                "timeline quantiles out of order: {row:?}"
            );
        }
    }

    // manifest.json
    let m = read_json(&dir.join("manifest.json"));
    assert_eq!(m["seed"], 11);
    assert_eq!(m["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m["paths"], paths);
    // Run as `tiny.toml`: recorded as typed, it named nothing outside this directory.
    let scenario = tmp.path().join("tiny.toml").canonicalize().unwrap();
    assert_eq!(m["scenario_path"], scenario.to_str().unwrap());
    assert!(
        m["scenario_sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit())),
        "scenario_sha256: {}",
        m["scenario_sha256"]
    );
    for key in ["started_at", "finished_at", "wall_seconds", "threads"] {
        assert!(!m[key].is_null(), "manifest lacks {key}");
    }
    // To the microsecond: `0.09030588800000001` was written.
    for key in ["wall_seconds", "simulation_seconds"] {
        let seconds = m[key].as_f64().unwrap();
        assert_eq!((seconds * 1e6).round() / 1e6, seconds, "{key}");
    }
    // A summary copied away from its directory still says what produced it.
    assert_eq!(s["scenario_sha256"], m["scenario_sha256"]);
    assert_eq!(s["cascade_version"], m["version"]);
}

// ---------------------------------------------------------------------------------------------
// 6. A market that never moves
// ---------------------------------------------------------------------------------------------

#[test]
fn a_market_without_volatility_or_stress_liquidates_nothing() {
    let tmp = scratch_with("calm.toml");
    run_ok(tmp.path(), "calm.toml", &["--out", "res"]);
    let dir = tmp.path().join("res");
    let s = read_json(&dir.join("summary.json"));
    for i in 0..2 {
        for metric in [
            "liquidated_notional",
            "liquidated_positions",
            "bad_debt",
            "unabsorbed_loss",
            "max_drawdown",
            "exogenous_drawdown",
            "cascade_rounds",
        ] {
            assert_eq!(
                stat(&s, i, metric, "max"),
                0.0,
                "policies[{i}].metrics.{metric}.max"
            );
        }
    }
    let (header, rows) = read_csv(&dir.join("timeline.csv"));
    for row in &rows {
        for (h, cell) in header.iter().zip(row).skip(2) {
            let v = finite_cell("timeline.csv", h, cell);
            if h.starts_with("liquidated") {
                assert_eq!(v, 0.0, "{h} in {row:?}");
            } else {
                // The price never leaves 50,000; the bands may be off by their bin width (0.5%).
                assert!((v / 50_000.0 - 1.0).abs() <= 0.005, "{h} = {v} in {row:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Position snapshots
// ---------------------------------------------------------------------------------------------

/// A scenario whose book is a CSV snapshot runs, and the `scenario.toml` it leaves in the result
/// directory (documented as "the resolved scenario that was run") can be validated and run again
/// from there: the snapshot path must not be left relative to the original scenario file.
#[test]
fn a_snapshot_scenario_runs_and_its_resolved_copy_runs_again() {
    let tmp = TempDir::new().unwrap();
    let scenario = fixture("snapshot.toml");
    run_ok(tmp.path(), &scenario, &["--out", "res"]);
    let s = read_json(&tmp.path().join("res/summary.json"));
    assert_eq!(s["policies"][0]["venues"][0]["name"], "snap");
    // The 20% stress takes the 5x and 8x longs of the snapshot past their triggers.
    assert!(stat(&s, 0, "liquidated_notional", "max") > 0.0);

    cascade(tmp.path(), &["validate", "res/scenario.toml"]).expect_code(0);
    run_ok(tmp.path(), "res/scenario.toml", &["--out", "again"]);
    assert_eq!(
        fs::read(tmp.path().join("res/paths.csv")).unwrap(),
        fs::read(tmp.path().join("again/paths.csv")).unwrap(),
        "re-running the resolved scenario gives other results"
    );
}

#[test]
fn the_manifest_is_written_last_and_its_end_time_covers_every_file() {
    // Its end time and wall seconds are the run's: they cover writing paths.csv and
    // paths.parquet (a second for a million paths), not only the simulation.
    let tmp = scratch_with("tiny.toml");
    run_ok(
        tmp.path(),
        "tiny.toml",
        &["--paths", "20000", "--parquet", "--out", "res"],
    );
    let dir = tmp.path().join("res");
    let modified = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
    let manifest = modified(&dir.join("manifest.json"));
    let m = read_json(&dir.join("manifest.json"));
    let finished = chrono::DateTime::parse_from_rfc3339(m["finished_at"].as_str().unwrap())
        .expect("finished_at is RFC 3339");
    for name in [
        "scenario.toml",
        "summary.json",
        "paths.csv",
        "timeline.csv",
        "paths.parquet",
    ] {
        let written = modified(&dir.join(name));
        assert!(
            written <= manifest,
            "{name} was written after manifest.json"
        );
        let written: chrono::DateTime<chrono::Utc> = written.into();
        assert!(
            written <= finished,
            "{name} written at {written}, after the manifest's finished_at {finished}"
        );
    }
    let started = chrono::DateTime::parse_from_rfc3339(m["started_at"].as_str().unwrap()).unwrap();
    let wall = m["wall_seconds"].as_f64().unwrap();
    let span = (finished - started).as_seconds_f64();
    assert!(
        (wall - span).abs() < 0.05,
        "wall_seconds {wall} against {span} s from started_at to finished_at"
    );
}

#[test]
fn force_replaces_a_result_whose_name_is_near_the_file_system_s_limit() {
    // The old result is moved aside under a short name of its own: a name built from the
    // target's went past 255 bytes and failed after the whole run.
    let tmp = scratch_with("tiny.toml");
    let name = "r".repeat(240);
    run_ok(tmp.path(), "tiny.toml", &["--paths", "5", "--out", &name]);
    run_ok(
        tmp.path(),
        "tiny.toml",
        &["--paths", "7", "--out", &name, "--force", "--no-report"],
    );
    let m = read_json(&tmp.path().join(&name).join("manifest.json"));
    assert_eq!(m["paths"], 7);
    assert_eq!(entries(tmp.path()).len(), 2, "{:?}", entries(tmp.path()));
}

#[test]
fn an_interrupted_run_leaves_no_result_directory() {
    // Ctrl-C (SIGINT), SIGTERM (SLURM's scancel and time limits) and SIGHUP stop the run
    // between batches and remove its temporary directory, and the folders made for it.
    for signal in ["-INT", "-TERM", "-HUP"] {
        let tmp = TempDir::new().unwrap();
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
        let (code, stderr) = support::interrupted(
            tmp.path(),
            &[
                "run",
                scenario.to_str().unwrap(),
                "--paths",
                "2000000",
                "--out",
                "made/for/res",
                "--no-report",
            ],
            signal,
        );
        assert_eq!(code, 1, "{signal}: {stderr}");
        assert!(stderr.contains("interrupted"), "{signal}: {stderr}");
        let left: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "{signal}: nothing may be left behind: {left:?}"
        );
    }
}

#[test]
fn a_run_removes_what_a_killed_run_of_this_machine_left_behind() {
    // SIGKILL (the OOM killer) during the write leaves `.cascade-partial-<pid>@<host>@...`;
    // the next run beside it removes it once that process is gone, and nothing else.
    let Some(host) = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
    else {
        eprintln!("SKIPPED: no /proc/sys/kernel/hostname, so no host to tell directories apart");
        return;
    };
    let tmp = scratch_with("tiny.toml");
    // A pid above the kernel's limit (4194304 at most) belongs to no process.
    let dead = format!(".cascade-partial-4999999@{host}@abc");
    let live = format!(".cascade-partial-{}@{host}@abc", std::process::id());
    let other = ".cascade-partial-4999999@another-node@abc".to_string();
    let unnamed = ".cascade-partial-xyz".to_string();
    // A run in a container of this machine: its pid is not this namespace's to see, but it
    // holds its directory locked while it writes.
    let contained = format!(".cascade-partial-4999998@{host}@abc");
    for d in [&dead, &live, &other, &unnamed, &contained] {
        fs::create_dir(tmp.path().join(d)).unwrap();
        fs::write(tmp.path().join(d).join("paths.csv"), "half").unwrap();
    }
    let writing = fs::File::open(tmp.path().join(&contained)).unwrap();
    writing.lock().unwrap();
    let run_beside = |force: &[&str]| {
        let run = [
            "run",
            "tiny.toml",
            "--paths",
            "5",
            "--out",
            "res",
            "--no-report",
        ];
        cascade(tmp.path(), &[&run[..], force].concat()).expect_code(0);
    };
    run_beside(&[]);
    assert!(
        !tmp.path().join(&dead).exists(),
        "abandoned by a dead process"
    );
    for kept in [&live, &other, &unnamed, &contained] {
        assert!(tmp.path().join(kept).exists(), "{kept} must be left alone");
    }
    // Once its writer is gone (and with it the lock), it is abandoned too.
    drop(writing);
    run_beside(&["--force"]);
    assert!(
        !tmp.path().join(&contained).exists(),
        "abandoned once unlocked"
    );
}

#[test]
fn sizes_no_machine_can_hold_are_bad_input_before_anything_runs() {
    // Valid numbers, impossible runs: each would end in an allocation failure or the
    // out-of-memory killer; instead they fail at once with exit code 2 and say why.
    let tmp = TempDir::new().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    let s = scenario.to_str().unwrap();
    let validate_sized = [
        "validate",
        s,
        "--set",
        "simulation.steps=100000",
        "--set",
        "simulation.paths=100000",
    ];
    for (args, expect) in [
        (
            vec!["run", s, "--paths", "1000000000000", "--out", "r/x"],
            "per-path results",
        ),
        (
            vec![
                "run",
                s,
                "--set",
                "simulation.steps=1000000000",
                "--out",
                "r/x",
            ],
            "step histograms",
        ),
        (
            vec![
                "run",
                s,
                "--set",
                "venues.0.book.positions=4000000000",
                "--out",
                "r/x",
            ],
            "books",
        ),
        // Partial liquidation cuts each position into a tranche per slice: at 1% a side of
        // 40 million positions is 4 billion tranches (would fit as one tranche each).
        (
            vec![
                "run",
                s,
                "--set",
                "venues.1.partial_fraction=0.01",
                "--set",
                "venues.1.book.positions=40000000",
                "--out",
                "r/x",
            ],
            "books",
        ),
        // Cohorts opening during the horizon are books too.
        (
            vec![
                "run",
                s,
                "--set",
                "venues.0.opening={levels=[0.05,0.1],notional=1e8,positions=4000000000,\
                 long_leverage={median=4.5,dispersion=0.6},\
                 short_leverage={median=4.5,dispersion=0.6}}",
                "--out",
                "r/x",
            ],
            "books",
        ),
        (
            vec![
                "sweep",
                s,
                "--set",
                "liquidity.routing=0..1:1000000000",
                "--out",
                "r/x",
            ],
            "at most 10000",
        ),
        (
            vec![
                "sweep",
                s,
                "--set",
                "liquidity.routing=0..1:100",
                "--set",
                "price.annual_volatility=0.1..1:100",
                "--set",
                "venues.0.depth_1pct=1e6..1e8:100",
                "--out",
                "r/x",
            ],
            "1000000 cells",
        ),
        // validate refuses what `run` of the scenario would, printing nothing resolved.
        (
            vec!["validate", s, "--set", "simulation.steps=1000000000"],
            "step histograms",
        ),
        // ... with the threads `run` will use: 1,024 of them hold 1,024 sets of histograms
        // (the same scenario on one thread passes, below).
        (
            [&validate_sized[..], &["--threads", "1024"]].concat(),
            "a set per thread",
        ),
    ] {
        let out = cascade(tmp.path(), &args);
        out.expect_code(2);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        assert!(
            out.stderr.contains(expect),
            "{args:?}: expected {expect:?} in {}",
            out.stderr
        );
        // Not even the folders the result would have gone into.
        assert!(!tmp.path().join("r").exists(), "{args:?} created r");
    }
    let one_thread = [&validate_sized[..], &["--threads", "1"]].concat();
    cascade(tmp.path(), &one_thread).expect_code(0);
    // A study too large for one machine is checked shard by shard, as a job array runs it
    // (cluster/slurm/submit.sh): its per-path results are refused whole, and one of a million
    // shards passes.
    let split = ["validate", s, "--set", "simulation.paths=1000000000000"];
    // Naming the file and the key that sets each part: the message named neither.
    cascade(tmp.path(), &split).expect_code(2).expect_stderr(&[
        "quickstart.toml: this would hold about",
        "(1000000000000 paths x 1 policy; simulation.paths)",
        "; simulation.steps)",
        "; venues[i].book.positions or positions_csv, opening.positions and partial_fraction)",
    ]);
    cascade(
        tmp.path(),
        &[&split[..], &["--shard", "1000000/1000000"]].concat(),
    )
    .expect_code(0);
}

#[test]
fn a_study_is_checked_against_the_memory_its_job_was_given() {
    // A SLURM task given 4G on a node of 256 GB is killed when it passes 4G: the check reads
    // the job's share (and its control group's), not the node's. 500,000 paths of the
    // quickstart hold about 200 MB of per-path results.
    let tmp = TempDir::new().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    let s = scenario.to_str().unwrap();
    let run = ["run", s, "--paths", "500000", "--out", "r/x", "--quiet"];
    for vars in [
        [
            ("SLURMD_NODENAME", "node1"),
            ("SLURM_MEM_PER_NODE", "64"),
            ("SLURM_CPUS_ON_NODE", "2"),
        ],
        [
            ("SLURMD_NODENAME", "node1"),
            ("SLURM_MEM_PER_CPU", "32"),
            ("SLURM_CPUS_ON_NODE", "2"),
        ],
    ] {
        cascade_with(tmp.path(), &vars, &run)
            .expect_code(2)
            .expect_stderr(&["64 MiB this SLURM job was given", "per-path results"]);
        assert!(!tmp.path().join("r").exists(), "{vars:?} created r");
    }
    // submit.sh checks a task against its --mem before it queues anything.
    let validate = ["validate", s, "--set", "simulation.paths=500000"];
    for (memory, code) in [("64M", 2), ("65536K", 2), ("1G", 0), ("4096", 0)] {
        let out = cascade(tmp.path(), &[&validate[..], &["--memory", memory]].concat());
        out.expect_code(code);
        if code == 2 {
            out.expect_stderr(&["64 MiB given by --memory"]);
        }
    }
    // Below a MiB the limit is said in KiB: "the 0 MiB given by --memory" said nothing.
    cascade(tmp.path(), &[&validate[..], &["--memory", "1K"]].concat())
        .expect_code(2)
        .expect_stderr(&["more than the 1 KiB given by --memory"]);
    for bad in ["0", "4X", "-1G", "1.5G"] {
        cascade(tmp.path(), &[&validate[..], &["--memory", bad]].concat())
            .expect_code(2)
            .expect_stderr(&["--memory", "as 4G or 500M"]);
    }
}

#[test]
fn every_command_that_simulates_or_merges_takes_the_memory_it_may_use() {
    // `--memory` replaces what the process reads of its limits, for the commands that hold a
    // study as for `validate`: a job whose control group is not where the check looks, or a
    // shared machine where a study should leave room for others.
    let tmp = TempDir::new().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    let s = scenario.to_str().unwrap();
    let small = ["--paths", "200", "--seed", "3", "--quiet"];
    let refused = |args: &[&str]| {
        cascade(
            tmp.path(),
            &[args, &small[..], &["--memory", "1M"]].concat(),
        )
        .expect_code(2)
        .expect_stderr(&["1 MiB given by --memory"]);
        assert!(!tmp.path().join("r").exists(), "{args:?} created r");
    };
    refused(&["run", s, "--out", "r/run"]);
    refused(&[
        "sweep",
        s,
        "--set",
        "liquidity.routing=0,0.5",
        "--out",
        "r/sweep",
    ]);
    refused(&[
        "calibrate",
        s,
        "--target",
        "max_drawdown=0.1",
        "--out",
        "r/calibrated.toml",
    ]);
    // A job given 1 MiB refuses everything; a larger --memory overrides what it was given.
    let starved = [("SLURMD_NODENAME", "node1"), ("SLURM_MEM_PER_NODE", "1")];
    let shard = |k: &str, out: &str, extra: &[&str]| {
        let args = [
            &["run", s, "--shard", k, "--out", out, "--no-report"][..],
            &small,
            extra,
        ];
        cascade_with(tmp.path(), &starved, &args.concat())
    };
    shard("1/2", "a", &[])
        .expect_code(2)
        .expect_stderr(&["1 MiB this SLURM job was given"]);
    shard("1/2", "a", &["--memory", "1G"]).expect_code(0);
    shard("2/2", "b", &["--memory", "1G"]).expect_code(0);
    let merge = ["merge", "a", "b", "--out", "r/merged", "--no-report"];
    cascade(tmp.path(), &[&merge[..], &["--memory", "1M"]].concat())
        .expect_code(2)
        .expect_stderr(&["1 MiB given by --memory", "Merge with more memory"]);
    assert!(!tmp.path().join("r").exists(), "a refused merge created r");
    cascade_with(tmp.path(), &starved, &merge)
        .expect_code(2)
        .expect_stderr(&["1 MiB this SLURM job was given"]);
    cascade_with(
        tmp.path(),
        &starved,
        &[&merge[..], &["--memory", "1G"]].concat(),
    )
    .expect_code(0);
    assert!(tmp.path().join("r/merged/summary.json").is_file());
}

#[test]
fn override_and_type_errors_do_not_hide_the_other_problems() {
    // A --set into a list entry that does not exist, a value of the wrong type and a value out
    // of range: all three reported at once, each with its key path.
    let tmp = TempDir::new().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    let args = [
        "validate",
        scenario.to_str().unwrap(),
        "--set",
        "venues.7.name=x",
        "--set",
        "simulation.paths=abc",
        "--set",
        "liquidity.routing=5",
    ];
    let out = cascade(tmp.path(), &args);
    out.expect_code(2);
    for path in ["venues[7].name", "simulation.paths", "liquidity.routing"] {
        assert!(
            out.stderr.contains(path),
            "{path} missing from {}",
            out.stderr
        );
    }
}
