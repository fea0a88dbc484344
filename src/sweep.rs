//! Sweeps: a grid of overrides, one full study per cell, and a grid summary.
//!
//! An axis is `KEY=V1,V2,...` or `KEY=FROM..TO:N` (N evenly spaced values, both ends
//! included). Cells are the cartesian product, first axis slowest, named after their
//! overrides so that a cell's directory says what it holds and a resumed sweep finds it.

use serde::Serialize;
use serde_json::Value as Json;

use crate::metrics::Metric;
use crate::results::CsvDouble;
use crate::scenario::Override;
use crate::scenario::load::{Clipped, check_integer_range, parse_key, parse_value};

/// The most cells one sweep may have. Every cell is validated before any runs and each
/// writes a result directory, so a grid far beyond this (a typo such as `0..1:1000000000`)
/// would exhaust memory before the first cell; split a larger study into several sweeps.
pub const MAX_CELLS: usize = 10_000;

/// Why a sweep refuses cells with different seeds.
pub const ONE_SEED: &str = "the cells of a sweep share one seed, so that they differ only by \
                            their overrides (common random numbers); to replicate a sweep, run \
                            it once per seed with --seed";

/// One swept key and its values, as TOML text.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Dotted key path.
    pub key: String,
    /// Values in order, each a TOML value's text.
    pub values: Vec<String>,
}

/// `v` rounded to twelve significant digits of the larger end of the range `from..to`, so
/// that binary noise (0.30000000000000004, 9900000000.000002) does not reach the values and
/// the cells' names, and a value that is zero up to that noise is zero. The scale is a power
/// of ten applied as an exact integer (multiplying or dividing by it), so the result is the
/// double nearest the rounded decimal, which prints as that decimal; beyond the powers of ten
/// a double holds exactly, `v` is left as it is.
fn round_to_range(v: f64, from: f64, to: f64) -> f64 {
    let magnitude = from.abs().max(to.abs());
    if magnitude == 0.0 {
        return v;
    }
    let digits = magnitude.log10().floor() as i32 - 11;
    match digits {
        -22..=-1 => {
            let scale = 10f64.powi(-digits);
            (v * scale).round() / scale
        }
        0..=22 => {
            let scale = 10f64.powi(digits);
            (v / scale).round() * scale
        }
        _ => v,
    }
}

