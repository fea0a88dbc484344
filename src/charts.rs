//! Charts: one function per chart, plain data in, a PNG and an SVG file out.
//!
//! Researchers look at the shape of a distribution before they read its numbers, so every
//! result directory carries these charts (and `report.html` inlines the SVGs). Each public
//! function takes plain data (no simulator types) and a file stem, writes `stem.png` and
//! `stem.svg`, checks every drawing call and calls `present()` explicitly, so a failure is an
//! error, never a silently truncated file (the habit of plotters' own examples).
//!
//! PNG text is drawn with DejaVu Sans, bundled in the binary (`assets/fonts/`) and
//! registered with plotters on first use, so charts render identically on a fresh machine
//! with no font libraries installed. SVG text names the generic `sans-serif` family and is
//! drawn by whatever shows the file.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::units::{self, Unit};

/// The font family every chart uses.
const FONT: &str = "sans-serif";

static FONTS: Once = Once::new();

/// Registers the bundled font with plotters (idempotent; every chart function calls it).
pub fn register_fonts() {
    FONTS.call_once(|| {
        // The bytes are a valid TrueType font checked in with the source; a failure here
        // would be a broken build, caught by every chart test.
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../assets/fonts/DejaVuSans.ttf"),
        );
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Bold,
            include_bytes!("../assets/fonts/DejaVuSans-Bold.ttf"),
        );
    });
}

/// Colour-blind-safe colours (Okabe and Ito, 2008), one per policy in scenario order.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(80, 80, 80),    // dark grey
];

/// The colour of the `i`-th policy.
pub fn policy_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

const INK: RGBColor = RGBColor(40, 40, 40);
const MUTED: RGBColor = RGBColor(110, 110, 110);
const GRID: RGBColor = RGBColor(225, 225, 225);
const SHADE: RGBColor = RGBColor(120, 120, 120);

fn title_font<'a>() -> TextStyle<'a> {
    (FONT, 28, FontStyle::Bold).into_font().color(&INK)
}

fn panel_font<'a>() -> TextStyle<'a> {
    (FONT, 21, FontStyle::Bold).into_font().color(&INK)
}

fn label_font<'a>() -> TextStyle<'a> {
    (FONT, 19).into_font().color(&INK)
}

fn tick_font<'a>() -> TextStyle<'a> {
    (FONT, 16).into_font().color(&INK)
}

fn note_font<'a>() -> TextStyle<'a> {
    (FONT, 16).into_font().color(&MUTED)
}

/// The two files a chart function writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `stem.png`.
    pub png: PathBuf,
    /// `stem.svg`.
    pub svg: PathBuf,
}

/// The files of the chart at `stem`, its extensions added to the whole stem: a policy named
/// `floor-0.05` gave `heatmap-floor-0.png` by replacing `.05`, the same file as `floor-0.06`.
fn targets(stem: &Path) -> Written {
    let with = |extension: &str| {
        let mut name = stem.as_os_str().to_owned();
        name.push(".");
        name.push(extension);
        PathBuf::from(name)
    };
    Written {
        png: with("png"),
        svg: with("svg"),
    }
}

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn failed<E: std::error::Error + Send + Sync>(
    path: &Path,
) -> impl FnOnce(DrawingAreaErrorKind<E>) -> Error + '_ {
    move |e| {
        Error::io(
            format!("cannot draw {}", path.display()),
            std::io::Error::other(e.to_string()),
        )
    }
}

/// Draws `$draw(root, ...)` into the PNG and the SVG of `$stem` at `$size`.
macro_rules! render {
    ($stem:expr, $size:expr, $draw:ident($($arg:expr),* $(,)?)) => {{
        register_fonts();
        let files = targets($stem);
        let size: (u32, u32) = $size;
        if u64::from(size.0) * u64::from(size.1) > MAX_PIXELS {
            too_large(&files, size)?;
        } else {
            $draw(BitMapBackend::new(&files.png, size).into_drawing_area(), $($arg),*)
                .map_err(failed(&files.png))?;
            $draw(SVGBackend::new(&files.svg, size).into_drawing_area(), $($arg),*)
                .map_err(failed(&files.svg))?;
        }
        Ok(files)
    }};
}

/// Pixels a chart may have. Charts grow with their rows (venues, policies, metrics): the venue
/// chart of 3,000 venues and 501 policies asked for a bitmap of gigabytes and plotters
/// panicked, losing the whole run; past this a chart says what it would have been instead.
const MAX_PIXELS: u64 = 1500 * 30_000;

/// Writes `files` as a note that the chart of `size` pixels is too large to draw.
fn too_large(files: &Written, size: (u32, u32)) -> Result<()> {
    let note = format!(
        "Too many rows to draw: this chart would be {} x {} pixels. Its figures are in \
         summary.json.",
        size.0, size.1
    );
    fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, note: &str) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        empty_note(&root, note)?;
        root.present()
    }
    const NOTE: (u32, u32) = (1200, 200);
    draw(
        BitMapBackend::new(&files.png, NOTE).into_drawing_area(),
        &note,
    )
    .map_err(failed(&files.png))?;
    draw(SVGBackend::new(&files.svg, NOTE).into_drawing_area(), &note).map_err(failed(&files.svg))
}

/// A linear axis with ticks only at the given points (category centres), labelled by the
/// chart's own formatter. (plotters' `WithKeyPoints` cannot be labelled on an `f64` axis.)
struct Keyed {
    range: RangedCoordf64,
    keys: Vec<f64>,
}

impl Keyed {
    fn new(range: std::ops::Range<f64>, keys: Vec<f64>) -> Keyed {
        Keyed {
            range: range.into(),
            keys,
        }
    }
}

impl Ranged for Keyed {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.range.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.range.range()
    }
}

impl ValueFormatter<f64> for Keyed {
    fn format(value: &f64) -> String {
        format!("{value}")
    }
}

/// A log axis with ticks at 1, 2 and 5 times powers of ten where a range spans too few
/// decades for plotters' own (powers of ten only) to show any.
struct LogAxis {
    inner: LogCoord<f64>,
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn new(lo: f64, hi: f64) -> LogAxis {
        LogAxis {
            inner: LogCoord::from((lo..hi).log_scale()),
            lo,
            hi,
        }
    }
}

/// Ticks on a log axis between `lo` and `hi` (both positive): the sparsest of powers of
/// ten, then 1-2-5, then 1 to 9 times powers of ten that gives at least three, and never
/// more than `max` (every n-th power of ten over very wide ranges).
fn log_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let max = max.max(2);
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let within = |m: &[f64], every: i32| -> Vec<f64> {
        (first..=last)
            .filter(|e| e.rem_euclid(every) == 0)
            .flat_map(|e| m.iter().map(move |k| k * 10f64.powi(e)))
            .filter(|v| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9))
            .collect()
    };
    // 1-3 between decades and 1-2-5: a range of a little over two decades has too many
    // 1-2-5 ticks and too few decades, and was left with two ticks.
    let sets: [&[f64]; 4] = [
        &[1.0],
        &[1.0, 3.0],
        &[1.0, 2.0, 5.0],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    ];
    let mut every = 1;
    loop {
        let decades = within(sets[0], every);
        if decades.len() <= max {
            break;
        }
        every += 1;
    }
    let mut best = within(sets[0], every);
    for m in &sets[1..] {
        if best.len() >= 3 {
            break;
        }
        let t = within(m, 1);
        if t.len() <= max && t.len() > best.len() {
            best = t;
        }
    }
    best
}

