//! Checks that need more than one field, collected all at once with their key paths.
//!
//! After [`check`] returns no problem, the engine may rely on every invariant stated here:
//! positive prices and depths, margins ordered, shares within [0, 1], known jurisdictions.

use std::collections::{BTreeMap, BTreeSet};

use super::file::{
    FundSizing, LiquidationMode, Policy, Price, PriceModel, ScenarioFile, Supervision,
    SupervisionMetric, SupervisoryAction,
};
use super::load::key_part;
use crate::book::{MAX_USD, PRICE_LIMITS, Position};
use crate::error::Problem;
use crate::shocks::{self, MAX_JUMPS_PER_STEP, MAX_LOG_RETURN};
use crate::units::quoted;

/// Collects problems with their key paths.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// `value` must be finite and satisfy `ok`; otherwise report `expected`.
    fn number(&mut self, path: &str, value: f64, ok: bool, expected: &str) {
        if !value.is_finite() {
            self.fail(
                path,
                format!("{} must be a finite number, {expected}", quoted(value)),
            );
        } else if !ok {
            self.fail(path, format!("{} must be {expected}", quoted(value)));
        }
    }

    /// A key that belongs with a setting is required with it (`wanted`); without it,
    /// [`clear_unused`] has taken it out already.
    fn required(&mut self, path: impl Into<String>, present: bool, wanted: bool, when: &str) {
        if wanted && !present {
            self.fail(path, format!("is required with {when}"));
        }
    }

    fn share(&mut self, path: &str, value: f64) {
        self.number(path, value, (0.0..=1.0).contains(&value), "between 0 and 1");
    }

    fn positive(&mut self, path: &str, value: f64) {
        self.number(path, value, value > 0.0, "positive");
    }

    /// A figure in USD: positive (or zero, with `zero_ok`) and at most [`MAX_USD`].
    fn usd(&mut self, path: &str, value: f64, zero_ok: bool) {
        let ok = (value > 0.0 || (zero_ok && value == 0.0)) && value <= MAX_USD;
        let least = if zero_ok { "zero or more" } else { "positive" };
        self.number(
            path,
            value,
            ok,
            &format!("{least} and at most {MAX_USD:e} USD"),
        );
    }

    fn non_negative(&mut self, path: &str, value: f64) {
        self.number(path, value, value >= 0.0, "zero or more");
    }
}

/// Returns every problem of a deserialized scenario (empty when it is valid).
pub fn check(s: &ScenarioFile) -> Vec<Problem> {
    let mut c = Checker::default();

    if s.name.is_empty()
        || !s
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        || s.name.starts_with('.')
    {
        c.fail(
            "name",
            format!(
                "`{}` must be a non-empty name of ASCII letters, digits, `-`, `_` or `.`, not \
                 starting with `.` (it names the output directory, which a leading `.` hides)",
                s.name
            ),
        );
    } else if s.name.len() > MAX_LABEL {
        c.fail(
            "name",
            format!(
                "is {} bytes long; at most {MAX_LABEL}: it names the output directory, and \
                 a file system limits a name to 255 bytes",
                s.name.len()
            ),
        );
    }

    let sim = &s.simulation;
    if sim.paths == 0 {
        c.fail("simulation.paths", "must be at least 1");
    }
    if sim.steps == 0 {
        c.fail("simulation.steps", "must be at least 1");
    }
    c.number(
        "simulation.step_seconds",
        sim.step_seconds,
        step_seconds_valid(sim.step_seconds),
        &format!("positive and at most {MAX_STEP_SECONDS} (a year)"),
    );
    if sim.max_rounds == 0 {
        c.fail("simulation.max_rounds", "must be at least 1");
    }

    check_price(&mut c, s);

    let l = &s.liquidity;
    c.positive("liquidity.shared_depth_1pct", l.shared_depth_1pct);
    c.share("liquidity.routing", l.routing);
    c.share("liquidity.permanent_fraction", l.permanent_fraction);
    c.positive(
        "liquidity.resilience_half_life_steps",
        l.resilience_half_life_steps,
    );
    c.positive(
        "liquidity.arbitrage_half_life_steps",
        l.arbitrage_half_life_steps,
    );
    c.non_negative("liquidity.depth_withdrawal", l.depth_withdrawal);

    check_venues(&mut c, s);
    check_policies(&mut c, s);
    check_observed(&mut c, s);
    c.problems
}

/// A key that only one setting of another reads.
trait Unused {
    /// Whether the file gives it.
    fn given(&self) -> bool;
    /// Takes it out, as if the file had left it out.
    fn clear(&mut self);
    /// What the resolved scenario holds once it is taken out, as the warning says it.
    fn cleared(&self) -> &'static str;
}

impl<T> Unused for Option<T> {
    fn given(&self) -> bool {
        self.is_some()
    }

    fn clear(&mut self) {
        *self = None;
    }

    fn cleared(&self) -> &'static str {
        "left out of the resolved scenario"
    }
}

/// A volatility: 0 is leaving it out, and the resolved scenario prints the 0.
impl Unused for f64 {
    fn given(&self) -> bool {
        *self != 0.0
    }

    fn clear(&mut self) {
        *self = 0.0;
    }

    fn cleared(&self) -> &'static str {
        "set to 0 in the resolved scenario"
    }
}

