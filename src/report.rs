//! The charts and `report.html` of a result directory, built from its files alone.
//!
//! Policy analysts read a report; researchers look at charts. Both are rebuilt from the
//! files of a result directory ([`ResultDir`]), so `cascade run` and `cascade report DIR`
//! produce the same thing and a report can be rebuilt without rerunning a simulation.
//!
//! `report.html` is one self-contained file: inline CSS, the charts as inline SVG, no
//! script, no font, image or style from anywhere else, so it opens from disk in any browser
//! with no network, and prints cleanly (figures and table rows are never split across pages).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::charts::{self, Bands, Effect, Sample, TimeAxis, VenueFigures};
use crate::error::{Error, Result};
use crate::result_dir::{
    FundFile, PairedFile, PolicyFile, ProbabilitiesFile, ResultDir, StatsFile,
};
use crate::results::{Staging, put_back, remove_aside, swap_in};
use crate::runner::INTERRUPT;
use crate::scenario::file::{
    FundSizing, ImpactLaw, LiquidationMode, MarkPrice, Policy, Price, PriceModel, ScenarioFile,
    Stress, SupervisionMetric, SupervisoryAction, View,
};
use crate::units::{self, Unit};

/// The metrics the comparison table and the forest plot show, in this order.
/// (`exogenous_drawdown` is left out: on common random numbers it never differs.)
pub const COMPARED: [&str; 14] = [
    "liquidated_notional",
    "liquidated_positions",
    "max_drawdown",
    "amplification",
    "bad_debt",
    "insurance_fund_drawn",
    "adl_notional",
    "adl_haircut",
    "unabsorbed_loss",
    "insolvent_venues",
    "max_venue_gap",
    "cascade_rounds",
    "cascade_steps",
    "interventions",
];

/// The metrics the findings state for each policy, and the terminal prints after a run: what
/// a cascade costs (liquidations, the price's fall, losses left to funds, counterparties and
/// nobody, venues failing).
pub const HEADLINE: [&str; 5] = [
    "liquidated_notional",
    "max_drawdown",
    "bad_debt",
    "unabsorbed_loss",
    "insolvent_venues",
];

/// The file stems (in `charts/`, as `.png` and `.svg`) of the charts other than the
/// exceedance curves, whose stems [`exceedance_stem`] gives.
const PRICE_FAN: &str = "price-fan";
const LIQUIDATIONS: &str = "liquidations";
const VENUES: &str = "venues";
const FOREST: &str = "forest";

/// The file stem of metric `m`'s exceedance chart.
fn exceedance_stem(m: &str) -> String {
    format!("exceedance-{}", m.replace('_', "-"))
}

/// Whether `stem` names one of a result's charts: `--force` and `cascade report` replace
/// those files, and refuse to touch any other in `charts/`.
pub fn is_chart_stem(stem: &str) -> bool {
    [PRICE_FAN, LIQUIDATIONS, VENUES, FOREST].contains(&stem)
        || EXCEEDANCE.iter().any(|m| exceedance_stem(m) == stem)
}

/// The metrics drawn as loss exceedance curves.
pub const EXCEEDANCE: [&str; 3] = ["liquidated_notional", "bad_debt", "max_drawdown"];

/// A chart written into `charts/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// File stem within `charts/`, e.g. `price-fan`.
    pub name: String,
    /// Heading in the report.
    pub title: String,
    /// How to read it.
    pub caption: String,
    /// The PNG and SVG files.
    pub files: charts::Written,
}

/// What building a report wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// Every chart, in report order.
    pub charts: Vec<Chart>,
    /// `report.html`.
    pub html: PathBuf,
    /// The old charts, moved aside by a rebuild, where they could not be removed.
    pub leftover: Option<PathBuf>,
}

/// Reads the result directory `dir` and writes `dir/charts/` and `dir/report.html`.
///
/// `cascade run` calls this on its temporary directory before moving it into place, so a
/// failed chart leaves no result at all rather than a result without its report.
pub fn build(dir: &Path) -> Result<Built> {
    let result = ResultDir::read(dir)?;
    write(&result, dir)
}

/// Rebuilds the charts and report of an existing result directory, replacing the old ones
/// only once the new ones are complete.
pub fn rebuild(dir: &Path) -> Result<Built> {
    let result = ResultDir::read(dir)?;
    let stage = Staging::new_in(dir, ".cascade-report-")?;
    write(&result, stage.path())?;
    if INTERRUPT.load(Ordering::SeqCst) {
        return Err(Error::Interrupted);
    }
    let charts = dir.join("charts");
    let aside = swap_in(&stage.path().join("charts"), &charts)?;
    let html = dir.join("report.html");
    if let Err(e) = fs::rename(stage.path().join("report.html"), &html) {
        // Back as they were: the old charts beside the old report, not new beside old.
        if let Some(aside) = &aside
            && fs::rename(&charts, stage.path().join("charts")).is_ok()
        {
            put_back(aside, &charts);
        }
        return Err(Error::io(format!("cannot write {}", html.display()), e));
    }
    // Only once the report is in place too: a failed removal leaves a complete report.
    let leftover = remove_aside(aside);
    // The files now live under `dir`, not the stage.
    Ok(Built {
        charts: chart_list(&result, dir),
        html: dir.join("report.html"),
        leftover,
    })
}

/// The charts a result gets, with their final paths under `out`.
fn chart_list(result: &ResultDir, out: &Path) -> Vec<Chart> {
    plan(result)
        .into_iter()
        .map(|(name, title, caption)| Chart {
            files: charts::Written {
                png: out.join("charts").join(format!("{name}.png")),
                svg: out.join("charts").join(format!("{name}.svg")),
            },
            name,
            title,
            caption,
        })
        .collect()
}

/// Name, title and caption of every chart a result gets, in report order.
fn plan(result: &ResultDir) -> Vec<(String, String, String)> {
    let s = &result.summary;
    let mut list = Vec::new();
    for m in EXCEEDANCE {
        let (label, unit) = units::metric(m);
        let x_axis = if unit == Unit::Usd {
            format!(
                "and so is the horizontal one where the dollar amounts span more than a factor of {} \
                 (its label then says so)",
                charts::LOG_X_SPAN
            )
        } else {
            "the horizontal one linear".to_string()
        };
        list.push((
            exceedance_stem(m),
            format!("Loss exceedance: {label}"),
            format!(
                "Share of the {} on which {label} exceeded the value on the horizontal axis, one curve per policy. \
                 The vertical axis is logarithmic, {x_axis}: a curve further down and to the left is a safer \
                 policy; the right end of each curve is the worst path seen. A point at 1% reads as the 99% \
                 quantile (VaR 99). A policy with no path above zero has no curve; its legend entry says so.",
                units::counted(s.paths as usize, "path", "paths"),
            ),
        ));
    }
    let one_path = s.paths == 1;
    list.push((
        PRICE_FAN.to_string(),
        "Traded price over time".to_string(),
        if one_path {
            "The open-interest-weighted price across venues on the run's one path, one panel per \
             policy. The grey area is the stress window; the dashed line repeats the baseline's \
             path for comparison."
        } else {
            "The open-interest-weighted price across venues: the median path (line), the middle half \
             of paths (dark band) and 90% of paths (light band) at every step, one panel per policy. \
             The grey area is the stress window; the dashed line repeats the baseline's median for \
             comparison. The bands are read from histograms with fixed bins (0.5% of the log price \
             wide, wider far from the start price), so they move in steps of one bin."
        }
        .to_string(),
    ));
    list.push((
        LIQUIDATIONS.to_string(),
        "Cumulative liquidations over time".to_string(),
        format!(
            "Notional liquidated since the start (USD at the start price), summed over venues: {} \
             A {} that keeps rising after the stress window is a cascade that outlives its trigger.{}",
            if one_path {
                "the one path, as in the price chart."
            } else {
                "median and bands as in the price chart."
            },
            if one_path { "line" } else { "band" },
            if one_path {
                ""
            } else {
                " The bands are read from histograms with fixed bins, 40 to a tenfold of open \
                 interest (about 6% of the value wide), so a median or band edge moves in steps of \
                 one bin: a jump of about 6% is the quantile crossing into the next bin, not an event."
            }
        ),
    ));
    let insolvent = charts::any_insolvent(
        s.policies
            .iter()
            .flat_map(|p| p.venues.iter().map(|v| v.insolvency_probability)),
    );
    list.push((
        VENUES.to_string(),
        "Where the losses land: venues".to_string(),
        if insolvent {
            "Left: mean liquidated notional per path on each venue. Right: share of paths on which \
             the venue is left with a loss that neither its insurance fund nor auto-deleveraging \
             absorbed (insolvent). One bar per policy; a bar at zero is a stub with its value."
        } else {
            "Mean liquidated notional per path on each venue, one bar per policy; a bar at zero is \
             a stub with its value. No venue was left with a loss that neither its insurance fund \
             nor auto-deleveraging absorbed (insolvent) on any path, so there is no insolvency \
             panel."
        }
        .to_string(),
    ));
    if let Some(c) = s.comparisons.first() {
        // Migration splits a position over venues, and each piece is counted.
        let split = result
            .scenario
            .file()
            .policies
            .iter()
            .any(|p| p.migration.is_some_and(|m| m > 0.0));
        list.push((
            FOREST.to_string(),
            format!("Policy effects against {}", c.baseline),
            format!(
                "Each dot is a policy's mean paired difference from {} on the same paths (common random \
                 numbers), as a share of the baseline mean; whiskers are 95% confidence intervals, and \
                 an interval narrower than its dot is hidden behind it (a line under the chart counts \
                 them). A filled dot's interval excludes zero. Left of the vertical line is lower than \
                 the baseline (better, for the losses). Where an effect or interval passes {}, the \
                 horizontal axis is symmetric-logarithmic: linear within {} and logarithmic beyond, so \
                 that large and small effects both read at their true values (its label then says so). \
                 Amplification is against the baseline's excess over 1x, the part of it the cascade \
                 adds, as the comparison table also gives it: a policy that removes the whole cascade \
                 shows as -100%.{} Metrics whose baseline mean (or excess) is zero have no relative \
                 change and are left out.",
                c.baseline,
                units::signed_percent(charts::FOREST_LINEAR_LIMIT),
                units::trim_zeros(&format!("±{}", units::percent(charts::FOREST_KNEE))),
                if split {
                    " Liquidated positions are counted once on each venue a position is liquidated \
                     on, so a policy whose migration spreads positions over venues counts them more \
                     often: a rise there is partly counting, not more positions liquidated."
                } else {
                    ""
                }
            ),
        ));
    }
    list
}

