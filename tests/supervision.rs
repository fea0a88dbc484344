//! Algorithmic supervision (MODEL.md section 7): what a supervisor watches, when it acts, and
//! what its circuit breaker or margin add-on then changes, on replayed paths whose answers
//! can be worked out by hand.

use std::fs;
use std::path::Path;

use cascade::book::{Position, Side};
use cascade::engine::{self, Scratch};
use cascade::market::Market;
use cascade::metrics::{Metric, RowLayout};
use cascade::policy;
use cascade::scenario::Scenario;
use cascade::shocks::ShockModel;

use crate::opening;
use crate::policies::{DEFAULT_LIQUIDITY, SHORTS, bits, csv_venue, positions_csv, run, scenario};

/// Runs one path of a market: the path's scratch (its per-step figures and the step the first
/// supervisor acted at) and its row of metrics.
fn trace(market: &Market, s: &Scenario, path: u64) -> (Scratch, Vec<f64>) {
    let f = s.file();
    let model = ShockModel::new(&f.price, f.simulation.step_seconds);
    let mut returns = vec![0.0; f.simulation.steps as usize];
    model.fill_path(s.seed(), path, &mut returns);
    let mut scratch = Scratch::default();
    let mut row = vec![
        0.0;
        RowLayout {
            venues: market.venues.len()
        }
        .len()
    ];
    engine::simulate(market, &returns, &mut scratch, &mut row);
    (scratch, row)
}

/// Log returns: each `(r, n)` is `n` steps of `r`.
fn returns(runs: &[(f64, usize)]) -> Vec<f64> {
    runs.iter()
        .flat_map(|&(r, n)| std::iter::repeat_n(r, n))
        .collect()
}

/// Depth so large that no flow moves any price measurably (1e6 of notional moves it 1e-15 %).
const NO_IMPACT: &str = "impact = \"linear\"\nshared_depth_1pct = 1.0e21\npermanent_fraction = 1.0";

/// A `[[venues]]` entry whose book is the positions CSV `rows` (at 2% initial and 1%
/// maintenance margin, see [`csv_venue`]), with the keys `extra`.
fn venue(dir: &Path, name: &str, jurisdiction: &str, rows: &str, extra: &str) -> String {
    let csv = positions_csv(dir, &format!("{name}.csv"), rows);
    csv_venue(name, jurisdiction, &csv, extra)
}

/// A one-path scenario that replays `returns` from a start price of 100 over the `venues`
/// (`[[venues]]` entries) with the `[liquidity]` body `liquidity`: the baseline, then the
/// policy "watch", whose keys are `watch` (its cooperating jurisdictions, its supervision).
/// Returns the scenario and its markets, one per policy.
fn replay(
    dir: &Path,
    returns: &[f64],
    liquidity: &str,
    venues: &str,
    watch: &str,
) -> (Scenario, Vec<Market>) {
    let csv = dir.join("returns.csv");
    let rows: String = returns.iter().map(|r| format!("{r}\n")).collect();
    fs::write(&csv, format!("log_return\n{rows}")).unwrap();
    let text = format!(
        "name = \"watch\"\n[simulation]\npaths = 1\nsteps = {}\nseed = 1\n[price]\nstart = 100.0\nmodel = \"historical\"\nreturns_csv = \"returns.csv\"\n[liquidity]\n{liquidity}\n{venues}[[policies]]\nname = \"base\"\n[[policies]]\nname = \"watch\"\n{watch}\n",
        returns.len()
    );
    let s = Scenario::from_toml(&text, &dir.join("watch.toml"), &[]).unwrap();
    let markets = policy::markets(&s, &s.books()).unwrap();
    (s, markets)
}

/// [`replay`] over one venue, "a" in jurisdiction "x", holding the positions CSV `rows`,
/// without impact and with a fund that covers any loss; in the policy "watch", "x" runs the
/// global supervisor `supervision` (an inline table).
fn replay_one_venue(
    dir: &Path,
    returns: &[f64],
    rows: &str,
    supervision: &str,
) -> (Scenario, Vec<Market>) {
    let watch = format!("cooperating = [\"x\"]\nsupervision = {supervision}");
    replay_one_venue_in(dir, returns, rows, NO_IMPACT, &watch)
}