/// Takes out the keys that belong with another setting than the one chosen (a Student-t's
/// degrees of freedom under `model = "gbm"`, a partial fraction under full liquidation) and
/// returns a warning for each. Nothing reads them, so the resolved scenario (what is run,
/// printed and hashed) leaves them out; and a file may keep every setting's keys, so that a
/// sweep or an override switches the setting alone (`--set price.model=gbm,student_t`,
/// `--set venues.1.liquidation=full`). [`check`] then refuses what a chosen setting lacks.
pub fn clear_unused(s: &mut ScenarioFile) -> Vec<Problem> {
    let mut warnings = Vec::new();
    let mut unused = |path: String, key: &mut dyn Unused, wanted: bool, when: &str| {
        if !wanted && key.given() {
            key.clear();
            warnings.push(Problem {
                path,
                message: format!("is only used with {when}: ignored, and {}", key.cleared()),
            });
        }
    };
    let p = &mut s.price;
    let model = p.model;
    let keys: [(&str, &mut dyn Unused, PriceModel, &str); 9] = [
        (
            "degrees_of_freedom",
            &mut p.degrees_of_freedom,
            PriceModel::StudentT,
            "student_t",
        ),
        (
            "jump_intensity_per_day",
            &mut p.jump_intensity_per_day,
            PriceModel::Merton,
            "merton",
        ),
        ("jump_mean", &mut p.jump_mean, PriceModel::Merton, "merton"),
        (
            "jump_stdev",
            &mut p.jump_stdev,
            PriceModel::Merton,
            "merton",
        ),
        ("omega", &mut p.omega, PriceModel::Garch, "garch"),
        ("alpha", &mut p.alpha, PriceModel::Garch, "garch"),
        ("beta", &mut p.beta, PriceModel::Garch, "garch"),
        (
            "returns_csv",
            &mut p.returns_csv,
            PriceModel::Historical,
            "historical",
        ),
        (
            "block_bootstrap",
            &mut p.block_bootstrap,
            PriceModel::Historical,
            "historical",
        ),
    ];
    for (key, value, owner, name) in keys {
        let when = format!("model = \"{name}\"");
        unused(format!("price.{key}"), value, model == owner, &when);
    }
    unused(
        "price.annual_volatility".into(),
        &mut p.annual_volatility,
        model != PriceModel::Historical,
        "a model other than \"historical\" (historical returns carry their own volatility)",
    );
    if let Some(st) = &mut p.stress {
        let wanted = st.recovery > 0.0;
        unused(
            "price.stress.recovery_steps".into(),
            &mut st.recovery_steps,
            wanted,
            "a recovery above 0",
        );
    }
    for (i, v) in s.venues.iter_mut().enumerate() {
        unused(
            format!("venues[{i}].partial_fraction"),
            &mut v.partial_fraction,
            v.liquidation == LiquidationMode::Partial,
            "liquidation = \"partial\"",
        );
    }
    for (i, policy) in s.policies.iter_mut().enumerate() {
        if let Some(pool) = &mut policy.pooled_default_fund {
            unused(
                format!("policies[{i}].pooled_default_fund.stress_move"),
                &mut pool.stress_move,
                pool.sizing == FundSizing::Cover2,
                "sizing = \"cover2\"",
            );
        }
        if let Some(sup) = &mut policy.supervision {
            let at = |key: &str| format!("policies[{i}].supervision.{key}");
            let near = sup.metric == SupervisionMetric::NearLiquidation;
            let breaker = sup.action == SupervisoryAction::CircuitBreaker;
            let keys: [(&str, &mut dyn Unused, bool, &str); 4] = [
                (
                    "distance",
                    &mut sup.distance,
                    near,
                    "metric = \"near_liquidation\"",
                ),
                (
                    "window_steps",
                    &mut sup.window_steps,
                    !near,
                    "metric = \"drawdown\"",
                ),
                (
                    "halt_steps",
                    &mut sup.halt_steps,
                    breaker,
                    "action = \"circuit_breaker\"",
                ),
                (
                    "add_on",
                    &mut sup.add_on,
                    !breaker,
                    "action = \"margin_add_on\"",
                ),
            ];
            for (key, value, wanted, when) in keys {
                unused(at(key), value, wanted, when);
            }
        }
    }
    warnings
}

/// Observed outcomes are shares where they are shares, amounts where they are amounts, and
/// name venues of the scenario.
fn check_observed(c: &mut Checker, s: &ScenarioFile) {
    let Some(o) = &s.observed else {
        return;
    };
    c.number(
        "observed.price_drop",
        o.price_drop,
        o.price_drop > 0.0 && o.price_drop < 1.0,
        "above 0 and below 1 (a share: 0.15 = a 15% fall)",
    );
    for (key, value) in [
        ("long_share", o.long_share),
        ("open_interest_lost", o.open_interest_lost),
    ] {
        if let Some(v) = value {
            c.share(&format!("observed.{key}"), v);
        }
    }
    for (key, value) in [
        ("liquidated_notional", o.liquidated_notional),
        ("insurance_fund_drawn", o.insurance_fund_drawn),
        ("adl_notional", o.adl_notional),
    ] {
        if let Some(v) = value {
            c.non_negative(&format!("observed.{key}"), v);
        }
    }
    let venues: Vec<&str> = s.venues.iter().map(|v| v.name.as_str()).collect();
    for (name, &v) in &o.venue_liquidated {
        let at = format!("observed.venue_liquidated.{}", key_part(name));
        if venues.contains(&name.as_str()) {
            c.non_negative(&at, v);
        } else if !venues.is_empty() && !venues.contains(&"") {
            // (Without venues, or with one whose name is missing or stands in for a table of
            // the wrong type, that is reported itself, and may be the venue named here.)
            c.fail(
                at,
                format!(
                    "names no venue of this scenario (venues: {})",
                    venues.join(", ")
                ),
            );
        }
    }
}

fn check_price(c: &mut Checker, s: &ScenarioFile) {
    let p = &s.price;
    let (low, high) = PRICE_LIMITS;
    c.number(
        "price.start",
        p.start,
        (low..=high).contains(&p.start),
        &format!("a price between {low:e} and {high:e} USD"),
    );
    c.non_negative("price.annual_volatility", p.annual_volatility);
    let step = shocks::step_volatility(p.annual_volatility, s.simulation.step_seconds);
    // An unusable volatility or step length is a problem of its own, reported once.
    if step > MAX_LOG_RETURN
        && p.annual_volatility.is_finite()
        && step_seconds_valid(s.simulation.step_seconds)
    {
        c.fail(
            "price.annual_volatility",
            format!(
                "{} is a standard deviation of {} in log price per step of {} s; it must be \
                 at most {MAX_LOG_RETURN} (a factor of 22,000)",
                quoted(p.annual_volatility),
                quoted(step),
                s.simulation.step_seconds
            ),
        );
    }
    if p.model == PriceModel::StudentT {
        match p.degrees_of_freedom {
            Some(v) => c.number(
                "price.degrees_of_freedom",
                v,
                v > 2.0,
                "above 2 (the variance must exist)",
            ),
            None => c.fail(
                "price.degrees_of_freedom",
                "is required with model = \"student_t\" (a number above 2, e.g. 3.5)",
            ),
        }
    }
    let jumps = [
        ("jump_intensity_per_day", p.jump_intensity_per_day),
        ("jump_mean", p.jump_mean),
        ("jump_stdev", p.jump_stdev),
    ];
    for (key, value) in jumps.into_iter().filter(|_| p.model == PriceModel::Merton) {
        let path = format!("price.{key}");
        match value {
            None => c.fail(path, "is required with model = \"merton\""),
            Some(v) if key == "jump_intensity_per_day" => {
                let per_step = v * s.simulation.step_seconds / 86_400.0;
                c.number(
                    &path,
                    v,
                    v >= 0.0 && per_step <= MAX_JUMPS_PER_STEP,
                    &format!(
                        "zero or more, and at most {MAX_JUMPS_PER_STEP} a step ({} a day \
                         with steps of {} s)",
                        quoted(MAX_JUMPS_PER_STEP * 86_400.0 / s.simulation.step_seconds),
                        s.simulation.step_seconds
                    ),
                );
            }
            Some(v) => {
                let least = if key == "jump_mean" {
                    -MAX_LOG_RETURN
                } else {
                    0.0
                };
                c.number(
                    &path,
                    v,
                    (least..=MAX_LOG_RETURN).contains(&v),
                    &format!("between {least} and {MAX_LOG_RETURN} (in log price)"),
                );
            }
        }
    }
    check_garch(c, p);
    if p.model == PriceModel::Historical {
        if p.returns_csv.as_deref().is_some_and(is_empty_path) {
            c.fail(
                "price.returns_csv",
                "is empty; expected the path of a CSV with a `log_return` column",
            );
        }
        if p.returns_csv.is_none() {
            c.fail(
                "price.returns_csv",
                "is required with model = \"historical\" (a CSV with a `log_return` column)",
            );
        }
        if p.block_bootstrap == Some(0) {
            c.fail("price.block_bootstrap", "must be at least 1 step");
        }
    }
    if let Some(st) = &p.stress {
        c.number(
            "price.stress.drop",
            st.drop,
            (0.0..1.0).contains(&st.drop),
            "at least 0 and below 1 (a fraction of the price)",
        );
        if st.duration_steps == 0 {
            c.fail("price.stress.duration_steps", "must be at least 1");
        }
        c.share("price.stress.recovery", st.recovery);
        c.required(
            "price.stress.recovery_steps",
            st.recovery_steps.is_some(),
            st.recovery > 0.0,
            "a recovery above 0",
        );
        if st.recovery_steps == Some(0) {
            c.fail("price.stress.recovery_steps", "must be at least 1");
        }
        if st.start_step >= s.simulation.steps {
            c.fail(
                "price.stress.start_step",
                format!(
                    "{} must be below simulation.steps ({}), or the stress never happens",
                    st.start_step, s.simulation.steps
                ),
            );
        }
    }
}

