//! The scenario file as users write it: serde structs that mirror the TOML one to one.
//!
//! These types are barely checked (serde only enforces types and required keys); the checks
//! that need more than one field live in [`super::validate`], which turns a [`ScenarioFile`]
//! into a [`super::Scenario`]. Every field carries a doc comment because the JSON Schema that
//! `cascade schema` prints (and editors show as hover help) is generated from them; a field's
//! own bounds (`drop` below 1, a margin above 0) are stated here too, from the constants the
//! validation uses, so that an editor flags `drop = 15` as the CLI does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::{MAX_STEP_SECONDS, MIN_PARTIAL_FRACTION};
use crate::book::{MAX_USD, PRICE_LIMITS};
use crate::margin::MarginSchedule;
use crate::shocks::MAX_LOG_RETURN;

/// A whole scenario: the market, the shock, and the policies to compare.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Short name, used for the default output directory (`output/<name>/...`).
    pub name: String,
    /// One or two sentences saying what the scenario asks.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Monte Carlo size, horizon and seed.
    #[serde(default)]
    pub simulation: Simulation,
    /// The exogenous (fundamental) price process.
    pub price: Price,
    /// Shared and local liquidity, and how forced flow moves prices.
    #[serde(default)]
    pub liquidity: Liquidity,
    /// The derivatives venues, in the order results report them.
    #[schemars(length(min = 1))]
    pub venues: Vec<Venue>,
    /// The policies to compare; the first is the baseline.
    #[serde(default = "default_policies")]
    #[schemars(length(min = 1))]
    pub policies: Vec<Policy>,
    /// What happened in a historical episode, compared with the simulation by `cascade
    /// backtest`; runs ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
}

impl ScenarioFile {
    /// The venues' jurisdictions, each once, in the order they first appear: the order the
    /// summary and the report list them in.
    pub fn jurisdictions(&self) -> Vec<&str> {
        let mut jurisdictions: Vec<&str> = Vec::new();
        for v in &self.venues {
            if !jurisdictions.contains(&v.jurisdiction.as_str()) {
                jurisdictions.push(&v.jurisdiction);
            }
        }
        jurisdictions
    }
}

/// Observed outcomes of a historical episode. Only `price_drop` is fitted (the stress drop is
/// calibrated to it); everything else is compared, never tuned.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Observed {
    /// Fall of the traded price from the start (the pre-event price) to the trough, as a
    /// share: the calibration target for the median of `max_drawdown`.
    #[schemars(extend("exclusiveMinimum" = 0), extend("exclusiveMaximum" = 1))]
    pub price_drop: f64,
    /// Liquidated notional (USD at the prices the liquidations filled at, as exchanges and
    /// aggregators report it), in the same scope as the scenario's venues: compared with the
    /// model's `liquidated_value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub liquidated_notional: Option<f64>,
    /// Share of the liquidated notional (at fill prices) that was long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub long_share: Option<f64>,
    /// Share of the starting open interest (in contracts) gone by the end of the episode,
    /// compared with `open_interest_lost`, which is net at the end of the horizon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub open_interest_lost: Option<f64>,
    /// Insurance funds drawn (USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub insurance_fund_drawn: Option<f64>,
    /// Notional closed by auto-deleveraging (USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub adl_notional: Option<f64>,
    /// Liquidated notional (USD at fill prices) by venue name, for the venues where it is
    /// known.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub venue_liquidated: BTreeMap<String, f64>,
    /// Caveats written before the comparison, printed with it (for example: aggregator totals
    /// undercount).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

fn default_policies() -> Vec<Policy> {
    vec![Policy {
        name: "baseline".to_string(),
        ..Policy::default()
    }]
}

