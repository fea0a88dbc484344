//! `cascade calibrate` and `cascade backtest`: the root search recovers a known stress size,
//! the calibrated file reproduces the target median, a backtest of an episode the model made
//! itself finds its shock and matches it, and bad requests fail with exit code 2 before any
//! damage.

use std::fs;
use std::path::Path;

use tempfile::TempDir;

use crate::support::cascade;

/// One venue, linear impact, low volatility: the median drawdown rises with the stress drop,
/// with a cascade on top of it.
const SYNTHETIC: &str = r#"
# One venue whose stress drop the search must recover (source: this test).
name = "synthetic"

[simulation]
paths = 21
steps = 200
seed = 7

[price]
start = 100.0
annual_volatility = 0.2

[price.stress]
drop = 0.05                 # a first guess, far from the truth
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
    // It is the source as written, comments and citations kept, with the value found in place
    // and a header saying how it was found; the comment of the value found says it was
    // calibrated and what it was, for it described the old value.
    let text = fs::read_to_string(&written).unwrap();
    assert!(
        text.starts_with(&format!(
            "# Calibrated by cascade {}: price.stress.drop = {found}\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains("(source: this test)"), "{text}");
    assert!(
        text.contains(&format!(
            "drop = {found}                 # calibrated; was 0.05: a first guess, far from \
             the truth\n"
        )),
        "{text}"
    );
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
    // Unknown metric: the error lists the valid names, and the nearest first.
    fails(
        &["--target", "max_drawdon=0.1"],
        "unknown metric `max_drawdon`; did you mean `max_drawdown`? valid metrics: liquidated_notional,",
    );
    // A share written as a percentage is refused before any simulation, with the share.
    fails(
        &["--target", "max_drawdown=13"],
        "--target max_drawdown=13: max_drawdown is a share from 0 to 1 (0.13 is 13%); did you \
         mean max_drawdown=0.13?",
    );
    // Beyond what the bracket reaches (a 95% drop gives about 95%): the range is named, and
    // the default bracket, every drop there is, is not offered for widening (a narrower one
    // can still help a metric that is not monotone in the key).
    fails(
        &["--target", "max_drawdown=0.99"],
        "is not between the medians at the bracket's ends",
    );
    let (_, _, err) = cascade(
        d,
        &[
            "calibrate",
            "synthetic.toml",
            "--target",
            "max_drawdown=0.99",
        ],
    );
    assert!(err.contains("choose another target"), "{err}");
    assert!(err.contains("a narrower one can"), "{err}");
    assert!(!err.contains("wider"), "{err}");
    fails(
        &[
            "--target",
            "max_drawdown=0.3",
            "--bracket",
            "0.0,0.1",
            "--paths",
            "5",
        ],
        "(--bracket LO,HI: wider, or narrower where the metric is not monotone in the key)",
    );
    // A stress the scenario does not have would be invented, with timing nobody chose.
    let calm = SYNTHETIC.replace(
        "[price.stress]\ndrop = 0.05                 # a first guess, far from the truth\n\
         start_step = 20\nduration_steps = 20\n",
        "",
    );
    assert!(!calm.contains("stress]"));
    fs::write(d.join("calm.toml"), calm).unwrap();
    let (code, _, err) = cascade(
        d,
        &[
            "calibrate",
            "calm.toml",
            "--target",
            "max_drawdown=0.1",
            "--out",
            "c.toml",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the scenario has no `price.stress`; add it"),
        "{err}"
    );
    assert!(!d.join("c.toml").exists());
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
    // A key the scenario cannot have is the --key's fault, named with the nearest valid key,
    // not the bracket's (whose ends were the first loads to meet it).
    let key_fails = |key: &str, needle: &str| {
        let args = [
            "--target",
            "max_drawdown=0.1",
            "--bracket",
            "0.5,1",
            "--key",
            key,
        ];
        fails(&args, &format!("--key {key}: {needle}"));
    };
    key_fails(
        "venues.0.depth_1pc",
        "unknown key `depth_1pc`; did you mean `depth_1pct`?",
    );
    key_fails(
        "price.stres.drop",
        "unknown key `stres`; did you mean `stress`?",
    );
    key_fails(
        "venues.1.depth_1pct",
        "index 1 is out of range: `venues` has 1 entry",
    );
    key_fails(
        "venues.x.depth_1pct",
        "`x` is not an index: `venues` is a list of 1 entry",
    );
    key_fails("venues.00.depth_1pct", "write the index `00` as 0");
    key_fails(
        "price.start.x",
        "`price.start` is a value, not a table, so it has no `x`",
    );
    // A directory is no file to write, --force or not (without it, the refusal was "already
    // exists; pass --force", which only led to this one).
    fs::create_dir(d.join("adir")).unwrap();
    for force in [&[][..], &["--force"]] {
        let args = [
            &[
                "calibrate",
                "synthetic.toml",
                "--target",
                "max_drawdown=0.1",
            ][..],
            force,
            &["--out", "adir"],
        ]
        .concat();
        let (code, _, err) = cascade(d, &args);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--out adir is a directory"), "{err}");
    }
    // Nor is a FIFO (or a device: the file renamed over it replaced /dev/null for root), and
    // --force never replaces the scenario being calibrated.
    #[cfg(unix)]
    {
        let made = std::process::Command::new("mkfifo")
            .arg(d.join("fifo"))
            .status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let scenario = fs::read(d.join("synthetic.toml")).unwrap();
        for (out, needle) in [
            ("fifo", "fifo is a device, FIFO or socket, not a file"),
            (
                "./synthetic.toml",
                "--out ./synthetic.toml is the scenario being calibrated",
            ),
        ] {
            let args = [
                "calibrate",
                "synthetic.toml",
                "--target",
                "max_drawdown=0.1",
                "--force",
                "--out",
                out,
            ];
            let (code, _, err) = cascade(d, &args);
            assert_eq!(code, 2, "{err}");
            assert!(err.contains(needle), "{err}");
        }
        let fifo = fs::symlink_metadata(d.join("fifo")).unwrap();
        assert!(!fifo.is_file(), "the FIFO was replaced");
        assert_eq!(fs::read(d.join("synthetic.toml")).unwrap(), scenario);
    }
    fails(
        &[
            "--target",
            "max_drawdown=0.1",
            "--key",
            "simulation.steps",
            "--bracket",
            "1,2",
        ],
        "--key simulation.steps: it holds an integer, not a real number",
    );
    // The key's type is its fault before the --paths that also sets it is (that refusal
    // named a --set the command line did not have).
    fails(
        &[
            "--target",
            "max_drawdown=0.1",
            "--key",
            "simulation.paths",
            "--paths",
            "8",
            "--bracket",
            "1,2",
        ],
        "--key simulation.paths: it holds an integer, not a real number",
    );
    key_fails("venues.0", "it holds a table, not a real number");
    key_fails(
        "observed.price_drop",
        "`[observed]` holds the outcomes a backtest compares with",
    );
    key_fails("venues.0.adl", "it holds true or false, not a real number");
    // A --set of the key searched (or of its table) would be overwritten by every evaluation
    // while the file's header still listed it.
    for set in ["price.stress.drop=0.1", "price.stress={drop = 0.1}"] {
        fails(
            &["--target", "max_drawdown=0.1", "--set", set],
            "the search sets `price.stress.drop` itself",
        );
    }
    // A key that only begins like it is another key (refused as unknown, not as searched).
    let (code, _, err) = cascade(
        d,
        &[
            "calibrate",
            "synthetic.toml",
            "--target",
            "max_drawdown=0.1",
            "--set",
            "price.stress.drop_extra=1",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("drop_extra") && !err.contains("the search sets"),
        "{err}"
    );
}

#[test]
fn a_policy_lever_is_searched_on_that_policy_and_written_into_it() {
    // The search simulates the baseline and the searched policy only, so `policies.2` there
    // is the second entry of a shorter list. It was once set as written: refused as out of
    // range, and `policies.1` calibrated p2 but wrote the value into p1's cap.
    let tmp = setup();
    let d = tmp.path();
    let policies = "\n[[policies]]\nname = \"base\"\n\n[[policies]]\nname = \"p1\"\ncooperating = [\"x\"]\nleverage_cap = 3.0\n\n[[policies]]\nname = \"p2\"\ncooperating = [\"x\"]\nleverage_cap = 10.0\n";
    fs::write(d.join("pol.toml"), format!("{SYNTHETIC}{policies}")).unwrap();
    let search = |key: &str| {
        cascade(
            d,
            &[
                "calibrate",
                "pol.toml",
                "--quiet",
                "--target",
                "max_drawdown=0.056",
                "--policy",
                "p2",
                "--key",
                key,
                "--bracket",
                "2,20",
                "--out",
                "c.toml",
            ],
        )
    };
    // Written as error messages and --set write keys too (it read as a table `policies[1]`
    // the scenario did not have).
    for key in ["policies.1.leverage_cap", "policies[1].leverage_cap"] {
        let (code, _, err) = search(key);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--policy p1"), "{key}: {err}");
        assert!(!d.join("c.toml").exists());
    }

    let (code, out, err) = search("policies.2.leverage_cap");
    assert_eq!(code, 0, "{err}");
    let reported = number_after(&out, "median max_drawdown = ");
    let (code, _, err) = cascade(
        d,
        &["run", "c.toml", "--quiet", "--no-report", "--out", "r"],
    );
    assert_eq!(code, 0, "{err}");
    let text = fs::read_to_string(d.join("r/summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    let p2 = &summary["policies"][2];
    assert_eq!(p2["name"], "p2");
    assert_eq!(
        p2["metrics"]["max_drawdown"]["p50"].as_f64(),
        Some(reported)
    );
}

/// The number printed right after the first `label` in `out`.
fn number_after(out: &str, label: &str) -> f64 {
    out.split(label)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{label}` in {out}"))
}

/// The baseline's median of `metric` in a result directory.
fn median(dir: &Path, metric: &str) -> f64 {
    let text = fs::read_to_string(dir.join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    summary["policies"][0]["metrics"][metric]["p50"]
        .as_f64()
        .unwrap()
}

/// The verdict column of the row labelled `label` in a validation table.
fn verdict<'a>(table: &'a str, label: &str) -> &'a str {
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("| {label} |")))
        .unwrap_or_else(|| panic!("no row `{label}` in\n{table}"));
    row.trim_end_matches(" |").rsplit(" | ").next().unwrap()
}

#[test]
fn a_backtest_of_an_episode_the_model_made_recovers_the_shock_and_matches_it() {
    let tmp = setup();
    let d = tmp.path();
    // The "history": what the model gives with a stress drop of 8%.
    let (code, _, err) = cascade(
        d,
        &[
            "run",
            "synthetic.toml",
            "--set",
            "price.stress.drop=0.08",
            "--out",
            "truth",
            "--quiet",
            "--no-report",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let truth = d.join("truth");
    // One observation the model cannot reach, to see a miss reported as one.
    let episode = format!(
        "{SYNTHETIC}\n[observed]\nprice_drop = {}\nliquidated_notional = {}\nopen_interest_lost = {}\ninsurance_fund_drawn = 1.0e12\nnotes = \"made by the model itself\"\n",
        median(&truth, "max_drawdown"),
        median(&truth, "liquidated_value"),
        median(&truth, "open_interest_lost"),
    );
    fs::write(d.join("episode.toml"), episode).unwrap();

    let (code, out, err) = cascade(d, &["backtest", "episode.toml", "--out", "V.md", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let shock = number_after(&out, "shock ");
    assert!(
        (shock - 0.08).abs() <= 0.01 * 0.08,
        "shock {shock}, not 0.08"
    );
    let table = fs::read_to_string(d.join("V.md")).unwrap();
    assert_eq!(verdict(&table, "liquidated value"), "within");
    assert_eq!(verdict(&table, "open interest lost"), "within");
    assert_eq!(
        verdict(&table, "insurance funds drawn"),
        "**model too low**"
    );
    assert!(table.contains("- *insurance funds drawn*: the model simulates less"));
    assert!(table.contains("made by the model itself"));

    // An existing table is kept unless --force; regenerating gives it byte for byte.
    let (code, _, err) = cascade(d, &["backtest", "episode.toml", "--out", "V.md", "--quiet"]);
    assert_eq!(code, 2);
    assert!(err.contains("--force"), "{err}");
    let (code, _, err) = cascade(
        d,
        &[
            "backtest",
            "episode.toml",
            "--out",
            "V.md",
            "--quiet",
            "--force",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::read_to_string(d.join("V.md")).unwrap(), table);
}

#[test]
fn a_backtest_needs_an_observed_table() {
    let tmp = setup();
    let refused = |args: &[&str], needles: &[&str]| {
        let (code, _, err) = cascade(tmp.path(), args);
        assert_eq!(code, 2, "{args:?}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: no `{needle}` in {err}");
        }
        assert!(!tmp.path().join("V.md").exists(), "{args:?} wrote V.md");
    };
    refused(
        &["backtest", "synthetic.toml", "--out", "V.md", "--quiet"],
        &["synthetic.toml", "[observed]"],
    );
    // The folder made for the table before the episodes were read goes again.
    refused(
        &["backtest", "synthetic.toml", "--out", "new/V.md", "--quiet"],
        &["synthetic.toml", "[observed]"],
    );
    assert!(
        !tmp.path().join("new").exists(),
        "a refused backtest made new/"
    );
    // Something that exists but is no file is not said to be missing.
    #[cfg(unix)]
    refused(
        &["backtest", "/dev/null", "--out", "V.md"],
        &["/dev/null: not a scenario file or a folder of them"],
    );
    // --force replaces a table, never an episode the backtest reads.
    let episode = fs::read_to_string(tmp.path().join("synthetic.toml")).unwrap();
    refused(
        &["backtest", ".", "--out", "./synthetic.toml", "--force"],
        &["--out ./synthetic.toml is the episode"],
    );
    assert_eq!(
        fs::read_to_string(tmp.path().join("synthetic.toml")).unwrap(),
        episode
    );
    // The backtest calibrates the stress's drop: a --set of it would be dropped.
    refused(
        &[
            "backtest",
            "synthetic.toml",
            "--out",
            "V.md",
            "--set",
            "price.stress.drop=0.2",
        ],
        &[
            "the search sets `price.stress.drop`",
            "fits to the observed drop",
        ],
    );
    // Flags of result directories mean nothing here and are refused, not ignored.
    refused(
        &["backtest", "synthetic.toml", "--out", "V.md", "--parquet"],
        &["--parquet"],
    );
    refused(
        &[
            "calibrate",
            "synthetic.toml",
            "--target",
            "max_drawdown=0.1",
            "--no-report",
        ],
        &["--no-report"],
    );
}

#[test]
fn an_unusable_out_is_bad_input_before_anything_runs() {
    // A folder where a file is to be written, or a path under a file, fails at once with
    // exit code 2, before a single path is simulated (so no "calibrating" progress line).
    let tmp = setup();
    let d = tmp.path();
    fs::create_dir(d.join("folder")).unwrap();
    fs::write(d.join("plain"), "").unwrap();
    let calibrate = |out: &'static str| {
        let target = ["--target", "max_drawdown=0.1"];
        [
            &["calibrate", "synthetic.toml"][..],
            &target,
            &["--out", out, "--force"],
        ]
        .concat()
    };
    for args in [
        calibrate("folder"),
        vec!["backtest", "synthetic.toml", "--out", "folder", "--force"],
        calibrate("plain/c.toml"),
        vec!["run", "synthetic.toml", "--out", "plain/r"],
    ] {
        let (code, _, err) = cascade(d, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("folder") || err.contains("plain"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("calibrating"), "{args:?} ran first: {err}");
    }
    // A symbolic link, dangling or not, is named rather than replaced by a file (which left
    // what it pointed at as it was, or took the place of a name that existed).
    #[cfg(unix)]
    for (link, to) in [("dangling.md", "nowhere.md"), ("linked.md", "plain")] {
        std::os::unix::fs::symlink(to, d.join(link)).unwrap();
        for args in [
            vec!["backtest", "synthetic.toml", "--out", link, "--force"],
            [
                &[
                    "calibrate",
                    "synthetic.toml",
                    "--target",
                    "max_drawdown=0.1",
                ][..],
                &["--out", link, "--force"],
            ]
            .concat(),
        ] {
            let (code, _, err) = cascade(d, &args);
            assert_eq!(code, 2, "{args:?}: {err}");
            let named = format!("--out {link} is a symbolic link (to {to}); give the file");
            assert!(err.contains(&named), "{args:?}: {err}");
            let still = fs::read_link(d.join(link)).unwrap();
            assert_eq!(still, Path::new(to), "{args:?} replaced the link");
        }
    }
    // Among several episodes, a problem names the episode it belongs to.
    let episode = format!("{SYNTHETIC}\n[observed]\nprice_drop = 0.99\n");
    fs::write(d.join("unreachable.toml"), episode).unwrap();
    let (code, _, err) = cascade(
        d,
        &[
            "backtest",
            "unreachable.toml",
            "--out",
            "V.md",
            "--quiet",
            "--paths",
            "5",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unreachable.toml:") && err.contains("observed.price_drop"),
        "{err}"
    );
}

#[test]
fn a_backtest_checks_every_episode_before_it_runs_one() {
    // A good episode first and a bad one after it: the bad one used to be found only once
    // the good one had been calibrated in full.
    let tmp = setup();
    let d = tmp.path();
    fs::create_dir(d.join("history")).unwrap();
    let good = format!("{SYNTHETIC}\n[observed]\nprice_drop = 0.1\n");
    fs::write(d.join("history/a-good.toml"), good).unwrap();
    fs::write(d.join("history/b-bad.toml"), SYNTHETIC).unwrap();
    let (code, _, err) = cascade(d, &["backtest", "history", "--out", "V.md", "--paths", "5"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("b-bad.toml") && err.contains("[observed]"),
        "{err}"
    );
    assert!(!err.contains("calibrating"), "an episode ran first: {err}");
    assert!(!d.join("V.md").exists());

    // One episode named twice, by itself or through its folder, would be run twice.
    fs::remove_file(d.join("history/b-bad.toml")).unwrap();
    for args in [
        &["history/a-good.toml", "history/a-good.toml"][..],
        &["history", "./history/a-good.toml"][..],
    ] {
        let all = [&["backtest"][..], args, &["--out", "V.md", "--paths", "5"]].concat();
        let (code, _, err) = cascade(d, &all);
        assert_eq!(code, 2, "{all:?}: {err}");
        assert!(
            err.contains("a-good.toml") && err.contains("same episode"),
            "{all:?}: {err}"
        );
        assert!(!err.contains("calibrating"), "{all:?} ran first: {err}");
    }
    // The same episode under two files: the copy `cascade calibrate` writes beside it.
    let copy = fs::read_to_string(d.join("history/a-good.toml")).unwrap();
    fs::write(d.join("history/a-good.calibrated.toml"), copy).unwrap();
    let (code, _, err) = cascade(d, &["backtest", "history", "--out", "V.md", "--paths", "5"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("a-good.calibrated.toml and history/a-good.toml are both episode `synthetic`"),
        "{err}"
    );
    assert!(!err.contains("calibrating"), "an episode ran first: {err}");
}

#[test]
fn calibration_checks_its_bracket_and_evaluation_budget_before_it_runs() {
    let tmp = setup();
    let d = tmp.path();
    for (args, needle) in [
        // An end the scenario refuses used to fail only after the other end was simulated.
        (
            &["--bracket", "0.1,2"][..],
            "--bracket 0.1,2: price.stress.drop = 2",
        ),
        (&["--bracket=-0.5,0.5"][..], "price.stress.drop = -0.5"),
        // A negative end needs no `=`: it is the bracket, not a flag.
        (&["--bracket", "-0.5,0.5"][..], "price.stress.drop = -0.5"),
        // Fewer evaluations than the two bracket ends used to be raised to 2 silently.
        (
            &["--max-evaluations", "0"][..],
            "'0' for '--max-evaluations <MAX_EVALUATIONS>': expected a whole number, at least 2",
        ),
        (
            &["--max-evaluations", "1"][..],
            "'1' for '--max-evaluations <MAX_EVALUATIONS>': expected a whole number, at least 2",
        ),
    ] {
        let all = [
            &[
                "calibrate",
                "synthetic.toml",
                "--target",
                "max_drawdown=0.1",
            ][..],
            &["--paths", "5", "--out", "c.toml"],
            args,
        ]
        .concat();
        let (code, _, err) = cascade(d, &all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected `{needle}` in {err}"
        );
        assert!(!err.contains("evaluation  1"), "{args:?} ran first: {err}");
        assert!(!d.join("c.toml").exists(), "{args:?} wrote a file");
    }
    // Two is enough when an end of the bracket is the answer.
    let (code, _, err) = cascade(
        d,
        &[
            "calibrate",
            "synthetic.toml",
            "--target",
            "max_drawdown=0",
            "--bracket",
            "0,0.5",
            "--tolerance",
            "1",
            "--max-evaluations",
            "2",
            "--paths",
            "5",
            "--out",
            "c.toml",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // A budget spent before the tolerance is met says what to change, and writes nothing.
    fs::remove_file(d.join("c.toml")).unwrap();
    let (code, _, err) = cascade(
        d,
        &[
            "calibrate",
            "synthetic.toml",
            "--target",
            "max_drawdown=0.1",
            "--tolerance",
            "0",
            "--max-evaluations",
            "3",
            "--paths",
            "5",
            "--out",
            "c.toml",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("within 3 evaluations") && err.contains("Allow more (--max-evaluations)"),
        "{err}"
    );
    assert!(!d.join("c.toml").exists());
}

/// A calibrated scenario written into another folder than its source names the source's data
/// files by absolute paths, so it runs from there and keeps the source's comments: the
/// historical returns as well as the position snapshots (the returns stayed relative, and the
/// written file then failed to load, falling back to the resolved scenario without comments).
#[test]
fn a_calibrated_scenario_written_elsewhere_still_finds_its_data_files() {
    let tmp = setup();
    let d = tmp.path();
    fs::create_dir_all(d.join("episode/data")).unwrap();
    let returns: String = (0..200)
        .map(|t| format!("{}\n", if t % 2 == 0 { 0.001 } else { -0.001 }))
        .collect();
    fs::write(
        d.join("episode/data/returns.csv"),
        format!("log_return\n{returns}"),
    )
    .unwrap();
    let text = SYNTHETIC.replace(
        "annual_volatility = 0.2",
        "model = \"historical\"\nreturns_csv = \"data/returns.csv\"",
    );
    fs::write(d.join("episode/replay.toml"), text).unwrap();
    let (code, _, err) = cascade(
        d,
        &[
            "calibrate",
            "episode/replay.toml",
            "--target",
            "max_drawdown=0.15",
            "--out",
            "replay.calibrated.toml",
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let written = fs::read_to_string(d.join("replay.calibrated.toml")).unwrap();
    assert!(written.contains("(source: this test)"), "{written}");
    let absolute = d.join("episode/data/returns.csv").canonicalize().unwrap();
    assert!(
        written.contains(&format!("returns_csv = \"{}\"", absolute.display())),
        "{written}"
    );
    let (code, _, err) = cascade(
        d,
        &[
            "run",
            "replay.calibrated.toml",
            "--out",
            "replayed",
            "--quiet",
            "--no-report",
        ],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_calibrated_file_keeps_the_source_when_a_set_names_a_key_it_lacks_or_one_inline() {
    let tmp = setup();
    let d = tmp.path();
    // A key the file does not hold is added to its table, and one inside an inline table
    // is noted after that table's line (a comment inside `{ ... }` is not TOML): either way
    // the source stays as written, under the header that says how the value was found.
    let source = SYNTHETIC.replace(
        "positions = 200",
        "positions = 200\nlong_leverage = { median = 3.0, dispersion = 0.5 }  # cited",
    );
    fs::write(d.join("synthetic.toml"), source).unwrap();
    let (code, out, err) = cascade(
        d,
        &[
            "calibrate",
            "synthetic.toml",
            "--target",
            "max_drawdown=0.1",
            "--set",
            "venues.0.liquidation_fee=0.001",
            "--set",
            "venues.0.book.long_leverage.median=4.0",
            "--out",
            "kept.toml",
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let text = fs::read_to_string(d.join("kept.toml")).unwrap();
    assert!(text.starts_with("# Calibrated by cascade "), "{text}");
    assert!(text.contains("(source: this test)"), "{text}");
    assert!(text.contains("\nliquidation_fee = 0.001\n"), "{text}");
    assert!(
        text.contains(
            "long_leverage = { median = 4.0, dispersion = 0.5 }  # median set for this \
             calibration; was 3.0: cited\n"
        ),
        "{text}"
    );
    let (code, _, err) = cascade(d, &["validate", "kept.toml"]);
    assert_eq!(code, 0, "{err}");
}