/// GARCH(1,1): alpha and beta required, non-negative, alpha + beta below 1 (stationarity);
/// omega positive when given, and then `annual_volatility` is not used.
fn check_garch(c: &mut Checker, p: &Price) {
    if p.model != PriceModel::Garch {
        return;
    }
    let keys = [("omega", p.omega), ("alpha", p.alpha), ("beta", p.beta)];
    for key in ["alpha", "beta"] {
        if keys.iter().any(|(k, v)| *k == key && v.is_none()) {
            c.fail(
                format!("price.{key}"),
                "is required with model = \"garch\" (e.g. alpha = 0.08, beta = 0.9)",
            );
        }
    }
    if let Some(a) = p.alpha {
        c.non_negative("price.alpha", a);
    }
    if let Some(b) = p.beta {
        c.non_negative("price.beta", b);
    }
    if let (Some(a), Some(b)) = (p.alpha, p.beta)
        && a.is_finite()
        && b.is_finite()
        && a + b >= 1.0
    {
        c.fail(
            "price.alpha",
            format!(
                "alpha + beta = {} must be below 1, or the variance is not stationary \
                 (it has no finite long-run level)",
                quoted(a + b)
            ),
        );
    }
    if let Some(omega) = p.omega {
        c.positive("price.omega", omega);
        if let (Some(a), Some(b)) = (p.alpha, p.beta)
            && omega.is_finite()
            && a + b < 1.0
            && omega / (1.0 - a - b) > MAX_LOG_RETURN * MAX_LOG_RETURN
        {
            c.fail(
                "price.omega",
                format!(
                    "{} gives a long-run variance of {} per step (omega / (1 - alpha - beta)); \
                     its square root must be at most {MAX_LOG_RETURN} in log price",
                    quoted(omega),
                    quoted(omega / (1.0 - a - b))
                ),
            );
        }
        if p.annual_volatility != 0.0 {
            c.fail(
                "price.annual_volatility",
                "is not used when price.omega is given (the unconditional variance is then \
                 omega / (1 - alpha - beta)); give one of them",
            );
        }
    }
}

/// Longest step (seconds): a year. Cascades play out over minutes to days; a longer step
/// only scales the volatility past anything a price model holds.
pub(super) const MAX_STEP_SECONDS: f64 = 31_536_000.0;

fn step_seconds_valid(seconds: f64) -> bool {
    seconds > 0.0 && seconds <= MAX_STEP_SECONDS
}

/// Longest name (bytes): `heatmap-<policy>-<figure>.png` must stay within a file name's 255.
const MAX_LABEL: usize = 80;

/// Checks a name that becomes a CSV column or cell (venue, jurisdiction, policy): not empty,
/// at most [`MAX_LABEL`] bytes, and free of what would split or quote a CSV field (commas,
/// double quotes, line breaks and other control characters). Returns whether it passed.
fn check_label(c: &mut Checker, path: String, name: &str) -> bool {
    if name.is_empty() {
        c.fail(path, "must not be empty");
        return false;
    }
    if name.len() > MAX_LABEL {
        c.fail(
            path,
            format!(
                "is {} bytes long; at most {MAX_LABEL}: names become parts of chart file \
                 names, which a file system limits to 255 bytes",
                name.len()
            ),
        );
        return false;
    }
    if name.trim() != name {
        c.fail(
            path,
            format!(
                "`{}` must not begin or end with white space: tables and charts would show \
                 it as `{}`",
                name.escape_debug(),
                name.trim().escape_debug()
            ),
        );
        return false;
    }
    if let Some(ch) = name
        .chars()
        .find(|&ch| matches!(ch, ',' | '"' | '/' | '\\') || ch.is_control())
    {
        c.fail(
            path,
            format!(
                "`{}` must not contain {ch:?}: names become columns and cells of the CSV \
                 results, and parts of chart file names",
                name.escape_debug()
            ),
        );
        return false;
    }
    true
}

/// Every name in `list` (`venues`, `policies`) a label ([`check_label`]) and unique; a repeat
/// names the earlier one by its key path, so that an override of either is named.
fn check_names<'a>(c: &mut Checker, list: &str, names: impl Iterator<Item = &'a str>) {
    let mut seen = BTreeMap::new();
    for (i, name) in names.enumerate() {
        let path = format!("{list}[{i}].name");
        if !check_label(c, path.clone(), name) {
            continue;
        }
        match seen.get(name) {
            Some(first) => c.fail(
                path,
                format!("`{name}` is also {list}[{first}].name; names must be unique"),
            ),
            None => {
                seen.insert(name, i);
            }
        }
    }
}