/// Writes `out/charts/` and `out/report.html` from a result directory that was read.
pub fn write(result: &ResultDir, out: &Path) -> Result<Built> {
    let charts_dir = out.join("charts");
    fs::create_dir_all(&charts_dir)
        .map_err(|e| Error::io(format!("cannot create {}", charts_dir.display()), e))?;
    let list = chart_list(result, out);
    draw_all(result, &charts_dir)?;
    let html = out.join("report.html");
    let page = page(result, &list)?;
    fs::write(&html, page).map_err(|e| Error::io(format!("cannot write {}", html.display()), e))?;
    Ok(Built {
        charts: list,
        html,
        leftover: None,
    })
}

/// Draws every chart of [`plan`] into `charts_dir`.
fn draw_all(result: &ResultDir, charts_dir: &Path) -> Result<()> {
    let s = &result.summary;
    let f = result.scenario.file();
    let scenario = &s.scenario;

    // Loss exceedance curves, from paths.csv.
    let columns = result.path_columns(&EXCEEDANCE)?;
    for (k, m) in EXCEEDANCE.iter().enumerate() {
        let (label, unit) = units::metric(m);
        let samples: Vec<Sample> = columns
            .iter()
            .map(|(policy, cols)| Sample {
                policy,
                values: &cols[k],
            })
            .collect();
        charts::exceedance(
            &charts_dir.join(exceedance_stem(m)),
            &format!("{scenario}: probability that {label} exceeds x"),
            m,
            unit,
            &samples,
        )?;
    }

    // Bands over time, from timeline.csv.
    let (time, axis) = time_axis(f, result);
    let bands = |price: bool| -> Vec<Bands> {
        result
            .timeline
            .iter()
            .zip(&time)
            .map(|(t, time)| {
                let q = if price { &t.price } else { &t.liquidated };
                Bands {
                    policy: &t.policy,
                    time,
                    quantiles: [&q[0], &q[1], &q[2], &q[3], &q[4]],
                }
            })
            .collect()
    };
    let (price_title, liquidations_title) = if s.paths == 1 {
        (
            "traded price on the one path",
            "cumulative liquidated notional on the one path",
        )
    } else {
        (
            "traded price, median and 5-25-75-95% bands",
            "cumulative liquidated notional, median and bands",
        )
    };
    charts::price_fan(
        &charts_dir.join(PRICE_FAN),
        &format!("{scenario}: {price_title}"),
        &axis,
        &bands(true),
        s.paths,
    )?;
    charts::liquidations(
        &charts_dir.join(LIQUIDATIONS),
        &format!("{scenario}: {liquidations_title}"),
        &axis,
        &bands(false),
        s.paths,
    )?;

    // Venues, from summary.json.
    let names: Vec<&str> = s
        .policies
        .first()
        .map(|p| p.venues.iter().map(|v| v.name.as_str()).collect())
        .unwrap_or_default();
    let figures: Vec<(Vec<f64>, Vec<f64>)> = s
        .policies
        .iter()
        .map(|p| {
            (
                p.venues
                    .iter()
                    .map(|v| v.liquidated_notional_mean)
                    .collect(),
                p.venues.iter().map(|v| v.insolvency_probability).collect(),
            )
        })
        .collect();
    let venue_figures: Vec<VenueFigures> = s
        .policies
        .iter()
        .zip(&figures)
        .map(|(p, (l, i))| VenueFigures {
            policy: &p.name,
            liquidated_notional: l,
            insolvency_probability: i,
        })
        .collect();
    charts::venues(
        &charts_dir.join(VENUES),
        &format!("{scenario}: liquidations and insolvency by venue"),
        &names,
        &venue_figures,
    )?;

    // Forest plot of the comparisons, from summary.json.
    if let Some(first) = s.comparisons.first() {
        let effects = effects(result);
        let effects: Vec<Effect> = effects
            .iter()
            .map(|(metric, policy, estimate, ci95)| Effect {
                metric,
                policy,
                estimate: *estimate,
                ci95: *ci95,
            })
            .collect();
        charts::forest(
            &charts_dir.join(FOREST),
            &format!(
                "{scenario}: policy effects against {} ({})",
                first.baseline,
                units::counted(s.paths as usize, "path", "paths")
            ),
            &first.baseline,
            &effects,
        )?;
    }
    Ok(())
}

/// Relative paired effects: (metric label, policy, estimate, CI), skipping metrics whose
/// baseline mean is zero.
fn effects(result: &ResultDir) -> Vec<(String, String, f64, [f64; 2])> {
    let s = &result.summary;
    let mut out = Vec::new();
    let Some(base) = s.policies.first() else {
        return out;
    };
    for m in COMPARED {
        let Some(base_mean) = base.metric(m).map(|d| d.mean) else {
            continue;
        };
        // Amplification against the part of it the cascade adds: its floor is 1x, which no
        // policy removes, so against its whole mean a policy that removes the whole cascade
        // read as -13% (see `relative_words`).
        let (label, base_mean) = if m == "amplification" {
            ("amplification above 1x", base_mean - 1.0)
        } else {
            (units::metric(m).0, base_mean)
        };
        if base_mean <= 0.0 || !base_mean.is_finite() {
            continue;
        }
        for c in &s.comparisons {
            let found = c.metrics.iter().find(|(n, _)| n == m);
            // A single path gives no interval, so no effect to plot.
            if let Some((_, p @ PairedFile { ci95: Some(ci), .. })) = found {
                out.push((
                    label.to_string(),
                    c.policy.clone(),
                    p.mean_difference / base_mean,
                    relative_interval(*ci, base_mean),
                ));
            }
        }
    }
    out
}

/// A difference's confidence interval relative to the baseline mean `base_mean`, ordered.
///
/// Every compared metric is at least zero, so no policy lowers its mean by more than all of
/// it: a t-interval past -100% (a few paths) is cut there.
fn relative_interval([low, high]: [f64; 2], base_mean: f64) -> [f64; 2] {
    let (a, b) = (low / base_mean, high / base_mean);
    [a.min(b).max(-1.0), a.max(b).max(-1.0)]
}

