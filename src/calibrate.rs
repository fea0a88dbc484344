//! Calibration: the value of one scenario field (by default the stress drop) for which the
//! median of a metric equals a target, such as an observed crash.
//!
//! Analysts know what happened (the price fell 13%) but not the shock that made it happen
//! once liquidations amplified it; this module answers that question the same way for every
//! scenario. It promises:
//!
//! - **Common random numbers.** The seed is fixed once (drawn and recorded if the scenario has
//!   none) and every evaluation reuses it, so the median is a deterministic function of the
//!   key: the same command gives the same answer, and the calibrated scenario, run with the
//!   same paths, reproduces the median the search reached.
//! - **A bracketing search.** The key is searched within a bracket whose two ends must give
//!   medians on either side of the target (it is an error, naming the range reached, when
//!   they do not). Inside it, regula falsi with the Illinois modification, falling back to
//!   bisection whenever it stalls, keeps the target bracketed at every step. The median over
//!   finitely many paths is piecewise constant, so the search stops when the median is
//!   within the metric tolerance of the target, or when the bracket is narrower than 1e-4 of
//!   its starting width; it then returns the evaluated value whose median came closest.
//! - **Only monotone use.** The search assumes the median moves one way with the key over the
//!   bracket (as drawdowns and liquidations do with the stress drop); it never extrapolates.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::metrics::Metric;
use crate::runner::RunOptions;
use crate::scenario::load::{apply_override, key_within, nearest, parse_key};
use crate::scenario::{Override, Scenario};
use crate::study;
use crate::units::{self, Unit};

/// The key calibrated when none is named: the size of the deterministic stress drop.
pub const DEFAULT_KEY: &str = "price.stress.drop";

/// The bracket searched for [`DEFAULT_KEY`] unless another is given.
pub const DEFAULT_DROP_BRACKET: (f64, f64) = (0.0, 0.95);

/// The fewest evaluations a search can make: it simulates both ends of the bracket before
/// anything else, to see that they straddle the target.
pub const MIN_EVALUATIONS: usize = 2;

/// What to calibrate and how hard to try.
#[derive(Debug, Clone)]
pub struct Search {
    /// Dotted key of the real-valued scenario field to solve for.
    pub key: String,
    /// The metric whose median is matched.
    pub metric: Metric,
    /// The median to reach.
    pub target: f64,
    /// The policy whose median is matched; `None` is the baseline (the first policy).
    pub policy: Option<String>,
    /// Lowest and highest value of the key searched; `None` is [`DEFAULT_DROP_BRACKET`] for
    /// [`DEFAULT_KEY`] and an error for any other key.
    pub bracket: Option<(f64, f64)>,
    /// Stop once the median is within this share of the target (absolute when the target is 0).
    pub tolerance: f64,
    /// Give up after this many simulations (at least [`MIN_EVALUATIONS`]).
    pub max_evaluations: usize,
}

impl Search {
    /// A search for `metric = target` over [`DEFAULT_KEY`], with the default tolerances.
    pub fn new(metric: Metric, target: f64) -> Search {
        Search {
            key: DEFAULT_KEY.to_string(),
            metric,
            target,
            policy: None,
            bracket: None,
            tolerance: 1e-3,
            max_evaluations: 40,
        }
    }
}

/// One simulation of the search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Value of the key.
    pub value: f64,
    /// Median of the metric under the searched policy.
    pub median: f64,
}

/// The outcome of a search.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// The value of the key found (the evaluated value whose median came closest to target).
    pub value: f64,
    /// The median at that value.
    pub median: f64,
    /// Whether the median is within the tolerance (otherwise the median jumps across the
    /// target between two values less than the key tolerance apart, and this is the closer).
    pub within_tolerance: bool,
    /// Every simulation, in the order run.
    pub evaluations: Vec<Evaluation>,
    /// The whole scenario (every policy) with the key set to the value found and the seed fixed.
    pub scenario: Scenario,
}

/// The metric called `name`, or an error listing every valid name.
pub fn metric_named(name: &str) -> Result<Metric> {
    Metric::ALL
        .iter()
        .copied()
        .find(|m| m.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
            let hint = nearest(name, names.iter().copied())
                .map_or(String::new(), |near| format!("did you mean `{near}`? "));
            Error::BadInput(format!(
                "unknown metric `{name}`; {hint}valid metrics: {}",
                names.join(", ")
            ))
        })
}