fn check_venues(c: &mut Checker, s: &ScenarioFile) {
    if s.venues.is_empty() {
        c.fail("venues", "at least one [[venues]] entry is required");
    }
    check_names(c, "venues", s.venues.iter().map(|v| v.name.as_str()));
    for (i, v) in s.venues.iter().enumerate() {
        let at = |key: &str| format!("venues[{i}].{key}");
        check_label(c, at("jurisdiction"), &v.jurisdiction);
        c.number(
            &at("initial_margin"),
            v.initial_margin,
            v.initial_margin > 0.0 && v.initial_margin <= 1.0,
            "above 0 and at most 1 (a rate: 0.01 = 100x leverage)",
        );
        c.number(
            &at("maintenance_margin"),
            v.maintenance_margin,
            v.maintenance_margin > 0.0,
            "positive",
        );
        if v.maintenance_margin.is_finite() && v.maintenance_margin >= v.initial_margin {
            c.fail(
                at("maintenance_margin"),
                format!(
                    "({}) must be below initial_margin ({})",
                    quoted(v.maintenance_margin),
                    quoted(v.initial_margin)
                ),
            );
        }
        c.number(
            &at("liquidation_fee"),
            v.liquidation_fee,
            (0.0..0.5).contains(&v.liquidation_fee),
            "at least 0 and below 0.5 (a share of notional)",
        );
        match (v.liquidation, v.partial_fraction) {
            (LiquidationMode::Partial, None) => c.fail(
                at("partial_fraction"),
                "is required with liquidation = \"partial\" (e.g. 0.2)",
            ),
            (LiquidationMode::Partial, Some(f)) => c.number(
                &at("partial_fraction"),
                f,
                (MIN_PARTIAL_FRACTION..=1.0).contains(&f),
                "at least 0.01 and at most 1 (the share closed per trigger: each slice is a \
                 tranche of the ladder, and 0.01 already cuts a position into 100)",
            ),
            (LiquidationMode::Full, _) => {}
        }
        c.usd(&at("insurance_fund"), v.insurance_fund, true);
        c.positive(&at("depth_1pct"), v.depth_1pct);
        check_tiers(c, i, v);
        check_book(c, i, v);
        check_opening(c, i, v);
    }
}

/// The smallest `partial_fraction`: a position is cut at build time into one tranche per
/// slice, so a share of 1e-6 would make a million of them per position.
pub(super) const MIN_PARTIAL_FRACTION: f64 = 0.01;

/// Levels are falls within (0, 1), ascending; sizes and distributions as in a book.
fn check_opening(c: &mut Checker, i: usize, v: &super::file::Venue) {
    let Some(o) = &v.opening else {
        return;
    };
    let at = |key: &str| format!("venues[{i}].opening.{key}");
    if o.levels.is_empty() {
        c.fail(at("levels"), "needs at least one level (e.g. [0.05, 0.10])");
    }
    // Each level is checked against its range, and against the last level that was in range,
    // so one out-of-range level is reported once, not again as the next level's order. The
    // order check names the level it compares with by its whole key path, which is how a
    // level left out for its type (and replaced by a stand-in) drops that check.
    let mut previous: Option<(String, f64)> = None;
    for (k, &l) in o.levels.iter().enumerate() {
        let key = at(&format!("levels[{k}]"));
        if !(l > 0.0 && l < 1.0) {
            c.number(
                &key,
                l,
                false,
                "between 0 and 1 (a fall as a share of the start price: 0.05 opens 5% below it)",
            );
            continue;
        }
        if let Some((before, p)) = previous.as_ref().filter(|&&(_, p)| l <= p) {
            c.number(
                &key,
                l,
                false,
                &format!("above {before} ({}): levels ascend", quoted(*p)),
            );
        }
        previous = Some((key, l));
    }
    c.usd(&at("notional"), o.notional, false);
    if o.positions == Some(0) {
        c.fail(at("positions"), "must be at least 1");
    }
    check_mixes(c, &at(""), Some(o.long_leverage), Some(o.short_leverage));
    if let Some(t) = o.size_tail {
        c.number(
            &at("size_tail"),
            t,
            t > 1.0,
            "above 1 (the Pareto mean must exist)",
        );
    }
}

/// Leverage distributions: medians at least 1, dispersions not negative. `prefix` ends in a
/// dot.
fn check_mixes(
    c: &mut Checker,
    prefix: &str,
    long: Option<super::file::LeverageMix>,
    short: Option<super::file::LeverageMix>,
) {
    for (key, mix) in [("long_leverage", long), ("short_leverage", short)] {
        if let Some(m) = mix {
            c.number(
                &format!("{prefix}{key}.median"),
                m.median,
                m.median >= 1.0,
                "at least 1",
            );
            c.non_negative(&format!("{prefix}{key}.dispersion"), m.dispersion);
        }
    }
}

/// Tiers ascend in notional, each rate at least the one below it, maintenance below initial.
fn check_tiers(c: &mut Checker, i: usize, v: &super::file::Venue) {
    let (mut above, mut initial, mut maintenance) = (0.0, v.initial_margin, v.maintenance_margin);
    for (k, t) in v.margin_tiers.iter().enumerate() {
        let at = |key: &str| format!("venues[{i}].margin_tiers[{k}].{key}");
        // The rates a tier may not fall below: the venue's own, or the tier under it.
        let below = |rate: &str| {
            if k == 0 {
                format!("the venue's {rate}")
            } else {
                format!("margin_tiers[{}].{rate}", k - 1)
            }
        };
        c.number(
            &at("above"),
            t.above,
            t.above > above,
            &format!("above {} (tiers ascend in notional, USD)", quoted(above)),
        );
        c.number(
            &at("initial_margin"),
            t.initial_margin,
            t.initial_margin >= initial && t.initial_margin <= 1.0,
            &format!(
                "at least {} ({}) and at most 1",
                quoted(initial),
                below("initial_margin")
            ),
        );
        c.number(
            &at("maintenance_margin"),
            t.maintenance_margin,
            t.maintenance_margin >= maintenance && t.maintenance_margin < t.initial_margin,
            &format!(
                "at least {} ({}) and below the tier's initial_margin ({})",
                quoted(maintenance),
                below("maintenance_margin"),
                quoted(t.initial_margin)
            ),
        );
        above = t.above;
        initial = t.initial_margin;
        maintenance = t.maintenance_margin;
    }
}

/// Whether a data file's path is empty (`positions_csv = ""`): refused here, and not read,
/// since reading it said only "cannot read : No such file or directory".
pub(crate) fn is_empty_path(path: &std::path::Path) -> bool {
    path.as_os_str().is_empty()
}

fn check_book(c: &mut Checker, i: usize, v: &super::file::Venue) {
    let at = |key: &str| format!("venues[{i}].{key}");
    let b = &v.book;
    if b.positions_csv.as_deref().is_some_and(is_empty_path) {
        c.fail(
            at("book.positions_csv"),
            "is empty; expected the path of a CSV of positions",
        );
    }
    if b.positions_csv.is_some() {
        let generated = [
            ("positions", b.positions.is_some()),
            ("long_leverage", b.long_leverage.is_some()),
            ("short_leverage", b.short_leverage.is_some()),
            ("entry_dispersion", b.entry_dispersion.is_some()),
            ("size_tail", b.size_tail.is_some()),
        ];
        for (key, present) in generated {
            if present {
                c.fail(
                    at(&format!("book.{key}")),
                    "describes a generated book, but book.positions_csv is given: use one or the other",
                );
            }
        }
        if v.open_interest.is_some() {
            c.fail(
                at("open_interest"),
                "comes from book.positions_csv; remove it",
            );
        }
        return;
    }
    match v.open_interest {
        Some(oi) => c.usd(&at("open_interest"), oi, false),
        None => c.fail(
            at("open_interest"),
            "is required for a generated book (USD per side at the start price)",
        ),
    }
    if b.positions == Some(0) {
        c.fail(at("book.positions"), "must be at least 1");
    }
    check_mixes(c, &at("book."), b.long_leverage, b.short_leverage);
    // Entries are start * exp(dispersion * z): past this bound a draw's exponent overflows
    // to an entry of 0 or infinity, where within it no normal draw comes near (71 standard
    // deviations). Values far below it are already unusual, and warned about ([`warnings`]).
    if let Some(d) = b.entry_dispersion {
        c.number(
            &at("book.entry_dispersion"),
            d,
            (0.0..=MAX_LOG_RETURN).contains(&d),
            &format!(
                "zero or more and at most {MAX_LOG_RETURN} (the standard deviation of \
                 log(entry / start), so 0.05 spreads entries about 5% around the start)"
            ),
        );
    }
    if let Some(t) = b.size_tail {
        c.number(
            &at("book.size_tail"),
            t,
            t > 1.0,
            "above 1 (the Pareto mean must exist)",
        );
    }
}