/// Time of every step of every policy in the axis unit, and the axis.
fn time_axis(f: &ScenarioFile, result: &ResultDir) -> (Vec<Vec<f64>>, TimeAxis) {
    let dt = f.simulation.step_seconds;
    let horizon = f64::from(f.simulation.steps) * dt;
    let (per, unit) = if horizon >= 3.0 * 3600.0 {
        (3600.0, "hours")
    } else if horizon >= 180.0 {
        (60.0, "minutes")
    } else {
        (1.0, "seconds")
    };
    let times = result
        .timeline
        .iter()
        .map(|t| t.steps.iter().map(|&s| f64::from(s) * dt / per).collect())
        .collect();
    let stress = f.price.moving_stress().map(|s| {
        (
            f64::from(s.start_step) * dt / per,
            f64::from(s.start_step + s.duration_steps) * dt / per,
        )
    });
    (
        times,
        TimeAxis {
            label: format!("time since start ({unit})"),
            stress,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------------------

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
:root { --ink: #222; --muted: #666; --rule: #ddd; --band: #f5f6f8; --accent: #0072b2; }
* { box-sizing: border-box; }
html { font-size: 16px; }
body { margin: 0; color: var(--ink); background: #fff;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
  line-height: 1.5; }
main { max-width: 72rem; margin: 0 auto; padding: 2rem 2.5rem 4rem; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 1.5rem; padding-bottom: 1rem; }
h1 { font-size: 2rem; margin: 0 0 .25rem; }
h2 { font-size: 1.45rem; margin: 2.5rem 0 .75rem; padding-bottom: .25rem; border-bottom: 1px solid var(--rule); }
h3 { font-size: 1.1rem; margin: 1.75rem 0 .5rem; }
p { margin: .5rem 0 .9rem; max-width: 62rem; }
.lead { font-size: 1.15rem; color: #333; }
.meta { color: var(--muted); font-size: .95rem; }
nav { font-size: .95rem; margin: .75rem 0 0; }
nav a { color: var(--accent); text-decoration: none; margin-right: 1.1rem; white-space: nowrap; }
table { border-collapse: collapse; margin: .5rem 0 1.25rem; font-size: .92rem; font-variant-numeric: tabular-nums; }
th, td { padding: .35rem .6rem; border-bottom: 1px solid var(--rule); text-align: right; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
td.text, th.text { text-align: left; }
table.dense { font-size: .84rem; }
table.dense th, table.dense td { padding: .3rem .45rem; }
table.dense td { white-space: nowrap; }
tr.group th { background: #e8eef5; text-align: left; }
tr.sig td { font-weight: 600; }
.scroll { overflow-x: auto; }
figure { margin: 1rem 0 2rem; break-inside: avoid; page-break-inside: avoid; }
figure svg { width: 100%; height: auto; display: block; border: 1px solid var(--rule); }
figcaption { color: #444; font-size: .93rem; margin-top: .4rem; max-width: 62rem; }
ul { margin: .25rem 0 1rem; padding-left: 1.4rem; }
li { margin: .2rem 0; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .88em;
  background: var(--band); padding: .05rem .3rem; border-radius: 3px; word-break: break-all; }
.note { color: var(--muted); font-size: .9rem; }
footer { margin-top: 3rem; color: var(--muted); font-size: .85rem; border-top: 1px solid var(--rule); padding-top: .75rem; }
@media print {
  @page { margin: 14mm; }
  html { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  h3 { break-after: avoid; page-break-after: avoid; }
  tr, figure, table.keep { break-inside: avoid; page-break-inside: avoid; }
  figure svg { border: none; }
  .scroll { overflow: visible; }
  table { font-size: 9pt; }
  th { background: #eee !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// The whole page.
fn page(result: &ResultDir, charts: &[Chart]) -> Result<String> {
    let s = &result.summary;
    let f = result.scenario.file();
    let mut h = String::new();
    let w = &mut h;
    let _ = write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} - cascade report</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&s.scenario)
    );
    let _ = write!(
        w,
        "<header>\n<h1>{}</h1>\n",
        esc(&format!("Liquidation cascades: {}", s.scenario))
    );
    if !f.description.is_empty() {
        let _ = writeln!(w, "<p class=\"lead\">{}</p>", esc(&f.description));
    }
    // The description is the scenario file's: a run that overrides its shock or its venues
    // (a sweep's cell, `--set price.stress.drop=0.05`) is not what it describes.
    if !result.manifest.overrides.is_empty() {
        let _ = writeln!(
            w,
            "<p class=\"meta\"><strong>Run with overrides of the scenario file:</strong> {}{}</p>",
            result
                .manifest
                .overrides
                .iter()
                .map(|o| format!("<code>{}</code>", esc(o)))
                .collect::<Vec<_>>()
                .join(", "),
            if f.description.is_empty() {
                ""
            } else {
                "; the description above is the file's"
            }
        );
    }
    // A shard's figures are a part of a study's, and read as the whole unless it says so.
    if let Some(shard) = result.manifest.shard {
        let _ = writeln!(
            w,
            "<p class=\"meta\"><strong>Shard {} of {}</strong> of a study of {}: these figures \
             are this shard's paths alone; <code>cascade merge</code> of every shard gives the \
             study's.</p>",
            shard.index,
            shard.count,
            monte_carlo_paths(f.simulation.paths),
        );
    }
    let _ = writeln!(
        w,
        "<p class=\"meta\">{} &middot; {} {} &middot; seed {} &middot; cascade {}</p>",
        monte_carlo_paths(s.paths),
        s.policies.len(),
        if s.policies.len() == 1 {
            "policy"
        } else {
            "policies"
        },
        s.seed,
        esc(&result.manifest.version)
    );
    let _ = writeln!(
        w,
        "<nav><a href=\"#findings\">Findings</a><a href=\"#scenario\">Scenario</a>\
         <a href=\"#headline\">Headline figures</a>\
         <a href=\"#comparison\">Policy comparison</a><a href=\"#charts\">Charts</a>\
         <a href=\"#methodology\">Methodology</a><a href=\"#provenance\">Provenance</a></nav>\n</header>"
    );

    findings_section(w, result);
    scenario_section(w, result);
    headline_section(w, result);
    comparison_section(w, result);
    charts_section(w, charts)?;
    methodology_section(w, f);
    provenance_section(w, result);

    let _ = writeln!(
        w,
        "<footer>Built by cascade {} from the files of this result directory; rebuild with \
         <code>cascade report DIR</code>.</footer>\n</main>\n</body>\n</html>",
        esc(crate::VERSION)
    );
    Ok(h)
}

fn horizon_words(seconds: f64) -> String {
    if seconds >= 2.0 * 86_400.0 {
        format!("{} days", trim(seconds / 86_400.0))
    } else if seconds >= 2.0 * 3600.0 {
        format!("{} hours", trim(seconds / 3600.0))
    } else if seconds >= 120.0 {
        format!("{} minutes", trim(seconds / 60.0))
    } else {
        format!("{} seconds", trim(seconds))
    }
}

/// A number of steps: `1 step`, `2.5 steps`.
fn steps(n: f64) -> String {
    format!("{} {}", trim(n), if n == 1.0 { "step" } else { "steps" })
}

/// A number without trailing zeros: 1.5, 24, 0.25.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn scenario_section(w: &mut String, result: &ResultDir) {
    let f = result.scenario.file();
    let s = &result.summary;
    let sim = &f.simulation;
    let dt = sim.step_seconds;
    let _ = writeln!(w, "<section id=\"scenario\">\n<h2>Scenario</h2>");

    let jurisdictions = f.jurisdictions();
    let base = s.policies.first();
    let oi = |i: usize| -> f64 {
        base.and_then(|p| p.venues.get(i))
            .map(|v| v.open_interest)
            .filter(|v| *v > 0.0)
            .or(f.venues[i].open_interest)
            .unwrap_or(0.0)
    };
    let total_oi: f64 = (0..f.venues.len()).map(oi).sum();

    let p = &f.price;
    let model = match p.model {
        PriceModel::Gbm => "geometric Brownian motion".to_string(),
        PriceModel::StudentT => format!(
            "a random walk with fat-tailed Student-t returns ({} degrees of freedom)",
            p.degrees_of_freedom.map(trim).unwrap_or_else(|| "?".into())
        ),
        PriceModel::Merton => format!(
            "a Merton jump-diffusion ({} jumps a day on average, mean log jump {}, dispersion {})",
            p.jump_intensity_per_day
                .map(trim)
                .unwrap_or_else(|| "?".into()),
            p.jump_mean
                .map(|v| format!("{v}"))
                .unwrap_or_else(|| "?".into()),
            p.jump_stdev
                .map(|v| format!("{v}"))
                .unwrap_or_else(|| "?".into()),
        ),
        PriceModel::Garch => format!(
            "a GARCH(1,1) random walk (alpha {}, beta {})",
            p.alpha.map(trim).unwrap_or_else(|| "?".into()),
            p.beta.map(trim).unwrap_or_else(|| "?".into()),
        ),
        PriceModel::Historical => match p.block_bootstrap {
            Some(n) => format!("a block bootstrap ({n}-step blocks) of historical returns"),
            None => "a replay of historical returns".to_string(),
        },
    };
    // Replayed returns carry their own volatility, and a GARCH with an explicit omega sets
    // its own level: only the other models are described by annual volatility.
    let volatility = match (p.model, p.omega) {
        (PriceModel::Historical, _) | (PriceModel::Garch, Some(_)) => String::new(),
        _ => format!(
            " with {} annual volatility",
            units::percent(p.annual_volatility)
        ),
    };
    // A shard's summary holds its own paths, a part of the scenario's.
    let paths = if s.paths == sim.paths {
        monte_carlo_paths(s.paths)
    } else {
        format!(
            "{} (of the scenario's {})",
            monte_carlo_paths(s.paths),
            units::count(sim.paths as f64)
        )
    };
    let mut text = format!(
        "{paths} of {} steps of {} seconds ({}), all from seed {}. \
         The fundamental price starts at {} and follows {model}{volatility}.",
        units::count(f64::from(sim.steps)),
        trim(dt),
        horizon_words(f64::from(sim.steps) * dt),
        s.seed,
        units::usd(p.start),
    );
    if let Some(st) = p.moving_stress() {
        text.push_str(&stress_words(st, sim.steps, dt));
    } else {
        text.push_str(" There is no deterministic stress: every move comes from the price model.");
    }
    let _ = writeln!(w, "<p>{}</p>", esc(&text));

    let l = &f.liquidity;
    let law = match l.impact {
        ImpactLaw::Linear => "linear (Kyle) law",
        ImpactLaw::Sqrt => "square-root law",
    };
    let text = format!(
        "{} venues in {} jurisdictions ({}) hold {} of open interest per side. Forced liquidations \
         move prices by the {law}: {} of each venue's net forced flow reaches liquidity shared \
         across venues ({} moves the shared price by 1%), the rest hits the venue's own book. {} of \
         the impact is permanent; the rest fades with a half-life of {}, and venue prices \
         converge to the shared price with a half-life of {}. {}",
        f.venues.len(),
        jurisdictions.len(),
        jurisdictions.join(", "),
        units::usd(total_oi),
        units::percent(l.routing),
        units::usd(l.shared_depth_1pct),
        capitalise(&units::percent(l.permanent_fraction)),
        steps(l.resilience_half_life_steps),
        steps(l.arbitrage_half_life_steps),
        if l.depth_withdrawal > 0.0 {
            format!(
                "Order books thin as prices move fast (depth withdrawal {}).",
                trim(l.depth_withdrawal)
            )
        } else {
            "Order book depth does not react to volatility.".to_string()
        }
    );
    let _ = writeln!(w, "<p>{}</p>", esc(&text));
    if let Some(text) = opening_words(f) {
        let _ = writeln!(w, "<p>{}</p>", esc(&text));
    }

    let _ = writeln!(
        w,
        "<h3>Venues</h3>\n<p class=\"note\">Margins and the fee are shares of position notional; \
         depth is the notional that moves the venue's own price by 1%; open interest is per side, at \
         the start price.</p>\n<div class=\"scroll\"><table class=\"dense\">\n<thead><tr><th>venue</th>\
         <th class=\"text\">jurisdiction</th><th>initial margin</th><th>max leverage</th>\
         <th>maintenance margin</th><th>liquidation fee</th><th class=\"text\">liquidation</th>\
         <th>insurance fund</th><th class=\"text\">ADL</th><th>depth</th><th class=\"text\">mark</th>\
         <th>open interest</th></tr></thead>\n<tbody>"
    );
    for (i, v) in f.venues.iter().enumerate() {
        let liquidation = match v.liquidation {
            LiquidationMode::Full => "full".to_string(),
            LiquidationMode::Partial => format!(
                "partial, {}",
                v.partial_fraction
                    .map(units::percent)
                    .unwrap_or_else(|| "?".into())
            ),
        };
        // Tiered venues show their base rates and how far their tiers go.
        let maintenance = match v.margin_tiers.last() {
            None => units::percent(v.maintenance_margin),
            Some(top) => format!(
                "{} (+{} tiers, up to {})",
                units::percent(v.maintenance_margin),
                v.margin_tiers.len(),
                units::percent(top.maintenance_margin)
            ),
        };
        let _ = writeln!(
            w,
            "<tr><td>{}</td><td class=\"text\">{}</td><td>{}</td><td>{}x</td><td>{}</td><td>{}</td>\
             <td class=\"text\">{}</td><td>{}</td><td class=\"text\">{}</td><td>{}</td>\
             <td class=\"text\">{}</td><td>{}</td></tr>",
            esc(&v.name),
            esc(&v.jurisdiction),
            units::percent(v.initial_margin),
            leverage(1.0 / v.initial_margin),
            maintenance,
            units::percent(v.liquidation_fee),
            liquidation,
            units::usd(v.insurance_fund),
            if v.adl { "yes" } else { "no" },
            units::usd(v.depth_1pct),
            match v.mark_price {
                MarkPrice::Own => "own",
                MarkPrice::Index => "index",
            },
            units::usd(oi(i)),
        );
    }
    let _ = writeln!(w, "</tbody></table></div>");

    // What happened is compared elsewhere: against a simulation whose drop is calibrated to
    // the observed one, which this run's need not be.
    if let Some(o) = &f.observed {
        let _ = writeln!(
            w,
            "<p class=\"note\">The scenario records what was observed in this episode (a price \
             drop of {}). <code>cascade backtest</code> compares those outcomes with the \
             simulation once the stress is calibrated to that drop; this report shows the \
             scenario as run.</p>",
            units::percent(o.price_drop)
        );
    }
    let _ = writeln!(w, "<h3>Policies</h3>\n<ul>");
    for (i, policy) in f.policies.iter().enumerate() {
        let _ = writeln!(
            w,
            "<li><strong>{}</strong>{}: {}</li>",
            esc(&policy.name),
            if i == 0 { " (baseline)" } else { "" },
            esc(&policy_words(policy, &result.summary.policies[i].funds))
        );
    }
    let _ = writeln!(w, "</ul>\n</section>");
}

/// The stress in words: the drop, then the recovery when there is one, and what the horizon
/// cuts short (the price model adds no stress return after the last step).
fn stress_words(st: &Stress, steps: u32, dt: f64) -> String {
    let end = st.start_step + st.duration_steps;
    let mut text = format!(
        " On top of it, a deterministic stress drops the price by {} over {} starting after {} \
         (steps {} to {}, evenly in log price).",
        units::percent(st.drop),
        horizon_words(f64::from(st.duration_steps) * dt),
        horizon_words(f64::from(st.start_step) * dt),
        st.start_step,
        end
    );
    let log_drop = (1.0 - st.drop).ln();
    // The stress's own effect on the price, once `share` of the drop's log is in place.
    let net = |share: f64| units::percent(1.0 - (share * log_drop).exp());
    if let Some(done) = st.share_within(steps) {
        let _ = write!(
            text,
            " The horizon ends at step {steps}, before the drop is complete: the stress lowers \
             the price by {} in all.",
            net(done)
        );
        return text;
    }
    let m = st.recovery_steps.unwrap_or(0);
    if st.recovery > 0.0 && m > 0 && end == steps {
        // The recovery would begin after the last step.
        text.push_str(" The horizon ends as the drop does, before its recovery begins.");
    } else if st.recovery > 0.0 && m > 0 {
        let rebound = format!(
            "{} of the fall (in log price) over {} (steps {end} to {})",
            units::percent(st.recovery),
            horizon_words(f64::from(m) * dt),
            end + m
        );
        if end + m > steps {
            let done = f64::from(steps - end) / f64::from(m);
            let _ = write!(
                text,
                " It then starts to win back {rebound}, but the horizon ends at step {steps}: by \
                 then the stress, net, lowers the price by {}.",
                net(1.0 - st.recovery * done)
            );
        } else {
            let _ = write!(
                text,
                " It then wins back {rebound}: net, the stress lowers the price by {}.",
                net(1.0 - st.recovery)
            );
        }
    }
    text
}

/// The venues' opening cohorts in words, if any venue has them.
fn opening_words(f: &ScenarioFile) -> Option<String> {
    let cohorts: Vec<(&str, String, f64)> = f
        .venues
        .iter()
        .filter_map(|v| v.opening.as_ref().map(|o| (v, o)))
        .map(|(v, o)| {
            let levels = match o.levels.as_slice() {
                [one] => format!("1 level, {} below the start price", units::percent(*one)),
                [first, .., last] => format!(
                    "{} levels from {} to {} below the start price",
                    o.levels.len(),
                    units::percent(*first),
                    units::percent(*last)
                ),
                [] => "no level".to_string(),
            };
            (v.name.as_str(), levels, o.notional)
        })
        .collect();
    let first = cohorts.first()?;
    let which = if cohorts.len() == f.venues.len() {
        "every venue".to_string()
    } else {
        format!("{} of the {} venues", cohorts.len(), f.venues.len())
    };
    // Shipped scenarios give every venue the same levels: say them once.
    let detail = if cohorts.iter().all(|c| c.1 == first.1) {
        format!(
            "{}; per side and level, {}",
            first.1,
            cohorts
                .iter()
                .map(|(name, _, notional)| format!("{name} {}", units::usd(*notional)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        cohorts
            .iter()
            .map(|(name, levels, notional)| {
                format!("{name}: {levels}, {} per side each", units::usd(*notional))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    Some(format!(
        "New positions open during the horizon on {which}: each time a venue's mark first falls \
         to one of its levels, a cohort of longs and shorts opens there at that mark, in equal \
         quantity ({detail}, in notional at the level's price)."
    ))
}

/// Leverage to a sensible precision: 125, 75, 2.5.
fn leverage(l: f64) -> String {
    if l >= 10.0 {
        format!("{l:.0}")
    } else {
        units::trim_zeros(&format!("{l:.1}"))
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `n` Monte Carlo paths, in the singular for one.
fn monte_carlo_paths(n: u64) -> String {
    if n == 1 {
        "1 Monte Carlo path".to_string()
    } else {
        format!("{} Monte Carlo paths", units::count(n as f64))
    }
}

/// A policy's levers in words; `funds` are its insurance funds as the run sized them.
fn policy_words(p: &Policy, funds: &[FundFile]) -> String {
    if p.cooperating.is_empty() {
        return "every venue keeps its own rules".to_string();
    }
    let mut parts = vec![format!(
        "cooperating jurisdictions {}",
        p.cooperating.join(", ")
    )];
    if let Some(m) = &p.margin_floor {
        parts.push(format!(
            "margin floor of {} initial and {} maintenance",
            units::percent(m.initial),
            units::percent(m.maintenance)
        ));
    }
    if let Some(c) = p.leverage_cap {
        parts.push(format!("leverage capped at {}x", trim(c)));
    }
    if tightens_margins(p) {
        parts.push(match p.migration {
            Some(m) if m > 0.0 => format!(
                "{} of the positions above the new limits migrate to venues outside the \
                 cooperating set; the rest post collateral up to the limits and keep their size",
                units::percent(m)
            ),
            _ => "positions above the new limits post collateral up to them and keep their \
                  size (none leaves the market)"
                .to_string(),
        });
    }
    if let Some(m) = p.mark_price {
        parts.push(match m {
            MarkPrice::Own => "marks on each venue's own price".to_string(),
            MarkPrice::Index => "marks on a shared index price".to_string(),
        });
    }
    if let Some(r) = p.routing {
        parts.push(format!(
            "{} of forced flow reaches shared liquidity",
            units::percent(r)
        ));
    }
    if let Some(fund) = &p.pooled_default_fund {
        // The pool's size as run: cover-2 is a floor under the members' own funds together,
        // not their replacement, so the words alone could not say which set it.
        let size = funds
            .iter()
            .find(|f| f.members.len() > 1)
            .map_or(String::new(), |f| format!(" ({})", units::usd(f.start)));
        parts.push(match fund.sizing {
            FundSizing::Sum => format!("insurance funds pooled into one default fund{size}"),
            FundSizing::Cover2 => format!(
                "a pooled default fund{size} of the members' own funds together, or cover-2 \
                 under a {} stress move where that is more",
                fund.stress_move
                    .map(units::percent)
                    .unwrap_or_else(|| "?".into())
            ),
        });
    }
    if let Some(sup) = &p.supervision {
        let view = match sup.view {
            View::Local => "each jurisdiction's supervisor watches its own venues",
            View::Global => "one supervisor watches every cooperating venue",
        };
        let metric = match sup.metric {
            SupervisionMetric::NearLiquidation => format!(
                "notional within {} of liquidation, or past it, above {}",
                sup.distance
                    .map(units::percent)
                    .unwrap_or_else(|| "?".into()),
                units::usd(sup.threshold)
            ),
            SupervisionMetric::Drawdown => format!(
                "a fall of more than {} over {}",
                units::percent(sup.threshold),
                sup.window_steps
                    .map_or_else(|| "?".into(), |v| steps(f64::from(v)))
            ),
        };
        let action = match sup.action {
            SupervisoryAction::CircuitBreaker => format!(
                "halts liquidations for {}",
                sup.halt_steps
                    .map_or_else(|| "?".into(), |v| steps(f64::from(v)))
            ),
            SupervisoryAction::MarginAddOn => format!(
                "adds {} of margin",
                sup.add_on.map(units::percent).unwrap_or_else(|| "?".into())
            ),
        };
        parts.push(format!("{view} and, on {metric}, {action}"));
    }
    parts.join("; ")
}

/// Where a row of the headline table reads its figure.
enum Figure {
    /// A statistic of a metric's distribution, in the metric's unit.
    Stat(&'static str, fn(&StatsFile) -> f64),
    /// One of the probabilities, as a percentage.
    Probability(fn(&ProbabilitiesFile) -> f64),
}

impl Figure {
    fn of(&self, p: &PolicyFile) -> Option<String> {
        match self {
            Figure::Stat(metric, pick) => {
                let unit = units::metric(metric).1;
                p.metric(metric).map(|d| unit.format(pick(d)))
            }
            Figure::Probability(pick) => Some(Unit::Fraction.format(pick(&p.probabilities))),
        }
    }
}

/// The rows of the headline table.
fn headline_rows() -> [(&'static str, Figure); 17] {
    use Figure::{Probability, Stat};
    [
        (
            "Liquidated notional, mean",
            Stat("liquidated_notional", |d| d.mean),
        ),
        (
            "Liquidated notional, 99% quantile",
            Stat("liquidated_notional", |d| d.p99),
        ),
        (
            "Liquidated notional, expected shortfall 99%",
            Stat("liquidated_notional", |d| d.es99),
        ),
        ("Max drawdown, median", Stat("max_drawdown", |d| d.p50)),
        (
            "Max drawdown, 99% quantile",
            Stat("max_drawdown", |d| d.p99),
        ),
        (
            "Amplification (drawdown / exogenous), mean",
            Stat("amplification", |d| d.mean),
        ),
        (
            "Amplification, 99% quantile",
            Stat("amplification", |d| d.p99),
        ),
        ("Bad debt, mean", Stat("bad_debt", |d| d.mean)),
        ("Bad debt, 99% quantile", Stat("bad_debt", |d| d.p99)),
        (
            "Insurance fund drawn, mean",
            Stat("insurance_fund_drawn", |d| d.mean),
        ),
        ("ADL notional, mean", Stat("adl_notional", |d| d.mean)),
        ("Loss covered by ADL, mean", Stat("adl_haircut", |d| d.mean)),
        ("Unabsorbed loss, mean", Stat("unabsorbed_loss", |d| d.mean)),
        (
            "Unabsorbed loss, worst path",
            Stat("unabsorbed_loss", |d| d.max),
        ),
        (
            "Probability some venue is insolvent",
            Probability(|q| q.any_insolvency),
        ),
        ("Probability of auto-deleveraging", Probability(|q| q.adl)),
        (
            "Probability the round cap bound",
            Probability(|q| q.round_cap_hit),
        ),
    ]
}

fn headline_section(w: &mut String, result: &ResultDir) {
    let s = &result.summary;
    let over = if s.paths == 1 {
        "Per policy, on the one path run: its quantiles and expected shortfalls are that \
         path's figures, and say nothing of a tail."
            .to_string()
    } else {
        format!(
            "Per policy, over all {} paths.",
            units::count(s.paths as f64)
        )
    };
    let _ = writeln!(
        w,
        "<section id=\"headline\">\n<h2>Headline figures</h2>\n<p>{over} \
         Quantiles and expected shortfall describe the bad tail: the 99% quantile is exceeded on \
         1% of paths, and the expected shortfall is the mean of those worst 1%.</p>"
    );
    let _ = write!(
        w,
        "<div class=\"scroll\"><table>\n<thead><tr><th>figure</th>"
    );
    for p in &s.policies {
        let _ = write!(w, "<th>{}</th>", esc(&p.name));
    }
    let _ = writeln!(w, "</tr></thead>\n<tbody>");
    for (label, figure) in headline_rows() {
        let _ = write!(w, "<tr><td>{label}</td>");
        for p in &s.policies {
            let _ = write!(
                w,
                "<td>{}</td>",
                figure.of(p).unwrap_or_else(|| "n/a".into())
            );
        }
        let _ = writeln!(w, "</tr>");
    }
    let _ = writeln!(w, "</tbody></table></div>");
    funds_table(w, result);
    let _ = writeln!(w, "</section>");
}

/// Each policy's insurance funds: their size and how much of it paths drew, which says
/// whether pooling funds could have mattered (it cannot where no fund comes near empty).
fn funds_table(w: &mut String, result: &ResultDir) {
    let s = &result.summary;
    // A fund that held nothing at the start has no share to compare.
    let share = |f: &FundFile| (f.start > 0.0).then(|| f.drawn_p99 / f.start);
    let most = s
        .policies
        .iter()
        .flat_map(|p| p.funds.iter().map(move |f| (p, f)))
        .filter_map(|(p, f)| Some((p, f, share(f)?)))
        .max_by(|a, b| a.2.total_cmp(&b.2));
    if s.policies.iter().all(|p| p.funds.is_empty()) {
        return;
    }
    let _ = writeln!(
        w,
        "<h3>Insurance funds</h3>\n<p>What each fund held at the start and what paths drew \
         from it (payouts less the fees paid in).{}</p>",
        most.map_or(String::new(), |(policy, fund, most)| format!(
            " The largest draw against a fund's size at the 99% quantile is {} of {} ({}, \
             under {}).",
            units::percent(most),
            units::usd(fund.start),
            esc(&fund.members.join(", ")),
            esc(&policy.name),
        ))
    );
    let _ = writeln!(
        w,
        "<div class=\"scroll\"><table>\n<thead><tr><th>fund of</th><th>at the start</th>\
         <th>drawn, mean</th><th>drawn, 99% quantile</th><th>99% quantile / start</th></tr>\
         </thead>\n<tbody>"
    );
    for p in &s.policies {
        let _ = writeln!(
            w,
            "<tr class=\"group\"><th colspan=\"5\">{}</th></tr>",
            esc(&p.name)
        );
        for f in &p.funds {
            let _ = writeln!(
                w,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.members.join(", ")),
                Unit::Usd.format(f.start),
                Unit::Usd.format(f.drawn_mean),
                Unit::Usd.format(f.drawn_p99),
                share(f).map_or_else(|| "n/a".to_string(), |x| Unit::Fraction.format(x)),
            );
        }
    }
    let _ = writeln!(w, "</tbody></table></div>");
}

/// The answer first: for each policy, which headline figures it moved, by how much and with
/// what uncertainty, in words, before the tables the numbers come from.
fn findings_section(w: &mut String, result: &ResultDir) {
    let s = &result.summary;
    if s.comparisons.is_empty() {
        return;
    }
    let _ = writeln!(w, "<section id=\"findings\">\n<h2>Findings</h2>");
    if s.paths < 2 {
        let _ = writeln!(
            w,
            "<p>One path was run, so no change can be told from chance; the policy comparison \
             below gives that path's differences.</p>\n</section>"
        );
        return;
    }
    let _ = writeln!(
        w,
        "<p>Each policy against the baseline, {}, on the same {} paths. A figure is called \
         lower or higher where the 95% confidence interval of its mean difference excludes \
         zero; each figure is tested on its own, so with many figures an interval now and then \
         excludes zero by chance. The change relative to the baseline's mean comes first, then \
         the mean difference and its interval.</p>\n<ul>",
        esc(&s.comparisons[0].baseline),
        units::count(s.paths as f64)
    );
    for c in &s.comparisons {
        let [mut lower, mut higher, mut unclear, mut same, mut zero]: [Vec<String>; 5] =
            Default::default();
        for m in HEADLINE {
            let Some((_, p)) = c.metrics.iter().find(|(n, _)| n == m) else {
                continue;
            };
            let (label, unit) = units::metric(m);
            let base = s.policies.first().and_then(|b| b.metric(m));
            let unchanged = p.share_better == 0.0 && p.share_worse == 0.0;
            match p.ci95 {
                _ if unchanged && base.is_some_and(|b| b.max == 0.0 && b.mean == 0.0) => {
                    zero.push(esc(label))
                }
                _ if unchanged => same.push(esc(label)),
                Some([low, high]) if low > 0.0 || high < 0.0 => {
                    let (mean, ci) = units::paired(unit, p.mean_difference, p.ci95);
                    let change = match p.relative {
                        Some(_) => format!("{} ({mean} {ci})", relative_words(m, p, base)),
                        None => format!("{mean} {ci}, from zero"),
                    };
                    let item = format!("{} {}", esc(label), esc(&change));
                    if high < 0.0 {
                        lower.push(item)
                    } else {
                        higher.push(item)
                    }
                }
                _ => unclear.push(esc(label)),
            }
        }
        let said: Vec<String> = [
            ("Lower", lower),
            ("Higher", higher),
            ("No change told from chance", unclear),
            ("The same on every path", same),
            ("Zero under both", zero),
        ]
        .into_iter()
        .filter(|(_, items)| !items.is_empty())
        .map(|(words, items)| format!("{words}: {}.", items.join("; ")))
        .collect();
        let _ = writeln!(
            w,
            "<li><strong>{}</strong>: {}</li>",
            esc(&c.policy),
            said.join(" ")
        );
    }
    let _ = writeln!(w, "</ul>");
    if result.scenario.file().policies.iter().any(tightens_margins) {
        let _ = writeln!(
            w,
            "<p class=\"note\">A policy that raises margins or caps leverage has positions above \
             its new limits post collateral up to them and keep their size, unless they \
             migrate: no position leaves the market, and those traders' extra collateral is \
             what their lower liquidations cost. What each policy changes is listed under \
             <a href=\"#scenario\">Scenario</a>.</p>"
        );
    }
    let _ = writeln!(w, "</section>");
}

/// Whether a policy raises margins or caps leverage, which tops up the positions above its
/// new limits.
fn tightens_margins(p: &Policy) -> bool {
    !p.cooperating.is_empty() && (p.margin_floor.is_some() || p.leverage_cap.is_some())
}

fn comparison_section(w: &mut String, result: &ResultDir) {
    let s = &result.summary;
    let _ = writeln!(w, "<section id=\"comparison\">\n<h2>Policy comparison</h2>");
    if s.comparisons.is_empty() {
        let _ = writeln!(
            w,
            "<p>This scenario has a single policy, so there is nothing to compare. Add \
             <code>[[policies]]</code> entries to the scenario to compare cooperation policies \
             against the first (the baseline).</p>\n</section>"
        );
        return;
    }
    let _ = writeln!(
        w,
        "<p>Every policy ran on the same random draws as the baseline (common random numbers), so \
         each difference is measured path by path. <em>Mean difference</em> is the policy minus \
         the baseline, averaged over paths, with its 95% confidence interval; <em>relative</em> \
         divides it by the baseline mean; <em>lower / higher</em> are the shares of paths on which \
         the policy's figure was below / above the baseline's. Lower is better for the losses \
         (liquidations, drawdown, bad debt, ADL, unabsorbed loss, insolvent venues); a fund \
         drawn more may be a loss absorbed rather than left unabsorbed. A liquidated position \
         counts once however many slices of it partial liquidation closes, but once on each \
         venue where it is liquidated when migration has spread it over the venues outside \
         the cooperation, so the count can rise while liquidated notional falls. Amplification \
         is 1x where liquidations moved no price, so its relative change is also given against \
         the baseline's excess over 1x: the share of the cascade's own amplification the policy \
         removed. Rows in bold have an interval that excludes zero.</p>"
    );
    let _ = writeln!(
        w,
        "<div class=\"scroll\"><table>\n<thead><tr><th>metric</th><th>mean difference</th>\
         <th>95% confidence interval</th><th>relative</th><th>paths lower</th><th>paths higher</th></tr></thead>\n<tbody>"
    );
    for c in &s.comparisons {
        let _ = writeln!(
            w,
            "<tr class=\"group\"><th colspan=\"6\">{} against {}</th></tr>",
            esc(&c.policy),
            esc(&c.baseline)
        );
        for m in COMPARED {
            let Some((_, p)) = c.metrics.iter().find(|(n, _)| n == m) else {
                continue;
            };
            let (label, unit) = units::metric(m);
            let sig = p.ci95.is_some_and(|[a, b]| a > 0.0 || b < 0.0);
            let (mean, ci) = units::paired(unit, p.mean_difference, p.ci95);
            let _ = writeln!(
                w,
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if sig { " class=\"sig\"" } else { "" },
                esc(label),
                mean,
                esc(&ci),
                relative_words(m, p, s.policies.first().and_then(|b| b.metric(m))),
                Unit::Fraction.format(p.share_better),
                Unit::Fraction.format(p.share_worse),
            );
        }
    }
    let _ = writeln!(w, "</tbody></table></div>\n</section>");
}

/// The relative column of the comparison table for metric `m`, whose baseline is `base`.
///
/// Amplification's floor is 1x, not zero: a policy that removes the whole cascade moves a
/// baseline of 1.15x by -13%, which reads as a small effect, so its change is also given
/// against the excess over 1x (-100%).
fn relative_words(m: &str, p: &PairedFile, base: Option<&StatsFile>) -> String {
    let Some(relative) = p.relative else {
        return "n/a".into();
    };
    let whole = units::signed_percent(relative);
    match base.map(|b| b.mean - 1.0) {
        Some(excess) if m == "amplification" && excess > 0.0 => format!(
            "{whole} ({} of the excess over 1x)",
            units::signed_percent(p.mean_difference / excess)
        ),
        _ => whole,
    }
}

/// An SVG file ready to sit inside HTML: no XML declaration and no namespace URL.
fn inline_svg(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let start = text.find("<svg").ok_or_else(|| {
        Error::io(
            format!("cannot inline {}", path.display()),
            std::io::Error::other("no <svg> element"),
        )
    })?;
    Ok(text[start..].replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1))
}

fn charts_section(w: &mut String, charts: &[Chart]) -> Result<()> {
    let _ = writeln!(
        w,
        "<section id=\"charts\">\n<h2>Charts</h2>\n<p class=\"note\">Each chart is also in \
         <code>charts/</code> as PNG and SVG.</p>"
    );
    for c in charts {
        let svg = inline_svg(&c.files.svg)?;
        let _ = writeln!(
            w,
            "<figure id=\"chart-{}\">\n<h3>{}</h3>\n{}\n<figcaption>{}</figcaption>\n</figure>",
            esc(&c.name),
            esc(&c.title),
            svg.trim_end(),
            esc(&c.caption)
        );
    }
    let _ = writeln!(w, "</section>");
    Ok(())
}

fn methodology_section(w: &mut String, f: &ScenarioFile) {
    // Venue names are the user's: escaped here, the rest is our own HTML.
    let names = |pick: fn(&crate::scenario::file::Venue) -> bool| -> Vec<String> {
        f.venues
            .iter()
            .filter(|v| pick(v))
            .map(|v| esc(&v.name))
            .collect()
    };
    let tiered = names(|v| !v.margin_tiers.is_empty());
    let opening = names(|v| v.opening.is_some());
    let tiered_opening = f
        .venues
        .iter()
        .any(|v| !v.margin_tiers.is_empty() && v.opening.is_some());

    let mut simulated = vec![format!(
        "Independent Monte Carlo paths of a fundamental price, in steps of {} seconds. {} Each \
         path draws its random numbers from the seed and its own index alone, so results do not \
         depend on threads or shards.",
        trim(f.simulation.step_seconds),
        esc(&price_method(&f.price, f.simulation.steps))
    )];
    simulated.push(format!(
        "Every venue holds a book of isolated-margin linear perpetual positions, long and short, \
         drawn once from the seed (or read from a snapshot){}. A position is liquidated when its \
         equity falls to the maintenance margin, in full or in fixed fractions.{}",
        if opening.is_empty() {
            " and fixed for the horizon"
        } else {
            ""
        },
        if tiered.is_empty() {
            " Margin rates do not depend on position size: no venue in this scenario has margin \
             tiers."
        } else {
            ""
        }
    ));
    if !tiered.is_empty() {
        simulated.push(format!(
            "Margin tiers on {}: larger positions are held to higher margin rates. A generated \
             position's leverage is capped by the initial rate of the tier its notional falls in \
             when the book is drawn; its maintenance requirement, checked at its trigger price, rises with its notional \
             without jumping at tier bounds (each tier subtracts a fixed amount), and the rest of \
             a partially liquidated position may fall into a lower tier.",
            tiered.join(", ")
        ));
    }
    if !opening.is_empty() {
        simulated.push(format!(
            "Positions opened during the horizon, on {}: when a venue's mark first falls to one \
             of its cohort levels below the start price, a cohort of longs and shorts opens at \
             that mark, after the step's cascade, in equal quantity, so opening moves no price. \
             Its leverage is drawn from the cohort's own mixes, capped by the venue's margin \
             rules and any policy cap; from then on its positions are liquidated like the start \
             book's, and auto-deleveraging draws on their profits too.{}",
            opening.join(", "),
            if tiered_opening {
                " On a tiered venue a cohort's prices are scaled from those at its level, which is \
                 exact only under flat rates: a cohort that opens below its level is liquidated \
                 slightly early."
            } else {
                ""
            }
        ));
    }
    simulated.push(format!(
        "Within a step, liquidations run in rounds: forced flow is netted per venue and split \
         between the venue's own book and liquidity shared across venues; the resulting price \
         impact (permanent and transient, {}) can trigger further liquidations, until none is \
         triggered or the round cap is reached.",
        if f.liquidity.depth_withdrawal > 0.0 {
            "with depth thinning in fast markets"
        } else {
            "against depth that does not react to volatility in this scenario"
        }
    ));
    simulated.push(
        "Fills beyond a position's bankruptcy price leave bad debt, paid by the venue's insurance \
         fund, then by auto-deleveraging of profitable opposite positions where the venue has it, \
         and otherwise left unabsorbed: the venue is insolvent on that path."
            .to_string(),
    );
    simulated.push(
        "Policies change venue rules in the cooperating jurisdictions (margin floors, leverage \
         caps and migration of displaced leverage, index marks, routing, pooled default funds, \
         algorithmic supervision). Every policy runs on the same draws as the baseline, so \
         differences are paired path by path; confidence intervals of the mean paired difference \
         use Student's t."
            .to_string(),
    );
    simulated.push(
        "Bands over time come from fixed-bin histograms (0.5% of log price per bin from about \
         -80% to +100% of the start price, wider bins beyond; 40 bins per decade of liquidated \
         share of open interest), so they are exact to within a bin."
            .to_string(),
    );

    let trading = if opening.is_empty() {
        "New positions: nobody opens, adds to or voluntarily closes a position during the \
         horizon, so there is no re-leveraging after the crash and no stop-loss selling beyond \
         liquidations."
            .to_string()
    } else {
        format!(
            "Other trading: no position opens except in the cohorts above, none is added to and \
             none is closed voluntarily, so there is no stop-loss selling or profit-taking beyond \
             liquidations; new positions open only at the cohorts' levels below the start \
             price{}.",
            if opening.len() < f.venues.len() {
                ", and never on the venues without cohorts"
            } else {
                ""
            }
        )
    };
    let not_simulated = [
        trading,
        "Cross-margin and portfolio margin, other assets and collateral haircuts, funding \
         payments and trading fees other than the liquidation fee."
            .to_string(),
        "Strategic behaviour: market makers and arbitrageurs appear only through depth, routing \
         and the arbitrage half-life; no agent anticipates the cascade."
            .to_string(),
        "Outages, oracle failures and contagion through channels other than shared liquidity and \
         auto-deleveraging."
            .to_string(),
    ];

    let _ = writeln!(
        w,
        "<section id=\"methodology\">\n<h2>Methodology</h2>\n<h3>What is simulated</h3>\n<ul>"
    );
    for item in &simulated {
        let _ = writeln!(w, "<li>{item}</li>");
    }
    let _ = writeln!(w, "</ul>\n<h3>What is not simulated</h3>\n<ul>");
    for item in &not_simulated {
        let _ = writeln!(w, "<li>{item}</li>");
    }
    let _ = writeln!(
        w,
        "</ul>\n<p class=\"note\">Results are as good as the scenario's figures: open interest, \
         leverage mixes and depth are inputs, and the scenario file says where each comes \
         from.</p>\n</section>"
    );
}

/// How the fundamental moves, in words for the methodology: the scenario's price model, then
/// its stress (the figures are in the scenario section).
fn price_method(p: &Price, steps: u32) -> String {
    let model = match p.model {
        PriceModel::Gbm => {
            "Its log returns are Gaussian (geometric Brownian motion), with the drift that makes \
             the price a martingale."
                .to_string()
        }
        PriceModel::StudentT => {
            "Its log returns are Student-t, scaled to the scenario's volatility: fat tails, so \
             large moves are more frequent than if they were Gaussian."
                .to_string()
        }
        PriceModel::Merton => {
            "It follows a Merton jump-diffusion: Gaussian log returns plus jumps arriving as a \
             Poisson process with normally distributed log sizes, and a drift that offsets the \
             expected move, so the price is a martingale."
                .to_string()
        }
        PriceModel::Garch => {
            "Its volatility clusters (GARCH(1,1)): each step's variance reacts to the last step's \
             shock and persists, starting from its long-run level; innovations are Gaussian, with \
             the drift that makes the price a martingale."
                .to_string()
        }
        PriceModel::Historical => {
            let rows = if p.returns.is_empty() {
                String::new()
            } else {
                format!(" of {} rows", units::count(p.returns.len() as f64))
            };
            match p.block_bootstrap {
                None => format!(
                    "Its log returns are replayed from a historical series{rows} read from a CSV \
                     file, from its first row and as they are (drift included): every path has \
                     the same fundamental price."
                ),
                Some(b) => format!(
                    "Its log returns are a moving-block bootstrap of a historical series{rows} \
                     read from a CSV file, drift included: each path is filled with blocks of {b} \
                     consecutive returns starting at rows drawn at random."
                ),
            }
        }
    };
    let stress = match p.moving_stress() {
        None => "There is no deterministic stress.",
        // The horizon may end before the drop does, and then nothing recovers.
        Some(st) if st.recovery > 0.0 && st.start_step + st.duration_steps < steps => {
            "A deterministic stress is added to these returns: a drop spread evenly in log price \
             over its steps, then a recovery of part of it spread evenly over the steps after."
        }
        Some(_) => {
            "A deterministic stress is added to these returns: a drop spread evenly in log price \
             over its steps, with no recovery within the horizon."
        }
    };
    format!("{model} {stress}")
}

fn provenance_section(w: &mut String, result: &ResultDir) {
    let m = &result.manifest;
    let s = &result.summary;
    let mut rows: Vec<(&str, String)> = vec![
        ("scenario", esc(&s.scenario)),
        (
            "cascade version (run)",
            if m.build.is_empty() {
                esc(&m.version)
            } else {
                format!("{} ({})", esc(&m.version), esc(&m.build))
            },
        ),
        (
            "cascade version (report)",
            format!("{} ({})", esc(crate::VERSION), esc(crate::BUILD)),
        ),
        ("seed", m.seed.to_string()),
        ("paths", units::count(m.paths as f64)),
    ];
    if let Some([a, b]) = m.path_range
        && b > a
    {
        rows.push(("path indices", format!("{a} to {}", b - 1)));
    }
    if !m.scenario_path.is_empty() {
        rows.push((
            "scenario file",
            format!("<code>{}</code>", esc(&m.scenario_path)),
        ));
    }
    if !m.scenario_file_sha256.is_empty() {
        rows.push((
            "scenario file SHA-256",
            format!("<code>{}</code>", esc(&m.scenario_file_sha256)),
        ));
    }
    if !m.scenario_sha256.is_empty() {
        rows.push((
            "SHA-256 of what was run: scenario.toml and every CSV it reads (scenario_sha256)",
            format!("<code>{}</code>", esc(&m.scenario_sha256)),
        ));
    }
    rows.push((
        "overrides",
        if m.overrides.is_empty() {
            "none".to_string()
        } else {
            m.overrides
                .iter()
                .map(|o| format!("<code>--set {}</code>", esc(o)))
                .collect::<Vec<_>>()
                .join(" ")
        },
    ));
    if let Some(t) = m.threads {
        rows.push(("threads", t.to_string()));
    }
    if let Some(from) = &m.merged_from {
        rows.push((
            "merged from",
            from.iter()
                .map(|d| format!("<code>{}</code>", esc(d)))
                .collect::<Vec<_>>()
                .join(" "),
        ));
    }
    // To the second: the manifest keeps the nanoseconds.
    let second = |t: &str| t.get(..19).unwrap_or(t).replacen('T', " ", 1);
    if !m.started_at.is_empty() {
        rows.push(("started (UTC)", esc(&second(&m.started_at))));
    }
    if !m.finished_at.is_empty() {
        rows.push(("finished (UTC)", esc(&second(&m.finished_at))));
    }
    if let Some(sec) = m.wall_seconds {
        rows.push((
            if m.merged_from.is_some() {
                "wall time of the merge"
            } else {
                "wall time"
            },
            format!("{sec:.2} s"),
        ));
    }
    let reproduce = match m.shard {
        Some(shard) => format!(
            "This is shard {} of {} of a study: <code>cascade merge</code> of its {} shards \
             gives the study's <code>summary.json</code>, <code>paths.csv</code> and \
             <code>timeline.csv</code>, which <code>cascade run scenario.toml</code> in this \
             directory gives too, byte for byte, whatever the number of threads.",
            shard.index, shard.count, shard.count
        ),
        None => "Everything needed to reproduce these figures: <code>cascade run \
                 scenario.toml</code> in this directory gives the same <code>summary.json</code>, \
                 <code>paths.csv</code> and <code>timeline.csv</code>, byte for byte, whatever \
                 the number of threads or shards."
            .to_string(),
    };
    let _ = writeln!(
        w,
        "<section id=\"provenance\">\n<h2>Provenance</h2>\n<p>{reproduce}</p>\n\
         <table class=\"keep\">\n<tbody>"
    );
    for (k, v) in rows {
        let _ = writeln!(
            w,
            "<tr><th class=\"text\">{k}</th><td class=\"text\">{v}</td></tr>"
        );
    }
    let _ = writeln!(w, "</tbody></table>\n</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_interval_is_ordered_and_cut_at_minus_all_of_the_baseline() {
        assert_eq!(relative_interval([-5.0, 1.0], 2.0), [-1.0, 0.5]);
        assert_eq!(relative_interval([-1.0, 1.0], 2.0), [-0.5, 0.5]);
        // A negative baseline mean (not a compared metric today) swaps the ends.
        assert_eq!(relative_interval([-1.0, 4.0], -8.0), [-0.5, 0.125]);
        assert_eq!(relative_interval([-30.0, -20.0], 10.0), [-1.0, -1.0]);
    }
}