/// Parses `METRIC=VALUE`.
pub fn parse_target(text: &str) -> Result<(Metric, f64)> {
    let (name, value) = text.split_once('=').ok_or_else(|| {
        Error::BadInput(format!(
            "--target {text}: expected METRIC=VALUE, e.g. max_drawdown=0.13"
        ))
    })?;
    let metric = metric_named(name.trim())?;
    let value: f64 = value
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| Error::BadInput(format!("--target {text}: `{value}` is not a number")))?;
    // A share written as a percentage would run the whole search before it said the target
    // is out of reach.
    if units::metric(metric.name()).1 == Unit::Fraction && !(0.0..=1.0).contains(&value) {
        return Err(Error::BadInput(format!(
            "--target {text}: {} is a share from 0 to 1 (0.13 is 13%){}",
            metric.name(),
            if value > 1.0 && value <= 100.0 {
                format!("; did you mean {}={}?", metric.name(), value / 100.0)
            } else {
                String::new()
            }
        )));
    }
    Ok((metric, value))
}

/// Parses `LO,HI` (with `LO < HI`).
pub fn parse_bracket(text: &str) -> Result<(f64, f64)> {
    let bad = || Error::BadInput(format!("--bracket {text}: expected LO,HI with LO < HI"));
    let (lo, hi) = text.split_once(',').ok_or_else(bad)?;
    let lo: f64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: f64 = hi.trim().parse().map_err(|_| bad())?;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// Where `calibrate` writes by default: `<stem>.calibrated.toml` beside the scenario.
pub fn default_out(scenario: &Path) -> PathBuf {
    let stem = scenario
        .file_stem()
        .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().to_string());
    scenario.with_file_name(format!("{stem}.calibrated.toml"))
}

/// Finds the value of `search.key` for which the median of `search.metric` equals
/// `search.target`, for the scenario at `path` with `overrides` (`--set`, `--paths`, `--seed`)
/// applied. `progress` sees every evaluation as it finishes.
pub fn calibrate(
    path: &Path,
    overrides: &[Override],
    search: &Search,
    options: RunOptions,
    progress: impl FnMut(&Evaluation),
) -> Result<Calibration> {
    // The key first: `--key simulation.paths` with `--paths` is refused for the key's type,
    // not as an override of the key searched.
    check_searchable(&search.key)?;
    refuse_overridden_key(
        overrides,
        &search.key,
        " (the bracket gives the range searched), or search another key",
    )?;
    plan(Scenario::load(path, overrides)?, search)?.run(options, progress)
}

/// Refuses a key the scenario format does not have, or whose field does not hold a real
/// number: a typo is the flag's fault, not the bracket's (each end is checked by loading the
/// scenario with the key set).
fn check_searchable(key: &str) -> Result<()> {
    let problem = match (
        crate::scenario::load::unknown_key(key),
        crate::scenario::load::not_real(key),
    ) {
        (Some(p), _) => p.message,
        // Real numbers, but what happened, not what is simulated.
        _ if key.split('.').next() == Some("observed") => "`[observed]` holds the outcomes a \
             backtest compares with, which no simulation reads, so no value of it moves a \
             median"
            .to_string(),
        (None, Some(holds)) => {
            format!("it holds {holds}, not a real number; calibrate searches a real-valued field")
        }
        (None, None) => return Ok(()),
    };
    Err(Error::BadInput(format!("--key {key}: {problem}")))
}

/// Refuses a `--set` of the key searched (or of a table holding it): the search sets the key
/// on every evaluation, so the value given would be dropped silently, while the calibrated
/// file's header would still list it.
/// `instead` says what the user can do about it with the command at hand.
pub fn refuse_overridden_key(overrides: &[Override], key: &str, instead: &str) -> Result<()> {
    match overrides.iter().find(|ov| key_within(key, &ov.key)) {
        Some(ov) => Err(Error::BadInput(format!(
            "--set {}: the search sets `{key}` itself; leave the --set out{instead}",
            ov.key
        ))),
        None => Ok(()),
    }
}