fn check_policies(c: &mut Checker, s: &ScenarioFile) {
    if s.policies.is_empty() {
        c.fail(
            "policies",
            "at least one [[policies]] entry (the baseline) is required",
        );
        return;
    }
    if !s.policies[0].cooperating.is_empty() {
        c.fail(
            "policies[0].cooperating",
            "the first policy is the baseline and must not name cooperating jurisdictions",
        );
    }
    let jurisdictions: BTreeSet<&str> = s.venues.iter().map(|v| v.jurisdiction.as_str()).collect();
    check_names(c, "policies", s.policies.iter().map(|p| p.name.as_str()));
    for (i, p) in s.policies.iter().enumerate() {
        let at = |key: &str| format!("policies[{i}].{key}");
        check_levers_apply(c, i, p, s);
        for (j, name) in p.cooperating.iter().enumerate() {
            // A set: a jurisdiction named twice got two local supervisors, which acted twice.
            if let Some(first) = p.cooperating[..j].iter().position(|n| n == name) {
                c.fail(
                    format!("policies[{i}].cooperating[{j}]"),
                    format!(
                        "`{name}` is also policies[{i}].cooperating[{first}]; name each \
                         jurisdiction once"
                    ),
                );
            } else if !jurisdictions.contains(name.as_str())
                && !jurisdictions.contains("")
                && !s.venues.is_empty()
            {
                // (A venue without a jurisdiction, a missing key's stand-in or an empty
                // name, is reported itself: the one named here may well be its. So is a
                // scenario without venues, where every jurisdiction would be unknown.)
                let known: Vec<&str> = jurisdictions.iter().copied().collect();
                c.fail(
                    format!("policies[{i}].cooperating[{j}]"),
                    format!(
                        "no venue is in jurisdiction `{name}`; known jurisdictions: {}",
                        known.join(", ")
                    ),
                );
            }
        }
        if let Some(f) = p.margin_floor {
            c.number(
                &at("margin_floor.initial"),
                f.initial,
                f.initial > 0.0 && f.initial <= 1.0,
                "above 0 and at most 1",
            );
            c.positive(&at("margin_floor.maintenance"), f.maintenance);
            if f.maintenance >= f.initial {
                c.fail(
                    at("margin_floor.maintenance"),
                    format!(
                        "({}) must be below margin_floor.initial ({})",
                        quoted(f.maintenance),
                        quoted(f.initial)
                    ),
                );
            }
        }
        if let Some(cap) = p.leverage_cap {
            c.number(&at("leverage_cap"), cap, cap >= 1.0, "at least 1");
        }
        if let Some(m) = p.migration {
            c.share(&at("migration"), m);
        }
        if let Some(r) = p.routing {
            c.share(&at("routing"), r);
        }
        if let Some(pool) = p.pooled_default_fund {
            match (pool.sizing, pool.stress_move) {
                (FundSizing::Cover2, None) => c.fail(
                    at("pooled_default_fund.stress_move"),
                    "is required with sizing = \"cover2\" (e.g. 0.2)",
                ),
                (FundSizing::Cover2, Some(m)) => c.number(
                    &at("pooled_default_fund.stress_move"),
                    m,
                    m > 0.0 && m < 1.0,
                    "above 0 and below 1",
                ),
                (FundSizing::Sum, _) => {}
            }
        }
        if let Some(sup) = &p.supervision {
            check_supervision(c, i, sup);
        }
    }
}

/// Values that are valid but far outside what any market shows: most likely the wrong unit
/// (a percentage for a share, millions for dollars). They are warned about, not refused,
/// since a stress test may mean them.
pub fn warnings(s: &ScenarioFile) -> Vec<Problem> {
    let mut w = Checker::default();
    let vol = s.price.annual_volatility;
    if vol > MAX_PLAUSIBLE_VOLATILITY {
        w.fail(
            "price.annual_volatility",
            format!(
                "{} is an annual volatility of {:.0}%; is it a percentage? (a share: 0.5 is 50%)",
                quoted(vol),
                vol * 100.0
            ),
        );
    }
    // A volatility of 0 is a deterministic stress test under gbm, as the README documents,
    // so it is not warned about there: that use runs often and means it. A Student-t or a
    // GARCH model (without omega) is chosen for its randomness, tails or clustering, which a
    // volatility of 0 scales to nothing without a word. Merton's jumps stay random.
    let disabled = match s.price.model {
        PriceModel::StudentT => Some("its Student-t tails (degrees_of_freedom)"),
        PriceModel::Garch if s.price.omega.is_none() => Some("its clustering (alpha, beta)"),
        _ => None,
    };
    if let Some(disabled) = disabled.filter(|_| vol == 0.0) {
        w.fail(
            "price.annual_volatility",
            format!(
                "is 0, which scales {disabled} to nothing: every path is the same; set \
                 price.annual_volatility, or write model = \"gbm\" for a deterministic \
                 stress test"
            ),
        );
    }
    let steps = s.simulation.steps;
    // A stress starting after the horizon is an error already.
    if let Some(stress) = s.price.stress.as_ref().filter(|st| st.start_step < steps)
        && let Some(share) = stress.share_within(steps)
    {
        w.fail(
            "price.stress.duration_steps",
            format!(
                "the drop runs to step {}, past the horizon of {steps} steps: only {:.0}% of it \
                 (in log price) is applied",
                // In u64: two u32 near their limit wrapped to a step before the start.
                u64::from(stress.start_step) + u64::from(stress.duration_steps),
                100.0 * share
            ),
        );
    }
    let thin = |w: &mut Checker, path: String, depth: f64| {
        if depth < MIN_PLAUSIBLE_USD {
            w.fail(
                path,
                format!(
                    "USD {} moves the price by 1%, a book thinner than any venue's; is it \
                     in millions? (write 2.0e7 for USD 20M)",
                    quoted(depth)
                ),
            );
        }
    };
    thin(
        &mut w,
        "liquidity.shared_depth_1pct".into(),
        s.liquidity.shared_depth_1pct,
    );
    for (i, v) in s.venues.iter().enumerate() {
        thin(&mut w, format!("venues[{i}].depth_1pct"), v.depth_1pct);
        if let Some(d) = v
            .book
            .entry_dispersion
            .filter(|&d| d > MAX_PLAUSIBLE_ENTRY_DISPERSION)
        {
            w.fail(
                format!("venues[{i}].book.entry_dispersion"),
                format!(
                    "{} spreads entries by a factor of {} either way of the start at one \
                     standard deviation; is it a percentage? (a share: 0.05 is 5%)",
                    quoted(d),
                    format_args!("{:.0}", d.exp())
                ),
            );
        }
        if let Some(oi) = v.open_interest
            && oi < MIN_PLAUSIBLE_USD
        {
            w.fail(
                format!("venues[{i}].open_interest"),
                format!(
                    "USD {} per side is tiny; is it in millions or billions? (write 5.0e9 for \
                     USD 5B)",
                    quoted(oi)
                ),
            );
        }
    }
    for (i, p) in s.policies.iter().enumerate() {
        if let Some(sup) = &p.supervision
            && sup.metric == SupervisionMetric::NearLiquidation
            && sup.threshold < MIN_PLAUSIBLE_USD
        {
            w.fail(
                format!("policies[{i}].supervision.threshold"),
                format!(
                    "{} USD of notional near liquidation sets the supervisor off at once; the \
                     threshold is in USD, not a share",
                    quoted(sup.threshold)
                ),
            );
        }
    }
    w.problems
}