/// Splits on commas that are not inside brackets, braces or quotes.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut parts, mut current, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None);
    for ch in text.chars() {
        match (ch, quote) {
            ('"' | '\'', None) => quote = Some(ch),
            (c, Some(q)) if c == q => quote = None,
            ('[' | '{', None) => depth += 1,
            (']' | '}', None) => depth -= 1,
            (',', None) if depth == 0 => {
                parts.push(std::mem::take(&mut current).trim().to_string());
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    parts.push(current.trim().to_string());
    parts
}

impl Axis {
    /// Parses `KEY=V1,V2,...` or `KEY=FROM..TO:N`.
    pub fn parse(text: &str) -> Result<Axis, String> {
        let flag = Clipped(text);
        let (key, raw) = text
            .split_once('=')
            .ok_or_else(|| format!("--set {flag}: expected KEY=V1,V2,... or KEY=FROM..TO:N"))?;
        let key = parse_key(text, key)?;
        let raw = raw.trim();
        let bad = || {
            format!("--set {flag}: a range is FROM..TO:N with numbers and N >= 2, e.g. 0.1..0.9:5")
        };
        // Numbers around `..` are a range whose count (or an end: `1..`) was forgotten (a
        // path such as ../books/a.csv is a value).
        let number_or_nothing = |s: &str| s.trim().is_empty() || s.trim().parse::<f64>().is_ok();
        if !raw.contains(':')
            && raw.split_once("..").is_some_and(|(a, b)| {
                number_or_nothing(a)
                    && number_or_nothing(b)
                    && !(a.trim().is_empty() && b.trim().is_empty())
            })
        {
            return Err(bad());
        }
        if let Some((range, n)) = raw.split_once(':')
            && let Some((from, to)) = range.split_once("..")
        {
            let from: f64 = from.trim().parse().map_err(|_| bad())?;
            let to: f64 = to.trim().parse().map_err(|_| bad())?;
            let n: usize = n.trim().parse().map_err(|_| bad())?;
            if n < 2 || !from.is_finite() || !to.is_finite() {
                return Err(bad());
            }
            if n > MAX_CELLS {
                return Err(format!(
                    "--set {flag}: {n} values; a sweep has at most {MAX_CELLS} cells"
                ));
            }
            let values = (0..n)
                .map(|i| {
                    let v = if i == n - 1 {
                        to
                    } else {
                        from + (to - from) * i as f64 / (n - 1) as f64
                    };
                    format!("{}", round_to_range(v, from, to))
                })
                .collect();
            return Axis::checked(text, key, values);
        }
        let values = split_top_level(raw);
        if values.iter().any(String::is_empty) {
            return Err(format!("--set {flag}: an empty value in the list"));
        }
        Axis::checked(text, key, values)
    }

    /// The axis, once no value is an integer TOML cannot hold (a range's end points included:
    /// 1e20 prints as its digits).
    fn checked(text: &str, key: String, values: Vec<String>) -> Result<Axis, String> {
        let flag = Clipped(text);
        if key == "simulation.seed" && values.len() > 1 {
            return Err(format!("--set {flag}: {ONE_SEED}"));
        }
        let parsed: Vec<toml::Value> = values.iter().map(|v| parse_value(v)).collect();
        // A number is kept in one spelling that reads back as the same TOML value and that
        // `grid.csv`'s readers take for a number: pandas reads `1_000_000` or `0x10` as text,
        // and the whole column with it.
        let values: Vec<String> = values
            .into_iter()
            .zip(&parsed)
            .map(|(v, p)| match p {
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(_) => v.replace('_', ""),
                _ => v,
            })
            .collect();
        for (i, v) in values.iter().enumerate() {
            check_integer_range(v).map_err(|e| format!("--set {flag}: {e}"))?;
            // Two cells with one value would repeat a run and a row of the grid, however the
            // value is spelled (0.5 and 0.50, 1e8 and 100000000).
            if let Some(j) = (0..i).find(|&j| same_value(&parsed[j], &parsed[i])) {
                let spelled = if values[j] == *v {
                    String::new()
                } else {
                    format!(" (as {})", Clipped(&values[j]))
                };
                let v = Clipped(v);
                return Err(format!("--set {flag}: {v} is given twice{spelled}"));
            }
        }
        Ok(Axis { key, values })
    }
}

/// Whether two override values set a field to the same thing: numbers by value (an integer
/// and a float are the same number where they are equal), anything else as written.
fn same_value(a: &toml::Value, b: &toml::Value) -> bool {
    use toml::Value::{Float, Integer};
    match (a, b) {
        (Integer(x), Float(y)) | (Float(y), Integer(x)) => *x as f64 == *y,
        // `nan` given twice is one value given twice.
        (Float(x), Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

/// `text` with every character a file name on another system may not hold (`:` on Windows,
/// spaces in scripts, anything beyond ASCII on some shares) replaced by `_`: letters, digits,
/// `.`, `_`, `-` and `+` stay.
pub fn file_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One cell of the grid: a value for every axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// `(key, value)` per axis, in axis order.
    pub values: Vec<(String, String)>,
}

impl Cell {
    /// The cell's overrides.
    pub fn overrides(&self) -> Vec<Override> {
        self.values
            .iter()
            .map(|(k, v)| Override {
                key: k.clone(),
                value: parse_value(v),
            })
            .collect()
    }

    /// Directory name: `key=value` for every axis with more than one value, joined by `__`,
    /// with characters that do not belong in file names replaced.
    pub fn name(&self, axes: &[Axis]) -> String {
        let parts: Vec<String> = self
            .values
            .iter()
            .zip(axes)
            .filter(|(_, a)| a.values.len() > 1)
            .map(|((k, v), _)| format!("{k}={}", file_safe(&short(v))))
            .collect();
        if parts.is_empty() {
            "single".to_string()
        } else {
            parts.join("__")
        }
    }
}

/// A value as a cell's directory names it: a number written longer than any double needs
/// (a range writes 1e-320 out in 322 characters, too long for a directory name) as an error
/// message quotes it; any other value as written, so that cells keep the names earlier
/// versions gave them.
fn short(value: &str) -> std::borrow::Cow<'_, str> {
    // The longest a double takes in scientific notation: -1.2345678901234567e-308.
    const LONGEST: usize = 24;
    match parse_value(value) {
        toml::Value::Float(x) if value.len() > LONGEST => crate::units::quoted(x).into(),
        _ => value.into(),
    }
}

/// Every cell of the grid, first axis slowest.
pub fn cells(axes: &[Axis]) -> Vec<Cell> {
    let mut out = vec![Cell { values: Vec::new() }];
    for axis in axes {
        out = out
            .into_iter()
            .flat_map(|cell| {
                axis.values.iter().map(move |v| {
                    let mut values = cell.values.clone();
                    values.push((axis.key.clone(), v.clone()));
                    Cell { values }
                })
            })
            .collect();
    }
    out
}

/// The metrics a grid summary reports, with mean, p50 and p99.
pub const GRID_METRICS: [Metric; 6] = [
    Metric::LiquidatedNotional,
    Metric::BadDebt,
    Metric::UnabsorbedLoss,
    Metric::MaxDrawdown,
    Metric::Amplification,
    Metric::InsolventVenues,
];

/// One row of `grid.csv`: a cell under a policy.
#[derive(Debug, Clone, Serialize)]
pub struct GridRow {
    /// Cell directory name.
    pub cell: String,
    /// The swept values, in axis order.
    pub values: Vec<String>,
    /// Policy name.
    pub policy: String,
    /// SHA-256 of what the cell ran ([`crate::scenario::Scenario::sha256`]), as its
    /// `manifest.json` records it.
    pub scenario_sha256: String,
    /// `(column, value)`: mean, p50 and p99 of [`GRID_METRICS`], then probabilities.
    pub figures: Vec<(String, f64)>,
}

/// The grid rows of one cell, read from its `summary.json`; `scenario_sha256` is what the
/// cell ran.
pub fn rows_of(
    cell: &str,
    values: &[String],
    scenario_sha256: &str,
    summary: &Json,
) -> Vec<GridRow> {
    let mut rows = Vec::new();
    for p in summary["policies"].as_array().into_iter().flatten() {
        let mut figures = Vec::new();
        for m in GRID_METRICS {
            for stat in ["mean", "p50", "p99"] {
                let v = p["metrics"][m.name()][stat].as_f64().unwrap_or(0.0);
                figures.push((format!("{}_{stat}", m.name()), v));
            }
        }
        for prob in ["any_insolvency", "adl", "round_cap_hit"] {
            let v = p["probabilities"][prob].as_f64().unwrap_or(0.0);
            figures.push((format!("p_{prob}"), v));
        }
        rows.push(GridRow {
            cell: cell.to_string(),
            values: values.to_vec(),
            policy: p["name"].as_str().unwrap_or_default().to_string(),
            scenario_sha256: scenario_sha256.to_string(),
            figures,
        });
    }
    rows
}

/// `grid.csv`: a header, then one line per cell and policy.
pub fn grid_csv(axes: &[Axis], rows: &[GridRow]) -> String {
    let mut out = String::from("cell");
    for a in axes {
        out.push(',');
        out.push_str(&a.key);
    }
    out.push_str(",policy");
    if let Some(first) = rows.first() {
        for (name, _) in &first.figures {
            out.push(',');
            out.push_str(name);
        }
    }
    out.push('\n');
    for r in rows {
        out.push_str(&csv_field(&r.cell));
        for v in &r.values {
            out.push(',');
            out.push_str(&csv_field(v));
        }
        out.push(',');
        out.push_str(&csv_field(&r.policy));
        for (_, v) in &r.figures {
            out.push_str(&format!(",{}", CsvDouble(*v)));
        }
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// What a sweep directory is a sweep of (`sweep.json`, written before the first cell runs):
/// the scenario's name, the version, the seed and paths every cell uses (paths null when they
/// are an axis), and the axes. A resumed sweep must have the same plan, so that one directory
/// never holds two studies.
pub fn plan_json(scenario: &str, axes: &[Axis], seed: u64, paths: Option<u64>) -> Json {
    serde_json::json!({
        "schema_version": 1,
        "scenario": scenario,
        "version": crate::VERSION,
        "build": crate::BUILD,
        "seed": seed,
        "paths": paths,
        "axes": axes_json(axes),
    })
}

fn axes_json(axes: &[Axis]) -> Vec<Json> {
    axes.iter()
        .map(|a| serde_json::json!({ "key": a.key, "values": a.values }))
        .collect()
}

/// `grid.json`: the sweep's plan (see [`plan_json`]: scenario, version and build, seed,
/// paths, axes) and, per cell and policy, the cell's values, the SHA-256 of what it ran and
/// its figures.
pub fn grid_json(plan: &Json, axes: &[Axis], rows: &[GridRow]) -> Json {
    let cells: Vec<Json> = rows
        .iter()
        .map(|r| {
            let values: serde_json::Map<String, Json> = axes
                .iter()
                .zip(&r.values)
                .map(|(a, v)| (a.key.clone(), Json::String(v.clone())))
                .collect();
            let figures: serde_json::Map<String, Json> = r
                .figures
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                .collect();
            serde_json::json!({
                "cell": r.cell,
                "values": values,
                "policy": r.policy,
                "scenario_sha256": r.scenario_sha256,
                "figures": figures,
            })
        })
        .collect();
    let mut grid = plan.clone();
    grid["rows"] = Json::Array(cells);
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<String> {
        Axis::parse(text).unwrap().values
    }

    #[test]
    fn numbers_are_written_as_numbers_whatever_the_spelling() {
        // grid.csv's column of `1_000_000` was text to pandas.
        assert_eq!(
            values("x=1_000_000,0x10,+5,2_000.5,1e8,'a_b'"),
            ["1000000", "16", "5", "2000.5", "1e8", "'a_b'"]
        );
        let e = Axis::parse("x=1_000,1000").unwrap_err();
        assert!(e.contains("1000 is given twice"), "{e}");
    }

    #[test]
    fn a_range_holds_its_end_points_and_decimals_without_binary_noise() {
        assert_eq!(values("x=0.1..0.5:5"), ["0.1", "0.2", "0.3", "0.4", "0.5"]);
        // Past 9,000 rounding at 1e-12 absolute no longer removed the noise
        // (9900000000.000002, 23456.788999999997).
        assert_eq!(
            values("x=1.1e9..9.9e9:5"),
            [
                "1100000000",
                "3300000000",
                "5500000000",
                "7700000000",
                "9900000000"
            ]
        );
        assert_eq!(
            values("x=12345.678..23456.789:4"),
            ["12345.678", "16049.3816667", "19753.0853333", "23456.789"]
        );
        // Zero up to noise is zero, and a range crossing it keeps its sign elsewhere.
        assert_eq!(values("x=-0.3..0.9:5"), ["-0.3", "0", "0.3", "0.6", "0.9"]);
        assert_eq!(
            values("x=1e-9..5e-9:3"),
            ["0.000000001", "0.000000003", "0.000000005"]
        );
        // Beyond what rounding by an exact power of ten can do, a value is left as it is
        // (this one then refused as an integer a scenario cannot hold), never made infinite.
        let e = Axis::parse("x=1e9..1e300:2").unwrap_err();
        assert!(e.contains("outside the integers"), "{e}");
    }

    #[test]
    fn a_range_missing_an_end_is_refused_as_a_range() {
        // `1..` was taken for the text "1.." and then offered to `cascade sweep --set` again.
        for text in ["x=1..", "x=..2", "x=1..2", "x=..2:3"] {
            let e = Axis::parse(text).unwrap_err();
            assert!(e.contains("a range is FROM..TO:N"), "{text}: {e}");
        }
        assert_eq!(values("x=../books/a.csv"), ["../books/a.csv"]);
    }

    #[test]
    fn a_cell_of_a_tiny_range_value_has_a_name_a_file_system_holds() {
        // Written out, 1e-320 is 322 characters: the sweep was refused for a name too long.
        let axes = [Axis::parse("x=1e-320..1e-310:3").unwrap()];
        let names: Vec<String> = cells(&axes).iter().map(|c| c.name(&axes)).collect();
        assert_eq!(names, ["x=1e-320", "x=5.0000000005e-311", "x=1e-310"]);
        // Any other value keeps its name, as written.
        let axes = [Axis::parse("x=0.50,1e8,0.000000001").unwrap()];
        let names: Vec<String> = cells(&axes).iter().map(|c| c.name(&axes)).collect();
        assert_eq!(names, ["x=0.50", "x=1e8", "x=0.000000001"]);
    }

    #[test]
    fn nan_given_twice_is_given_twice() {
        let e = Axis::parse("x=nan,nan").unwrap_err();
        assert!(e.contains("nan is given twice"), "{e}");
        assert_eq!(values("x=nan,1"), ["nan", "1"]);
    }

    #[test]
    fn the_plan_records_paths_only_when_every_cell_has_the_same() {
        let axes = [Axis::parse("liquidity.routing=0.1,0.2").unwrap()];
        assert_eq!(plan_json("s", &axes, 7, Some(100))["paths"], 100);
        assert!(plan_json("s", &axes, 7, None)["paths"].is_null());
        assert_eq!(plan_json("s", &axes, 7, None)["seed"], 7);
    }
}