/// Monte Carlo size and horizon.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Simulation {
    /// Number of Monte Carlo paths.
    #[schemars(range(min = 1))]
    pub paths: u64,
    /// Horizon in steps.
    #[schemars(range(min = 1))]
    pub steps: u32,
    /// Length of one step in seconds (60 = one-minute steps; at most a year, 31536000).
    #[schemars(range(max = MAX_STEP_SECONDS), extend("exclusiveMinimum" = 0))]
    pub step_seconds: f64,
    /// Seed of every random number; drawn and recorded in the results when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Cap on cascade rounds within one step; how often it binds is reported.
    #[schemars(range(min = 1))]
    pub max_rounds: u32,
}

impl Default for Simulation {
    fn default() -> Self {
        Simulation {
            paths: 10_000,
            steps: 1_440,
            step_seconds: 60.0,
            seed: None,
            max_rounds: 64,
        }
    }
}

/// Which stochastic model drives the fundamental price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum PriceModel {
    /// Geometric Brownian motion.
    #[default]
    Gbm,
    /// Student-t innovations scaled to the same volatility (fat tails).
    StudentT,
    /// Merton jump-diffusion: GBM plus compound Poisson log-normal jumps.
    Merton,
    /// GARCH(1,1) volatility clustering with Gaussian innovations (`alpha`, `beta`, `omega`).
    Garch,
    /// Replay of the per-step log returns in `returns_csv`, optionally block-bootstrapped.
    Historical,
}

/// The fundamental price process.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
// Keys a setting requires (`is required with ...` in the validation), for editors.
#[schemars(deny_unknown_fields, extend("allOf" = [
    { "if": { "properties": { "model": { "const": "student_t" } }, "required": ["model"] }, "then": { "required": ["degrees_of_freedom"] } },
    { "if": { "properties": { "model": { "const": "merton" } }, "required": ["model"] }, "then": { "required": ["jump_intensity_per_day", "jump_mean", "jump_stdev"] } },
    { "if": { "properties": { "model": { "const": "garch" } }, "required": ["model"] }, "then": { "required": ["alpha", "beta"] } },
    { "if": { "properties": { "model": { "const": "historical" } }, "required": ["model"] }, "then": { "required": ["returns_csv"] } }
]))]
pub struct Price {
    /// Price at step 0 (USD).
    #[schemars(range(min = PRICE_LIMITS.0, max = PRICE_LIMITS.1))]
    pub start: f64,
    /// Shock process.
    #[serde(default)]
    pub model: PriceModel,
    /// Annualised volatility of log returns (0.55 = 55%); 0 gives a deterministic path.
    /// With model `garch` it is the unconditional volatility the variance is targeted to
    /// (leave it out when `omega` is given); model `historical` does not use it (the
    /// volatility is the series') and ignores it, with a warning.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub annual_volatility: f64,
    /// Degrees of freedom of the Student-t innovations (model `student_t`, must exceed 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 2))]
    pub degrees_of_freedom: Option<f64>,
    /// Expected number of jumps per day (model `merton`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_intensity_per_day: Option<f64>,
    /// Mean of the log jump size (model `merton`; -0.03 is a typical 3% drop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_mean: Option<f64>,
    /// Standard deviation of the log jump size (model `merton`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_stdev: Option<f64>,
    /// GARCH(1,1) constant, in per-step variance units (model `garch`, positive). Leave it
    /// out to target the variance: omega = (1 - alpha - beta) x the per-step variance that
    /// `annual_volatility` implies, so the unconditional volatility is `annual_volatility`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub omega: Option<f64>,
    /// GARCH(1,1) reaction to the last squared shock (model `garch`, at least 0):
    /// sigma2_t = omega + alpha x eps_(t-1)^2 + beta x sigma2_(t-1), with alpha + beta below 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub alpha: Option<f64>,
    /// GARCH(1,1) persistence of the conditional variance (model `garch`, at least 0;
    /// alpha + beta must be below 1 so the variance is stationary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub beta: Option<f64>,
    /// CSV of per-step log returns to replay (model `historical`), relative to the scenario
    /// file: a header row, then one row per step with the natural log of the price ratio over
    /// one step of `simulation.step_seconds` in a column named `log_return` (other columns,
    /// such as a timestamp, are ignored). Row 1 is step 1. The series is used as is: its
    /// drift is kept, so the price is a martingale only if the series is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns_csv: Option<PathBuf>,
    /// Block length, in steps, of a moving-block bootstrap of `returns_csv` (model
    /// `historical`). Leave it out to replay the series as is on every path (it then needs at
    /// least `simulation.steps` rows); with it, each path is filled with blocks of this many
    /// consecutive returns starting at uniformly drawn rows, from the path's own generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub block_bootstrap: Option<u32>,
    /// Optional deterministic stress drop layered on the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress: Option<Stress>,
    /// The returns read from `returns_csv` when the scenario is loaded (not part of the file).
    #[serde(skip)]
    #[schemars(skip)]
    pub returns: Vec<f64>,
}