/// Warnings about venue `i`'s position snapshot: a large share of its notional that its
/// margin rules could not hold at `start` (more leverage than the venue allows, or already
/// past its liquidation price). The model takes both as given (MODEL.md section 4: such
/// positions liquidate in the first step), but a large share most likely means a snapshot
/// from another date than `price.start` and the margin rates, or entries in another unit.
pub fn snapshot_warnings(
    i: usize,
    venue: &super::file::Venue,
    positions: &[Position],
    start: f64,
) -> Vec<Problem> {
    let mut w = Checker::default();
    let margin = venue.margin();
    let notional = |p: &Position| p.quantity * p.entry;
    let total: f64 = positions.iter().map(notional).sum();
    // How many positions `pick` holds, and their share of the notional.
    let share = |pick: &dyn Fn(&Position) -> bool| {
        let (n, sum) = positions
            .iter()
            .filter(|p| pick(p))
            .fold((0, 0.0), |(n, sum), p| (n + 1, sum + notional(p)));
        (n, sum / total)
    };
    let path = format!("venues[{i}].book.positions_csv");
    let (n, s) = share(&|p| p.leverage > margin.max_leverage(notional(p)) * (1.0 + 1e-9));
    if s > MAX_PLAUSIBLE_SNAPSHOT_SHARE {
        w.fail(
            path.clone(),
            format!(
                "{n} of {} positions ({:.0}% of the notional) carry more leverage than the \
                 venue's initial_margin allows for their size (up to {}x); are the snapshot \
                 and the margin rates from the same date?",
                positions.len(),
                100.0 * s,
                margin.max_leverage(0.0)
            ),
        );
    }
    let (n, s) = share(&|p| p.side.sign() * (p.trigger(&margin).price - start) >= 0.0);
    if s > MAX_PLAUSIBLE_SNAPSHOT_SHARE {
        w.fail(
            path,
            format!(
                "{n} of {} positions ({:.0}% of the notional) are already past their \
                 liquidation price at price.start ({}) and liquidate in the first step; \
                 is price.start the price the snapshot was taken at?",
                positions.len(),
                100.0 * s,
                quoted(start)
            ),
        );
    }
    w.problems
}

/// Above this share of a snapshot's notional, positions its venue's margin rules could not
/// hold at the start price are more likely a mismatch of dates or units than meant.
const MAX_PLAUSIBLE_SNAPSHOT_SHARE: f64 = 0.01;

/// Above this standard deviation of log(entry / start) (entries a factor of 2.7 from the start
/// at one standard deviation) a value is more likely a percentage than a share.
const MAX_PLAUSIBLE_ENTRY_DISPERSION: f64 = 1.0;

/// Above this annual volatility (300%) a value is more likely a percentage than a share.
const MAX_PLAUSIBLE_VOLATILITY: f64 = 3.0;

/// Below this many USD a depth, an open interest or a supervisory threshold is more likely
/// in the wrong unit than meant.
const MIN_PLAUSIBLE_USD: f64 = 1.0e5;