/// [`replay_one_venue`] with the `[liquidity]` body `liquidity` (the venue's own book still
/// too deep to move, so `routing = 1.0` puts the impact in the shared pool) and the policy
/// "watch" given by its keys `watch`.
fn replay_one_venue_in(
    dir: &Path,
    returns: &[f64],
    rows: &str,
    liquidity: &str,
    watch: &str,
) -> (Scenario, Vec<Market>) {
    let a = venue(
        dir,
        "a",
        "x",
        rows,
        "insurance_fund = 1.0e9\ndepth_1pct = 1.0e21",
    );
    replay(dir, returns, liquidity, &a, watch)
}

/// The steps at which a path's cumulative liquidated notional grows.
fn liquidating_steps(scratch: &Scratch) -> Vec<usize> {
    let mut before = 0.0;
    let mut steps = Vec::new();
    for (t, &now) in scratch.liquidated_path.iter().enumerate() {
        if now > before {
            steps.push(t);
        }
        before = now;
    }
    steps
}

/// The first step at whose end the price `100 exp(sum of returns)` satisfies `reached`.
fn first_step(returns: &[f64], reached: impl Fn(f64) -> bool) -> usize {
    let mut log = 0.0;
    returns
        .iter()
        .position(|r| {
            log += r;
            reached(100.0 * f64::exp(log))
        })
        .unwrap()
}

/// Trigger prices of a position entered at 100 at 20x under 1% maintenance margin: equity
/// `q (p - 100) + q 100 / 20` equals `0.01 q p` at `100 (1 -/+ 1/20) / (1 -/+ 0.01)`.
const LONG_TRIGGER: f64 = 100.0 * 0.95 / 0.99;
const SHORT_TRIGGER: f64 = 100.0 * 1.05 / 1.01;

#[test]
fn a_global_supervisor_acts_no_later_than_local_ones() {
    // Notional near liquidation is additive over venues, so with the same threshold the sum
    // over all cooperating venues crosses it no later than any one jurisdiction's part.
    let supervision = |view: &str| {
        format!(
            "[[policies]]\nname = \"{view}\"\ncooperating = [\"onshore\", \"offshore\"]\nsupervision = {{ view = \"{view}\", metric = \"near_liquidation\", distance = 0.03, threshold = 1.5e8, action = \"circuit_breaker\", halt_steps = 5 }}\n"
        )
    };
    let s = scenario(
        DEFAULT_LIQUIDITY,
        "",
        SHORTS,
        &format!("{}{}", supervision("local"), supervision("global")),
    );
    let markets = policy::markets(&s, &s.books()).unwrap();
    assert_eq!(markets[1].supervisors.len(), 2);
    assert_eq!(markets[2].supervisors.len(), 1);
    let (mut both, mut global_only) = (0, 0);
    for path in 0..s.file().simulation.paths {
        let local = trace(&markets[1], &s, path).0.first_intervention;
        let global = trace(&markets[2], &s, path).0.first_intervention;
        match (local, global) {
            (Some(l), Some(g)) => {
                assert!(g <= l, "path {path}: global acted at {g}, local at {l}");
                both += 1;
                global_only += usize::from(g < l);
            }
            (Some(l), None) => panic!("path {path}: local acted at {l}, global never"),
            (None, Some(_)) => global_only += 1,
            (None, None) => {}
        }
    }
    assert!(
        both > 0 && global_only > 0,
        "both acted on {both} paths, global earlier on {global_only}"
    );
}

#[test]
fn a_circuit_breaker_changes_nothing_before_it_trips_and_something_after() {
    // Before the supervisor acts the policy's market is the baseline's, so the two paths agree
    // step by step up to that point; the pause then changes where the cascade goes.
    let s = scenario(
        DEFAULT_LIQUIDITY,
        "",
        SHORTS,
        "[[policies]]\nname = \"breaker\"\ncooperating = [\"onshore\", \"offshore\"]\nsupervision = { view = \"global\", metric = \"drawdown\", window_steps = 10, threshold = 0.03, action = \"circuit_breaker\", halt_steps = 20 }\n",
    );
    let markets = policy::markets(&s, &s.books()).unwrap();
    let (mut tripped, mut changed) = (0, 0);
    for path in 0..s.file().simulation.paths {
        let (base, _) = trace(&markets[0], &s, path);
        let (breaker, _) = trace(&markets[1], &s, path);
        // Liquidations and the traded price, step by step.
        let steps = |s: &Scratch, until: usize| {
            let until = until.min(s.liquidated_path.len());
            (
                bits(&s.liquidated_path[..until]),
                bits(&s.log_price_path[..until]),
            )
        };
        let first = breaker.first_intervention;
        if let Some(t) = first {
            tripped += 1;
            assert_eq!(
                steps(&base, t),
                steps(&breaker, t),
                "path {path} differs before step {t}"
            );
            changed += usize::from(steps(&base, usize::MAX) != steps(&breaker, usize::MAX));
        } else {
            assert_eq!(
                steps(&base, usize::MAX),
                steps(&breaker, usize::MAX),
                "path {path}: no trip, yet different"
            );
        }
    }
    assert!(
        tripped > 0 && changed > 0,
        "tripped on {tripped} paths, changed {changed}"
    );
}