impl Price {
    /// The deterministic stress, if it moves the price: a drop of 0 (where a calibration's
    /// search may start) changes no step, so reports describe and draw it as no stress.
    pub fn moving_stress(&self) -> Option<&Stress> {
        self.stress.as_ref().filter(|s| s.drop > 0.0)
    }
}

/// A deterministic drop of the fundamental, the way supervisors write stress scenarios.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
// Keys a setting requires (`is required with ...` in the validation), for editors.
#[schemars(deny_unknown_fields, extend("allOf" = [
    { "if": { "properties": { "recovery": { "exclusiveMinimum": 0 } }, "required": ["recovery"] }, "then": { "required": ["recovery_steps"] } }
]))]
pub struct Stress {
    /// Total drop as a fraction of the price (0.15 = 15%).
    #[schemars(range(min = 0), extend("exclusiveMaximum" = 1))]
    pub drop: f64,
    /// Step at which the drop starts.
    #[serde(default)]
    pub start_step: u32,
    /// Number of steps the drop is spread over (evenly in log price).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub duration_steps: u32,
    /// Share of the drop (in log price) that the fundamental recovers after it, as crashes
    /// rebound from their low; 0 (the default) keeps the drop.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = 1))]
    pub recovery: f64,
    /// Number of steps the recovery is spread over, from the step after the drop ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub recovery_steps: Option<u32>,
}

impl Stress {
    /// The share of the drop (in log price, where it is spread evenly) applied within a
    /// horizon of `steps` steps, when the horizon ends before the drop does; `None` when the
    /// whole drop fits.
    pub fn share_within(&self, steps: u32) -> Option<f64> {
        let end = self.start_step.saturating_add(self.duration_steps);
        (end > steps).then(|| {
            f64::from(steps.saturating_sub(self.start_step)) / f64::from(self.duration_steps)
        })
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn one() -> u32 {
    1
}

/// Shape of the price impact of forced flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum ImpactLaw {
    /// Linear (Kyle): the move is proportional to flow over depth.
    #[default]
    Linear,
    /// Square-root law: the move grows with the square root of flow over depth.
    Sqrt,
}

/// Liquidity and price formation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Liquidity {
    /// Impact law.
    pub impact: ImpactLaw,
    /// USD of net flow that moves the shared (cross-venue) price by 1%.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub shared_depth_1pct: f64,
    /// Share of each venue's net forced flow that reaches shared liquidity (alpha).
    #[schemars(range(min = 0, max = 1))]
    pub routing: f64,
    /// Share of impact that is permanent; the rest decays with the resilience half-life.
    #[schemars(range(min = 0, max = 1))]
    pub permanent_fraction: f64,
    /// Half-life, in steps, of the transient part of impact (book resilience).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub resilience_half_life_steps: f64,
    /// Half-life, in steps, of a venue's local dislocation from the shared price (arbitrage).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub arbitrage_half_life_steps: f64,
    /// Depth thinning with realised moves: depth is divided by `1 + depth_withdrawal * m`,
    /// where `m` is the recent average absolute move of the traded price, in % per step,
    /// averaged (exponentially) over the resilience half-life: depth comes back as books
    /// refill.
    #[schemars(range(min = 0))]
    pub depth_withdrawal: f64,
}

