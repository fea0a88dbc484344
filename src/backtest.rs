//! Backtesting against historical episodes: calibrate the shock to the observed price drop,
//! then compare everything that was not fitted with what happened.
//!
//! The protocol (the one CALIBRATION.md asks for) is fixed here so that every episode is
//! treated the same way and nobody tunes an episode after seeing its comparison:
//!
//! 1. The scenario holds the pre-event state (venue rules, open interest, leverage, depth,
//!    funds) and, in its `[observed]` table, what happened.
//! 2. The stress drop is calibrated ([`crate::calibrate`]) so that the median `max_drawdown`
//!    of the traded price equals the observed drop. That is the only fitted number.
//! 3. The calibrated scenario is run, and each untargeted outcome that was observed
//!    (liquidated value, long share, venue split, open interest lost, insurance-fund and
//!    ADL use) is set against the simulated median and 90% interval (5th to 95th percentile
//!    over paths), with a verdict that takes into account what kind of figure the
//!    observation is (a lower bound, a partial measure, or comparable as it stands).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::calibrate::{self, Search};
use crate::error::{Error, Result};
use crate::metrics::{Metric, VenueMetric};
use crate::runner::RunOptions;
use crate::scenario::Override;
use crate::scenario::file::Observed;
use crate::stats;
use crate::study;
use crate::units::{self, Unit};

/// How an observed figure relates to the quantity the model simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Measures what the model measures.
    Comparable,
    /// A lower bound of it: aggregators miss liquidations (Binance publishes at most about
    /// one per second per symbol).
    LowerBound,
    /// Holds more than the model's mechanism: open interest also falls through voluntary
    /// closing, which the model does not have.
    Broader,
}

/// Where an observation falls against the simulated 90% interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Inside the interval.
    Within,
    /// The model's 5th percentile is above the observation.
    ModelAbove,
    /// The model's 95th percentile is below the observation.
    ModelBelow,
}

impl Verdict {
    /// Where `observed` falls against `d`'s 5th-95th percentile interval.
    pub fn of(observed: f64, d: &Band) -> Verdict {
        if observed < d.p5 {
            Verdict::ModelAbove
        } else if observed > d.p95 {
            Verdict::ModelBelow
        } else {
            Verdict::Within
        }
    }
}

/// The simulated distribution of one outcome: median and 90% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// 5th percentile.
    pub p5: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
}

impl Band {
    /// The band of per-path values (nearest-rank quantiles, as in `summary.json`).
    pub fn of(values: &[f64]) -> Band {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Band {
            p5: stats::quantile(&sorted, 0.05),
            p50: stats::quantile(&sorted, 0.5),
            p95: stats::quantile(&sorted, 0.95),
        }
    }
}

/// One observed outcome against its simulation.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is compared.
    pub label: String,
    /// How its values are shown.
    pub unit: Unit,
    /// Observed value.
    pub observed: f64,
    /// Simulated band; `None` when no path produced the quantity (e.g. a long share with no
    /// liquidation at all).
    pub simulated: Option<Band>,
    /// What kind of observation it is.
    pub scope: Scope,
    /// Why the model would miss this one, in plain words.
    pub likely_reason: Reasons,
}

impl Row {
    /// The verdict, if there is a simulation to compare with.
    pub fn verdict(&self) -> Option<Verdict> {
        self.simulated
            .as_ref()
            .map(|b| Verdict::of(self.observed, b))
    }

    /// Whether the observation falls outside the simulated interval.
    pub fn missed(&self) -> bool {
        matches!(
            self.verdict(),
            Some(Verdict::ModelAbove | Verdict::ModelBelow)
        )
    }
}

/// The backtest of one episode.
#[derive(Debug, Clone)]
pub struct Episode {
    /// Scenario file.
    pub path: PathBuf,
    /// Scenario name and description.
    pub name: String,
    /// One or two sentences on what it is.
    pub description: String,
    /// The observed table.
    pub observed: Observed,
    /// The calibrated stress drop (the exogenous shock).
    pub shock: f64,
    /// Median traded-price drawdown the calibrated scenario gives (target: the observed drop).
    pub drawdown: Band,
    /// Median amplification (traded over fundamental drawdown).
    pub amplification: Band,
    /// Whether the search met its tolerance.
    pub within_tolerance: bool,
    /// Paths and seed of every simulation.
    pub paths: u64,
    /// Seed.
    pub seed: u64,
    /// Untargeted comparisons.
    pub rows: Vec<Row>,
}

impl Episode {
    /// Outcomes inside the simulated interval, and outcomes with a simulation to compare with.
    pub fn within(&self) -> (usize, usize) {
        let compared = self.rows.iter().filter(|r| r.verdict().is_some()).count();
        let within = self
            .rows
            .iter()
            .filter(|r| r.verdict() == Some(Verdict::Within))
            .count();
        (within, compared)
    }
}