#[test]
fn a_drawdown_supervisor_watching_only_shorts_sees_the_cascade() {
    // Venue "b" holds one short, which a fall cannot liquidate: no flow of its own. Its
    // supervisor must still watch its price, which falls with the shared price when "a"'s
    // longs cascade (-9.5% at step 4, -4.9% of it the fundamental's): it trips at step 5, as
    // it does when "b" holds a long instead. It once watched the fundamental and never did.
    let dir = tempfile::TempDir::new().unwrap();
    let path = returns(&[(-0.01, 5), (0.0, 15)]);
    let first = |b_side: &str| {
        let extra = "insurance_fund = 1.0e9\ndepth_1pct = 1.0e21";
        let b = format!("{b_side},1000000,100,2\n");
        let venues = venue(dir.path(), "a", "x", "long,100000000,100,20\n", extra)
            + &venue(dir.path(), "b", "y", &b, extra);
        let (s, markets) = replay(
            dir.path(),
            &path,
            "impact = \"linear\"\nshared_depth_1pct = 2.0e7\nrouting = 1.0\npermanent_fraction = 1.0",
            &venues,
            "cooperating = [\"y\"]\nsupervision = { view = \"local\", metric = \"drawdown\", window_steps = 10, threshold = 0.07, action = \"circuit_breaker\", halt_steps = 3 }",
        );
        // Watched alone, "b" is the whole of the index, though it holds a hundredth of the
        // market's open interest.
        assert_eq!(markets[1].supervisors[0].index_weights, [1.0]);
        trace(&markets[1], &s, 0).0.first_intervention
    };
    assert_eq!(first("long"), Some(5));
    assert_eq!(first("short"), Some(5));
}

#[test]
fn a_drawdown_supervisor_measures_the_first_steps_from_the_start_price() {
    // The whole drop comes in step 0 and nothing moves after it: a window that began at the
    // first step's own price would see no drawdown ever.
    let text = "name = \"first-step\"\n[simulation]\npaths = 4\nsteps = 10\nseed = 1\n[price]\nstart = 100.0\nannual_volatility = 0.0\n[price.stress]\ndrop = 0.05\nstart_step = 0\nduration_steps = 1\n[liquidity]\nshared_depth_1pct = 1.0e9\n[[venues]]\nname = \"a\"\njurisdiction = \"x\"\ninitial_margin = 0.1\nmaintenance_margin = 0.05\ndepth_1pct = 1.0e9\nopen_interest = 1.0e6\n[venues.book]\npositions = 50\nlong_leverage = { median = 2.0, dispersion = 0.1 }\nshort_leverage = { median = 2.0, dispersion = 0.1 }\n[[policies]]\nname = \"base\"\n[[policies]]\nname = \"watched\"\ncooperating = [\"x\"]\nsupervision = { view = \"local\", metric = \"drawdown\", window_steps = 1, threshold = 0.03, action = \"circuit_breaker\", halt_steps = 2 }\n";
    let s = Scenario::from_toml(text, Path::new("first-step.toml"), &[]).unwrap();
    let (markets, out) = run(&s);
    let returns = {
        let f = s.file();
        let mut r = vec![0.0; f.simulation.steps as usize];
        ShockModel::new(&f.price, f.simulation.step_seconds).fill_path(s.seed(), 0, &mut r);
        r
    };
    let mut scratch = Scratch::default();
    let mut row = vec![0.0; RowLayout { venues: 1 }.len()];
    engine::simulate(&markets[1], &returns, &mut scratch, &mut row);
    assert_eq!(scratch.first_intervention, Some(0));
    for path in 0..s.file().simulation.paths {
        assert_eq!(
            out.row(path, 1)[Metric::Interventions.index()],
            1.0,
            "path {path}"
        );
    }
}