/// A search whose inputs (scenario, key, bracket, policy) have all been checked, ready to
/// run. Checking is apart from running so that a command with several searches (a backtest
/// of several episodes) can refuse a bad one before the first simulation of any.
#[derive(Debug, Clone)]
pub struct Plan {
    search: Search,
    /// The scenario with `overrides` applied and its seed fixed.
    base: Scenario,
    /// The resolved scenario with only the policies simulated (the baseline, the searched).
    searched_text: String,
    /// The key as it reads in `searched_text`, whose list of policies is shorter.
    searched_key: String,
    /// The whole resolved scenario.
    full_text: String,
    /// The searched policy's index among the policies simulated.
    index: usize,
    /// The bracket searched.
    lo: f64,
    hi: f64,
}

/// Checks everything [`calibrate`] needs to search `base` (a scenario loaded with the
/// command's overrides), without simulating anything.
pub fn plan(base: Scenario, search: &Search) -> Result<Plan> {
    if search.max_evaluations < MIN_EVALUATIONS {
        return Err(Error::BadInput(format!(
            "--max-evaluations {}: the search needs at least {MIN_EVALUATIONS} (it simulates \
             both ends of the bracket first)",
            search.max_evaluations
        )));
    }
    check_searchable(&search.key)?;
    // The resolved scenario fixes the seed: every evaluation below runs on the same numbers.
    let doc: toml::Value = toml::from_str(&base.to_toml()).expect("a resolved scenario parses");
    check_key(&doc, &search.key)?;
    let (lo, hi) = match (search.bracket, search.key.as_str()) {
        (Some(b), _) => b,
        (None, DEFAULT_KEY) => DEFAULT_DROP_BRACKET,
        (None, key) => {
            return Err(Error::BadInput(format!(
                "--bracket LO,HI is required to calibrate `{key}` (only {DEFAULT_KEY} has a \
                 default bracket, {} to {})",
                DEFAULT_DROP_BRACKET.0, DEFAULT_DROP_BRACKET.1
            )));
        }
    };
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(Error::BadInput(format!(
            "the bracket must have LO < HI, got {lo},{hi}"
        )));
    }
    let names: Vec<&str> = base
        .file()
        .policies
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let policy = match &search.policy {
        None => 0,
        Some(name) => names.iter().position(|n| n == name).ok_or_else(|| {
            Error::BadInput(format!(
                "unknown policy `{name}`; the scenario has: {}",
                names.join(", ")
            ))
        })?,
    };
    // Policies run independently on the same paths, so the search simulates only the baseline
    // (which must stay first) and the policy searched.
    let mut searched = doc.clone();
    if let Some(toml::Value::Array(ps)) = searched.get_mut("policies") {
        let keep: Vec<toml::Value> = ps
            .iter()
            .enumerate()
            .filter(|(i, _)| *i == 0 || *i == policy)
            .map(|(_, p)| p.clone())
            .collect();
        *ps = keep;
    }
    let plan = Plan {
        searched_key: searched_key(&search.key, policy, &names)?,
        search: search.clone(),
        base,
        searched_text: toml::to_string(&searched).expect("a scenario serializes"),
        full_text: toml::to_string(&doc).expect("a scenario serializes"),
        index: usize::from(policy != 0),
        lo,
        hi,
    };
    // Each end is checked as the scenario would check it: an end it refuses (a drop of 2)
    // would otherwise fail only after the other end had been simulated.
    let bracket = if search.bracket.is_some() {
        "--bracket"
    } else {
        "the default bracket"
    };
    for end in [lo, hi] {
        plan.at(&plan.searched_text, &plan.searched_key, end)
            .map_err(|e| match e {
                Error::InvalidScenario { .. } => Error::BadInput(format!(
                    "{bracket} {lo},{hi}: {} = {end} is not a value the scenario allows; {e}",
                    search.key
                )),
                other => other,
            })?;
    }
    Ok(plan)
}

impl Plan {
    /// The scenario `text` (a resolved scenario) with `key` (the searched key as it reads
    /// there) set to `x`.
    fn at(&self, text: &str, key: &str, x: f64) -> Result<Scenario> {
        let set = Override {
            key: key.to_string(),
            value: toml::Value::Float(x),
        };
        Scenario::from_toml(text, self.base.source(), &[set])
    }