/// An episode whose scenario has been loaded and checked, ready to backtest.
#[derive(Debug, Clone)]
pub struct Prepared {
    path: PathBuf,
    name: String,
    observed: Observed,
    calibration: calibrate::Plan,
}

impl Prepared {
    /// The scenario file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The episode's name (the scenario's `name`), which heads its section of the table.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Loads the episode at `path` and checks everything the protocol needs from it (an
/// `[observed]` table, a stress to calibrate, a calibration that can run), without
/// simulating anything: a backtest of several episodes checks them all before it runs one.
pub fn prepare(path: &Path, overrides: &[Override]) -> Result<Prepared> {
    // The backtest calibrates the stress's drop (and has no --bracket or --key to offer).
    calibrate::refuse_overridden_key(
        overrides,
        calibrate::DEFAULT_KEY,
        ": the shock is what the backtest fits to the observed drop",
    )?;
    let base = crate::Scenario::load(path, overrides)?;
    let Some(observed) = base.file().observed.clone() else {
        return Err(Error::BadInput(format!(
            "{}: no [observed] table; a backtest needs at least observed.price_drop",
            path.display()
        )));
    };
    if base.file().price.stress.is_none() {
        return Err(Error::BadInput(format!(
            "{}: price.stress is required: the backtest calibrates price.stress.drop",
            path.display()
        )));
    }
    let search = Search::new(Metric::MaxDrawdown, observed.price_drop);
    Ok(Prepared {
        path: path.to_path_buf(),
        name: base.file().name.clone(),
        observed,
        calibration: calibrate::plan(base, &search)?,
    })
}

/// Runs the protocol on one prepared episode.
pub fn episode(
    prepared: &Prepared,
    options: RunOptions,
    progress: impl FnMut(&calibrate::Evaluation),
) -> Result<Episode> {
    let (path, observed) = (&prepared.path, prepared.observed.clone());
    // A drop out of the shock's reach is a question about the episode's observation.
    let found = prepared
        .calibration
        .run(options, progress)
        .map_err(|e| match e {
            Error::BadInput(m) => {
                Error::BadInput(format!("{m}; check the episode's observed.price_drop"))
            }
            e => e,
        })?;
    let scenario = found.scenario;
    let paths = scenario.file().simulation.paths;
    let seed = scenario.seed();
    let venue_names: Vec<String> = scenario
        .file()
        .venues
        .iter()
        .map(|v| v.name.clone())
        .collect();
    let s = study::simulate(
        scenario.clone(),
        None,
        RunOptions {
            progress: false,
            ..options
        },
    )?;
    let out = &s.out;
    let layout = out.layout;
    let column = |f: &dyn Fn(&[f64]) -> Option<f64>| -> Vec<f64> {
        (out.range.start..out.range.end)
            .filter_map(|p| f(out.row(p, 0)))
            .collect()
    };
    let metric = |m: Metric| column(&|r| Some(r[m.index()]));
    let band = |values: Vec<f64>| (!values.is_empty()).then(|| Band::of(&values));

    let mut rows = Vec::new();
    let mut push = |label: String,
                    unit: Unit,
                    observed: Option<f64>,
                    simulated: Option<Band>,
                    scope: Scope,
                    likely_reason: Reasons| {
        if let Some(observed) = observed {
            rows.push(Row {
                label,
                unit,
                observed,
                simulated,
                scope,
                likely_reason,
            });
        }
    };
    // Observed liquidations are USD at the prices they filled at, so the simulated ones are
    // too (`liquidated_value`; `liquidated_notional`, valued at the start price, has medians
    // 12-23% higher in the historical episodes).
    push(
        "liquidated value".into(),
        Unit::Usd,
        observed.liquidated_notional,
        band(metric(Metric::LiquidatedValue)),
        Scope::LowerBound,
        REASON_LIQUIDATIONS,
    );
    let long_share = column(&|r| {
        let total = r[Metric::LiquidatedValue.index()];
        (total > 0.0).then(|| r[Metric::LiquidatedLongValue.index()] / total)
    });
    push(
        "long share of liquidations".into(),
        Unit::Fraction,
        observed.long_share,
        band(long_share),
        Scope::Comparable,
        REASON_LONG_SHARE,
    );
    for (name, &value) in &observed.venue_liquidated {
        let Some(v) = venue_names.iter().position(|n| n == name) else {
            continue;
        };
        let long = layout.venue(v, VenueMetric::LiquidatedLongValue);
        let short = layout.venue(v, VenueMetric::LiquidatedShortValue);
        push(
            format!("liquidated at {name}"),
            Unit::Usd,
            Some(value),
            band(column(&|r| Some(r[long] + r[short]))),
            Scope::LowerBound,
            REASON_VENUE,
        );
    }
    push(
        "open interest lost".into(),
        Unit::Fraction,
        observed.open_interest_lost,
        band(metric(Metric::OpenInterestLost)),
        Scope::Broader,
        REASON_OPEN_INTEREST,
    );
    push(
        "insurance funds drawn".into(),
        Unit::Usd,
        observed.insurance_fund_drawn,
        band(metric(Metric::InsuranceFundDrawn)),
        Scope::Comparable,
        REASON_FUND,
    );
    push(
        "ADL notional".into(),
        Unit::Usd,
        observed.adl_notional,
        band(metric(Metric::AdlNotional)),
        Scope::Comparable,
        REASON_ADL,
    );
    let f = s.scenario.file();
    Ok(Episode {
        path: path.to_path_buf(),
        name: f.name.clone(),
        description: f.description.clone(),
        observed,
        shock: found.value,
        drawdown: Band::of(&metric(Metric::MaxDrawdown)),
        amplification: Band::of(&metric(Metric::Amplification)),
        within_tolerance: found.within_tolerance,
        paths,
        seed,
        rows,
    })
}

/// Why the model may miss an outcome, in plain words, by the direction of the miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reasons {
    /// When the model simulates more than was observed.
    pub above: &'static str,
    /// When it simulates less.
    pub below: &'static str,
}