#[test]
fn a_global_drawdown_supervisor_watches_the_traded_price() {
    // "a" (10/11 of the open interest) holds one 20x long that the 5% fall liquidates at
    // step 4 into its own thin book (routing 0): its price falls some 10% below "b"'s, which
    // only follows the fundamental. From step 5 the price is flat and "a"'s dislocation
    // decays. A global supervisor watches the index the path reports (open-interest weights
    // on prices), so at step 5 its drawdown is exactly the reported one: a threshold a hair
    // below it trips the supervisor at step 5, a hair above never. An equal-weight average,
    // or a weighted average of log prices, sees another figure.
    let dir = tempfile::TempDir::new().unwrap();
    let path = returns(&[(-0.01, 5), (0.0, 15)]);
    let venues = venue(
        dir.path(),
        "a",
        "x",
        "long,1000000000,100,20\n",
        "insurance_fund = 1.0e9\ndepth_1pct = 1.0e8",
    ) + &venue(
        dir.path(),
        "b",
        "y",
        "long,100000000,100,1\n",
        "depth_1pct = 1.0e21",
    );
    let liquidity =
        "impact = \"linear\"\nshared_depth_1pct = 1.0e21\nrouting = 0.0\npermanent_fraction = 1.0";
    let watch = |threshold: f64| {
        let watch = format!(
            "cooperating = [\"x\", \"y\"]\nsupervision = {{ view = \"global\", metric = \"drawdown\", window_steps = 10, threshold = {threshold}, action = \"circuit_breaker\", halt_steps = 3 }}"
        );
        let (s, markets) = replay(dir.path(), &path, liquidity, &venues, &watch);
        (trace(&markets[0], &s, 0).0, trace(&markets[1], &s, 0).0)
    };
    let (base, _) = watch(0.5);
    assert_eq!(liquidating_steps(&base), [4]);
    let reported = 1.0 - base.log_price_path[5].exp();
    let fundamental = 1.0 - (-0.05f64).exp();
    assert!(reported > fundamental + 0.05, "a weak case: {reported}");
    assert_eq!(watch(reported - 1e-12).1.first_intervention, Some(5));
    assert_eq!(watch(reported + 1e-12).1.first_intervention, None);
}

#[test]
fn a_drawdown_supervisor_of_venues_without_open_interest_watches_their_price() {
    // A 5x cap with full migration moves every 20x long of "e1" and "e2" to "a" outside:
    // they hold no open interest, and so no weight in any index. Watched alone, they count
    // equally and trade at the fundamental (no flow of theirs moves them), whose drawdown
    // 1 - exp(-0.01 (t + 1)) first reaches 7% at step 7 (6.8% at step 6).
    let dir = tempfile::TempDir::new().unwrap();
    let path = returns(&[(-0.01, 12)]);
    let deep = "depth_1pct = 1.0e21";
    let venues = venue(dir.path(), "a", "x", "long,100000000,100,1\n", deep)
        + &venue(dir.path(), "e1", "y", "long,1000000,100,20\n", deep)
        + &venue(dir.path(), "e2", "y", "long,2000000,100,20\n", deep);
    let (s, markets) = replay(
        dir.path(),
        &path,
        NO_IMPACT,
        &venues,
        "cooperating = [\"y\"]\nleverage_cap = 5.0\nmigration = 1.0\nsupervision = { view = \"local\", metric = \"drawdown\", window_steps = 20, threshold = 0.07, action = \"circuit_breaker\", halt_steps = 3 }",
    );
    for e in 1..3 {
        assert_eq!(markets[1].venues[e].open_interest, 0.0);
        assert_eq!(markets[1].venues[e].weight, 0.0);
    }
    assert_eq!(markets[1].supervisors[0].index_weights, [0.5, 0.5]);
    assert_eq!(first_step(&path, |p| p <= 93.0), 7);
    assert_eq!(trace(&markets[1], &s, 0).0.first_intervention, Some(7));
}

#[test]
fn a_circuit_breaker_pauses_its_venues_and_waits_as_long_again_before_it_rearms() {
    // The price falls 1% a step for 5 steps and stays 4.9% down, so the drawdown from the
    // start (the window spans the whole path) is at least 2% from step 2 (2.96%) to the end.
    // A breaker of 3 steps pauses steps 2-4 and may pause again 6 steps after it paused: it
    // acts at steps 2, 8, 14, 20, 26 and 32. The 20x long, whose trigger (95.96) the price
    // passes at step 4 (95.12), is liquidated at step 5, when its venue trades again.
    let dir = tempfile::TempDir::new().unwrap();
    let path = returns(&[(-0.01, 5), (0.0, 30)]);
    let (s, markets) = replay_one_venue(
        dir.path(),
        &path,
        "long,1000000,100,20\n",
        "{ view = \"global\", metric = \"drawdown\", window_steps = 40, threshold = 0.02, action = \"circuit_breaker\", halt_steps = 3 }",
    );
    let (base, _) = trace(&markets[0], &s, 0);
    assert_eq!(first_step(&path, |p| p <= LONG_TRIGGER), 4);
    assert_eq!(liquidating_steps(&base), [4]);
    let (paused, row) = trace(&markets[1], &s, 0);
    assert_eq!(paused.first_intervention, Some(2));
    assert_eq!(row[Metric::Interventions.index()], 6.0);
    assert_eq!(liquidating_steps(&paused), [5]);
    // Step 4, paused past the trigger, searched and liquidated nothing: not a step that
    // cascaded.
    assert_eq!(row[Metric::CascadeSteps.index()], 1.0);
    assert_eq!(row[Metric::CascadeRounds.index()], 1.0);
}