    /// Runs the search. `progress` sees every evaluation as it finishes.
    pub fn run(
        &self,
        options: RunOptions,
        mut progress: impl FnMut(&Evaluation),
    ) -> Result<Calibration> {
        let (search, lo, hi) = (&self.search, self.lo, self.hi);
        let options = RunOptions {
            progress: false,
            ..options
        };

        let mut evaluations: Vec<Evaluation> = Vec::new();
        let mut evaluate = |evaluations: &mut Vec<Evaluation>, x: f64| -> Result<f64> {
            let study = study::simulate(
                self.at(&self.searched_text, &self.searched_key, x)?,
                None,
                options,
            )?;
            let median = study.summary.policies[self.index]
                .metrics
                .0
                .iter()
                .find(|(n, _)| n == search.metric.name())
                .map(|(_, d)| d.p50)
                .expect("every metric is summarised");
            let e = Evaluation { value: x, median };
            progress(&e);
            evaluations.push(e);
            Ok(median)
        };

        let target = search.target;
        let tolerance = search.tolerance * if target == 0.0 { 1.0 } else { target.abs() };
        let key_tolerance = 1e-4 * (hi - lo);
        let (f_lo, f_hi) = (
            evaluate(&mut evaluations, lo)?,
            evaluate(&mut evaluations, hi)?,
        );
        let (low, high) = (f_lo.min(f_hi), f_lo.max(f_hi));
        if !(low - tolerance..=high + tolerance).contains(&target) {
            // The search needs the target between the medians at the bracket's ends. A metric
            // need not be monotone in the key (amplification rises with a drop, then falls
            // once a drop is so large that liquidations add little to it), so a target beyond
            // both ends may still be reached inside: a narrower bracket can find it.
            let remedy = if search.bracket.is_some() {
                "give a bracket whose ends straddle the target (--bracket LO,HI: wider, or \
                 narrower where the metric is not monotone in the key), or choose another target"
            } else {
                "give a bracket whose ends straddle the target (--bracket LO,HI: where the metric \
                 is not monotone in the key, a narrower one can), or choose another target"
            };
            return Err(Error::BadInput(format!(
                "the target median {} = {target} is not between the medians at the bracket's \
                 ends: {f_lo} at {} = {lo} and {f_hi} at {hi}; {remedy}",
                search.metric.name(),
                search.key
            )));
        }
        // g is the distance to the target signed so that g(a) <= 0 <= g(b).
        let sign = if f_hi >= f_lo { 1.0 } else { -1.0 };
        narrow(
            |x| {
                if evaluations.len() >= search.max_evaluations {
                    return Err(Error::BadInput(format!(
                        "no value of {} within {} evaluations gives a median within tolerance \
                         ({}); the closest was {}. Allow more (--max-evaluations) or a wider \
                         --tolerance",
                        search.key,
                        search.max_evaluations,
                        search.tolerance,
                        describe(closest(&evaluations, target))
                    )));
                }
                Ok(sign * (evaluate(&mut evaluations, x)? - target))
            },
            [(lo, sign * (f_lo - target)), (hi, sign * (f_hi - target))],
            tolerance,
            key_tolerance,
        )?;
        let best = closest(&evaluations, target);
        let scenario = self.at(&self.full_text, &self.search.key, best.value)?;
        Ok(Calibration {
            value: best.value,
            median: best.median,
            within_tolerance: (best.median - target).abs() <= tolerance,
            evaluations,
            scenario,
        })
    }
}