const REASON_LIQUIDATIONS: Reasons = Reasons {
    above: "observed totals undercount (aggregators miss liquidations; Binance publishes at \
        most about one per second per symbol), and isolated-margin books with a-priori \
        leverage mixes leave out the spare collateral of cross-margin accounts, which keeps \
        real positions away from their triggers",
    below: "the a-priori leverage mixes may be too conservative, and positions open during \
        the episode only in the scenario's cohorts, so books that re-levered into the fall \
        beyond them are missing",
};
const REASON_LONG_SHARE: Reasons = Reasons {
    above: "the model's shorts are liquidated only by the fundamental's rebound (the stress \
        recovery), by transient impact reverting and by the path's volatility, squeezing the \
        shorts opened near the lows (opening cohorts) and the few levered shorts of the start \
        books; real short books held more leverage than the a-priori mixes, and real intraday \
        swings were larger than a one-minute diffusion gives",
    below: "the a-priori short leverage mixes, or the opening cohorts, put more shorts near \
        their triggers than real books held",
};
const REASON_VENUE: Reasons = Reasons {
    above: "open interest per venue and each venue's leverage mix are assumptions where no \
        pre-event figure exists, and venue-level reports undercount most",
    below: "open interest per venue and each venue's leverage mix are assumptions where no \
        pre-event figure exists; the venue's own liquidation engine may close positions \
        earlier than the model's fixed rules",
};
const REASON_OPEN_INTEREST: Reasons = Reasons {
    above: "the model counts every forced close as open interest lost; real forced orders \
        are partly taken by traders opening new positions",
    below: "the model counts only forced closes (in contracts); observed open interest also \
        fell through voluntary closing, and figures in USD also fall with the price itself",
};
const REASON_FUND: Reasons = Reasons {
    above: "funds pay only for fills beyond bankruptcy prices, so the depth assumed during the \
        crash decides them; real engines close large positions in steps or hand them to \
        backstop liquidity before they reach bankruptcy",
    below: "funds pay only for fills beyond bankruptcy prices: books thinner than assumed, or \
        gaps the one-minute steps smooth over, leave more bad debt in reality",
};
const REASON_ADL: Reasons = Reasons {
    above: "the model exhausts a fund that in reality held: funds larger than stated, or \
        backstops the model does not have",
    below: "in the model ADL starts only once a venue's fund is exhausted; venues whose rules \
        trigger ADL earlier (Hyperliquid's vault limits, OKX's 30% drawdown of its reserve) \
        use it when the model does not",
};

