//! `cascade calibrate`: the root search recovers a known stress size, the calibrated file
//! reproduces the target median, and bad requests fail with exit code 2 before any damage.

use std::fs;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

/// One venue, linear impact, low volatility: the median drawdown rises with the stress drop,
/// with a cascade on top of it.
const SYNTHETIC: &str = r#"
name = "synthetic"

[simulation]
paths = 21
steps = 200
seed = 7

[price]
start = 100.0
annual_volatility = 0.2

[price.stress]
drop = 0.05
start_step = 20
duration_steps = 20

[liquidity]
impact = "linear"
shared_depth_1pct = 50_000_000.0

[[venues]]
name = "solo"
jurisdiction = "x"
initial_margin = 0.05
maintenance_margin = 0.025
insurance_fund = 1.0e6
depth_1pct = 10_000_000.0
open_interest = 2.0e8

[venues.book]
positions = 200
"#;

/// Runs the binary in `dir`; returns (exit code, stdout, stderr).
fn cascade(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
}

fn setup() -> TempDir {
    let tmp = TempDir::new().unwrap();
    fs::write(tmp.path().join("synthetic.toml"), SYNTHETIC).unwrap();
    tmp
}

/// Median max drawdown of the baseline in a result directory.
fn median_drawdown(dir: &Path) -> f64 {
    let text = fs::read_to_string(dir.join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    summary["policies"][0]["metrics"]["max_drawdown"]["p50"]
        .as_f64()
        .unwrap()
}

#[test]
fn calibration_recovers_a_known_stress_drop_within_one_percent() {
    let tmp = setup();
    let d = tmp.path();
    let truth = 0.12;
    let (code, _, err) = cascade(
        d,
        &[
            "run",
            "synthetic.toml",
            "--set",
            &format!("price.stress.drop={truth}"),
            "--out",
            "truth",
            "--quiet",
            "--no-report",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let target = median_drawdown(&d.join("truth"));
    assert!(target > truth, "the cascade amplifies the drop: {target}");

    // The file's own drop (0.05) is far from the truth: the search must find it.
    let (code, out, err) = cascade(
        d,
        &[
            "calibrate",
            "synthetic.toml",
            "--target",
            &format!("max_drawdown={target}"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("evaluation  1: price.stress.drop"), "{err}");
    let found: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("price.stress.drop = "))
        .unwrap_or_else(|| panic!("no value printed: {out}"))
        .parse()
        .unwrap();
    let error = (found - truth).abs() / truth;
    assert!(
        error < 0.01,
        "recovered {found}, truth {truth}: {:.3}% off",
        100.0 * error
    );

    // The calibrated scenario is written beside the input, validates, and reproduces the target.
    let written = d.join("synthetic.calibrated.toml");
    assert!(written.exists(), "{out}");
    let (code, _, err) = cascade(d, &["validate", "synthetic.calibrated.toml"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cascade(
        d,
        &[
            "run",
            "synthetic.calibrated.toml",
            "--out",
            "calibrated",
            "--quiet",
            "--no-report",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let achieved = median_drawdown(&d.join("calibrated"));
    assert!(
        (achieved - target).abs() <= 1e-3 * target,
        "the calibrated file gives {achieved}, target {target}"
    );

    // Without --force the written file is never replaced.
    let before = fs::read(&written).unwrap();
    let (code, _, err) = cascade(
        d,
        &[
            "calibrate",
            "synthetic.toml",
            "--target",
            "max_drawdown=0.2",
            "--quiet",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(fs::read(&written).unwrap(), before);
}

#[test]
fn calibration_refuses_what_it_cannot_do() {
    let tmp = setup();
    let d = tmp.path();
    let fails = |args: &[&str], needle: &str| {
        let mut all = vec!["calibrate", "synthetic.toml", "--quiet", "--out", "c.toml"];
        all.extend_from_slice(args);
        let (code, _, err) = cascade(d, &all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected `{needle}` in {err}"
        );
        assert!(!d.join("c.toml").exists(), "{args:?} wrote a file");
    };
    // Unknown metric: the error lists the valid names.
    fails(&["--target", "drawdown=0.1"], "max_drawdown");
    // Beyond what the bracket reaches (a 95% drop gives about 95%): the range is named.
    fails(
        &["--target", "max_drawdown=0.99"],
        "outside what the bracket reaches",
    );
    fails(
        &[
            "--target",
            "max_drawdown=0.3",
            "--bracket",
            "0.0,0.1",
            "--paths",
            "5",
        ],
        "outside",
    );
    // Another key needs a bracket; a policy must exist; a target must be a number.
    fails(
        &["--target", "max_drawdown=0.1", "--key", "liquidity.routing"],
        "--bracket",
    );
    fails(
        &["--target", "max_drawdown=0.1", "--policy", "nope"],
        "baseline",
    );
    fails(&["--target", "max_drawdown=lots"], "not a number");
    fails(
        &[
            "--target",
            "max_drawdown=0.1",
            "--key",
            "simulation.steps",
            "--bracket",
            "1,2",
        ],
        "real-valued",
    );
}