#[test]
fn a_paused_step_trades_at_the_price_earlier_liquidations_left() {
    // The path and breaker of the test above, with a 50x long (trigger 98.99) liquidated at
    // step 1, before the breaker trips: its USD 1M sold into 1e8 of shared depth per 1%
    // (routing everything to the shared pool, all of it permanent) leaves the price 1e-4
    // below the fundamental (log) for good. At step 4 the 20x long is past its trigger but
    // paused: the step searches and liquidates nothing, and must still trade at the
    // fundamental less that impact.
    let dir = tempfile::TempDir::new().unwrap();
    let path = returns(&[(-0.01, 5), (0.0, 30)]);
    let (s, markets) = replay_one_venue_in(
        dir.path(),
        &path,
        "long,1000000,100,50\nlong,1000000,100,20\n",
        "impact = \"linear\"\nshared_depth_1pct = 1.0e8\nrouting = 1.0\npermanent_fraction = 1.0",
        "cooperating = [\"x\"]\nsupervision = { view = \"global\", metric = \"drawdown\", window_steps = 40, threshold = 0.02, action = \"circuit_breaker\", halt_steps = 3 }",
    );
    let (paused, _) = trace(&markets[1], &s, 0);
    assert_eq!(paused.first_intervention, Some(2));
    assert_eq!(liquidating_steps(&paused), [1, 5]);
    let fundamental: f64 = path[..=4].iter().sum();
    let traded = paused.log_price_path[4];
    assert!(
        (traded - (fundamental - 1e-4)).abs() < 1e-12,
        "step 4 traded at {traded} (log), the fundamental at {fundamental}"
    );
}

#[test]
fn calm_steps_trade_at_the_shared_price_as_its_transient_part_decays() {
    // A 50x long (trigger 98.99) is liquidated at step 1: USD 1M into 1e8 of shared depth per
    // 1% moves the price 1e-4 (log), half of it permanent and half transient, which halves
    // every 5 steps. No supervisor, nothing dislocated: the steps after are calm, and each
    // trades at the fundamental less 0.5e-4 and less 0.5e-4 x 2^(-(t - 1) / 5).
    let dir = tempfile::TempDir::new().unwrap();
    let path = returns(&[(-0.01, 5), (0.0, 30)]);
    let liquidity = "impact = \"linear\"\nshared_depth_1pct = 1.0e8\nrouting = 1.0\npermanent_fraction = 0.5\nresilience_half_life_steps = 5.0";
    // The second policy only satisfies `replay`; the baseline is traced.
    let floor = "cooperating = [\"x\"]\nmargin_floor = { initial = 0.001, maintenance = 0.0005 }";
    let rows = "long,1000000,100,50\n";
    let (s, markets) = replay_one_venue_in(dir.path(), &path, rows, liquidity, floor);
    let (scratch, _) = trace(&markets[0], &s, 0);
    assert_eq!(liquidating_steps(&scratch), [1]);
    let mut fundamental = 0.0;
    for (t, r) in path.iter().enumerate() {
        fundamental += r;
        let impact = if t == 0 {
            0.0
        } else {
            0.5e-4 + 0.5e-4 * 2f64.powf(-((t - 1) as f64) / 5.0)
        };
        let traded = scratch.log_price_path[t];
        assert!(
            (traded - (fundamental - impact)).abs() < 1e-12,
            "step {t}: traded at {traded} (log), want {}",
            fundamental - impact
        );
    }
}