impl Default for Liquidity {
    fn default() -> Self {
        Liquidity {
            impact: ImpactLaw::Linear,
            shared_depth_1pct: 300_000_000.0,
            routing: 0.7,
            permanent_fraction: 0.5,
            resilience_half_life_steps: 15.0,
            arbitrage_half_life_steps: 5.0,
            depth_withdrawal: 0.0,
        }
    }
}

/// Liquidation mode of a venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum LiquidationMode {
    /// The whole position is closed at its trigger.
    #[default]
    Full,
    /// A fixed fraction of the original position is closed per trigger.
    Partial,
}

/// How a venue forms the mark price that triggers liquidations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum MarkPrice {
    /// The venue's own last traded price.
    #[default]
    Own,
    /// An index: the open-interest-weighted average of all venues' prices.
    Index,
}

/// One derivatives venue and its margin regime.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
// Keys a setting requires (`is required with ...` in the validation), for editors.
#[schemars(deny_unknown_fields, extend("allOf" = [
    { "if": { "properties": { "liquidation": { "const": "partial" } }, "required": ["liquidation"] }, "then": { "required": ["partial_fraction"] } }
]))]
pub struct Venue {
    /// Venue name, unique within the scenario (at most 80 bytes; no commas, quotes or slashes).
    pub name: String,
    /// Jurisdiction the venue is regulated in (policies name these).
    pub jurisdiction: String,
    /// Initial margin rate; maximum leverage is its inverse.
    #[schemars(range(max = 1), extend("exclusiveMinimum" = 0))]
    pub initial_margin: f64,
    /// Maintenance margin rate; must be below the initial margin.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub maintenance_margin: f64,
    /// Higher rates for larger positions (Binance-style brackets), above the base rates;
    /// maintenance amounts that keep the requirement continuous are derived.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub margin_tiers: Vec<MarginTier>,
    /// Liquidation fee as a share of liquidated notional, paid to the insurance fund.
    #[serde(default)]
    #[schemars(range(min = 0), extend("exclusiveMaximum" = 0.5))]
    pub liquidation_fee: f64,
    /// `full` or `partial` liquidation.
    #[serde(default)]
    pub liquidation: LiquidationMode,
    /// Share of the original position closed per partial liquidation (with `partial`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_PARTIAL_FRACTION, max = 1))]
    pub partial_fraction: Option<f64>,
    /// Insurance fund at the start (USD).
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_USD))]
    pub insurance_fund: f64,
    /// Whether auto-deleveraging covers losses once the fund is exhausted.
    #[serde(default = "yes")]
    pub adl: bool,
    /// USD of net flow that moves this venue's local price by 1%.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub depth_1pct: f64,
    /// Mark price used for liquidation triggers.
    #[serde(default)]
    pub mark_price: MarkPrice,
    /// Open interest, USD per side at the start price (generated books only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_USD), extend("exclusiveMinimum" = 0))]
    pub open_interest: Option<f64>,
    /// The book of leveraged positions: generated, or read from a CSV snapshot.
    #[serde(default)]
    pub book: Book,
    /// Positions opened during the horizon, as the price falls through given levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening: Option<Opening>,
}

/// Cohorts of new positions that open during a fall: dip buyers (longs) and momentum sellers
/// (shorts) in equal quantity, each cohort at the venue's mark when it first falls through its
/// level. They are what a rebound liquidates: shorts opened near the lows.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Opening {
    /// Falls below the start price, as shares (0.05 = 5% down), at which a cohort opens.
    #[schemars(length(min = 1))]
    pub levels: Vec<f64>,
    /// Notional per side per cohort (USD at the level's price).
    #[schemars(range(max = MAX_USD), extend("exclusiveMinimum" = 0))]
    pub notional: f64,
    /// Positions per side per cohort (default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub positions: Option<u32>,
    /// Leverage distribution of the cohort's longs (capped by the venue's tiers and rules).
    pub long_leverage: LeverageMix,
    /// Leverage distribution of the cohort's shorts.
    pub short_leverage: LeverageMix,
    /// Pareto tail index of sizes (default 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 1))]
    pub size_tail: Option<f64>,
}