/// Narrows the bracket `[(a, g(a)), (b, g(b))]` of a nondecreasing `g` with g(a) <= 0 <= g(b)
/// until some |g(x)| is within `tolerance` or the bracket is no wider than `key_tolerance`:
/// regula falsi with the Illinois modification (the end kept twice running has its `g`
/// halved), and a bisection instead wherever the last step did not halve the bracket, or the
/// secant point falls outside it. The target stays bracketed at every step. (Bisecting only
/// where the last two steps together did not halve it, the usual safeguard, took 15% more
/// evaluations over the shapes of `a_bracket_narrows_in_few_evaluations`, and 40% more on
/// the steps a median over finitely many paths makes.)
fn narrow(
    mut g: impl FnMut(f64) -> Result<f64>,
    [(mut a, mut ga), (mut b, mut gb)]: [(f64, f64); 2],
    tolerance: f64,
    key_tolerance: f64,
) -> Result<()> {
    let mut last_side = 0i8;
    // The bracket's width before the last step.
    let mut before = f64::INFINITY;
    let mut done = ga.abs() <= tolerance || gb.abs() <= tolerance;
    while !done && b - a > key_tolerance {
        let width = b - a;
        let mut x = if gb > ga {
            a - ga * width / (gb - ga)
        } else {
            f64::NAN
        };
        if width > 0.5 * before || !(x > a && x < b) {
            x = 0.5 * (a + b);
        }
        let gx = g(x)?;
        if gx.abs() <= tolerance {
            done = true;
        } else if gx < 0.0 {
            a = x;
            ga = gx;
            if last_side == -1 {
                gb *= 0.5;
            }
            last_side = -1;
        } else {
            b = x;
            gb = gx;
            if last_side == 1 {
                ga *= 0.5;
            }
            last_side = 1;
        }
        before = width;
    }
    Ok(())
}

/// The evaluation whose median is closest to the target (the first of equals).
fn closest(evaluations: &[Evaluation], target: f64) -> Evaluation {
    let mut best = evaluations[0];
    for e in &evaluations[1..] {
        if (e.median - target).abs() < (best.median - target).abs() {
            best = *e;
        }
    }
    best
}

fn describe(e: Evaluation) -> String {
    format!("median {} at {}", e.median, e.value)
}

/// `key` as it reads in the list of policies the search simulates: the baseline, then the
/// policy searched (`policy`, an index into the scenario's policies `names`) unless that is
/// the baseline. A key into another policy cannot move the searched median (policies run
/// independently on the same paths): refused, rather than read as whichever policy took its
/// index in the shorter list (the search then calibrated one policy and wrote the value
/// into another).
fn searched_key(key: &str, policy: usize, names: &[&str]) -> Result<String> {
    let Ok(normal) = parse_key(key, key) else {
        // Left to the scenario's own checks, which say what a key looks like.
        return Ok(key.to_string());
    };
    let mut parts = normal.splitn(3, '.');
    let (Some("policies"), Some(index)) = (parts.next(), parts.next()) else {
        return Ok(key.to_string());
    };
    let rest = parts.next().map(|r| format!(".{r}")).unwrap_or_default();
    let index = match index.parse::<usize>() {
        Ok(i) if i < names.len() => i,
        _ => {
            return Err(Error::BadInput(format!(
                "`{key}`: the scenario has {} policies, policies.0 to policies.{}",
                names.len(),
                names.len() - 1
            )));
        }
    };
    if index == 0 {
        return Ok(format!("policies.0{rest}"));
    }
    if index == policy {
        return Ok(format!("policies.1{rest}"));
    }
    Err(Error::BadInput(format!(
        "`{key}` sets policy `{}`, which cannot move the median of `{}` that is calibrated \
         (policies run independently on the same paths); to calibrate it, add --policy {}",
        names[index], names[policy], names[index]
    )))
}

/// Refuses keys past the end of a list or past a value in the resolved scenario, and keys
/// inside a table the scenario does not have: setting `price.stress.drop` would add a stress
/// with default timing the author never chose, which the calibrated file would then present
/// as the author's. (A missing key in a table that is there is left to the scenario's own
/// checks, which suggest the nearest valid key.)
fn check_key(doc: &toml::Value, key: &str) -> Result<()> {
    let bad = |what: String| Err(Error::BadInput(format!("--key {key}: {what}")));
    let mut node = Some(doc);
    let parts: Vec<&str> = key.split('.').collect();
    for (depth, part) in parts.iter().enumerate() {
        let Some(here) = node else {
            let table = parts[..depth].join(".");
            return Err(Error::BadInput(format!(
                "`{key}`: the scenario has no `{table}`; add it, with the values the search \
                 should not choose, to calibrate `{key}`"
            )));
        };
        node = match here {
            toml::Value::Table(t) => t.get(*part),
            toml::Value::Array(a) => {
                let list = parts[..depth].join(".");
                let n = a.len();
                let entries = if n == 1 { "entry" } else { "entries" };
                match crate::scenario::load::list_index(part) {
                    Ok(i) if i < n => a.get(i),
                    Ok(i) => {
                        return bad(format!(
                            "index {i} is out of range: `{list}` has {n} {entries}"
                        ));
                    }
                    Err(why) => {
                        return bad(format!(
                            "{why}: `{list}` is a list of {n} {entries}, indexed from 0"
                        ));
                    }
                }
            }
            _ => {
                return bad(format!(
                    "`{}` is a value, not a table, so it has no `{part}`",
                    parts[..depth].join(".")
                ));
            }
        };
    }
    Ok(())
}