#[test]
fn a_margin_add_on_moves_every_trigger_once() {
    // A 20x long (trigger 95.96) and a 20x short (trigger 103.96) on a path that falls 1% a
    // step for 10 steps and then rises 1% a step. The drawdown first reaches 2% at step 2,
    // where a 5% add-on moves the long's trigger to 95.96 x 0.95 = 91.16 and the short's to
    // 103.96 x 1.05 = 109.16: the long goes at step 9 instead of 4, the short at step 28
    // instead of 23. The add-on is imposed once, however long the drawdown lasts.
    let dir = tempfile::TempDir::new().unwrap();
    let path = returns(&[(-0.01, 10), (0.01, 20)]);
    let (s, markets) = replay_one_venue(
        dir.path(),
        &path,
        "long,1000000,100,20\nshort,1000000,100,20\n",
        "{ view = \"global\", metric = \"drawdown\", window_steps = 40, threshold = 0.02, action = \"margin_add_on\", add_on = 0.05 }",
    );
    let steps = |long: f64, short: f64| {
        vec![
            first_step(&path, |p| p <= long),
            first_step(&path, |p| p >= short),
        ]
    };
    assert_eq!(steps(LONG_TRIGGER, SHORT_TRIGGER), [4, 23]);
    assert_eq!(
        liquidating_steps(&trace(&markets[0], &s, 0).0),
        steps(LONG_TRIGGER, SHORT_TRIGGER)
    );
    let (added, row) = trace(&markets[1], &s, 0);
    assert_eq!(added.first_intervention, Some(2));
    assert_eq!(row[Metric::Interventions.index()], 1.0);
    assert_eq!(
        liquidating_steps(&added),
        steps(LONG_TRIGGER * 0.95, SHORT_TRIGGER * 1.05)
    );
    assert_eq!(liquidating_steps(&added), [9, 28]);
}

#[test]
fn a_margin_add_on_liquidates_only_the_positions_past_their_own_moved_triggers() {
    // The path and add-on of the test above, with a 15x long (trigger 94.28, 89.56 once the
    // add-on moves it) and a 15x short (105.61, then 110.89) beside the 20x ones. The path
    // falls to 90.44 and rises to 110.35: the 15x positions' moved triggers lie beyond both,
    // so when the 20x long goes at step 9 and the 20x short at step 28, they stay open. (A
    // search that moved the mark by the add-on the wrong way took them along.)
    let dir = tempfile::TempDir::new().unwrap();
    let path = returns(&[(-0.01, 10), (0.01, 20)]);
    let (s, markets) = replay_one_venue(
        dir.path(),
        &path,
        "long,1000000,100,20\nlong,1000000,100,15\nshort,1000000,100,20\nshort,1000000,100,15\n",
        "{ view = \"global\", metric = \"drawdown\", window_steps = 40, threshold = 0.02, action = \"margin_add_on\", add_on = 0.05 }",
    );
    let long_15x = 100.0 * (1.0 - 1.0 / 15.0) / 0.99;
    let short_15x = 100.0 * (1.0 + 1.0 / 15.0) / 1.01;
    let prices: Vec<f64> = path
        .iter()
        .scan(0.0, |log, r| {
            *log += r;
            Some(100.0 * f64::exp(*log))
        })
        .collect();
    let low = prices.iter().copied().fold(f64::INFINITY, f64::min);
    let high = prices.iter().copied().fold(0.0, f64::max);
    assert!(
        long_15x * 0.95 < low && short_15x * 1.05 > high,
        "{low} {high}"
    );
    // Without the add-on all four go, each at its own trigger.
    let (base, base_row) = trace(&markets[0], &s, 0);
    assert_eq!(base_row[Metric::LiquidatedPositions.index()], 4.0);
    let mut each = [
        first_step(&path, |p| p <= LONG_TRIGGER),
        first_step(&path, |p| p <= long_15x),
        first_step(&path, |p| p >= SHORT_TRIGGER),
        first_step(&path, |p| p >= short_15x),
    ];
    each.sort_unstable();
    assert_eq!(liquidating_steps(&base), each);
    let (added, row) = trace(&markets[1], &s, 0);
    assert_eq!(added.first_intervention, Some(2));
    assert_eq!(liquidating_steps(&added), [9, 28]);
    assert_eq!(row[Metric::LiquidatedPositions.index()], 2.0);
}