fn yes() -> bool {
    true
}

impl Venue {
    /// The venue's margin rates by position size.
    pub fn margin(&self) -> MarginSchedule {
        let tiers: Vec<(f64, f64, f64)> = self
            .margin_tiers
            .iter()
            .map(|t| (t.above, t.initial_margin, t.maintenance_margin))
            .collect();
        MarginSchedule::tiered(self.initial_margin, self.maintenance_margin, &tiers)
    }
}

/// One margin tier: the rates for positions whose notional exceeds `above`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MarginTier {
    /// Position notional (USD) above which the tier applies.
    pub above: f64,
    /// Initial margin rate of the tier (maximum leverage is its inverse).
    pub initial_margin: f64,
    /// Maintenance margin rate of the tier.
    pub maintenance_margin: f64,
}

/// A venue's book of leveraged positions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Book {
    /// Number of generated positions per side (default 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub positions: Option<u32>,
    /// Leverage distribution of longs (default median 10, dispersion 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_leverage: Option<LeverageMix>,
    /// Leverage distribution of shorts (hedgers and basis traders lever less; default median
    /// 3, dispersion 0.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_leverage: Option<LeverageMix>,
    /// Standard deviation of log(entry / start) (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_LOG_RETURN))]
    pub entry_dispersion: Option<f64>,
    /// Pareto tail index of position sizes (smaller = more concentrated; default 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 1))]
    pub size_tail: Option<f64>,
    /// CSV snapshot of positions instead of a generated book, relative to the scenario file.
    /// Columns: `side,notional,entry_price,leverage` (notional = quantity x entry price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions_csv: Option<PathBuf>,
}

/// A lognormal leverage distribution, capped at `1 / initial_margin` and floored at 1.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct LeverageMix {
    /// Median leverage.
    #[schemars(range(min = 1))]
    pub median: f64,
    /// Standard deviation of log leverage.
    #[schemars(range(min = 0))]
    pub dispersion: f64,
}

/// A common floor on margin rates.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MarginFloor {
    /// Floor on the initial margin rate.
    #[schemars(range(max = 1), extend("exclusiveMinimum" = 0))]
    pub initial: f64,
    /// Floor on the maintenance margin rate.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub maintenance: f64,
}

/// One policy: an overlay on the venues of the cooperating jurisdictions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Policy {
    /// Policy name, unique within the scenario (at most 80 bytes; no commas, quotes or slashes).
    pub name: String,
    /// Jurisdictions that adopt the policy; empty for the baseline (the first policy), which
    /// has no levers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cooperating: Vec<String>,
    /// Common floor on initial and maintenance margin in the cooperating jurisdictions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_floor: Option<MarginFloor>,
    /// Cap on leverage in the cooperating jurisdictions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub leverage_cap: Option<f64>,
    /// Share of displaced leverage that moves to venues outside the cooperating set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub migration: Option<f64>,
    /// Mark price override for the cooperating venues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_price: Option<MarkPrice>,
    /// Routing (alpha) override for the cooperating venues (liquidity interoperability).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub routing: Option<f64>,
    /// Pool the cooperating venues' insurance funds into one default fund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled_default_fund: Option<PooledFund>,
    /// A supervisor that watches a risk metric and acts when it crosses a threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervision: Option<Supervision>,
}

/// How a pooled default fund is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum FundSizing {
    /// The sum of the members' own insurance funds.
    #[default]
    Sum,
    /// The members' funds, topped up where needed to cover-2 (PFMI principle 4): the two
    /// largest members' losses under a stress move.
    Cover2,
}

