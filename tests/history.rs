//! The shipped scenarios and the validation table: every scenario in `scenarios/` (history
//! included) validates and runs, and `VALIDATION.md` is exactly what `cascade backtest` gives
//! with the code as it is, so the table can never silently describe an older model.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::support::cascade;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `*.toml` under `dir`, recursively, in name order.
fn scenarios(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(scenarios(&p));
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn every_shipped_scenario_validates_and_runs() {
    let all = scenarios(&repo().join("scenarios"));
    assert!(
        all.len() >= 7,
        "expected the shipped scenarios, found {all:?}"
    );
    let tmp = TempDir::new().unwrap();
    for (i, s) in all.iter().enumerate() {
        let file = s.to_str().unwrap();
        let (code, _, err) = cascade(tmp.path(), &["validate", file]);
        assert_eq!(code, 0, "{file}: {err}");
        let out = format!("run-{i}");
        let (code, _, err) = cascade(
            tmp.path(),
            &[
                "run",
                file,
                "--paths",
                "16",
                "--out",
                &out,
                "--quiet",
                "--no-report",
            ],
        );
        assert_eq!(code, 0, "{file}: {err}");
        assert!(tmp.path().join(&out).join("summary.json").is_file());
    }
}

#[test]
fn the_validation_table_is_what_the_backtest_gives_now() {
    let tmp = TempDir::new().unwrap();
    let out = tmp.path().join("VALIDATION.md");
    // The same command line the table records, run from the repository.
    let (code, _, err) = cascade(
        &repo(),
        &[
            "backtest",
            "scenarios/history",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let fresh = fs::read_to_string(&out)
        .unwrap()
        .replace(out.to_str().unwrap(), "VALIDATION.md");
    let committed = fs::read_to_string(repo().join("VALIDATION.md")).unwrap();
    // The command it records writes the table again where it already is.
    assert!(
        fresh.contains("`cascade backtest scenarios/history --out VALIDATION.md --force`"),
        "{fresh}"
    );
    assert!(
        fresh == committed,
        "VALIDATION.md is out of date: regenerate it with \
         `cargo run --release -- backtest scenarios/history --out VALIDATION.md --force`"
    );
}