#[test]
fn a_margin_add_on_does_not_rescue_a_position_the_move_already_liquidated() {
    // A 20x long (trigger 95.96, bankrupt at 95) and a 20x short (trigger 103.96). The price
    // falls 6% in step 1, past the long's trigger and its bankruptcy price, and the same
    // step's drawdown calls a 10% add-on. The long is liquidated in step 1 with the
    // baseline's bad debt: margin the add-on assumes posted after the loss does not undo it.
    // The short, still open, posts the add-on: its trigger moves to 103.96 x 1.1 = 114.36.
    let dir = tempfile::TempDir::new().unwrap();
    let path = returns(&[(0.0, 1), ((0.94f64).ln(), 1), (0.01, 30)]);
    let (s, markets) = replay_one_venue(
        dir.path(),
        &path,
        "long,1000000,100,20\nshort,1000000,100,20\n",
        "{ view = \"global\", metric = \"drawdown\", window_steps = 40, threshold = 0.05, action = \"margin_add_on\", add_on = 0.1 }",
    );
    let (base, base_row) = trace(&markets[0], &s, 0);
    let (added, added_row) = trace(&markets[1], &s, 0);
    assert_eq!(added.first_intervention, Some(1));
    let short_at = |trigger: f64| first_step(&path, |p| p >= trigger);
    assert_eq!(liquidating_steps(&base), [1, short_at(SHORT_TRIGGER)]);
    assert_eq!(
        liquidating_steps(&added),
        [1, short_at(SHORT_TRIGGER * 1.1)]
    );
    // The long's fill at 94 is below its bankruptcy price of 95: bad debt 10,000 x 1 = 10,000
    // in both; the short fills before its bankruptcy price and adds none.
    let bad = Metric::BadDebt.index();
    assert!(base_row[bad] > 9_999.0, "{}", base_row[bad]);
    assert_eq!(added_row[bad], base_row[bad]);
}

#[test]
fn near_liquidation_is_within_a_factor_one_plus_distance_of_the_mark_on_both_sides() {
    // A 20x long (trigger 95.96) on a path falling 0.01% a step, and a 20x short (trigger
    // 103.96) on one rising 0.01% a step, each USD 1M, watched at distance 0.02 with a
    // threshold of half that. The position counts once the mark is within a factor 1.02 of
    // its trigger: the long at 95.96 x 1.02 = 97.88 (1.96% above its trigger), the short at
    // 103.96 / 1.02 = 101.92. A rule of "2% of the mark" either way would act at 97.92 and
    // 101.88 instead, four steps earlier.
    for (rows, r, near, other) in [
        (
            "long,1000000,100,20\n",
            -1e-4,
            LONG_TRIGGER * 1.02,
            LONG_TRIGGER / 0.98,
        ),
        (
            "short,1000000,100,20\n",
            1e-4,
            SHORT_TRIGGER / 1.02,
            SHORT_TRIGGER * 0.98,
        ),
    ] {
        let dir = tempfile::TempDir::new().unwrap();
        let path = returns(&[(r, 300)]);
        let (s, markets) = replay_one_venue(
            dir.path(),
            &path,
            rows,
            "{ view = \"global\", metric = \"near_liquidation\", distance = 0.02, threshold = 5.0e5, action = \"circuit_breaker\", halt_steps = 1 }",
        );
        let reached = |level: f64| first_step(&path, |p| (p - level) * r.signum() >= 0.0);
        let (watched, _) = trace(&markets[1], &s, 0);
        assert_eq!(watched.first_intervention, Some(reached(near)), "{rows}");
        assert!(
            reached(other) + 3 < reached(near),
            "{rows}: the rules differ"
        );
    }
}

#[test]
fn a_gap_past_the_triggers_counts_as_near_liquidation_and_the_breaker_holds_it() {
    // Two 20x longs of USD 1M (trigger 95.96) and a flat price that gaps 6% at step 1, to 94:
    // the move carries both through their near zone (marks from 95.96 x 1.02 = 97.88 down to
    // the trigger) and past their triggers before anything is liquidated. Watched at
    // distance 0.02 with a threshold of USD 1.5M, the supervisor sees USD 2M at or past
    // liquidation and halts at step 1 for 3 steps: they are liquidated at step 4. Counting
    // only positions not yet past their trigger, it saw nothing and the breaker held nothing.
    let dir = tempfile::TempDir::new().unwrap();
    let path = returns(&[(0.0, 1), ((0.94f64).ln(), 1), (0.0, 10)]);
    let (s, markets) = replay_one_venue(
        dir.path(),
        &path,
        "long,1000000,100,20\nlong,1000000,100,20\n",
        "{ view = \"global\", metric = \"near_liquidation\", distance = 0.02, threshold = 1.5e6, action = \"circuit_breaker\", halt_steps = 3 }",
    );
    let (base, _) = trace(&markets[0], &s, 0);
    assert_eq!(liquidating_steps(&base), [1]);
    let (held, row) = trace(&markets[1], &s, 0);
    assert_eq!(held.first_intervention, Some(1));
    assert_eq!(row[Metric::Interventions.index()], 1.0);
    assert_eq!(liquidating_steps(&held), [4]);
}