/// The calibrated scenario as text for a file at `out`: the source file as its author wrote
/// it, comments and citations kept, with the command's `overrides`, the seed and the value
/// found set in place, under a header that says so. Should that text not load to the very
/// scenario calibrated (a key the source holds in a form that cannot be edited in place), the
/// resolved scenario is written instead, which is always exact but keeps no comment.
pub fn calibrated_text(
    found: &Calibration,
    search: &Search,
    overrides: &[Override],
    out: &Path,
) -> String {
    let resolved = resolved_at(&found.scenario, out);
    let scenario = &found.scenario;
    let header = format!(
        "# Calibrated by cascade {}: {} = {}\n# gives a median {} of {} (target {}; {} \
         evaluations of {} paths, seed {}),\n# from {}{}.\n",
        crate::VERSION,
        search.key,
        found.value,
        search.metric.name(),
        found.median,
        search.target,
        found.evaluations.len(),
        scenario.file().simulation.paths,
        scenario.seed(),
        scenario.source().display(),
        if overrides.is_empty() {
            String::new()
        } else {
            let sets: Vec<String> = overrides
                .iter()
                .map(|o| format!("{}={}", o.key, o.value))
                .collect();
            format!(" with {}", sets.join(", "))
        },
    );
    let edited = std::fs::read_to_string(scenario.source())
        .ok()
        .and_then(|text| text.parse::<toml_edit::DocumentMut>().ok())
        .and_then(|mut doc| {
            let seed = Override {
                key: "simulation.seed".into(),
                value: toml::Value::Integer(i64::try_from(scenario.seed()).ok()?),
            };
            let value = Override {
                key: search.key.clone(),
                value: toml::Value::Float(found.value),
            };
            for o in overrides.iter().chain([&seed]) {
                set_in_place(doc.as_item_mut(), o, "set for this calibration")?;
            }
            set_in_place(doc.as_item_mut(), &value, "calibrated")?;
            for o in absolute_inputs(scenario, out) {
                set_in_place(doc.as_item_mut(), &o, "made absolute")?;
            }
            Some(format!(
                "{header}# The rest is that file as written: the values changed say so, but a \
                 comment\n# elsewhere (a table's, the description) may still describe the value \
                 before.\n\n{doc}"
            ))
        });
    // Kept only if it loads (from where it will be written) to the scenario calibrated.
    let parse = |t: &str| toml::from_str::<toml::Value>(t).ok();
    let want = parse(&resolved);
    let same = |text: &str| {
        Scenario::from_toml(text, out, &[])
            .ok()
            .and_then(|s| parse(&s.to_toml()))
            .is_some_and(|got| Some(got) == want)
    };
    match edited {
        Some(text) if same(&text) => text,
        _ => format!(
            "{header}# The rest is the resolved scenario: the file as written could not be \
             edited in place,\n# so its comments are not kept.\n\n{resolved}"
        ),
    }
}