/// Writes the validation table of `episodes` as Markdown.
pub fn markdown(episodes: &[Episode], command: &str) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Validation against historical episodes\n");
    let _ = writeln!(
        w,
        "Generated by `{command}` (cascade {}); do not edit by hand. Rerunning the command \
         with the same scenarios gives this file byte for byte.\n",
        crate::VERSION
    );
    let _ = writeln!(
        w,
        "**Protocol.** Each scenario in `scenarios/history/` sets the pre-event state from \
         pre-event data (venue rules of the time, open interest, leverage, depth, insurance \
         funds; sources in its comments). The only fitted number is the exogenous shock: \
         `price.stress.drop` is calibrated so that the simulated median drawdown of the \
         traded price equals the observed drop. Everything else below was not fitted and is \
         compared with what happened: the simulated median and 90% interval (5th to 95th \
         percentile over paths) against the observed figure. Simulated liquidations are \
         valued, as the observed ones are, in USD at the prices they filled at \
         (`liquidated_value`). Parameters were not tuned after \
         seeing these comparisons; where a mechanism is missing, the remedy is to add it to \
         the model and rerun every episode.\n"
    );
    let _ = writeln!(
        w,
        "**Reading the verdicts.** Observed liquidation totals are lower bounds (aggregators \
         undercount), so a model above them may still be right; observed open-interest \
         declines include voluntary closing, so a model below them may still be right. Both \
         are marked as such rather than counted as matches.\n"
    );
    let _ = writeln!(w, "## Summary\n");
    let _ = writeln!(
        w,
        "| episode | observed drop | calibrated shock | amplification (median) | within 90% | misses |"
    );
    let _ = writeln!(w, "| --- | --- | --- | --- | --- | --- |");
    for e in episodes {
        let (within, compared) = e.within();
        let misses: Vec<String> = e
            .rows
            .iter()
            .filter(|r| r.missed())
            .map(|r| r.label.clone())
            .collect();
        let _ = writeln!(
            w,
            "| [{}](#{}) | {} | {} | {:.2}x | {within} of {compared} | {} |",
            e.name,
            anchor(&e.name),
            units::percent(e.observed.price_drop),
            units::percent(e.shock),
            e.amplification.p50,
            if misses.is_empty() {
                "none".to_string()
            } else {
                misses.join(", ")
            }
        );
    }
    for e in episodes {
        episode_section(w, e);
    }
    md
}

/// The link target a Markdown renderer (GitHub's) gives a heading: lower case, spaces to
/// hyphens, punctuation other than `-` and `_` dropped.
fn anchor(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn episode_section(w: &mut String, e: &Episode) {
    let _ = writeln!(w, "\n## {}\n", e.name);
    if !e.description.is_empty() {
        let _ = writeln!(w, "{}\n", e.description);
    }
    let _ = writeln!(
        w,
        "Scenario `{}`, {} paths, seed {}. Calibrated shock: the fundamental falls {} \
         (`price.stress.drop = {:.6}`); the traded price then falls {} at the median \
         (90%: {} to {}; target {}){}.\n",
        e.path.display(),
        e.paths,
        e.seed,
        units::percent(e.shock),
        e.shock,
        units::percent(e.drawdown.p50),
        units::percent(e.drawdown.p5),
        units::percent(e.drawdown.p95),
        units::percent(e.observed.price_drop),
        if e.within_tolerance {
            ""
        } else {
            "; the median jumps across the target here, this is the closest value found"
        }
    );
    if e.rows.is_empty() {
        let _ = writeln!(w, "No untargeted outcome was observed for this episode.");
    } else {
        let _ = writeln!(
            w,
            "| outcome | observed | simulated median | 90% interval | verdict |"
        );
        let _ = writeln!(w, "| --- | --- | --- | --- | --- |");
        for r in &e.rows {
            let show = |v: f64| r.unit.format(v);
            let (median, interval) = match &r.simulated {
                Some(b) => (show(b.p50), format!("{} to {}", show(b.p5), show(b.p95))),
                None => ("n/a".into(), "no path liquidated".into()),
            };
            let _ = writeln!(
                w,
                "| {} | {} | {median} | {interval} | {} |",
                r.label,
                // As the source reported it: 79% is not 79.0%.
                r.unit.tick(r.observed),
                verdict_text(r)
            );
        }
    }
    let misses: Vec<&Row> = e.rows.iter().filter(|r| r.missed()).collect();
    if !misses.is_empty() {
        let _ = writeln!(w, "\n**Where the model misses, and the likely reason.**\n");
        for r in misses {
            let (direction, reason) = match r.verdict() {
                Some(Verdict::ModelAbove) => ("more", r.likely_reason.above),
                _ => ("less", r.likely_reason.below),
            };
            let _ = writeln!(
                w,
                "- *{}*: the model simulates {direction} than was observed. Likely: {reason}.",
                r.label
            );
        }
    }
    if !e.observed.notes.is_empty() {
        let _ = writeln!(
            w,
            "\n**Caveats written before the comparison.** {}",
            e.observed.notes.trim()
        );
    }
}

/// The verdict in words, qualified by what kind of observation it is.
fn verdict_text(r: &Row) -> &'static str {
    match (r.verdict(), r.scope) {
        (None, _) => "not comparable",
        (Some(Verdict::Within), _) => "within",
        (Some(Verdict::ModelAbove), Scope::LowerBound) => "model above (observed is a lower bound)",
        (Some(Verdict::ModelBelow), Scope::Broader) => {
            "model below (observed includes voluntary closing)"
        }
        (Some(Verdict::ModelAbove), _) => "**model too high**",
        (Some(Verdict::ModelBelow), _) => "**model too low**",
    }
}