/// A lever that applies to no venue would silently give the baseline's results, and the
/// reader would conclude that the lever does nothing: refuse it.
fn check_levers_apply(c: &mut Checker, i: usize, p: &Policy, s: &ScenarioFile) {
    let levers: Vec<&str> = [
        ("margin_floor", p.margin_floor.is_some()),
        ("leverage_cap", p.leverage_cap.is_some()),
        ("migration", p.migration.is_some()),
        ("mark_price", p.mark_price.is_some()),
        ("routing", p.routing.is_some()),
        ("pooled_default_fund", p.pooled_default_fund.is_some()),
        ("supervision", p.supervision.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if levers.is_empty() {
        if i > 0 && !p.cooperating.is_empty() {
            c.fail(
                format!("policies[{i}]"),
                "names cooperating jurisdictions but sets no lever, so its results would equal \
                 the baseline's; set what they adopt (margin_floor, leverage_cap, mark_price, \
                 routing, pooled_default_fund or supervision)",
            );
        }
        return;
    }
    if i == 0 {
        let them = if levers.len() == 1 { "it" } else { "them" };
        c.fail(
            "policies[0]",
            format!(
                "the first policy is the baseline (no cooperating jurisdictions), where {} \
                 would change nothing; set {them} in a second policy that names the \
                 jurisdictions adopting {them}",
                levers.join(", ")
            ),
        );
    } else if p.cooperating.is_empty() {
        c.fail(
            format!("policies[{i}].cooperating"),
            format!(
                "is empty, so the policy's {} apply to no venue and its results would equal \
                 the baseline's; name the jurisdictions that adopt it",
                levers.join(", ")
            ),
        );
    } else if p.migration.is_some() && p.margin_floor.is_none() && p.leverage_cap.is_none() {
        c.fail(
            format!("policies[{i}].migration"),
            "moves positions above a new leverage cap, and the policy sets none (no \
             leverage_cap, and no margin_floor, whose initial rate caps leverage), so it would \
             move nothing; set the cap the positions leave",
        );
    } else if p.migration.is_some_and(|m| m > 0.0)
        && s.venues
            .iter()
            .all(|v| p.cooperating.contains(&v.jurisdiction))
    {
        c.fail(
            format!("policies[{i}].migration"),
            "has nowhere to go: every venue is in a cooperating jurisdiction, and migration \
             moves positions to venues outside them",
        );
    }
}

fn check_supervision(c: &mut Checker, i: usize, s: &Supervision) {
    let at = |key: &str| format!("policies[{i}].supervision.{key}");
    let needs = |c: &mut Checker, key: &str, present: bool, wanted: bool, when: &str| {
        c.required(at(key), present, wanted, when);
    };
    let near = s.metric == SupervisionMetric::NearLiquidation;
    needs(
        c,
        "distance",
        s.distance.is_some(),
        near,
        "metric = \"near_liquidation\"",
    );
    needs(
        c,
        "window_steps",
        s.window_steps.is_some(),
        !near,
        "metric = \"drawdown\"",
    );
    let breaker = s.action == SupervisoryAction::CircuitBreaker;
    needs(
        c,
        "halt_steps",
        s.halt_steps.is_some(),
        breaker,
        "action = \"circuit_breaker\"",
    );
    needs(
        c,
        "add_on",
        s.add_on.is_some(),
        !breaker,
        "action = \"margin_add_on\"",
    );
    if near {
        c.non_negative(&at("threshold"), s.threshold);
    } else {
        c.number(
            &at("threshold"),
            s.threshold,
            s.threshold > 0.0 && s.threshold < 1.0,
            "above 0 and below 1 (a fraction)",
        );
    }
    if let Some(d) = s.distance {
        c.number(
            &at("distance"),
            d,
            d > 0.0 && d < 1.0,
            "above 0 and below 1",
        );
    }
    if s.window_steps == Some(0) {
        c.fail(at("window_steps"), "must be at least 1");
    }
    if s.halt_steps == Some(0) {
        c.fail(at("halt_steps"), "must be at least 1");
    }
    if let Some(a) = s.add_on {
        c.number(
            &at("add_on"),
            a,
            a > 0.0 && a < 0.5,
            "above 0 and below 0.5",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiny valid scenario of the CLI tests, with `extra` TOML appended.
    fn tiny(extra: &str) -> ScenarioFile {
        let text = format!(
            "{}\n{extra}",
            include_str!("../../tests/fixtures/tiny.toml")
        );
        toml::from_str(&text).expect("the tiny fixture parses")
    }

    /// The key paths of what `check` refuses.
    fn refused(s: &ScenarioFile) -> Vec<String> {
        check(s).into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn usd_and_positive_bounds_are_exact() {
        let mut s = tiny("");
        assert!(refused(&s).is_empty(), "{:?}", check(&s));
        // A fund may be empty and as large as the bound; open interest and depth not empty.
        s.venues[0].insurance_fund = 0.0;
        s.venues[1].insurance_fund = MAX_USD;
        s.venues[0].open_interest = Some(MAX_USD);
        assert!(refused(&s).is_empty(), "{:?}", check(&s));
        s.venues[0].open_interest = Some(0.0);
        s.venues[1].insurance_fund = MAX_USD * 1.5;
        s.venues[1].depth_1pct = 0.0;
        assert_eq!(
            refused(&s),
            [
                "venues[0].open_interest",
                "venues[1].insurance_fund",
                "venues[1].depth_1pct"
            ]
        );
        s.venues[0].insurance_fund = -1.0;
        assert!(refused(&s).contains(&"venues[0].insurance_fund".to_string()));
    }

    #[test]
    fn a_comparison_quotes_the_other_key_s_value_short() {
        // `{}` wrote 1e-300 out in 302 characters.
        let mut s = tiny("");
        s.venues[0].initial_margin = 1e-300;
        s.policies[1]
            .margin_floor
            .as_mut()
            .expect("tiny's floor")
            .initial = 1e-300;
        let messages: Vec<String> = check(&s).into_iter().map(|p| p.message).collect();
        for expected in [
            "(0.005) must be below initial_margin (1e-300)",
            "(0.025) must be below margin_floor.initial (1e-300)",
        ] {
            assert!(messages.iter().any(|m| m == expected), "{messages:?}");
        }
        assert!(messages.iter().all(|m| m.len() < 200), "{messages:?}");
    }

    #[test]
    fn a_scenario_name_must_name_a_directory() {
        for name in ["", "a b", ".hidden", "two/parts"] {
            let mut s = tiny("");
            s.name = name.to_string();
            assert_eq!(refused(&s), ["name"], "{name:?}");
        }
        let mut s = tiny("");
        s.name = "x".repeat(MAX_LABEL);
        assert!(refused(&s).is_empty());
        s.name.push('x');
        assert_eq!(refused(&s), ["name"]);
    }

    #[test]
    fn an_observed_drop_is_strictly_between_zero_and_one() {
        for (drop, valid) in [(0.0, false), (1e-9, true), (0.999, true), (1.0, false)] {
            let s = tiny(&format!("[observed]\nprice_drop = {drop:?}\n"));
            let expected: &[&str] = if valid { &[] } else { &["observed.price_drop"] };
            assert_eq!(refused(&s), expected, "drop {drop}");
        }
    }

    #[test]
    fn a_stress_past_the_horizon_is_warned_about_with_its_true_end() {
        let mut s = tiny("");
        let stress = s.price.stress.as_mut().unwrap();
        stress.start_step = 239;
        stress.duration_steps = u32::MAX;
        let w = warnings(&s);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].message.contains("runs to step 4294967534, past"),
            "{w:?}"
        );
    }

    #[test]
    fn jump_intensity_is_bounded_per_step() {
        let merton = |intensity: f64| {
            let mut s = tiny("");
            s.price.model = PriceModel::Merton;
            s.price.jump_intensity_per_day = Some(intensity);
            s.price.jump_mean = Some(-0.05);
            s.price.jump_stdev = Some(0.05);
            refused(&s)
        };
        // Steps of 60 s: the bound of MAX_JUMPS_PER_STEP a step is 1,440 times that a day.
        let per_day = MAX_JUMPS_PER_STEP * 1_440.0;
        assert!(merton(0.0).is_empty());
        assert!(merton(per_day).is_empty());
        assert_eq!(merton(per_day * 1.001), ["price.jump_intensity_per_day"]);
        assert_eq!(merton(-1.0), ["price.jump_intensity_per_day"]);
    }

    #[test]
    fn a_jump_mean_may_be_negative_down_to_the_step_bound() {
        let merton = |mean: f64| {
            let mut s = tiny("");
            s.price.model = PriceModel::Merton;
            s.price.jump_intensity_per_day = Some(1.0);
            s.price.jump_mean = Some(mean);
            s.price.jump_stdev = Some(0.05);
            refused(&s)
        };
        assert!(merton(-MAX_LOG_RETURN).is_empty());
        assert_eq!(merton(-MAX_LOG_RETURN * 1.001), ["price.jump_mean"]);
    }

    #[test]
    fn garch_needs_alpha_and_beta_and_omega_replaces_the_volatility() {
        let mut s = tiny("");
        s.price.model = PriceModel::Garch;
        s.price.alpha = Some(0.1);
        assert_eq!(refused(&s), ["price.beta"]);
        s.price.beta = Some(0.8);
        assert!(refused(&s).is_empty());
        s.price.omega = Some(1e-6);
        assert_eq!(refused(&s), ["price.annual_volatility"]);
        s.price.annual_volatility = 0.0;
        assert!(refused(&s).is_empty());
    }

    #[test]
    fn a_step_lasts_more_than_nothing_and_at_most_a_year() {
        for (seconds, valid) in [(0.0, false), (1e-3, true), (MAX_STEP_SECONDS, true)] {
            let mut s = tiny("");
            s.simulation.step_seconds = seconds;
            // A year-long step of 60% volatility is still a valid (if odd) scenario.
            let expected: &[&str] = if valid {
                &[]
            } else {
                &["simulation.step_seconds"]
            };
            assert_eq!(refused(&s), expected, "{seconds} s");
        }
    }

    #[test]
    fn a_garch_long_run_variance_is_bounded() {
        // alpha + beta = 0.9: the long-run variance is ten times omega, at most
        // MAX_LOG_RETURN squared.
        let garch = |omega: f64| {
            let mut s = tiny("");
            s.price.model = PriceModel::Garch;
            s.price.annual_volatility = 0.0;
            s.price.alpha = Some(0.1);
            s.price.beta = Some(0.8);
            s.price.omega = Some(omega);
            refused(&s)
        };
        let most = MAX_LOG_RETURN * MAX_LOG_RETURN * (1.0 - 0.1 - 0.8);
        assert!(garch(most * 0.999).is_empty());
        assert_eq!(garch(most * 1.001), ["price.omega"]);
        assert_eq!(garch(0.0), ["price.omega"]);
    }

    #[test]
    fn a_random_model_without_volatility_is_warned_about_but_gbm_is_not() {
        let mut s = tiny("");
        for (model, disabled) in [
            (PriceModel::StudentT, Some("Student-t tails")),
            (PriceModel::Garch, Some("clustering")),
            (PriceModel::Gbm, None),
            (PriceModel::Merton, None),
        ] {
            s.price.model = model;
            s.price.annual_volatility = 0.0;
            let found: Vec<String> = warnings(&s)
                .into_iter()
                .filter(|w| w.path == "price.annual_volatility")
                .map(|w| w.message)
                .collect();
            match disabled {
                Some(words) => assert!(
                    found.len() == 1
                        && found[0].contains(words)
                        && found[0].contains("every path is the same"),
                    "{model:?}: {found:?}"
                ),
                None => assert!(found.is_empty(), "{model:?}: {found:?}"),
            }
            s.price.annual_volatility = 0.5;
            assert!(
                !warnings(&s)
                    .iter()
                    .any(|w| w.path == "price.annual_volatility"),
                "{model:?} at 0.5"
            );
        }
        // GARCH with omega takes its variance from omega: no volatility is right there.
        s.price.model = PriceModel::Garch;
        s.price.omega = Some(1e-6);
        s.price.annual_volatility = 0.0;
        assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
    }

    /// An entry dispersion is refused where entries would overflow, and warned about where it
    /// is more likely a percentage than a share.
    #[test]
    fn an_entry_dispersion_is_bounded_and_a_percentage_warned_about() {
        let mut s = tiny("");
        let mut with = |d: f64| {
            s.venues[0].book.entry_dispersion = Some(d);
            let warned = warnings(&s)
                .iter()
                .any(|w| w.path == "venues[0].book.entry_dispersion");
            (refused(&s), warned)
        };
        let none: Vec<String> = Vec::new();
        for (d, warned) in [(0.0, false), (0.05, false), (1.0, false), (5.0, true)] {
            assert_eq!(with(d), (none.clone(), warned), "{d}");
        }
        assert_eq!(with(MAX_LOG_RETURN).0, none);
        for d in [MAX_LOG_RETURN * 1.001, -0.01, f64::NAN, f64::INFINITY] {
            assert_eq!(with(d).0, ["venues[0].book.entry_dispersion"], "{d}");
        }
    }

    /// Historical returns carry their own volatility: one given is warned about and ignored,
    /// and the warning says what the resolved scenario then shows (a 0, not no key).
    #[test]
    fn a_volatility_under_historical_is_ignored_and_shown_as_zero() {
        let mut s = tiny("");
        s.price.model = PriceModel::Historical;
        s.price.returns_csv = Some("returns.csv".into());
        let warned = clear_unused(&mut s);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert_eq!(warned[0].path, "price.annual_volatility");
        assert!(
            warned[0]
                .message
                .ends_with("ignored, and set to 0 in the resolved scenario"),
            "{}",
            warned[0].message
        );
        let resolved = toml::to_string(&s).expect("a scenario serializes");
        assert!(resolved.contains("annual_volatility = 0.0"), "{resolved}");
    }

    #[test]
    fn keys_of_a_setting_not_chosen_are_taken_out_with_a_warning() {
        let mut s = tiny(
            "pooled_default_fund = { sizing = \"sum\", stress_move = 0.2 }\n\
             supervision = { view = \"global\", metric = \"drawdown\", threshold = 0.05, \
             window_steps = 10, action = \"circuit_breaker\", halt_steps = 5, \
             distance = 0.02, add_on = 0.1 }",
        );
        s.price.degrees_of_freedom = Some(5.0);
        s.price.jump_mean = Some(-0.03);
        s.price.omega = Some(1e-6);
        s.price.block_bootstrap = Some(3);
        s.price
            .stress
            .as_mut()
            .expect("tiny has a stress")
            .recovery_steps = Some(4);
        s.venues[0].partial_fraction = Some(0.3);
        let kept = s.clone();
        let cleared: Vec<String> = clear_unused(&mut s).into_iter().map(|w| w.path).collect();
        assert_eq!(
            cleared,
            [
                "price.degrees_of_freedom",
                "price.jump_mean",
                "price.omega",
                "price.block_bootstrap",
                "price.stress.recovery_steps",
                "venues[0].partial_fraction",
                "policies[1].pooled_default_fund.stress_move",
                "policies[1].supervision.distance",
                "policies[1].supervision.add_on",
            ]
        );
        assert!(check(&s).is_empty(), "{:?}", check(&s));
        assert!(clear_unused(&mut s).is_empty(), "nothing left to take out");
        // What the chosen settings read stays.
        assert_eq!(s.venues[1].partial_fraction, Some(0.25));
        assert_eq!(s.price.annual_volatility, 0.6);
        let sup = s.policies[1].supervision.expect("kept");
        assert_eq!(
            (sup.window_steps, sup.halt_steps, sup.distance, sup.add_on),
            (Some(10), Some(5), None, None)
        );
        // Under the settings that read them, the same keys stay.
        let mut chosen = kept;
        chosen.price.model = PriceModel::StudentT;
        chosen.venues[0].liquidation = LiquidationMode::Partial;
        chosen.price.stress.as_mut().expect("a stress").recovery = 0.5;
        let cleared: Vec<String> = clear_unused(&mut chosen)
            .into_iter()
            .map(|w| w.path)
            .collect();
        assert!(!cleared.iter().any(|p| p == "price.degrees_of_freedom"
            || p == "venues[0].partial_fraction"
            || p == "price.stress.recovery_steps"));
        assert_eq!(chosen.price.degrees_of_freedom, Some(5.0));
        assert_eq!(chosen.venues[0].partial_fraction, Some(0.3));
    }
}