impl Ranged for LogAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let max = hint.max_num_points();
        if hint.weight().allow_light_points() {
            let bold = log_ticks(self.lo, self.hi, max);
            let all = log_ticks(self.lo, self.hi, usize::MAX);
            if all.len() > bold.len() && all.len() <= max.max(bold.len()) * 10 {
                return all.into_iter().filter(|v| !bold.contains(v)).collect();
            }
            return Vec::new();
        }
        log_ticks(self.lo, self.hi, max)
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for LogAxis {
    fn format(value: &f64) -> String {
        format!("{value}")
    }
}

/// Room for category labels of tick-font text on a y axis: about 9.5 pixels a character.
fn label_area(labels: &[&str]) -> u32 {
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4) as u32;
    (longest * 19 / 2 + 24).clamp(70, 320)
}

/// Writes a centred note where a chart would be, for data with nothing to plot.
fn empty_note<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, note: &str) -> DrawResult<DB> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        note.to_string(),
        (w as i32 / 2, h as i32 / 2),
        note_font().pos(Pos::new(HPos::Center, VPos::Center)),
    ))
}

/// How a policy is marked in a [`policy_key`]: as its dots or its bars are drawn.
#[derive(Clone, Copy)]
enum Mark {
    Dot,
    Bar,
}

/// A row of policy names, each after its colour's mark, centred at height `y` of `area`:
/// under the plot, a key covers no value and takes no room from the axis.
fn policy_key<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    y: i32,
    names: &[(&str, RGBColor)],
    mark: Mark,
) -> DrawResult<DB> {
    // Tick-font text is about 9.5 pixels a character; the mark and gaps take 50.
    let width = |name: &str| name.chars().count() as i32 * 19 / 2 + 50;
    let (w, _) = area.dim_in_pixel();
    let mut x = (w as i32 - names.iter().map(|(n, _)| width(n)).sum::<i32>()) / 2;
    for &(name, color) in names {
        match mark {
            Mark::Dot => area.draw(&Circle::new((x + 8, y), DOT, color.filled()))?,
            Mark::Bar => area.draw(&Rectangle::new(
                [(x, y - 7), (x + 18, y + 7)],
                color.filled(),
            ))?,
        }
        area.draw(&Text::new(
            name.to_string(),
            (x + 26, y),
            tick_font().pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        x += width(name);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Loss exceedance curves
// ---------------------------------------------------------------------------------------------

/// One policy's values of a metric, one per path.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Policy name.
    pub policy: &'a str,
    /// The metric's value on every path.
    pub values: &'a [f64],
}

/// An exceedance chart's dollar axis is logarithmic where its positive values span more than
/// this factor (about a decade and a half).
pub const LOG_X_SPAN: f64 = 30.0;

/// Most points drawn per curve; the tail's last 200 paths are always drawn one by one.
const MAX_CURVE_POINTS: usize = 1_000;

/// The empirical exceedance curve of `values`: `(x, P(X >= x))` at each distinct value above
/// zero (or every value, for `positive_only = false`), ascending in x, with the body of the
/// distribution thinned to a few hundred points and the tail kept whole.
pub fn exceedance_points(values: &[f64], positive_only: bool) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let mut points: Vec<(f64, f64)> = Vec::new();
    for (i, &x) in v.iter().enumerate() {
        if (positive_only && x <= 0.0) || (i > 0 && v[i - 1] == x) {
            continue;
        }
        points.push((x, (n - i as f64) / n));
    }
    if points.len() <= MAX_CURVE_POINTS {
        return points;
    }
    // Keep points spaced evenly in log probability, and the last 200 whole.
    let mut kept = Vec::with_capacity(MAX_CURVE_POINTS);
    let tail_start = points.len() - 200;
    let ratio = (points[0].1 / points[tail_start].1).max(1.0);
    let step = ratio.powf(1.0 / (MAX_CURVE_POINTS - 200) as f64);
    let mut next = f64::INFINITY;
    for (i, &(x, p)) in points.iter().enumerate() {
        if i == 0 || i >= tail_start || p <= next {
            kept.push((x, p));
            next = p / step;
        }
    }
    kept
}

/// A loss exceedance chart: for each policy, the probability that a path's `metric`
/// exceeds x, overlaid, on a log probability axis; x is on a log axis for dollar metrics
/// and linear (in %) for fractions. Paths at zero cannot sit on a log axis: the legend
/// gives each policy's share of paths above zero instead.
pub fn exceedance(
    stem: &Path,
    title: &str,
    metric: &str,
    unit: Unit,
    samples: &[Sample<'_>],
) -> Result<Written> {
    render!(
        stem,
        (1200, 720),
        draw_exceedance(title, metric, unit, samples)
    )
}

/// One policy's exceedance curve, ready to draw.
struct Curve<'a> {
    /// Position of the policy (its colour).
    index: usize,
    policy: &'a str,
    /// `(x, P(X >= x))`, ascending in x.
    points: Vec<(f64, f64)>,
    /// Share of paths above zero.
    above: f64,
}

/// The stairs that draw `points` (from [`exceedance_points`]) as the share of paths above x:
/// at each value the curve drops from the share at or above it to the share above it (the
/// next point's), and stays there until the next value; past the last value, no path is
/// above, so the curve drops to `floor` (the bottom of a log axis, which cannot show zero).
/// Drawn flat from each point instead, it showed one path too many between two values, and
/// a policy whose paths all had one value as a single point that drew nothing.
fn survival_stairs(points: &[(f64, f64)], floor: f64) -> Vec<(f64, f64)> {
    let mut stairs = Vec::with_capacity(points.len() * 2);
    for (k, &(x, p)) in points.iter().enumerate() {
        let above = points.get(k + 1).map_or(floor, |&(_, next)| next);
        stairs.push((x, p));
        stairs.push((x, above));
    }
    stairs
}

/// Most ticks on an exceedance chart's horizontal axis.
const X_LABELS: usize = 10;

fn draw_exceedance<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    metric: &str,
    unit: Unit,
    samples: &[Sample<'_>],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let finite = || {
        samples
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
    };
    let x_max = finite().fold(f64::NEG_INFINITY, f64::max);
    let positive_min = finite().filter(|&x| x > 0.0).fold(f64::INFINITY, f64::min);
    // Paths at zero cannot sit on a log axis, so the legend gives each policy's share above
    // zero.
    let log_x = unit != Unit::Fraction && x_max / positive_min > LOG_X_SPAN;
    let curves: Vec<Curve> = samples
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let n = s.values.len().max(1) as f64;
            Curve {
                index,
                policy: s.policy,
                points: exceedance_points(s.values, log_x || s.values.iter().all(|&v| v <= 0.0)),
                above: s.values.iter().filter(|&&v| v > 0.0).count() as f64 / n,
            }
        })
        .collect();
    let n_max = samples
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let y_low = 0.5 / n_max as f64;
    // A policy with every path at zero would be a vertical line at zero that pulls the axis
    // down to it and squeezes the others: its legend entry says so instead.
    let x_min = samples
        .iter()
        .filter(|s| s.values.iter().any(|&v| v > 0.0))
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    let (label, _) = units::metric(metric);
    let area = root.margin(10, 0, 0, 0).titled(title, title_font())?;
    if !(x_max.is_finite() && x_max > 0.0) {
        empty_note(
            &area,
            &format!("No path had any {label} under any policy: nothing to plot."),
        )?;
        return root.present();
    }
    let y = LogAxis::new(y_low, 1.0);
    if log_x {
        let x_label = format!("{label} on a path ({}, log scale)", unit.axis());
        exceedance_body(
            &area,
            LogAxis::new(positive_min / 1.5, x_max * 1.5),
            y,
            &x_label,
            &|v| unit.tick(v),
            &curves,
        )?;
    } else {
        // At least 5% of the largest value either side, so that paths all at one value (one
        // path, say) sit in a range whose ticks read apart.
        let pad = ((x_max - x_min) * 0.05).max(x_max.abs() * 0.05).max(1e-12);
        let lo = if x_min >= 0.0 && x_min - pad < 0.0 {
            0.0
        } else {
            x_min - pad
        };
        let hi = x_max + pad;
        let x_label = format!("{label} on a path ({})", unit.axis());
        let usd = units::usd_ticks(lo, hi, (hi - lo) / X_LABELS as f64);
        let tick = |v: f64| match unit {
            Unit::Usd => usd(v),
            _ => unit.tick(v),
        };
        exceedance_body(
            &area,
            RangedCoordf64::from(lo..hi),
            y,
            &x_label,
            &tick,
            &curves,
        )?;
    }
    root.present()
}