/// A default fund shared by the cooperating venues.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
// Keys a setting requires (`is required with ...` in the validation), for editors.
#[schemars(deny_unknown_fields, extend("allOf" = [
    { "if": { "properties": { "sizing": { "const": "cover2" } }, "required": ["sizing"] }, "then": { "required": ["stress_move"] } }
]))]
pub struct PooledFund {
    /// `sum` of the members' funds, or `cover2`.
    #[serde(default)]
    pub sizing: FundSizing,
    /// With `cover2`: the instantaneous price move (fraction, down for longs, up for shorts)
    /// under which each member's loss beyond bankruptcy prices is measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0), extend("exclusiveMaximum" = 1))]
    pub stress_move: Option<f64>,
}

/// Whose venues a supervisor sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Each cooperating jurisdiction's supervisor sees only its own venues.
    Local,
    /// One supervisor sees every cooperating venue (cross-border reporting).
    Global,
}

/// The risk metric a supervisor watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SupervisionMetric {
    /// Notional (USD, at the start price) of open positions within `distance` above (longs)
    /// or below (shorts) their liquidation price, or already past it and not yet liquidated
    /// (a move that gaps through the triggers); `threshold` is in USD.
    NearLiquidation,
    /// Fall of the watched venues' price (their open-interest-weighted index, as the traded
    /// price is every venue's) over the last `window_steps` steps; `threshold` is a fraction.
    Drawdown,
}

/// What a supervisor does when its metric crosses the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SupervisoryAction {
    /// Pause liquidations on the watched venues for `halt_steps` steps while books refill;
    /// the supervisor then waits `halt_steps` more before it may pause again.
    CircuitBreaker,
    /// Require more margin from every open position on the watched venues (`add_on` times
    /// its notional at its bankruptcy price, so every trigger and bankruptcy price moves by
    /// the factor `1 -/+ add_on`); traders are assumed to meet the call.
    MarginAddOn,
}

/// Algorithmic supervision of the cooperating venues.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
// Keys a setting requires (`is required with ...` in the validation), for editors.
#[schemars(deny_unknown_fields, extend("allOf" = [
    { "if": { "properties": { "metric": { "const": "near_liquidation" } }, "required": ["metric"] }, "then": { "required": ["distance"] } },
    { "if": { "properties": { "metric": { "const": "drawdown" } }, "required": ["metric"] }, "then": { "required": ["window_steps"] } },
    { "if": { "properties": { "action": { "const": "circuit_breaker" } }, "required": ["action"] }, "then": { "required": ["halt_steps"] } },
    { "if": { "properties": { "action": { "const": "margin_add_on" } }, "required": ["action"] }, "then": { "required": ["add_on"] } }
]))]
pub struct Supervision {
    /// `local` or `global`.
    pub view: View,
    /// `near_liquidation` or `drawdown`.
    pub metric: SupervisionMetric,
    /// Level at which the supervisor acts (USD or fraction, by metric).
    #[schemars(range(min = 0))]
    pub threshold: f64,
    /// With `near_liquidation`: how close to its trigger a position counts (0.02 = 2%): the
    /// trigger within a factor `1 + distance` of the mark, so the same distance in log price
    /// for longs and shorts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0), extend("exclusiveMaximum" = 1))]
    pub distance: Option<f64>,
    /// With `drawdown`: the look-back window in steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub window_steps: Option<u32>,
    /// `circuit_breaker` or `margin_add_on`.
    pub action: SupervisoryAction,
    /// With `circuit_breaker`: steps liquidations stay paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub halt_steps: Option<u32>,
    /// With `margin_add_on`: the extra margin as a share of a position's notional at its
    /// bankruptcy price (moves triggers by the factor `1 - add_on` for longs, `1 + add_on`
    /// for shorts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0), extend("exclusiveMaximum" = 0.5))]
    pub add_on: Option<f64>,
}