/// Sets `o.key` to `o.value` in a document being edited, keeping the spacing around the
/// value it replaces; `None` if the key leads through something not a table or an array.
/// A comment beside a value describes that value (a citation, an assumption): when the value
/// changes, the comment says `why` and what the value was before its old text, so that no
/// source is left vouching for a figure it did not give. A value inside an inline table or
/// array (`long_leverage = { median = 3.0, ... }`) cannot carry a comment of its own, so the
/// note goes after the whole value of its line, naming the part that changed.
fn set_in_place(root: &mut toml_edit::Item, o: &Override, why: &str) -> Option<()> {
    // The item at `parts`, and how many of them lead to the value a table holds on a line of
    // its own (fewer than all where the key reaches inside it).
    fn walk<'a>(
        root: &'a mut toml_edit::Item,
        parts: &[&str],
    ) -> Option<(&'a mut toml_edit::Item, usize)> {
        let mut item = root;
        let mut line = parts.len();
        for (k, part) in parts.iter().enumerate() {
            item = match part.parse::<usize>() {
                Ok(i) => item.get_mut(i)?,
                Err(_) => item.get_mut(*part)?,
            };
            if item.is_value() {
                line = line.min(k + 1);
            }
        }
        Some((item, line))
    }
    let parts: Vec<&str> = o.key.split('.').collect();
    let (item, line) = walk(root, &parts)?;
    let mut value: toml_edit::Value = o.value.to_string().parse().ok()?;
    let mut note = None;
    if let Some(old) = item.as_value() {
        *value.decor_mut() = old.decor().clone();
        let mut bare = old.clone();
        bare.decor_mut().clear();
        let was = bare.to_string();
        let parse = |v: &str| toml::from_str::<toml::Table>(&format!("v = {v}")).ok();
        if parse(&was) != parse(&o.value.to_string()) {
            note = Some(format!("{why}; was {was}"));
        }
    }
    *item = toml_edit::Item::Value(value);
    let Some(note) = note else {
        return Some(());
    };
    let inside = parts[line..].join(".");
    let annotated = walk(root, &parts[..line])?.0.as_value_mut()?;
    let suffix = annotated
        .decor()
        .suffix()
        .and_then(|s| s.as_str())
        .unwrap_or("");
    let (space, comment) = match suffix.split_once('#') {
        Some((space, text)) => (space.to_string(), format!(": {}", text.trim())),
        None => ("  ".to_string(), String::new()),
    };
    let what = if inside.is_empty() {
        note
    } else {
        format!("{inside} {note}")
    };
    annotated
        .decor_mut()
        .set_suffix(format!("{space}# {what}{comment}"));
    Some(())
}

/// The data files (position snapshots, historical returns) that a file at `out` must name by
/// absolute paths, as overrides of their keys: the relative ones, when `out` is in another
/// folder than the scenario they were relative to.
fn absolute_inputs(scenario: &Scenario, out: &Path) -> Vec<Override> {
    let dir = |p: &Path| {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        std::fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()
    };
    let Some(base) = dir(scenario.source()).filter(|d| Some(d) != dir(out).as_ref()) else {
        return Vec::new();
    };
    let f = scenario.file();
    let snapshots = f.venues.iter().enumerate().filter_map(|(i, v)| {
        let p = v.book.positions_csv.as_ref()?;
        Some((format!("venues.{i}.book.positions_csv"), p))
    });
    let returns = f
        .price
        .returns_csv
        .as_ref()
        .map(|p| ("price.returns_csv".to_string(), p));
    snapshots
        .chain(returns)
        .filter(|(_, p)| p.is_relative())
        .map(|(key, p)| Override {
            key,
            value: toml::Value::String(base.join(p).display().to_string()),
        })
        .collect()
}