fn exceedance_body<DB, X>(
    area: &DrawingArea<DB, Shift>,
    x: X,
    y: LogAxis,
    x_label: &str,
    x_tick: &dyn Fn(f64) -> String,
    curves: &[Curve<'_>],
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let y_floor = y.lo;
    let mut chart = ChartBuilder::on(area)
        .margin(20)
        .margin_right(40)
        .x_label_area_size(60)
        .y_label_area_size(90)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .light_line_style(GRID.mix(0.6))
        .max_light_lines(2)
        .bold_line_style(GRID)
        .axis_desc_style(label_font())
        .label_style(tick_font())
        .x_desc(x_label)
        .y_desc("probability of exceeding x (log scale)")
        .x_label_formatter(&|v| x_tick(*v))
        .y_label_formatter(&|v| Unit::Fraction.tick(*v))
        .x_labels(X_LABELS)
        .y_labels(8)
        .draw()?;
    for c in curves {
        let (policy, pts, above) = (c.policy, &c.points, c.above);
        let color = policy_color(c.index);
        let stairs = survival_stairs(pts, y_floor);
        let label = if above == 0.0 {
            format!("{policy}  (no path above zero: no curve)")
        } else if above < 1.0 {
            format!("{policy}  (paths above zero: {})", units::percent(above))
        } else {
            policy.to_string()
        };
        // The baseline is drawn wider, underneath, so a policy that matches it stays visible.
        let width = if c.index == 0 && curves.len() > 1 {
            6
        } else {
            3
        };
        chart
            .draw_series(LineSeries::new(stairs, color.stroke_width(width)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 28, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        // Room for the 28-pixel swatch and a gap before its label (the default, 30, touched).
        .legend_area_size(40)
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(GRID)
        .label_font(tick_font())
        .margin(12)
        .draw()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bands over time: price fan chart and cumulative liquidations
// ---------------------------------------------------------------------------------------------

/// One policy's per-step quantile bands.
#[derive(Debug, Clone, Copy)]
pub struct Bands<'a> {
    /// Policy name.
    pub policy: &'a str,
    /// Time of every step, in the unit [`TimeAxis::label`] names.
    pub time: &'a [f64],
    /// The 5, 25, 50, 75 and 95% quantiles at every step.
    pub quantiles: [&'a [f64]; 5],
}

/// The time axis shared by every panel.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeAxis {
    /// Axis label with its unit, e.g. `time since start (hours)`.
    pub label: String,
    /// Start and end of the stress window, shaded, in the same unit.
    pub stress: Option<(f64, f64)>,
}

/// A fan chart of the traded price: one panel per policy with the 5-95% and 25-75% bands
/// and the median, the stress window shaded, and the baseline's median dashed for
/// reference in every other panel. Panels share their scales. Of a run of one path
/// (`paths` is 1) it draws that path alone: its bands are the path itself.
pub fn price_fan(
    stem: &Path,
    title: &str,
    time: &TimeAxis,
    bands: &[Bands<'_>],
    paths: u64,
) -> Result<Written> {
    let size = panels_size(bands.len());
    render!(
        stem,
        size,
        draw_bands(title, time, "traded price (USD)", false, bands, paths == 1)
    )
}

/// Cumulative liquidated notional over time: one panel per policy with the 5-95% and
/// 25-75% bands and the median, drawn like [`price_fan`].
pub fn liquidations(
    stem: &Path,
    title: &str,
    time: &TimeAxis,
    bands: &[Bands<'_>],
    paths: u64,
) -> Result<Written> {
    let size = panels_size(bands.len());
    render!(
        stem,
        size,
        draw_bands(
            title,
            time,
            "cumulative liquidated notional (USD)",
            true,
            bands,
            paths == 1
        )
    )
}

fn panel_grid(n: usize) -> (usize, usize) {
    let cols = match n {
        0 | 1 => 1,
        2..=4 => 2,
        _ => 3,
    };
    (n.max(1).div_ceil(cols), cols)
}

fn panels_size(n: usize) -> (u32, u32) {
    let (rows, cols) = panel_grid(n);
    let width = if cols == 3 { 1500 } else { 1200 };
    let panel_h = if cols == 1 { 600 } else { 420 };
    let rows = u32::try_from(rows).unwrap_or(u32::MAX);
    (width, rows.saturating_mul(panel_h).saturating_add(70 + 50))
}

/// Most ticks on a band chart's dollar axis.
const Y_LABELS: usize = 7;

fn draw_bands<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    time: &TimeAxis,
    y_label: &str,
    from_zero: bool,
    bands: &[Bands<'_>],
    one_path: bool,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let area = root.margin(10, 0, 0, 0).titled(title, title_font())?;
    let finite = |v: &&f64| v.is_finite();
    let lows = bands
        .iter()
        .flat_map(|b| b.quantiles[0].iter())
        .filter(finite);
    let highs = bands
        .iter()
        .flat_map(|b| b.quantiles[4].iter())
        .filter(finite);
    let (mut y_lo, mut y_hi) = (
        lows.fold(f64::INFINITY, |a, &b| a.min(b)),
        highs.fold(f64::NEG_INFINITY, |a, &b| a.max(b)),
    );
    let t_max = bands
        .iter()
        .flat_map(|b| b.time.iter())
        .fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    if !(y_lo.is_finite() && y_hi.is_finite() && t_max.is_finite()) {
        empty_note(&area, "No steps were recorded: nothing to plot.")?;
        return root.present();
    }
    if from_zero {
        y_lo = 0.0;
    }
    let pad = ((y_hi - y_lo) * 0.05).max(if y_hi > 0.0 { y_hi * 1e-3 } else { 1.0 });
    y_hi += pad;
    if !from_zero {
        y_lo -= pad;
    }
    let (legend_area, panels_area) = {
        let (w, h) = area.dim_in_pixel();
        let (top, bottom) = area.split_vertically(h.saturating_sub(50));
        let _ = w;
        (bottom, top)
    };
    let (rows, cols) = panel_grid(bands.len());
    let panels = panels_area.split_evenly((rows, cols));
    // Ticks at least this far apart (the axis holds at most `Y_LABELS` of them).
    let y_tick = units::usd_ticks(y_lo, y_hi, (y_hi - y_lo) / Y_LABELS as f64);
    let y_tick = |v: &f64| y_tick(*v);
    let baseline = bands.first();
    for (i, (b, panel)) in bands.iter().zip(&panels).enumerate() {
        let color = policy_color(i);
        let mut chart = ChartBuilder::on(panel)
            .caption(b.policy, panel_font())
            .margin(12)
            .margin_right(28)
            .x_label_area_size(50)
            .y_label_area_size(95)
            .build_cartesian_2d(0.0..t_max, y_lo..y_hi)?;
        chart
            .configure_mesh()
            .light_line_style(GRID.mix(0.5))
            .max_light_lines(2)
            .bold_line_style(GRID)
            .axis_desc_style(label_font())
            .label_style(tick_font())
            .x_desc(time.label.as_str())
            .x_label_formatter(&|v| units::trim_zeros(&format!("{v:.2}")))
            .y_desc(y_label)
            .y_label_formatter(&y_tick)
            .x_labels(8)
            .y_labels(Y_LABELS)
            .draw()?;
        if let Some((s0, s1)) = time.stress {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(s0, y_lo), (s1, y_hi)],
                SHADE.mix(0.12).filled(),
            )))?;
        }
        let band = |lo: &[f64], hi: &[f64]| -> Vec<(f64, f64)> {
            let upper = b.time.iter().copied().zip(hi.iter().copied());
            let lower = b.time.iter().copied().zip(lo.iter().copied()).rev();
            upper.chain(lower).collect()
        };
        if !one_path {
            chart.draw_series(std::iter::once(Polygon::new(
                band(b.quantiles[0], b.quantiles[4]),
                color.mix(0.18).filled(),
            )))?;
            chart.draw_series(std::iter::once(Polygon::new(
                band(b.quantiles[1], b.quantiles[3]),
                color.mix(0.38).filled(),
            )))?;
        }
        if let Some(base) = baseline.filter(|_| i > 0) {
            chart.draw_series(DashedLineSeries::new(
                base.time
                    .iter()
                    .copied()
                    .zip(base.quantiles[2].iter().copied()),
                10,
                6,
                INK.stroke_width(2),
            ))?;
        }
        chart.draw_series(LineSeries::new(
            b.time.iter().copied().zip(b.quantiles[2].iter().copied()),
            color.stroke_width(3),
        ))?;
    }
    draw_band_legend(
        &legend_area,
        one_path,
        bands.len() > 1,
        time.stress.is_some(),
    )?;
    root.present()
}

/// The key under banded panels: what the shades, lines and dashes mean (of one path, the
/// path's line, with no bands).
fn draw_band_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    one_path: bool,
    with_baseline: bool,
    with_stress: bool,
) -> DrawResult<DB> {
    let blue = policy_color(0);
    let (w, h) = area.dim_in_pixel();
    let y = h as i32 / 2;
    let mut items: Vec<(&str, u8)> = if one_path {
        vec![("the one path", 0)]
    } else {
        vec![("median", 0), ("25-75% of paths", 1), ("5-95% of paths", 2)]
    };
    if with_baseline {
        items.push((
            if one_path {
                "baseline's path"
            } else {
                "baseline median"
            },
            3,
        ));
    }
    if with_stress {
        items.push(("stress window", 4));
    }
    let item_w = 230;
    let mut x = (w as i32 - item_w * items.len() as i32) / 2;
    for (text, kind) in items {
        let (x0, x1) = (x, x + 36);
        match kind {
            0 => area.draw(&PathElement::new([(x0, y), (x1, y)], blue.stroke_width(3)))?,
            1 => area.draw(&Rectangle::new(
                [(x0, y - 9), (x1, y + 9)],
                blue.mix(0.38).filled(),
            ))?,
            2 => area.draw(&Rectangle::new(
                [(x0, y - 9), (x1, y + 9)],
                blue.mix(0.18).filled(),
            ))?,
            3 => {
                area.draw(&PathElement::new(
                    [(x0, y), (x0 + 14, y)],
                    INK.stroke_width(2),
                ))?;
                area.draw(&PathElement::new(
                    [(x0 + 20, y), (x1, y)],
                    INK.stroke_width(2),
                ))?;
            }
            _ => area.draw(&Rectangle::new(
                [(x0, y - 9), (x1, y + 9)],
                SHADE.mix(0.12).filled(),
            ))?,
        }
        area.draw(&Text::new(
            text.to_string(),
            (x1 + 10, y),
            tick_font().pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        x += item_w;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Per-venue bars
// ---------------------------------------------------------------------------------------------

/// One policy's per-venue figures, in venue order.
#[derive(Debug, Clone, Copy)]
pub struct VenueFigures<'a> {
    /// Policy name.
    pub policy: &'a str,
    /// Mean liquidated notional per venue (USD).
    pub liquidated_notional: &'a [f64],
    /// Insolvency probability per venue (share of paths).
    pub insolvency_probability: &'a [f64],
}

/// Whether any of `probabilities` (of a venue being left insolvent) is above zero: the
/// venue chart has an insolvency panel only then.
pub fn any_insolvent(probabilities: impl IntoIterator<Item = f64>) -> bool {
    probabilities.into_iter().any(|p| p > 0.0)
}

/// Per-venue liquidated notional (mean over paths) and, where any venue was left insolvent
/// ([`any_insolvent`]), insolvency probability, as horizontal bars grouped by venue, one bar
/// per policy, side by side; a bar at zero is a stub marked with its value, not a gap.
pub fn venues(
    stem: &Path,
    title: &str,
    venues: &[&str],
    policies: &[VenueFigures<'_>],
) -> Result<Written> {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let per_venue = count(policies.len())
        .saturating_mul(16)
        .saturating_add(14)
        .max(52);
    let size = (
        1400,
        count(venues.len())
            .saturating_mul(per_venue)
            .saturating_add(190),
    );
    render!(stem, size, draw_venues(title, venues, policies))
}

fn draw_venues<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    venues: &[&str],
    policies: &[VenueFigures<'_>],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let area = root.margin(10, 0, 0, 0).titled(title, title_font())?;
    if venues.is_empty() || policies.is_empty() {
        empty_note(&area, "No venues: nothing to plot.")?;
        return root.present();
    }
    let (w, h) = area.dim_in_pixel();
    let (panels, foot) = area.split_vertically(h.saturating_sub(70));
    let notional: Vec<&[f64]> = policies.iter().map(|p| p.liquidated_notional).collect();
    let insolvency: Vec<&[f64]> = policies.iter().map(|p| p.insolvency_probability).collect();
    let none_liquidated = notional.iter().all(|v| v.iter().all(|&x| x <= 0.0));
    let insolvent = any_insolvent(insolvency.iter().flat_map(|v| v.iter().copied()));
    // An insolvency panel of no bars was half a chart of nothing: a line says it instead.
    let (left, right) = if insolvent {
        let (l, r) = panels.split_horizontally(w / 2);
        (l, Some(r))
    } else {
        (panels, None)
    };
    venue_panel(
        &left,
        "Mean liquidated notional per path",
        "USD",
        Unit::Usd,
        venues,
        &notional,
        none_liquidated.then_some("nothing was liquidated on any path"),
    )?;
    if let Some(right) = right {
        venue_panel(
            &right,
            "Probability the venue is left insolvent",
            "% of paths",
            Unit::Fraction,
            venues,
            &insolvency,
            None,
        )?;
    }
    let key: Vec<(&str, RGBColor)> = policies
        .iter()
        .enumerate()
        .map(|(k, p)| (p.policy, policy_color(k)))
        .collect();
    policy_key(&foot, 16, &key, Mark::Bar)?;
    if !insolvent {
        let (fw, fh) = foot.dim_in_pixel();
        foot.draw(&Text::new(
            "No venue was left insolvent on any path under any policy.",
            (fw as i32 / 2, fh as i32 - 16),
            note_font().pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    root.present()
}

fn venue_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    x_label: &str,
    unit: Unit,
    venues: &[&str],
    values: &[&[f64]],
    note: Option<&str>,
) -> DrawResult<DB> {
    let n = venues.len();
    let max = values
        .iter()
        .flat_map(|v| v.iter())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    // Room past the longest bar for its value, and no more.
    let x_hi = if max > 0.0 {
        max * 1.18
    } else if unit == Unit::Fraction {
        0.01
    } else {
        1.0
    };
    let centres: Vec<f64> = (0..n).map(|i| (n - 1 - i) as f64 + 0.5).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, panel_font())
        .margin(14)
        .margin_right(30)
        .x_label_area_size(55)
        .y_label_area_size(label_area(venues))
        .build_cartesian_2d(0.0..x_hi, Keyed::new(0.0..n as f64, centres))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(GRID.mix(0.5))
        .max_light_lines(2)
        .bold_line_style(GRID)
        .axis_desc_style(label_font())
        .label_style(tick_font())
        .x_desc(x_label)
        .x_label_formatter(&|v| unit.tick(*v))
        .y_label_formatter(&|y| {
            let i = n as f64 - 0.5 - *y;
            venues
                .get(i.round().max(0.0) as usize)
                .map(|s| s.to_string())
                .unwrap_or_default()
        })
        .x_labels(6)
        .draw()?;
    let p = values.len() as f64;
    let group = 0.8;
    let bar = group / p;
    for (k, vals) in values.iter().enumerate() {
        let color = policy_color(k);
        let top = |i: usize| (n - 1 - i) as f64 + 0.5 + group / 2.0 - k as f64 * bar;
        chart.draw_series(vals.iter().enumerate().map(|(i, &v)| {
            Rectangle::new(
                [(0.0, top(i) - bar * 0.92), (v.max(0.0), top(i))],
                color.filled(),
            )
        }))?;
        // A zero bar has no length: a stub keeps it from reading as a missing value.
        chart.draw_series(
            vals.iter()
                .enumerate()
                .filter(|(_, v)| **v <= 0.0)
                .map(|(i, _)| {
                    Rectangle::new(
                        [(0.0, top(i) - bar * 0.92), (x_hi * 0.004, top(i))],
                        color.filled(),
                    )
                }),
        )?;
        // Values at the bar ends: the chart is as tall as its bars, so each has a row for its
        // label, and a bar too short to see reads by its value.
        chart.draw_series(vals.iter().enumerate().map(|(i, &v)| {
            EmptyElement::at((v.max(0.0), top(i) - bar * 0.46))
                + Text::new(
                    unit.format(v),
                    (6, 0),
                    (FONT, 13)
                        .into_font()
                        .color(&MUTED)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )
        }))?;
    }
    if let Some(note) = note {
        let (x, y) = chart.backend_coord(&(x_hi / 2.0, n as f64 / 2.0));
        let (ox, oy) = area.get_base_pixel();
        area.draw(&Text::new(
            note.to_string(),
            (x - ox, y - oy),
            note_font().pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Forest plot of paired differences
// ---------------------------------------------------------------------------------------------

/// One policy's paired effect on one metric, relative to the baseline mean.
#[derive(Debug, Clone, Copy)]
pub struct Effect<'a> {
    /// Metric display name.
    pub metric: &'a str,
    /// Policy name.
    pub policy: &'a str,
    /// Mean paired difference over the baseline mean (-0.1 = 10% lower).
    pub estimate: f64,
    /// 95% confidence interval of `estimate`.
    pub ci95: [f64; 2],
}

/// Beyond this relative change (+200%) the forest plot's axis turns symmetric-logarithmic: on a linear axis one huge effect (an
/// unabsorbed loss twenty times the baseline's) squashed every other onto 0%, and clipping it
/// drew it where the axis read another value.
pub const FOREST_LINEAR_LIMIT: f64 = 2.0;

/// Within this relative change (10%) a symmetric-log forest axis stays nearly linear.
pub const FOREST_KNEE: f64 = 0.1;

/// Radius in pixels of a forest plot's dot: an interval narrower than twice this is hidden.
const DOT: i32 = 6;

/// The forest plot's horizontal axis: linear, or symmetric-logarithmic (`sign(v) ln(1 +
/// |v| / knee)`, linear near zero and logarithmic beyond the knee, so that +5% and +1,900%
/// both read), every value drawn where the axis says it is.
struct EffectAxis {
    lo: f64,
    hi: f64,
    knee: Option<f64>,
}

impl EffectAxis {
    /// The axis for effects within `lo..hi` (a range that includes zero), symmetric-log
    /// where they reach past [`FOREST_LINEAR_LIMIT`], padded.
    fn new(lo: f64, hi: f64) -> EffectAxis {
        let knee = (lo.abs().max(hi.abs()) > FOREST_LINEAR_LIMIT).then_some(FOREST_KNEE);
        let axis = EffectAxis { lo, hi, knee };
        let (a, b) = (axis.position(lo), axis.position(hi));
        let pad = ((b - a) * 0.05).max(0.01);
        EffectAxis {
            lo: axis.value_at(a - pad),
            hi: axis.value_at(b + pad),
            knee,
        }
    }

    fn position(&self, v: f64) -> f64 {
        match self.knee {
            Some(k) => v.signum() * (v.abs() / k).ln_1p(),
            None => v,
        }
    }

    fn value_at(&self, t: f64) -> f64 {
        match self.knee {
            Some(k) => t.signum() * k * t.abs().exp_m1(),
            None => t,
        }
    }

    fn label(&self) -> String {
        match self.knee {
            Some(k) => format!(
                ", symmetric log scale: linear within {}",
                units::trim_zeros(&format!("±{}", units::percent(k)))
            ),
            None => String::new(),
        }
    }
}

/// Ticks of a symmetric-log axis over `lo..hi` whose positions `at` (on the axis) are at
/// least `(at(hi) - at(lo)) / max` apart: zero, then powers of ten (-100% among them), then
/// 5 and 2 times them, each kept where it clears every tick kept before it.
fn symlog_ticks(lo: f64, hi: f64, max: usize, at: impl Fn(f64) -> f64) -> Vec<f64> {
    let gap = (at(hi) - at(lo)) / max.max(2) as f64;
    let mut ticks = vec![0.0];
    for m in [1.0, 5.0, 2.0] {
        for e in -3..=6 {
            for v in [m * 10f64.powi(e), -m * 10f64.powi(e)] {
                if (lo..=hi).contains(&v) && ticks.iter().all(|&t| (at(v) - at(t)).abs() >= gap) {
                    ticks.push(v);
                }
            }
        }
    }
    ticks.retain(|v| (lo..=hi).contains(v));
    ticks.sort_by(f64::total_cmp);
    ticks
}

impl Ranged for EffectAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let (a, b) = (self.position(self.lo), self.position(self.hi));
        RangedCoordf64::from(a..b).map(&self.position(*value), limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        match self.knee {
            None => RangedCoordf64::from(self.lo..self.hi).key_points(hint),
            // Light lines between uneven ticks would read as even steps.
            Some(_) if hint.weight().allow_light_points() => Vec::new(),
            Some(_) => symlog_ticks(self.lo, self.hi, hint.max_num_points(), |v| {
                self.position(v)
            }),
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for EffectAxis {
    fn format(value: &f64) -> String {
        format!("{value}")
    }
}

/// A forest plot: for every metric (one row group) and policy (one colour), the mean paired
/// difference against the baseline as a share of the baseline mean, with its 95% confidence
/// interval. A filled dot marks an interval that excludes zero. Every value is drawn where
/// the axis reads it: the axis turns symmetric-log where an effect passes
/// [`FOREST_LINEAR_LIMIT`], and a line under it counts the intervals hidden behind their dot.
pub fn forest(stem: &Path, title: &str, baseline: &str, effects: &[Effect<'_>]) -> Result<Written> {
    let (metrics, policies) = forest_keys(effects);
    let rows = metrics.len() * (policies.len() + 1);
    let rows = u32::try_from(rows.max(3)).unwrap_or(u32::MAX);
    let size = (1200, rows.saturating_mul(22).saturating_add(260));
    render!(stem, size, draw_forest(title, baseline, effects))
}

fn forest_keys<'a>(effects: &[Effect<'a>]) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut metrics: Vec<&str> = Vec::new();
    let mut policies: Vec<&str> = Vec::new();
    for e in effects {
        if !metrics.contains(&e.metric) {
            metrics.push(e.metric);
        }
        if !policies.contains(&e.policy) {
            policies.push(e.policy);
        }
    }
    (metrics, policies)
}

fn draw_forest<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    baseline: &str,
    effects: &[Effect<'_>],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let area = root.margin(10, 0, 0, 0).titled(title, title_font())?;
    let (metrics, policies) = forest_keys(effects);
    if effects.is_empty() {
        // Either the scenario has one policy or too few paths for an interval.
        empty_note(
            &area,
            "No comparisons to plot: they need a second policy and at least two paths.",
        )?;
        return root.present();
    }
    let (_, h) = area.dim_in_pixel();
    let (area, foot) = area.split_vertically(h.saturating_sub(70));
    let slot = policies.len() + 1;
    let rows = (metrics.len() * slot) as f64;
    let row_y = |m: usize, p: usize| rows - (m * slot + p) as f64 - 1.0;
    let centres: Vec<f64> = (0..metrics.len())
        .map(|m| row_y(m, 0) - (policies.len() as f64 - 1.0) / 2.0)
        .collect();
    let drawn: Vec<&Effect> = effects.iter().filter(|e| e.estimate.is_finite()).collect();
    let finite = drawn
        .iter()
        .flat_map(|e| [e.ci95[0], e.ci95[1], e.estimate])
        .filter(|v| v.is_finite());
    let lo = finite.clone().fold(0.0, f64::min);
    let hi = finite.fold(0.0, f64::max);
    let x = EffectAxis::new(lo, hi);
    let (x_lo, x_hi) = (x.lo, x.hi);
    let x_label = format!(
        "mean paired difference, % of the {baseline} mean (95% CI{})",
        x.label()
    );
    let mut chart = ChartBuilder::on(&area)
        .margin(16)
        .margin_right(40)
        .x_label_area_size(60)
        .y_label_area_size(label_area(&metrics))
        .build_cartesian_2d(x, Keyed::new(-0.8..rows - 0.2, centres))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(GRID.mix(0.5))
        .max_light_lines(2)
        .bold_line_style(GRID)
        .axis_desc_style(label_font())
        .label_style(tick_font())
        .x_desc(x_label)
        .x_label_formatter(&|v| units::trim_zeros(&units::signed_percent(*v)))
        .y_label_formatter(&|y| {
            (0..metrics.len())
                .min_by(|&a, &b| {
                    let d =
                        |m: usize| (row_y(m, 0) - (policies.len() as f64 - 1.0) / 2.0 - y).abs();
                    d(a).total_cmp(&d(b))
                })
                .map(|m| metrics[m].to_string())
                .unwrap_or_default()
        })
        .x_labels(9)
        .draw()?;
    // Shade every other metric's rows.
    chart.draw_series((0..metrics.len()).filter(|m| m % 2 == 0).map(|m| {
        let top = row_y(m, 0) + 0.6;
        let bottom = row_y(m, policies.len() - 1) - 0.6;
        Rectangle::new([(x_lo, bottom), (x_hi, top)], SHADE.mix(0.07).filled())
    }))?;
    chart.draw_series(std::iter::once(PathElement::new(
        [(0.0, -0.8), (0.0, rows - 0.2)],
        INK.stroke_width(2),
    )))?;
    let mut hidden = 0;
    for (p, policy) in policies.iter().enumerate() {
        let color = policy_color(p + 1);
        let mine: Vec<(usize, &Effect)> = drawn
            .iter()
            .filter(|e| e.policy == *policy)
            .map(|&e| (metrics.iter().position(|m| *m == e.metric).unwrap_or(0), e))
            .collect();
        hidden += mine
            .iter()
            .filter(|(m, e)| {
                let y = row_y(*m, p);
                let (a, b) = (
                    chart.backend_coord(&(e.ci95[0], y)).0,
                    chart.backend_coord(&(e.ci95[1], y)).0,
                );
                (b - a).abs() <= 2 * DOT
            })
            .count();
        chart.draw_series(mine.iter().map(|&(m, e)| {
            ErrorBar::new_horizontal(
                row_y(m, p),
                e.ci95[0],
                e.estimate,
                e.ci95[1],
                color.stroke_width(2),
                10,
            )
        }))?;
        chart.draw_series(mine.iter().map(|&(m, e)| {
            let significant = e.ci95[0] > 0.0 || e.ci95[1] < 0.0;
            let style = if significant {
                color.filled()
            } else {
                WHITE.filled()
            };
            EmptyElement::at((e.estimate, row_y(m, p)))
                + Circle::new((0, 0), DOT, style)
                + Circle::new((0, 0), DOT, color.stroke_width(2))
        }))?;
    }
    let key: Vec<(&str, RGBColor)> = policies
        .iter()
        .enumerate()
        .map(|(p, name)| (*name, policy_color(p + 1)))
        .collect();
    policy_key(&foot, 16, &key, Mark::Dot)?;
    if hidden > 0 {
        let (fw, fh) = foot.dim_in_pixel();
        foot.draw(&Text::new(
            format!(
                "{} of {} intervals are narrower than their dot and hidden behind it.",
                hidden,
                drawn.len()
            ),
            (fw as i32 / 2, fh as i32 - 16),
            note_font().pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    root.present()
}

// ---------------------------------------------------------------------------------------------
// Sweep heatmap
// ---------------------------------------------------------------------------------------------

/// A metric over a grid of two swept scenario keys.
#[derive(Debug, Clone, Copy)]
pub struct Grid<'a> {
    /// Dotted path of the key along the x axis, e.g. `liquidity.routing`.
    pub x_key: &'a str,
    /// Its values, as written on the command line.
    pub x_values: &'a [String],
    /// Dotted path of the key along the y axis.
    pub y_key: &'a str,
    /// Its values.
    pub y_values: &'a [String],
    /// `values[row][column]`: the metric at `y_values[row]` and `x_values[column]`; NaN where
    /// a cell has no value.
    pub values: &'a [Vec<f64>],
    /// What the cells show, e.g. `mean liquidated notional`.
    pub metric: &'a str,
    /// The metric's unit.
    pub unit: Unit,
    /// Where the grid comes from (scenario, paths, seed), a line under the title; empty for
    /// none.
    pub caption: &'a str,
    /// The colours' scale: shared by the heatmaps that will be set side by side (every
    /// policy's grid of one metric), so that one colour is one value in all of them; `None`
    /// spans this grid's own values.
    pub scale: Option<ColourScale>,
}

/// How a heatmap's values map to colours: a range, linear, or logarithmic where USD figures
/// span two decades or more (on a linear scale USD 87 and USD 240,000 of bad debt were the
/// same colour beside USD 37M).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColourScale {
    /// The value at the scale's bottom (on a log scale the least positive value: below it,
    /// zero and less, a cell is grey).
    pub lo: f64,
    /// The value at its top.
    pub hi: f64,
    /// Whether colours follow the logarithm of the value.
    pub log: bool,
}

impl ColourScale {
    /// The scale spanning `values` (NaN skipped) of a metric in `unit`; `None` where there
    /// is none.
    pub fn spanning(values: impl IntoIterator<Item = f64>, unit: Unit) -> Option<ColourScale> {
        let (mut lo, mut hi, mut least_positive) =
            (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
            if v > 0.0 {
                least_positive = least_positive.min(v);
            }
        }
        if lo > hi {
            return None;
        }
        let log = unit == Unit::Usd && least_positive.is_finite() && hi >= 100.0 * least_positive;
        Some(ColourScale {
            lo: if log { least_positive } else { lo },
            hi,
            log,
        })
    }

    /// Where `v` falls on the scale, from 0 (bottom) to 1 (top); `None` below a log scale's
    /// bottom.
    fn position(&self, v: f64) -> Option<f64> {
        if self.log && v < self.lo {
            return None;
        }
        if self.hi <= self.lo {
            return Some(0.5);
        }
        let t = if self.log {
            (v / self.lo).ln() / (self.hi / self.lo).ln()
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        Some(t.clamp(0.0, 1.0))
    }

    /// The value at position `t` (0 to 1) of the scale.
    fn value(&self, t: f64) -> f64 {
        if self.log {
            self.lo * (self.hi / self.lo).powf(t)
        } else {
            self.lo + (self.hi - self.lo) * t
        }
    }
}

/// The fill of a heatmap cell off its colour scale (no value, or zero on a log scale).
const GREY_CELL: RGBColor = RGBColor(235, 235, 235);

/// A heatmap of a metric over two swept keys: a cell per combination, coloured on the
/// viridis scale ([`Grid::scale`]) with its value written in it, and a colour bar.
pub fn heatmap(stem: &Path, title: &str, grid: &Grid<'_>) -> Result<Written> {
    let w = (grid.x_values.len() as u32 * 120).clamp(500, 1400) + 420;
    let h = (grid.y_values.len() as u32 * 70).clamp(280, 900) + 200;
    render!(stem, (w, h), draw_heatmap(title, grid))
}

fn draw_heatmap<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    grid: &Grid<'_>,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let mut area = root.margin(10, 0, 0, 0).titled(title, title_font())?;
    if !grid.caption.is_empty() {
        area = area.titled(grid.caption, label_font())?;
    }
    let (nx, ny) = (grid.x_values.len(), grid.y_values.len());
    let cells = grid.values.iter().flat_map(|r| r.iter().copied());
    let scale = grid
        .scale
        .or_else(|| ColourScale::spanning(cells, grid.unit));
    let Some(scale) = scale.filter(|_| nx > 0 && ny > 0) else {
        empty_note(&area, "No grid values: nothing to plot.")?;
        return root.present();
    };
    let (w, _) = area.dim_in_pixel();
    let (main, bar) = area.split_horizontally(w.saturating_sub(210));
    let xs: Vec<f64> = (0..nx).map(|i| i as f64 + 0.5).collect();
    let ys: Vec<f64> = (0..ny).map(|i| i as f64 + 0.5).collect();
    let mut chart = ChartBuilder::on(&main)
        .margin(16)
        .x_label_area_size(60)
        .y_label_area_size(110)
        .build_cartesian_2d(
            Keyed::new(0.0..nx as f64, xs),
            Keyed::new(0.0..ny as f64, ys),
        )?;
    let pick = |values: &[String], v: f64| {
        values
            .get(v.floor().max(0.0) as usize)
            .cloned()
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .axis_desc_style(label_font())
        .label_style(tick_font())
        .x_desc(grid.x_key)
        .y_desc(grid.y_key)
        .x_label_formatter(&|v| pick(grid.x_values, *v))
        .y_label_formatter(&|v| pick(grid.y_values, *v))
        .draw()?;
    for (r, row) in grid.values.iter().enumerate().take(ny) {
        for (c, &v) in row.iter().enumerate().take(nx) {
            let (x, y) = (c as f64, r as f64);
            let position = Some(v)
                .filter(|v| v.is_finite())
                .and_then(|v| scale.position(v));
            let fill =
                position.map_or(GREY_CELL, |t| ViridisRGB::get_color_normalized(t, 0.0, 1.0));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                fill.filled(),
            )))?;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                WHITE.stroke_width(2),
            )))?;
            let text_color = if position.is_some_and(|t| t < 0.6) {
                WHITE
            } else {
                INK
            };
            let text = if v.is_finite() {
                grid.unit.format(v)
            } else {
                "n/a".to_string()
            };
            chart.draw_series(std::iter::once(Text::new(
                text,
                (x + 0.5, y + 0.5),
                (FONT, 17)
                    .into_font()
                    .color(&text_color)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            )))?;
        }
    }
    let grey = grid
        .values
        .iter()
        .flat_map(|r| r.iter())
        .any(|&v| v.is_finite() && scale.position(v).is_none());
    if grey {
        // Below a log scale's bottom (zero, on a USD figure) a cell is grey, off the bar.
        let (_, bh) = bar.dim_in_pixel();
        let y = bh as i32 - 40;
        bar.draw(&Rectangle::new(
            [(20, y - 10), (44, y + 10)],
            GREY_CELL.filled(),
        ))?;
        bar.draw(&Text::new(
            format!("{} or less", grid.unit.format(0.0)),
            (52, y),
            tick_font().pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    if scale.log {
        let label = format!("{} ({}, log scale)", grid.metric, grid.unit.axis());
        colour_bar(
            &bar,
            LogAxis::new(scale.lo, scale.hi),
            scale,
            &label,
            grid.unit,
        )?;
    } else {
        let top = if scale.hi > scale.lo {
            scale.hi
        } else {
            scale.lo + 1.0
        };
        let axis = RangedCoordf64::from(scale.lo..top);
        let label = format!("{} ({})", grid.metric, grid.unit.axis());
        colour_bar(&bar, axis, scale, &label, grid.unit)?;
    }
    root.present()
}

/// A heatmap's colour bar on the axis `y` (linear or log, as `scale` is).
fn colour_bar<DB, Y>(
    bar: &DrawingArea<DB, Shift>,
    y: Y,
    scale: ColourScale,
    label: &str,
    unit: Unit,
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let top = y.range().end;
    let mut chart = ChartBuilder::on(bar)
        .margin_top(16)
        .margin_bottom(76)
        .margin_right(40)
        .y_label_area_size(108)
        .build_cartesian_2d(0.0..1.0, y)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .axis_desc_style(tick_font())
        .y_desc(label)
        .label_style(tick_font())
        .y_label_formatter(&|v| unit.tick(*v))
        .y_labels(6)
        .draw()?;
    let steps = 100;
    let at = |k: usize| {
        if scale.hi > scale.lo {
            scale.value(k as f64 / steps as f64)
        } else {
            scale.lo + (top - scale.lo) * k as f64 / steps as f64
        }
    };
    chart.draw_series((0..steps).map(|k| {
        Rectangle::new(
            [(0.0, at(k)), (1.0, at(k + 1))],
            ViridisRGB::get_color_normalized(k as f64 / (steps - 1) as f64, 0.0, 1.0).filled(),
        )
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_too_large_to_draw_says_so_instead_of_failing() {
        // 3,000 venues of 501 policies: plotters panicked on a bitmap of gigabytes.
        let tmp = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..3_000).map(|v| format!("v{v}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let zeros = vec![0.0; names.len()];
        let policies: Vec<VenueFigures> = (0..501)
            .map(|_| VenueFigures {
                policy: "p",
                liquidated_notional: &zeros,
                insolvency_probability: &zeros,
            })
            .collect();
        let w = venues(&tmp.path().join("venues"), "many", &names, &policies).unwrap();
        let svg = std::fs::read_to_string(&w.svg).unwrap();
        assert!(svg.contains("Too many rows to draw"), "{svg}");
        assert!(std::fs::metadata(&w.png).unwrap().len() < 100_000);
    }

    #[test]
    fn a_stem_with_a_dot_keeps_it_in_its_file_names() {
        let w = targets(Path::new("charts/heatmap-floor-0.05"));
        assert_eq!(w.png, Path::new("charts/heatmap-floor-0.05.png"));
        assert_eq!(w.svg, Path::new("charts/heatmap-floor-0.05.svg"));
    }

    #[test]
    fn a_colour_scale_is_logarithmic_where_usd_spans_two_decades() {
        // A sweep's bad debt from USD 87 to 36.9M: linear, 87, 147k and 240k were one colour.
        let s =
            ColourScale::spanning([87.0, 147e3, 240e3, 36.9e6, 0.0, f64::NAN], Unit::Usd).unwrap();
        assert!(s.log);
        assert_eq!((s.lo, s.hi), (87.0, 36.9e6));
        assert_eq!(s.position(87.0), Some(0.0));
        assert_eq!(s.position(36.9e6), Some(1.0));
        let mid = s.position(240e3).unwrap();
        assert!((mid - (240e3f64 / 87.0).ln() / (36.9e6f64 / 87.0).ln()).abs() < 1e-12);
        assert!(s.position(147e3).unwrap() > 0.5);
        // Zero is below a log scale: grey, not the colour of its least positive value.
        assert_eq!(s.position(0.0), None);
        assert!((s.value(mid) - 240e3).abs() < 1e-6);
        // Within two decades, and for fractions whatever their range, the scale is linear.
        let s = ColourScale::spanning([1e8, 5e9], Unit::Usd).unwrap();
        assert!(!s.log);
        assert_eq!(s.position(2.55e9), Some(0.5));
        let s = ColourScale::spanning([0.001, 0.3], Unit::Fraction).unwrap();
        assert!(!s.log);
        // One value: the middle of the scale. None: no scale.
        assert_eq!(
            ColourScale::spanning([0.0, 0.0], Unit::Usd)
                .unwrap()
                .position(0.0),
            Some(0.5)
        );
        assert_eq!(ColourScale::spanning([f64::NAN], Unit::Usd), None);
    }

    #[test]
    fn log_ticks_always_show_some_ticks_and_never_too_many() {
        // Within one decade: 1-2-5 or 1-9 ticks, never none.
        let t = log_ticks(1.3e9, 8.5e9, 10);
        assert!(t.len() >= 3, "{t:?}");
        assert!(t.iter().all(|v| (1.3e9..=8.5e9).contains(v)));
        // Several decades: powers of ten.
        assert_eq!(log_ticks(5e-4, 1.0, 8), vec![1e-3, 1e-2, 1e-1, 1.0]);
        // A sweep's bad debt from $367k to $58.6M: two decades, seven 1-2-5 ticks for six.
        let t = log_ticks(366_737.0, 58.6e6, 6);
        assert!(t.len() >= 3 && t.len() <= 6, "{t:?}");
        // Very wide: every n-th decade, at most `max`.
        assert!(log_ticks(1e-12, 1e12, 6).len() <= 6);
    }

    #[test]
    fn exceedance_points_are_the_empirical_survival_function() {
        let pts = exceedance_points(&[0.0, 3.0, 1.0, 1.0, 2.0], true);
        assert_eq!(pts, vec![(1.0, 0.8), (2.0, 0.4), (3.0, 0.2)]);
        let all = exceedance_points(&[0.0, 3.0, 1.0, 1.0, 2.0], false);
        assert_eq!(all[0], (0.0, 1.0));
        // Large samples are thinned but keep both ends and the whole tail.
        let big: Vec<f64> = (1..=100_000).map(f64::from).collect();
        let pts = exceedance_points(&big, true);
        assert!(pts.len() <= MAX_CURVE_POINTS + 1, "{}", pts.len());
        assert_eq!(pts[0], (1.0, 1.0));
        assert_eq!(*pts.last().unwrap(), (100_000.0, 1e-5));
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 > w[1].1));
    }

    #[test]
    fn exceedance_stairs_show_the_share_of_paths_above_each_value() {
        // Between two values the curve is the share of paths strictly above: 3 of 4 above 1,
        // 1 of 4 above 2, none above 3 (the floor).
        let values = [1.0, 2.0, 2.0, 3.0];
        let stairs = survival_stairs(&exceedance_points(&values, false), 0.01);
        let share_above = |x: f64| values.iter().filter(|&&v| v > x).count() as f64 / 4.0;
        for w in stairs.windows(2) {
            let ((x0, p0), (x1, p1)) = (w[0], w[1]);
            if x1 > x0 {
                // A flat stretch: the share above any value inside it.
                assert_eq!(p0, p1);
                assert_eq!(p0, share_above((x0 + x1) / 2.0), "{stairs:?}");
            }
        }
        assert_eq!(stairs.first(), Some(&(1.0, 1.0)));
        assert_eq!(stairs.last(), Some(&(3.0, 0.01)));
        // One value on every path still draws a line (a drop at that value).
        let one = survival_stairs(&exceedance_points(&[5.0; 3], false), 0.01);
        assert_eq!(one, vec![(5.0, 1.0), (5.0, 0.01)]);
    }
}
