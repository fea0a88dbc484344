//! Charts and `report.html` as a user sees them: every chart of a small real run is a valid
//! PNG (with text drawn by the bundled font) and a valid SVG of non-trivial content, the
//! report is one self-contained file, and headless Chromium renders it with no network.
//!
//! The browser test needs Debian's `chromium`. Without it the test says so on stderr
//! ("SKIPPED: chromium not installed") and passes, except under CI (`CI` set), where
//! `.ci/run` installs Chromium and a missing browser is a failure.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cascade::charts::{self, Grid};
use cascade::report::HEADLINE;
use cascade::units::{self, Unit};
use tempfile::TempDir;

/// Every chart a two-policy run gets, as (file stem, words its title contains).
const CHARTS: [(&str, &str); 7] = [
    (
        "exceedance-liquidated-notional",
        "liquidated notional exceeds",
    ),
    ("exceedance-bad-debt", "bad debt exceeds"),
    ("exceedance-max-drawdown", "max drawdown exceeds"),
    ("price-fan", "traded price"),
    ("liquidations", "cumulative liquidated notional"),
    ("venues", "by venue"),
    ("forest", "policy effects against fragmented"),
];

/// The report's section headings, in order.
const HEADINGS: [&str; 10] = [
    "Findings",
    "Scenario",
    "Venues",
    "Headline figures",
    "Policy comparison",
    "Charts",
    "Methodology",
    "Provenance",
    "Policies",
    "Insurance funds",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Names of the entries of `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Names of the hidden entries of `dir` (staging and aside directories).
fn hidden(dir: &Path) -> BTreeSet<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// Runs the binary in `cwd`; panics with its output unless it exits with `code`.
#[track_caller]
fn cascade(cwd: &Path, args: &[&str], code: i32) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "cascade {args:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    (stdout, stderr)
}

/// A finished run of the tiny two-policy fixture (with its charts and report) in a fresh
/// temporary directory; returns the directory and the result directory in it.
fn tiny_run(extra: &[&str]) -> (TempDir, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let scenario = fixture("tiny.toml");
    let mut args = vec![
        "run",
        scenario.to_str().unwrap(),
        "--out",
        "result",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    cascade(tmp.path(), &args, 0);
    let dir = tmp.path().join("result");
    (tmp, dir)
}

// ---------------------------------------------------------------------------------------------
// Checking images as a person would
// ---------------------------------------------------------------------------------------------

/// A decoded PNG as 8-bit RGB(A) rows.
struct Image {
    width: u32,
    height: u32,
    channels: usize,
    pixels: Vec<u8>,
}

impl Image {
    #[track_caller]
    fn read(path: &Path) -> Image {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            &bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is not a PNG",
            path.display()
        );
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder
            .read_info()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader
            .next_frame(&mut pixels)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("{}: unexpected colour type {other:?}", path.display()),
        };
        pixels.truncate(info.buffer_size());
        Image {
            width: info.width,
            height: info.height,
            channels,
            pixels,
        }
    }

    fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * self.channels;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Distinct colours and the share of pixels that are not (near) white, in rows `rows`.
    fn content(&self, rows: std::ops::Range<u32>) -> (usize, f64) {
        let mut colours = BTreeSet::new();
        let (mut inked, mut total) = (0usize, 0usize);
        for y in rows {
            for x in 0..self.width {
                let p = self.pixel(x, y);
                colours.insert(p);
                total += 1;
                if p.iter().any(|&c| c < 235) {
                    inked += 1;
                }
            }
        }
        (colours.len(), inked as f64 / total.max(1) as f64)
    }

    /// Pixels dark enough to be text in rows `rows`.
    fn dark(&self, rows: std::ops::Range<u32>) -> usize {
        rows.flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .filter(|&(x, y)| self.pixel(x, y).iter().all(|&c| c < 100))
            .count()
    }
}

/// Checks a chart PNG: decodes, is of a sensible size, holds a real picture (many colours,
/// a fair share of ink) and its title band holds dark text drawn with the bundled font.
#[track_caller]
fn check_png(path: &Path) {
    let img = Image::read(path);
    assert!(
        img.width >= 400 && img.height >= 200,
        "{}: {}x{}",
        path.display(),
        img.width,
        img.height
    );
    let (colours, ink) = img.content(0..img.height);
    assert!(
        colours >= 20,
        "{}: only {colours} colours: a blank or single-colour image",
        path.display()
    );
    assert!(
        ink > 0.01,
        "{}: only {:.2}% of pixels are not white",
        path.display(),
        ink * 100.0
    );
    let title = img.dark(0..50);
    assert!(
        title > 300,
        "{}: the title band has {title} dark pixels: text did not render",
        path.display()
    );
}

/// Checks a chart SVG: parses as XML with an `<svg>` root of positive size, has text
/// elements (one containing `title_words`) and drawn shapes.
#[track_caller]
fn check_svg(path: &Path, title_words: &str) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not valid XML: {e}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg", "{}", path.display());
    for dim in ["width", "height"] {
        let v: f64 = root
            .attribute(dim)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: no numeric {dim}", path.display()));
        assert!(v > 100.0, "{}: {dim} {v}", path.display());
    }
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect();
    assert!(
        texts.len() >= 5,
        "{}: {} text elements",
        path.display(),
        texts.len()
    );
    assert!(
        texts.iter().any(|t| t.contains(title_words)),
        "{}: no text contains {title_words:?}: {texts:?}",
        path.display()
    );
    let shapes = doc
        .descendants()
        .filter(|n| {
            ["path", "polyline", "polygon", "rect", "line", "circle"]
                .iter()
                .any(|t| n.has_tag_name(*t))
        })
        .count();
    assert!(shapes >= 10, "{}: {shapes} shapes", path.display());
    texts
}

// ---------------------------------------------------------------------------------------------
// The result directory
// ---------------------------------------------------------------------------------------------

#[test]
fn run_writes_every_chart_as_png_and_svg_and_the_report_by_default() {
    let (_tmp, dir) = tiny_run(&[]);
    for (stem, title) in CHARTS {
        check_png(&dir.join("charts").join(format!("{stem}.png")));
        check_svg(&dir.join("charts").join(format!("{stem}.svg")), title);
    }
    let listed = names(&dir.join("charts"));
    assert_eq!(listed.len(), CHARTS.len() * 2, "{listed:?}");
    assert!(dir.join("report.html").is_file());
    // No staging directory is left behind.
    let stray = hidden(&dir);
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn no_report_skips_charts_and_report_rebuilds_them_without_rerunning() {
    let (tmp, dir) = tiny_run(&["--no-report"]);
    assert!(!dir.join("charts").exists());
    assert!(!dir.join("report.html").exists());
    let data = ["summary.json", "paths.csv", "timeline.csv", "manifest.json"];
    let before: Vec<Vec<u8>> = data
        .iter()
        .map(|f| fs::read(dir.join(f)).unwrap())
        .collect();

    let (stdout, _) = cascade(tmp.path(), &["report", "result"], 0);
    assert!(stdout.contains("report.html"), "{stdout}");
    for (stem, title) in CHARTS {
        check_png(&dir.join("charts").join(format!("{stem}.png")));
        check_svg(&dir.join("charts").join(format!("{stem}.svg")), title);
    }
    let first = fs::read_to_string(dir.join("report.html")).unwrap();

    // Again, over the old charts: same report, nothing left over, data untouched.
    cascade(tmp.path(), &["report", "result"], 0);
    assert_eq!(fs::read_to_string(dir.join("report.html")).unwrap(), first);
    let after: Vec<Vec<u8>> = data
        .iter()
        .map(|f| fs::read(dir.join(f)).unwrap())
        .collect();
    assert!(
        before == after,
        "`cascade report` changed the simulation's files"
    );
    let stray = hidden(&dir);
    assert!(stray.is_empty(), "staging left behind: {stray:?}");
}

/// A file made immutable (`chattr +i`: not even root may remove it) under `root`; on drop,
/// every file under `root` is made mutable again (the file moves), so the temporary directory
/// can go.
struct Immutable {
    root: PathBuf,
}

impl Immutable {
    /// `None` where the file system or the tool does not allow it.
    fn set(root: &Path, file: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(file)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Immutable {
            root: root.to_path_buf(),
        })
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .args(["-R", "-i"])
            .arg(&self.root)
            .status();
    }
}

#[test]
fn old_charts_that_cannot_be_removed_leave_a_complete_new_report_and_a_warning() {
    // A file of the old charts nobody may remove (root included): moved aside, they cannot
    // be removed. The rebuild has put the new charts and report in place by then: a
    // warning, not a failure (which left the new charts beside the old report).
    let (tmp, dir) = tiny_run(&[]);
    // One of cascade's own: a file it did not write there would be refused.
    let stuck = dir.join("charts").join("venues.png");
    fs::write(&stuck, "old").unwrap();
    fs::remove_file(dir.join("report.html")).unwrap();
    let Some(_guard) = Immutable::set(tmp.path(), &stuck) else {
        assert!(
            !in_ci(),
            "CI must be able to make a file immutable (chattr +i)"
        );
        eprintln!("SKIPPED: chattr +i is not available here, so no file resists removal");
        return;
    };
    let (stdout, stderr) = cascade(tmp.path(), &["report", "result"], 0);
    assert!(stdout.contains("report.html"), "{stdout}");
    assert!(stderr.contains("could not be removed"), "{stderr}");
    assert!(dir.join("report.html").is_file());
    assert_ne!(fs::read(&stuck).unwrap(), b"old");
    for (stem, title) in CHARTS {
        check_svg(&dir.join("charts").join(format!("{stem}.svg")), title);
    }
    let aside: Vec<PathBuf> = hidden(&dir).iter().map(|n| dir.join(n)).collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0].to_string_lossy().contains(".cascade-replaced-"),
        "{aside:?}"
    );
    assert!(
        stderr.contains(&*aside[0].to_string_lossy()) || stderr.contains(".cascade-replaced-"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(aside[0].join("old").join("venues.png")).unwrap(),
        "old"
    );
}

#[test]
fn a_result_that_cannot_be_written_in_is_bad_input_to_report_as_to_run() {
    // A directory the user named that no one may write in: `run` exited 2 (bad input, the
    // path), `report` 1 (anything else).
    let (tmp, dir) = tiny_run(&[]);
    let Some(_guard) = Immutable::set(tmp.path(), &dir) else {
        assert!(
            !in_ci(),
            "CI must be able to make a directory immutable (chattr +i)"
        );
        eprintln!("SKIPPED: chattr +i is not available here");
        return;
    };
    let (_, stderr) = cascade(tmp.path(), &["report", "result"], 2);
    assert!(
        stderr.contains("cannot create a directory in result"),
        "{stderr}"
    );
}

#[test]
fn a_report_that_cannot_be_moved_in_puts_the_old_charts_back() {
    // `report.html` a non-empty folder, which no file can replace: the rebuild fails after
    // the new charts moved in, and puts the old ones back rather than leave new charts beside
    // the old report and the old charts hidden aside.
    let (tmp, dir) = tiny_run(&[]);
    let svg = |d: &Path| fs::read(d.join("charts").join("price-fan.svg")).unwrap();
    let before = svg(&dir);
    // One of cascade's own: a file it did not write there would be refused.
    let marker = dir.join("charts").join("venues.png");
    fs::write(&marker, "old").unwrap();
    fs::remove_file(dir.join("report.html")).unwrap();
    fs::create_dir_all(dir.join("report.html").join("x")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(["report", "result"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("report.html"), "{stderr}");
    assert_eq!(
        fs::read(&marker).unwrap(),
        b"old",
        "the old charts are back"
    );
    assert_eq!(svg(&dir), before);
    let stray = hidden(&dir);
    assert!(stray.is_empty(), "left behind: {stray:?}");
}

#[test]
fn report_of_a_directory_that_is_not_a_result_says_what_to_pass() {
    let tmp = TempDir::new().unwrap();
    fs::create_dir(tmp.path().join("empty")).unwrap();
    let (_, stderr) = cascade(tmp.path(), &["report", "empty"], 2);
    assert!(
        stderr.contains("not a cascade result directory"),
        "{stderr}"
    );
    // A path that is not there says so.
    let (_, stderr) = cascade(tmp.path(), &["report", "missing"], 2);
    assert!(
        stderr.contains("missing does not exist; pass the directory"),
        "{stderr}"
    );
}

#[test]
fn report_refuses_files_that_are_not_the_summary_s_or_the_scenario_run() {
    // A file cut short, or filtered to some policies, was drawn as if it were the whole
    // result (empty or partial charts captioned with summary.json's path count). The old
    // charts and report stay.
    let (tmp, dir) = tiny_run(&[]);
    let report = fs::read_to_string(dir.join("report.html")).unwrap();
    let keep_lines = |text: &str, keep: &dyn Fn(usize, &str) -> bool| {
        text.lines()
            .enumerate()
            .filter(|&(i, l)| keep(i, l))
            .map(|(_, l)| format!("{l}\n"))
            .collect::<String>()
    };
    let paths = fs::read_to_string(dir.join("paths.csv")).unwrap();
    let timeline = fs::read_to_string(dir.join("timeline.csv")).unwrap();
    let second = paths
        .lines()
        .last()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    // A damaged figure: the third column of the second row made `bad`, with two blank lines
    // just before it (the message names the file's line 5, not the row's number or a blank
    // line), and lines ending `end`.
    let damaged = |text: &str, bad: &str, end: &str| -> String {
        text.lines()
            .enumerate()
            .map(|(i, l)| {
                let mut cells: Vec<&str> = l.split(',').collect();
                let blank = if i == 2 {
                    cells[2] = bad;
                    end.repeat(2)
                } else {
                    String::new()
                };
                format!("{blank}{}{end}", cells.join(","))
            })
            .collect()
    };
    // A step that is not a whole number: cast, `-1` and `NaN` were read as step 0 and `1.5`
    // as step 1, drawn at another step than the row's.
    let bad_step = |bad: &str| -> String {
        timeline
            .lines()
            .enumerate()
            .map(|(i, l)| {
                let mut cells: Vec<&str> = l.split(',').collect();
                if i == 2 {
                    cells[1] = bad;
                }
                format!("{}\n", cells.join(","))
            })
            .collect()
    };
    assert!(paths.starts_with("policy,path,liquidated_notional,"));
    assert!(timeline.starts_with("policy,step,price_"));
    let mismatch = "does not match summary.json";
    let cases: [(&str, String, &str); 12] = [
        ("paths.csv", keep_lines(&paths, &|i, _| i == 0), mismatch),
        (
            "paths.csv",
            keep_lines(&paths, &|i, l| i == 0 || !l.starts_with(&second)),
            mismatch,
        ),
        ("paths.csv", String::new(), "is empty"),
        (
            "paths.csv",
            damaged(&paths, "NaN", "\n"),
            "line 5: `NaN` is not a finite number",
        ),
        (
            "paths.csv",
            damaged(&paths, "NaN", "\r\n"),
            "line 5: `NaN` is not a finite number",
        ),
        ("timeline.csv", String::new(), "is empty"),
        (
            "timeline.csv",
            damaged(&timeline, "inf", "\n"),
            "line 5: `inf` is not a finite number",
        ),
        (
            "timeline.csv",
            keep_lines(&timeline, &|i, _| i < 20),
            mismatch,
        ),
        (
            "timeline.csv",
            keep_lines(&timeline, &|i, l| i == 0 || !l.starts_with(&second)),
            mismatch,
        ),
        ("timeline.csv", bad_step("-1"), "line 3: `-1` is not a step"),
        (
            "timeline.csv",
            bad_step("1.5"),
            "line 3: `1.5` is not a step",
        ),
        (
            "timeline.csv",
            bad_step("NaN"),
            "line 3: `NaN` is not a step",
        ),
    ];
    for (file, text, expected) in cases {
        let original = fs::read(dir.join(file)).unwrap();
        fs::write(dir.join(file), &text).unwrap();
        let (_, stderr) = cascade(tmp.path(), &["report", "result"], 2);
        assert!(
            stderr.contains(file) && stderr.contains(expected),
            "{file}: {stderr}"
        );
        assert_eq!(fs::read_to_string(dir.join("report.html")).unwrap(), report);
        fs::write(dir.join(file), original).unwrap();
    }
    // A scenario.toml edited after the run would put its venues and rules beside figures
    // simulated for others (a whole venue deleted, or its margin changed, drew a report).
    let scenario = fs::read_to_string(dir.join("scenario.toml")).unwrap();
    let edited = scenario.replacen("seed = ", "seed = 1", 1);
    assert_ne!(edited, scenario);
    fs::write(dir.join("scenario.toml"), edited).unwrap();
    let (_, stderr) = cascade(tmp.path(), &["report", "result"], 2);
    assert!(
        stderr.contains("scenario.toml") && stderr.contains("is not what was run"),
        "{stderr}"
    );
    assert_eq!(fs::read_to_string(dir.join("report.html")).unwrap(), report);
    fs::write(dir.join("scenario.toml"), scenario).unwrap();
    cascade(tmp.path(), &["report", "result"], 0);
}

#[test]
fn report_refuses_a_summary_of_other_policies_than_the_scenario_s() {
    // The report pairs the scenario's policies with the summary's by place: a result whose
    // summary.json (and its CSV files, which agree with it) had lost a policy panicked.
    let (tmp, dir) = tiny_run(&["--no-report"]);
    let path = dir.join("summary.json");
    let mut summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let second = summary["policies"][1]["name"].as_str().unwrap().to_string();
    summary["policies"].as_array_mut().unwrap().truncate(1);
    summary["comparisons"] = serde_json::json!([]);
    fs::write(&path, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    for file in ["paths.csv", "timeline.csv"] {
        let text = fs::read_to_string(dir.join(file)).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{second},")))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(kept, text);
        fs::write(dir.join(file), kept).unwrap();
    }
    let (_, stderr) = cascade(tmp.path(), &["report", "result"], 2);
    assert!(
        stderr.contains("summary.json")
            && stderr.contains("scenario.toml")
            && stderr.contains(&format!("where the scenario has fragmented, {second}")),
        "{stderr}"
    );
    assert!(!dir.join("report.html").exists());
}

#[test]
fn a_single_policy_run_has_no_forest_plot_and_says_there_is_nothing_to_compare() {
    let tmp = TempDir::new().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    cascade(
        tmp.path(),
        &[
            "run",
            scenario.to_str().unwrap(),
            "--paths",
            "100",
            "--out",
            "r",
            "--quiet",
        ],
        0,
    );
    let dir = tmp.path().join("r");
    assert!(!dir.join("charts/forest.svg").exists());
    for (stem, _) in &CHARTS[..6] {
        check_png(&dir.join("charts").join(format!("{stem}.png")));
    }
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("single policy"), "no note on comparisons");
}

#[test]
fn amplification_changes_are_also_read_against_its_excess_over_one() {
    let (_tmp, dir) = tiny_run(&[]);
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let base = summary["policies"][0]["metrics"]["amplification"]["mean"]
        .as_f64()
        .unwrap();
    let paired = &summary["comparisons"][0]["metrics"]["amplification"];
    let difference = paired["mean_difference"].as_f64().unwrap();
    // The fixture's cascade amplifies, and the harmonized policy changes it.
    assert!(base > 1.1 && difference != 0.0, "{base} {difference}");
    let ci = &paired["ci95"];
    let [mean, low, high] = units::differences(
        Unit::Ratio,
        [difference, ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap()],
    );
    let row = format!(
        "<td>amplification</td><td>{mean}</td><td>[{low}, {high}]</td><td>{} ({} of the excess over 1x)</td>",
        units::signed_percent(paired["relative"].as_f64().unwrap()),
        units::signed_percent(difference / (base - 1.0)),
    );
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    has(section(&html, "comparison"), &[&row], &[]);
    // Only amplification's floor is 1x.
    assert_eq!(html.matches("of the excess over 1x)").count(), 1);
}

#[test]
fn the_terminal_and_the_report_print_a_comparison_alike() {
    let tmp = TempDir::new().unwrap();
    let scenario = fixture("tiny.toml");
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--out",
        "result",
        "--quiet",
    ];
    let (stdout, _) = cascade(tmp.path(), &args, 0);
    let html = fs::read_to_string(tmp.path().join("result/report.html")).unwrap();
    let table = section(&html, "comparison");
    for name in HEADLINE {
        let label = units::metric(name).0;
        // The report's cells for the metric: mean difference, interval, relative change,
        // shares of paths lower and higher.
        let row = &table[table
            .find(&format!("<td>{label}</td>"))
            .unwrap_or_else(|| panic!("no row {label:?}"))..];
        let cells: Vec<&str> = row
            .split("<td>")
            .skip(2)
            .take(5)
            .map(|c| c.split("</td>").next().unwrap())
            .collect();
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no line {label:?} in:\n{stdout}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let relative = words[label.split(' ').count()];
        assert_eq!(relative, cells[2], "{line}");
        has(
            &words.join(" "),
            &[
                &format!("mean {}", cells[0]),
                &format!("95% CI {}", cells[1]),
                &format!("lower on {} of paths, higher on {}", cells[3], cells[4]),
            ],
            &[],
        );
    }
}

/// The findings put each headline figure of each policy in the class its interval gives it:
/// lower or higher where the 95% interval excludes zero, and the biggest draw on a fund is the
/// largest share in summary.json.
#[test]
fn the_findings_say_what_each_interval_excludes() {
    let (_tmp, dir) = tiny_run(&[]);
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let findings = section(&html, "findings");
    const CLASSES: [&str; 5] = [
        "Lower:",
        "Higher:",
        "No change told from chance:",
        "The same on every path:",
        "Zero under both:",
    ];
    let mut told = 0;
    for c in summary["comparisons"].as_array().unwrap() {
        let policy = c["policy"].as_str().unwrap();
        let item = findings
            .split("<li>")
            .find(|li| li.starts_with(&format!("<strong>{policy}</strong>")))
            .unwrap_or_else(|| panic!("no finding for {policy}:\n{findings}"));
        // The text of each class up to the next one.
        let class_of = |label: &str| -> &str {
            let mut found = "";
            for class in CLASSES {
                if let Some(at) = item.find(class) {
                    let rest = &item[at + class.len()..];
                    let end = CLASSES
                        .iter()
                        .filter_map(|c| rest.find(c))
                        .min()
                        .unwrap_or(rest.len());
                    if rest[..end].contains(label) {
                        found = class;
                    }
                }
            }
            found
        };
        for name in HEADLINE {
            let m = &c["metrics"][name];
            let label = units::metric(name).0;
            let [low, high] = [0, 1].map(|i| m["ci95"][i].as_f64().unwrap());
            let expected = if high < 0.0 {
                "Lower:"
            } else if low > 0.0 {
                "Higher:"
            } else if m["share_better"].as_f64() == Some(0.0)
                && m["share_worse"].as_f64() == Some(0.0)
            {
                // The same on every path, or zero under both: either says no change.
                let class = class_of(label);
                assert!(
                    class == "The same on every path:" || class == "Zero under both:",
                    "{policy} {name}: {class:?} in {item}"
                );
                continue;
            } else {
                "No change told from chance:"
            };
            told += usize::from(expected == "Lower:" || expected == "Higher:");
            assert_eq!(class_of(label), expected, "{policy} {name} in {item}");
        }
    }
    assert!(
        told > 0,
        "no figure the tiny fixture's policy moves: {findings}"
    );
    // The largest draw on a fund against its size.
    let (share, start) = summary["policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["funds"].as_array().unwrap())
        .map(|f| {
            (
                f["start"].as_f64().unwrap(),
                f["drawn_p99"].as_f64().unwrap(),
            )
        })
        .filter(|(start, _)| *start > 0.0)
        .map(|(start, drawn)| (drawn / start, start))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    has(
        &html,
        &[&format!(
            "at the 99% quantile is {} of {}",
            units::percent(share),
            units::usd(start)
        )],
        &[],
    );
}

/// A shard's report says it is one, and does not promise that its scenario reproduces its
/// figures; a merged one names its shards.
#[test]
fn a_shard_report_says_it_is_a_part_of_a_study() {
    let tmp = TempDir::new().unwrap();
    let scenario = fixture("tiny.toml");
    let scenario = scenario.to_str().unwrap();
    for k in ["1/2", "2/2"] {
        let out = format!("s{}", &k[..1]);
        cascade(
            tmp.path(),
            &["run", scenario, "--shard", k, "--out", &out, "--quiet"],
            0,
        );
    }
    cascade(
        tmp.path(),
        &["merge", "s1", "s2", "--out", "merged", "--quiet"],
        0,
    );
    let shard = fs::read_to_string(tmp.path().join("s1/report.html")).unwrap();
    has(
        &shard,
        &[
            "<strong>Shard 1 of 2</strong> of a study of",
            "This is shard 1 of 2",
        ],
        &["Everything needed to reproduce these figures"],
    );
    let merged = fs::read_to_string(tmp.path().join("merged/report.html")).unwrap();
    has(
        section(&merged, "provenance"),
        &[
            "merged from",
            // Absolute, as the manifest records them.
            "/s1</code> <code>/",
            "wall time of the merge",
            "Everything needed to reproduce these figures",
        ],
        &["Shard 1"],
    );
    assert!(section(&merged, "provenance").contains("/s2</code>"));
}

// ---------------------------------------------------------------------------------------------
// Chart functions on plain data
// ---------------------------------------------------------------------------------------------

#[test]
fn heatmap_renders_a_grid_of_two_swept_keys() {
    let tmp = TempDir::new().unwrap();
    let xs: Vec<String> = ["0.1", "0.3", "0.5", "0.7"].map(String::from).to_vec();
    let ys: Vec<String> = ["0.01", "0.02", "0.05"].map(String::from).to_vec();
    let values = vec![
        vec![1.0e8, 2.0e8, 3.5e8, 6.0e8],
        vec![0.8e8, 1.5e8, f64::NAN, 4.0e8],
        vec![0.2e8, 0.4e8, 0.9e8, 1.2e8],
    ];
    let grid = Grid {
        x_key: "liquidity.routing",
        x_values: &xs,
        y_key: "venues.0.initial_margin",
        y_values: &ys,
        values: &values,
        metric: "mean liquidated notional",
        unit: Unit::Usd,
        caption: "quickstart sweep, 200 paths a cell, seed 7",
        scale: None,
    };
    let written = charts::heatmap(
        &tmp.path().join("heatmap"),
        "sweep: mean liquidated notional",
        &grid,
    )
    .unwrap();
    check_png(&written.png);
    let texts = check_svg(&written.svg, "sweep: mean liquidated notional");
    for expected in [
        "liquidity.routing",
        "venues.0.initial_margin",
        "0.7",
        "0.05",
        "$600M",
        "n/a",
        "quickstart sweep, 200 paths a cell, seed 7",
    ] {
        assert!(
            texts.iter().any(|t| t.contains(expected)),
            "no {expected:?} in {texts:?}"
        );
    }
}

#[test]
fn a_log_heatmap_names_its_unit_and_says_what_a_grey_cell_is() {
    // The colour bar's title had no unit and grey zero cells had no legend entry.
    let tmp = TempDir::new().unwrap();
    let xs: Vec<String> = ["0.1", "0.2"].map(String::from).to_vec();
    let ys: Vec<String> = ["0.3", "0.7"].map(String::from).to_vec();
    let values = vec![vec![0.0, 40e6], vec![366_737.0, 58.6e6]];
    let grid = Grid {
        x_key: "price.stress.drop",
        x_values: &xs,
        y_key: "liquidity.routing",
        y_values: &ys,
        values: &values,
        metric: "mean bad debt",
        unit: Unit::Usd,
        caption: "",
        scale: None,
    };
    let w = charts::heatmap(&tmp.path().join("heat"), "bad debt", &grid).unwrap();
    let texts = check_svg_texts(&w.svg);
    for expected in ["mean bad debt (USD, log scale)", "$0 or less"] {
        assert!(
            texts.iter().any(|t| t.contains(expected)),
            "{expected}: {texts:?}"
        );
    }
    // Two decades and a half: more ticks than its two powers of ten (four cells are in $).
    let dollars = texts.iter().filter(|t| t.trim().starts_with('$')).count();
    assert!(dollars >= 4 + 3, "{texts:?}");
}

#[test]
fn charts_with_nothing_to_plot_say_so_instead_of_failing() {
    let tmp = TempDir::new().unwrap();
    let zeros = vec![0.0; 50];
    let w = charts::exceedance(
        &tmp.path().join("none"),
        "no bad debt",
        "bad_debt",
        Unit::Usd,
        &[charts::Sample {
            policy: "baseline",
            values: &zeros,
        }],
    )
    .unwrap();
    let texts = check_svg_texts(&w.svg);
    assert!(
        texts.iter().any(|t| t.contains("No path had any bad debt")),
        "{texts:?}"
    );
    let w = charts::forest(&tmp.path().join("forest"), "nothing", "baseline", &[]).unwrap();
    assert!(
        check_svg_texts(&w.svg)
            .iter()
            .any(|t| t.contains("No comparisons to plot"))
    );
    let empty: Vec<Vec<f64>> = Vec::new();
    let w = charts::heatmap(
        &tmp.path().join("heat"),
        "empty",
        &Grid {
            x_key: "a",
            x_values: &[],
            y_key: "b",
            y_values: &[],
            values: &empty,
            metric: "m",
            unit: Unit::Count,
            caption: "",
            scale: None,
        },
    )
    .unwrap();
    assert!(Image::read(&w.png).width > 0);
}

fn check_svg_texts(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

#[test]
fn a_report_says_under_its_description_what_the_run_overrode_and_names_the_build() {
    // A sweep cell's report, or one of `--set price.stress.drop=0.05`, was headed by the
    // file's description of another shock, the overrides named only at the bottom.
    let (_tmp, dir) = tiny_run(&["--set", "price.stress.drop=0.05"]);
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    let header = &html[..html.find("</header>").unwrap()];
    assert!(
        header.contains("Run with overrides of the scenario file:")
            && header.contains("<code>price.stress.drop=0.05</code>"),
        "{header}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let build = manifest["build"].as_str().unwrap();
    assert!(
        build.starts_with("git ") || build.starts_with("unknown"),
        "{build}"
    );
    assert!(
        section(&html, "provenance").contains(&format!("({build})")),
        "the provenance names the build {build}"
    );
    let (_tmp, plain) = tiny_run(&[]);
    let html = fs::read_to_string(plain.join("report.html")).unwrap();
    assert!(!html.contains("Run with overrides"));
}

#[test]
fn a_forest_plot_says_how_many_paths_its_intervals_rest_on() {
    // On three paths t-intervals are wide, and the plot gave no n to read them by.
    let (_tmp, dir) = tiny_run(&["--paths", "3"]);
    let texts = check_svg(&dir.join("charts/forest.svg"), "policy effects");
    assert!(texts.iter().any(|t| t.contains("(3 paths)")), "{texts:?}");
}

/// A chart SVG's texts that read as a signed percentage (axis ticks), as (value, x), and the
/// x of every outlined circle (the forest plot's dots).
fn percent_ticks_and_dots(path: &Path) -> (Vec<(f64, f64)>, Vec<f64>) {
    let text = fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let x = |n: roxmltree::Node, a: &str| n.attribute(a).and_then(|v| v.parse::<f64>().ok());
    let ticks = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| {
            let t = n.text()?.trim().strip_suffix('%')?.replace([',', '+'], "");
            Some((t.parse::<f64>().ok()? / 100.0, x(n, "x")?))
        })
        .collect();
    let dots = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle") && n.attribute("fill") == Some("none"))
        .filter_map(|n| x(n, "cx"))
        .collect();
    (ticks, dots)
}

#[test]
fn a_forest_plot_draws_every_effect_where_its_axis_reads_it() {
    // An unabsorbed loss twenty times the baseline's was drawn on the +500% gridline of an
    // axis running to +750%, and every other effect squashed onto 0%.
    let tmp = TempDir::new().unwrap();
    let effects = [
        ("unabsorbed loss", "a", 19.2, [-1.0, 45.0]),
        ("insolvent venues", "a", 7.0, [1.1, 13.0]),
        ("liquidated notional", "a", -0.077, [-0.081, -0.073]),
        ("liquidated notional", "b", 0.35, [0.34, 0.36]),
        ("bad debt", "b", -1.0, [-1.0, -1.0]),
    ];
    let effects: Vec<charts::Effect> = effects
        .iter()
        .map(|&(metric, policy, estimate, ci95)| charts::Effect {
            metric,
            policy,
            estimate,
            ci95,
        })
        .collect();
    let w = charts::forest(&tmp.path().join("forest"), "effects", "base", &effects).unwrap();
    let (ticks, dots) = percent_ticks_and_dots(&w.svg);
    for e in &effects {
        // Some dot lies between the ticks either side of the estimate.
        let left = ticks.iter().filter(|(v, _)| *v <= e.estimate);
        let right = ticks.iter().filter(|(v, _)| *v >= e.estimate);
        let (lx, rx) = (
            left.max_by(|a, b| a.0.total_cmp(&b.0)).map(|t| t.1),
            right.min_by(|a, b| a.0.total_cmp(&b.0)).map(|t| t.1),
        );
        let (Some(lx), Some(rx)) = (lx, rx) else {
            panic!("no ticks either side of {}: {ticks:?}", e.estimate);
        };
        assert!(
            dots.iter().any(|&x| lx - 1.0 <= x && x <= rx + 1.0),
            "no dot for {} between x {lx} and {rx}: {dots:?}",
            e.estimate
        );
    }
    // At 3,000 paths an interval is narrower than its dot: the chart says how many are.
    let texts = check_svg_texts(&w.svg);
    assert!(
        texts
            .iter()
            .any(|t| t.contains("3 of 5 intervals are narrower than their dot")),
        "{texts:?}"
    );
}

#[test]
fn a_venue_chart_spans_its_bars_marks_zeros_and_drops_an_empty_insolvency_panel() {
    // The axis ran to twice the longest bar (room for a legend beside the bars), zero bars
    // were simply absent, and with no venue insolvent the right half was an empty panel.
    let tmp = TempDir::new().unwrap();
    let w = charts::venues(
        &tmp.path().join("venues"),
        "venues",
        &["binance", "eu-venue"],
        &[
            charts::VenueFigures {
                policy: "fragmented",
                liquidated_notional: &[270e6, 5e6],
                insolvency_probability: &[0.0, 0.0],
            },
            charts::VenueFigures {
                policy: "harmonized-full",
                liquidated_notional: &[0.0, 0.0],
                insolvency_probability: &[0.0, 0.0],
            },
        ],
    )
    .unwrap();
    let texts = check_svg(&w.svg, "venues");
    let usd = |t: &str| -> Option<f64> {
        let t = t.trim().strip_prefix('$')?;
        let (digits, scale) = match t.chars().last()? {
            'k' => (&t[..t.len() - 1], 1e3),
            'M' => (&t[..t.len() - 1], 1e6),
            'B' => (&t[..t.len() - 1], 1e9),
            _ => (t, 1.0),
        };
        digits.parse::<f64>().ok().map(|v| v * scale)
    };
    let top = texts.iter().filter_map(|t| usd(t)).fold(0.0, f64::max);
    assert!(top <= 1.25 * 270e6, "axis ticks run to {top}: {texts:?}");
    assert!(
        texts.iter().filter(|t| t.trim() == "$0").count() >= 2,
        "zero bars are marked: {texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("Probability the venue")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("No venue was left insolvent on any path")),
        "{texts:?}"
    );
}

#[test]
fn an_exceedance_chart_draws_no_vertical_line_for_a_policy_all_at_zero() {
    // A policy with no liquidation on any path was a line at $0 that pulled the axis down to
    // it and squeezed the others into the right four fifths.
    let tmp = TempDir::new().unwrap();
    let some: Vec<f64> = (0..100).map(|i| 5e8 + 2e7 * f64::from(i)).collect();
    let zeros = vec![0.0; 100];
    let w = charts::exceedance(
        &tmp.path().join("exceedance"),
        "liquidated notional exceeds x",
        "liquidated_notional",
        Unit::Usd,
        &[
            charts::Sample {
                policy: "fragmented",
                values: &some,
            },
            charts::Sample {
                policy: "harmonized-full",
                values: &zeros,
            },
        ],
    )
    .unwrap();
    let texts = check_svg(&w.svg, "exceeds");
    assert!(
        !texts.iter().any(|t| t.trim() == "$0"),
        "the axis starts at $0: {texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("harmonized-full") && t.contains("no curve")),
        "{texts:?}"
    );
}

#[test]
fn a_report_of_one_path_says_its_tail_figures_are_that_path_s() {
    let (_tmp, dir) = tiny_run(&["--paths", "1"]);
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    has(
        &html,
        &[
            "1 Monte Carlo path &middot;",
            "<p>1 Monte Carlo path of 240 steps",
            "on the one path run: its quantiles and expected shortfalls are that path",
        ],
        &["1 Monte Carlo paths", "over all 1 paths", "1 paths"],
    );
    // The band charts draw the path and say so: there are no bands of one path.
    for chart in ["price-fan", "liquidations"] {
        let texts = check_svg_texts(&dir.join(format!("charts/{chart}.svg")));
        let has_text = |t: &str| texts.iter().any(|x| x.contains(t));
        assert!(has_text("on the one path") && has_text("baseline's path"));
        assert!(!has_text("of paths") && !has_text("median"), "{texts:?}");
    }
    // The path's single liquidated notional sits in a range whose ticks read apart (they
    // all read $1.32B on a range 0.5% wide).
    let texts = check_svg_texts(&dir.join("charts/exceedance-liquidated-notional.svg"));
    let ticks: Vec<&str> = texts
        .iter()
        .map(|t| t.trim())
        .filter(|t| t.starts_with('$'))
        .collect();
    let distinct: BTreeSet<&&str> = ticks.iter().collect();
    assert!(
        ticks.len() >= 3 && distinct.len() == ticks.len(),
        "{ticks:?}"
    );
}

#[test]
fn a_pooled_fund_is_described_at_the_size_it_was_run_with() {
    // The pool is the members' own funds together where cover-2 is less: a 1% stress move
    // costs these books nothing, so the pool is 1.0e6 + 1.0e5. The report said "sized by
    // cover-2" of a pool that its own funds had sized.
    let tiny = fs::read_to_string(fixture("tiny.toml")).unwrap();
    let pooled = "\n[[policies]]\nname = \"pooled\"\ncooperating = [\"eu\", \"offshore\"]\n\
                  pooled_default_fund = { sizing = \"cover2\", stress_move = 0.01 }\n";
    let html = report_of(&format!("{tiny}{pooled}"), &[]);
    has(
        section(&html, "scenario"),
        &[
            "a pooled default fund ($1.1M) of the members&#39; own funds together, or cover-2 \
             under a 1% stress move where that is more",
        ],
        &["sized by cover-2"],
    );
}

#[test]
fn report_is_one_self_contained_file() {
    let (_tmp, dir) = tiny_run(&[]);
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    let lower = html.to_lowercase();
    for banned in [
        "http://", "https://", "<script", "<link", "<img", "<iframe", "<object", "<embed",
        "@import", "url(", " src=",
    ] {
        assert!(
            !lower.contains(banned),
            "report.html contains {banned:?}: it must not load anything"
        );
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        html.matches("<svg").count(),
        CHARTS.len(),
        "one inline SVG per chart"
    );
    for h in HEADINGS {
        assert!(html.contains(&format!(">{h}</h")), "no heading {h:?}");
    }
    for expected in [
        "offshore",
        "onshore",
        "harmonized",
        "fragmented",
        "seed",
        "SHA-256",
    ] {
        assert!(html.contains(expected), "no {expected:?} in report.html");
    }
    // Print styles: figures are never split across pages.
    assert!(html.contains("@media print"));
}

/// What the fixtures lack: a GARCH price, a stress that recovers half its fall within the
/// horizon, and a venue with margin tiers and opening cohorts (named with HTML's special
/// characters) next to a plain one.
const COHORTS_AND_TIERS: &str = r#"
name = "cohorts-and-tiers"

[simulation]
paths = 20
steps = 240
step_seconds = 60
seed = 5

[price]
start = 100_000.0
model = "garch"
annual_volatility = 0.5
alpha = 0.05
beta = 0.9

[price.stress]
drop = 0.2
start_step = 30
duration_steps = 30
recovery = 0.5
recovery_steps = 120

[[venues]]
name = "dex<&>"
jurisdiction = "onchain"
initial_margin = 0.02
maintenance_margin = 0.01
margin_tiers = [{ above = 1.0e7, initial_margin = 0.05, maintenance_margin = 0.025 }]
insurance_fund = 1.0e6
depth_1pct = 5_000_000.0
open_interest = 5.0e8

[venues.book]
positions = 200

[venues.opening]
levels = [0.05, 0.1, 0.15]
notional = 2.0e7
positions = 50
long_leverage = { median = 5.0, dispersion = 0.5 }
short_leverage = { median = 5.0, dispersion = 0.5 }

"#;

/// A venue with no cohorts and no tiers, appended to the scenarios above.
const PLAIN_VENUE: &str = r#"
[[venues]]
name = "plain"
jurisdiction = "eu"
initial_margin = 0.1
maintenance_margin = 0.05
insurance_fund = 1.0e5
depth_1pct = 2_000_000.0
open_interest = 2.0e8

[venues.book]
positions = 100
"#;

/// A replayed price series (flat: 240 zero returns) under a stress whose recovery the
/// horizon cuts in half, on one plain venue.
const REPLAY: &str = r#"
name = "replay"

[simulation]
paths = 5
steps = 240
step_seconds = 60
seed = 5

[price]
start = 100_000.0
model = "historical"
returns_csv = "returns.csv"

[price.stress]
drop = 0.2
start_step = 30
duration_steps = 30
recovery = 0.5
recovery_steps = 360

"#;

/// `report.html` of a run of `scenario` (TOML text), written next to `files` (name, text).
fn report_of(scenario: &str, files: &[(&str, String)]) -> String {
    let tmp = TempDir::new().unwrap();
    fs::write(tmp.path().join("scenario.toml"), scenario).unwrap();
    for (name, text) in files {
        fs::write(tmp.path().join(name), text).unwrap();
    }
    cascade(
        tmp.path(),
        &["run", "scenario.toml", "--out", "result", "--quiet"],
        0,
    );
    fs::read_to_string(tmp.path().join("result/report.html")).unwrap()
}

/// The report's section `id`, from its opening tag to its closing one.
#[track_caller]
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id:?}"));
    let end = start
        + html[start..]
            .find("</section>")
            .expect("the section closes");
    &html[start..end]
}

#[track_caller]
fn has(text: &str, expected: &[&str], absent: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "no {e:?} in:\n{text}");
    }
    for a in absent {
        assert!(!text.contains(a), "{a:?} should not be in:\n{text}");
    }
}

#[test]
fn report_describes_cohorts_margin_tiers_garch_and_the_stress_recovery() {
    let html = report_of(&format!("{COHORTS_AND_TIERS}{PLAIN_VENUE}"), &[]);
    // The venue's name is escaped wherever it appears.
    assert!(!html.contains("dex<&>"), "an unescaped venue name");
    let venue = "dex&lt;&amp;&gt;";
    has(
        section(&html, "scenario"),
        &[
            "GARCH(1,1)",
            "drops the price by 20% over 30 minutes",
            "It then wins back 50% of the fall (in log price) over 2 hours (steps 60 to 180)",
            // 1 - 0.8^(1 - 0.5)
            "net, the stress lowers the price by 10.6%",
            "New positions open during the horizon on 1 of the 2 venues",
            &format!(
                "3 levels from 5% to 15% below the start price; per side and level, {venue} $20M"
            ),
        ],
        &[],
    );
    has(
        section(&html, "methodology"),
        &[
            "GARCH(1,1)",
            "then a recovery of part of it",
            &format!("Margin tiers on {venue}:"),
            &format!("Positions opened during the horizon, on {venue}:"),
            "none is closed voluntarily",
            "never on the venues without cohorts",
        ],
        &[
            "nobody opens",
            "margin tiers by position size",
            "no venue in this scenario has margin tiers",
            "geometric Brownian",
            "Student-t",
            "Merton",
            "historical",
            "plain",
        ],
    );
}

#[test]
fn report_of_a_plain_scenario_claims_no_cohorts_tiers_or_recovery() {
    // tiny.toml: GBM, a stress without recovery, flat margins, no cohorts.
    let (_tmp, dir) = tiny_run(&[]);
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    let scenario = section(&html, "scenario");
    has(
        scenario,
        &["drops the price by 10% over 30 minutes"],
        &["wins back", "New positions open", "cohort"],
    );
    has(
        section(&html, "methodology"),
        &[
            "geometric Brownian motion",
            "with no recovery",
            "fixed for the horizon",
            "nobody opens, adds to or voluntarily closes a position",
            "no venue in this scenario has margin tiers",
            // tiny.toml has no depth_withdrawal.
            "depth that does not react to volatility",
        ],
        &[
            "depth thinning",
            "cohort",
            "Margin tiers on",
            "margin tiers by position size",
            "GARCH",
            "Student-t",
            "Merton",
            "historical",
        ],
    );
}

#[test]
fn a_stress_of_zero_is_described_and_drawn_as_no_stress() {
    // A zero drop (the low end of a calibration's search) moves no step: neither section may
    // describe a stress, and the price chart may not shade a window in which nothing happens.
    let (_tmp, dir) = tiny_run(&["--set", "price.stress.drop=0"]);
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    has(
        section(&html, "scenario"),
        &["There is no deterministic stress: every move comes from the price model."],
        &["drops the price by"],
    );
    has(
        section(&html, "methodology"),
        &["There is no deterministic stress."],
        &["A deterministic stress is added"],
    );
    let legend = check_svg_texts(&dir.join("charts/price-fan.svg"));
    assert!(
        !legend.iter().any(|t| t.trim() == "stress window"),
        "the fan chart shades a stress window: {legend:?}"
    );
    // The same scenario with its 10% drop does shade it (the check above can fail).
    let (_tmp, dir) = tiny_run(&[]);
    assert!(
        check_svg_texts(&dir.join("charts/price-fan.svg"))
            .iter()
            .any(|t| t.trim() == "stress window")
    );
    let calm = "nothing was liquidated on any path";
    let said = |dir: &Path| {
        check_svg_texts(&dir.join("charts/venues.svg"))
            .iter()
            .any(|t| t.trim() == calm)
    };
    assert!(!said(&dir), "the stressed run liquidates");
    // Without stress or volatility nothing is liquidated: the venue chart's empty panel says
    // why it is empty, as its insolvency panel does.
    let (_tmp, calm_dir) = tiny_run(&[
        "--set",
        "price.stress.drop=0",
        "--set",
        "price.annual_volatility=0",
    ]);
    assert!(said(&calm_dir));
}

#[test]
fn report_of_a_recovery_after_the_last_step_says_none_happens() {
    // The drop ends on the last step: the engine applies no recovery, and neither section
    // may say it starts.
    let tiny =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.toml"))
            .unwrap();
    let text = tiny.replace("steps = 240", "steps = 60").replace(
        "duration_steps = 30",
        "duration_steps = 30\nrecovery = 0.5\nrecovery_steps = 20",
    );
    assert_ne!(text, tiny);
    let html = report_of(&text, &[]);
    has(
        section(&html, "scenario"),
        &["The horizon ends as the drop does, before its recovery begins."],
        &["win back", "wins back"],
    );
    has(section(&html, "methodology"), &["with no recovery"], &[]);
}

#[test]
fn report_describes_a_replayed_series_and_a_recovery_the_horizon_cuts_short() {
    let returns = format!("log_return\n{}", "0\n".repeat(240));
    let html = report_of(
        &format!("{REPLAY}{PLAIN_VENUE}"),
        &[("returns.csv", returns)],
    );
    has(
        section(&html, "scenario"),
        &[
            "replay of historical returns",
            "It then starts to win back 50% of the fall (in log price) over 6 hours \
             (steps 60 to 420), but the horizon ends at step 240",
            // Half the recovery is in place: 1 - 0.8^(1 - 0.5 x 0.5).
            "by then the stress, net, lowers the price by 15.4%",
        ],
        &["New positions open"],
    );
    has(
        section(&html, "methodology"),
        &[
            "replayed from a historical series of 240 rows",
            "every path has the same fundamental price",
            "then a recovery of part of it",
            "nobody opens, adds to or voluntarily closes a position",
        ],
        &[
            "geometric Brownian",
            "GARCH",
            "Student-t",
            "Merton",
            "cohort",
        ],
    );
}

/// Where Debian's Chromium is, if installed.
fn chromium() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/bin/chromium");
    if fixed.is_file() {
        return Some(fixed);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromium"))
            .find(|p| p.is_file())
    })
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Runs headless Chromium on `page` with a fresh profile, every host name unresolvable and a
/// network log; returns stdout and the network log's text. Killed after a minute.
fn headless(browser: &Path, page: &Path, extra: &[String]) -> (String, String) {
    let profile = TempDir::new().unwrap();
    let netlog = profile.path().join("netlog.json");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .arg(format!("--log-net-log={}", netlog.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("chromium did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = reader.join().unwrap();
    let log = fs::read_to_string(&netlog).unwrap_or_default();
    (out, log)
}

/// URLs the page itself asked the network for, from Chromium's network log: requests whose
/// initiator is a page (the browser's own background requests have none), over anything but
/// `file:` and `data:`.
fn page_requests(netlog: &str) -> Vec<String> {
    let log: serde_json::Value = match serde_json::from_str(netlog) {
        Ok(v) => v,
        // Chromium may leave the closing brackets off when it exits; close them.
        Err(_) => serde_json::from_str(&format!("{}]}}", netlog.trim_end().trim_end_matches(',')))
            .expect("a readable network log"),
    };
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].as_u64();
    log["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"].as_u64() == start_job)
        .filter(|e| e["params"]["initiator"].as_str() != Some("not an origin"))
        .filter_map(|e| e["params"]["url"].as_str().map(String::from))
        .filter(|u| !u.starts_with("file:") && !u.starts_with("data:"))
        .collect()
}

#[test]
fn report_renders_in_headless_chromium_with_no_network() {
    let Some(browser) = chromium() else {
        if in_ci() {
            panic!(
                "chromium is not installed, and CI requires the browser test: .ci/run installs it"
            );
        }
        // Not captured by the test harness, so a developer sees it without --nocapture.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: chromium not installed; the report browser test did not run \
             (apt-get install chromium)"
        );
        return;
    };
    let (tmp, dir) = tiny_run(&[]);
    let page = fs::canonicalize(dir.join("report.html")).unwrap();

    // The DOM as rendered: every heading, every chart.
    let (dom, log) = headless(&browser, &page, &["--dump-dom".to_string()]);
    for h in HEADINGS {
        assert!(
            dom.contains(&format!(">{h}</h")),
            "heading {h:?} not in the DOM"
        );
    }
    assert!(
        dom.contains("Liquidation cascades: tiny"),
        "no title in the DOM"
    );
    assert_eq!(
        dom.matches("<svg").count(),
        CHARTS.len(),
        "charts missing from the DOM"
    );
    let requests = page_requests(&log);
    assert!(requests.is_empty(), "the report requested {requests:?}");

    // A screenshot of the first screen: not blank.
    let shot = tmp.path().join("screenshot.png");
    let (_, log) = headless(
        &browser,
        &page,
        &[
            "--window-size=1280,2400".to_string(),
            format!("--screenshot={}", shot.display()),
        ],
    );
    let img = Image::read(&shot);
    assert_eq!((img.width, img.height), (1280, 2400));
    let (colours, ink) = img.content(0..img.height);
    assert!(colours > 50, "screenshot has {colours} colours: blank page");
    assert!(
        ink > 0.02,
        "screenshot is {:.2}% ink: blank page",
        ink * 100.0
    );
    assert!(
        img.dark(0..200) > 500,
        "no heading text at the top of the page"
    );
    let requests = page_requests(&log);
    assert!(requests.is_empty(), "the report requested {requests:?}");

    // The check itself catches a page that loads from the network.
    let bad = tmp.path().join("bad.html");
    fs::write(
        &bad,
        "<!DOCTYPE html><h1>x</h1><img src=\"http://example.invalid/a.png\">",
    )
    .unwrap();
    let (_, log) = headless(&browser, &bad, &["--dump-dom".to_string()]);
    assert_eq!(
        page_requests(&log),
        vec!["http://example.invalid/a.png".to_string()],
        "the network check missed a request"
    );
}