/// The resolved scenario as text for a file at `out`, its relative data files made absolute
/// where `out` is in another folder ([`absolute_inputs`]).
fn resolved_at(scenario: &Scenario, out: &Path) -> String {
    let text = scenario.to_toml();
    let moved = absolute_inputs(scenario, out);
    if moved.is_empty() {
        return text;
    }
    let mut doc: toml::Value = toml::from_str(&text).expect("a resolved scenario parses");
    for o in &moved {
        apply_override(&mut doc, o).expect("a resolved scenario has every data file's key");
    }
    toml::to_string_pretty(&doc).expect("a scenario serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_set_in_place_keeps_its_comment_as_it_was_only_while_unchanged() {
        let mut doc: toml_edit::DocumentMut =
            "[a]\nx = 0.7   # cited: 70%\ny = 1_000 # a count\nz = 3\n"
                .parse()
                .unwrap();
        for (key, value) in [
            ("a.x", toml::Value::Float(0.5)),
            ("a.y", toml::Value::Integer(1000)),
            ("a.z", toml::Value::Integer(4)),
        ] {
            let o = Override {
                key: key.into(),
                value,
            };
            set_in_place(doc.as_item_mut(), &o, "set").expect("the key is there");
        }
        assert_eq!(
            doc.to_string(),
            "[a]\nx = 0.5   # set; was 0.7: cited: 70%\ny = 1000 # a count\nz = 4  # set; was 3\n"
        );
    }

    #[test]
    fn a_value_inside_an_inline_table_is_noted_after_its_line() {
        // A comment cannot follow a value inside `{ ... }`: the note goes after the table.
        let mut doc: toml_edit::DocumentMut = "[b]\nmix = { median = 3.0, dispersion = 0.5 }  # cited\ntiers = [{ above = 1, rate = 2 }]\n"
            .parse()
            .unwrap();
        for (key, value) in [
            ("b.mix.median", toml::Value::Float(4.0)),
            ("b.mix.dispersion", toml::Value::Float(0.5)),
            ("b.tiers.0.rate", toml::Value::Integer(3)),
        ] {
            let o = Override {
                key: key.into(),
                value,
            };
            set_in_place(doc.as_item_mut(), &o, "set").expect("the key is there");
        }
        let text = doc.to_string();
        assert_eq!(
            text,
            "[b]\nmix = { median = 4.0, dispersion = 0.5 }  # median set; was 3.0: cited\ntiers = [{ above = 1, rate = 3 }]  # 0.rate set; was 2\n"
        );
        assert!(text.parse::<toml::Table>().is_ok(), "{text}");
    }

    /// The points `narrow` evaluates for `f(x) - target` on `[lo, hi]`.
    fn points(f: impl Fn(f64) -> f64, target: f64, (lo, hi): (f64, f64)) -> Vec<f64> {
        let mut xs = Vec::new();
        narrow(
            |x| {
                xs.push(x);
                Ok(f(x) - target)
            },
            [(lo, f(lo) - target), (hi, f(hi) - target)],
            1e-3 * target,
            1e-4 * (hi - lo),
        )
        .unwrap();
        xs
    }

    /// Monotone shapes a median takes against a stress drop: convex, concave, steep and
    /// stepped (a median over finitely many paths, or a tipping point).
    /// A named function of the key.
    type Shape = (&'static str, Box<dyn Fn(f64) -> f64>);

    fn shapes() -> Vec<Shape> {
        vec![
            ("x^2", Box::new(|x: f64| x * x)),
            ("x^4", Box::new(|x: f64| x.powi(4))),
            ("sqrt", Box::new(|x: f64| x.sqrt())),
            ("exp", Box::new(|x: f64| (8.0 * x).exp())),
            ("step", Box::new(|x: f64| if x < 0.4 { x } else { x + 1.0 })),
            ("stairs", Box::new(|x: f64| (x * 200.0).floor() / 200.0)),
        ]
    }

    #[test]
    fn a_bracket_narrows_to_the_target_and_keeps_it_bracketed() {
        for (name, f) in shapes() {
            for t in [0.05, 0.1133, 0.3, 0.7] {
                let target = f(t);
                let xs = points(&f, target, (0.0, 0.95));
                let (mut a, mut b) = (0.0, 0.95);
                for &x in &xs {
                    assert!(x > a && x < b, "{name} {t}: {x} outside ({a}, {b})");
                    if f(x) < target { a = x } else { b = x }
                }
                let last = *xs.last().unwrap();
                let hit = (f(last) - target).abs() <= 1e-3 * target;
                assert!(
                    hit || b - a <= 1e-4 * 0.95,
                    "{name} {t}: stopped at {last} in ({a}, {b})"
                );
            }
        }
    }

    #[test]
    fn a_bracket_narrows_in_few_evaluations() {
        // Linear: the first secant point is the answer.
        assert_eq!(points(|x| 2.0 * x, 0.4, (0.0, 0.95)).len(), 1);
        let total: usize = shapes()
            .iter()
            .flat_map(|(_, f)| [0.05, 0.1133, 0.3, 0.7].map(|t| points(f, f(t), (0.0, 0.95)).len()))
            .sum();
        assert!(total <= 169, "{total} evaluations");
    }
}