#[test]
fn notional_near_liquidation_counts_the_cohorts_that_opened() {
    // The opening scenario's 1x start book is never near liquidation; its 5% cohort opens
    // at step 5 with 2e8 / 95 units a side at 20x, its longs 4.04% above their trigger and
    // its shorts 3.96% below theirs: 2 x 2e8 / 95 x 100 = USD 421.05M (at the start price)
    // within 10% of liquidation. A supervisor acts at a threshold just below that, and never
    // at one just above.
    let dir = tempfile::TempDir::new().unwrap();
    fs::write(dir.path().join("returns.csv"), opening::returns()).unwrap();
    let near = 2.0 * 2.0e8 / 95.0 * 100.0;
    let first = |threshold: f64| {
        let text = opening::SCENARIO.replace(
            "leverage_cap = 10.0",
            &format!(
                "supervision = {{ view = \"local\", metric = \"near_liquidation\", distance = 0.1, threshold = {threshold}, action = \"circuit_breaker\", halt_steps = 1 }}"
            ),
        );
        let s = Scenario::from_toml(&text, &dir.path().join("near.toml"), &[]).unwrap();
        let markets = policy::markets(&s, &s.books()).unwrap();
        trace(&markets[1], &s, 0).0.first_intervention
    };
    assert_eq!(first(near * (1.0 - 1e-9)), Some(6));
    assert_eq!(first(near * (1.0 + 1e-9)), None);
}

#[test]
fn a_cohort_opened_past_its_level_is_near_liquidation_by_its_own_triggers() {
    // The opening scenario's 5% cohort opens at step 5 at 100 e^-0.06 = 94.18, below its
    // level of 95 where its ladders were built, with one side at 20x and the other at 2x
    // (never near). Watched at distance 0.02, with a threshold below the 20x side's USD
    // 210.5M: the supervisor acts at the first step whose mark is within a factor 1.02 of
    // the 20x side's trigger at the price it opened at. Read at the level's price instead,
    // the trigger moves 1.74% the wrong way, and the supervisor acts two steps early (longs)
    // or two steps late (shorts).
    let dir = tempfile::TempDir::new().unwrap();
    fs::write(dir.path().join("returns.csv"), opening::returns()).unwrap();
    let margin = cascade::margin::MarginSchedule::flat(0.02, 0.01);
    for side in [Side::Long, Side::Short] {
        let (long, short) = match side {
            Side::Long => (20.0, 2.0),
            Side::Short => (2.0, 20.0),
        };
        let text = opening::SCENARIO
            .replace(
                "leverage_cap = 10.0",
                "supervision = { view = \"local\", metric = \"near_liquidation\", distance = 0.02, threshold = 1.0e8, action = \"circuit_breaker\", halt_steps = 1 }",
            )
            .replace(
                "long_leverage = { median = 20.0",
                &format!("long_leverage = {{ median = {long:?}"),
            )
            .replace(
                "short_leverage = { median = 20.0",
                &format!("short_leverage = {{ median = {short:?}"),
            );
        let s = Scenario::from_toml(&text, &dir.path().join("near.toml"), &[]).unwrap();
        let markets = policy::markets(&s, &s.books()).unwrap();
        let (scratch, _) = trace(&markets[1], &s, 0);
        let path = {
            let f = s.file();
            let mut path = vec![0.0; f.simulation.steps as usize];
            ShockModel::new(&f.price, f.simulation.step_seconds).fill_path(s.seed(), 0, &mut path);
            path
        };
        let opened = 100.0 * (-0.06f64).exp();
        let trigger = Position {
            side,
            quantity: 1.0,
            entry: opened,
            leverage: 20.0,
        }
        .trigger(&margin)
        .price;
        // Seen from step 6 on, the step after it opened.
        let near = |p: f64| match side {
            Side::Long => p <= trigger * 1.02,
            Side::Short => p >= trigger / 1.02,
        };
        let mut log = 0.0;
        let prices: Vec<f64> = path
            .iter()
            .map(|r| {
                log += r;
                100.0 * f64::exp(log)
            })
            .collect();
        let want = (6..prices.len()).find(|&t| near(prices[t]));
        assert_eq!(scratch.first_intervention, want, "{side:?}");
        assert_eq!(want, Some(if side == Side::Long { 8 } else { 19 }));
    }
}
