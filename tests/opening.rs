//! Positions opened during the horizon (`[venues.opening]`): cohorts open when the mark first
//! falls to their level, at that mark; a rebound liquidates the shorts opened near the lows
//! and a deeper fall the longs; a policy's leverage cap applies to what opens under it.

use std::fs;
use std::path::Path;

use cascade::book::{Position, Side};
use cascade::engine::{self, Scratch};
use cascade::ladder::{Fill, Ladder};
use cascade::margin::MarginSchedule;
use cascade::market::Market;
use cascade::metrics::{Metric, RowLayout};
use cascade::policy;
use cascade::scenario::Scenario;
use cascade::scenario::file::ImpactLaw;
use cascade::shocks::ShockModel;
use tempfile::TempDir;

use crate::support::cascade as run_cli;

/// One venue without impact (depth far beyond any flow). Its start book is at 1x and can
/// never be liquidated; two cohorts of 20x positions open at falls of 5% and 20%.
pub(crate) const SCENARIO: &str = r#"
name = "opening"

[simulation]
paths = 3
steps = 40
seed = 1

[price]
start = 100.0
model = "historical"
returns_csv = "returns.csv"

[liquidity]
impact = "linear"
shared_depth_1pct = 1.0e15
permanent_fraction = 1.0

[[venues]]
name = "solo"
jurisdiction = "x"
initial_margin = 0.02
maintenance_margin = 0.01
insurance_fund = 1.0e9
depth_1pct = 1.0e15
open_interest = 1.0e9

[venues.book]
positions = 100
long_leverage = { median = 1.0, dispersion = 0.0 }
short_leverage = { median = 1.0, dispersion = 0.0 }

[venues.opening]
levels = [0.05, 0.2]
notional = 2.0e8
positions = 50
long_leverage = { median = 20.0, dispersion = 0.0 }
short_leverage = { median = 20.0, dispersion = 0.0 }

[[policies]]
name = "baseline"

[[policies]]
name = "capped"
cooperating = ["x"]
leverage_cap = 10.0
"#;

/// Log returns: 12 steps of -1% (to 88.7), then 20 of +1% (to 108.3), then flat.
pub(crate) fn returns() -> String {
    let mut csv = String::from("log_return\n");
    for t in 0..40 {
        let r = match t {
            0..12 => -0.01,
            12..32 => 0.01,
            _ => 0.0,
        };
        csv.push_str(&format!("{r}\n"));
    }
    csv
}

/// Mean of `metric` under policy `p` in a result directory.
fn mean(dir: &Path, p: usize, metric: &str) -> f64 {
    let text = fs::read_to_string(dir.join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    summary["policies"][p]["metrics"][metric]["mean"]
        .as_f64()
        .unwrap()
}

/// An opening scenario `text` replayed through the library over [`returns`].
struct Replay {
    /// Holds the returns the scenario reads.
    _dir: TempDir,
    /// The drawn books, venue by venue.
    books: Vec<Vec<Position>>,
    /// The markets, one per policy.
    markets: Vec<Market>,
    /// Path 0's log returns.
    path: Vec<f64>,
}

fn replay(text: &str) -> Replay {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("returns.csv"), returns()).unwrap();
    let s = Scenario::from_toml(text, &dir.path().join("opening.toml"), &[]).unwrap();
    let books = s.books();
    let markets = policy::markets(&s, &books).unwrap();
    let f = s.file();
    let mut path = vec![0.0; f.simulation.steps as usize];
    ShockModel::new(&f.price, f.simulation.step_seconds).fill_path(s.seed(), 0, &mut path);
    Replay {
        _dir: dir,
        books,
        markets,
        path,
    }
}

/// The price after each step of `path`, from 100 (without impact).
fn prices(path: &[f64]) -> Vec<f64> {
    path.iter()
        .scan(100f64.ln(), |log, r| {
            *log += r;
            Some(log.exp())
        })
        .collect()
}

/// One path of `market` over `path`: its row of metrics and its scratch.
fn simulate(market: &Market, path: &[f64]) -> (Vec<f64>, Scratch) {
    let mut scratch = Scratch::default();
    let mut row = vec![0.0; RowLayout { venues: 1 }.len()];
    engine::simulate(market, path, &mut scratch, &mut row);
    (row, scratch)
}

#[test]
fn a_rebound_liquidates_the_shorts_opened_near_the_lows() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    fs::write(d.join("opening.toml"), SCENARIO).unwrap();
    fs::write(d.join("returns.csv"), returns()).unwrap();
    let (code, _, err) = run_cli(
        d,
        &[
            "run",
            "opening.toml",
            "--out",
            "r",
            "--quiet",
            "--no-report",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let r = d.join("r");
    // The 5% cohort opens at 100 e^-0.06 = 94.18 with 2e8 / 95 units a side. At 20x and 1%
    // maintenance its longs trigger 4.04% lower (90.37, reached at 88.7) and its shorts
    // 3.96% higher (97.91, passed on the way back to 108); the 20% cohort never opens and
    // the 1x start book cannot be liquidated. Notional is valued at the start price.
    let units = 2.0e8 / 95.0;
    let side = units * 100.0;
    let long = mean(&r, 0, "liquidated_long_notional");
    let short = mean(&r, 0, "liquidated_short_notional");
    assert!((long - side).abs() <= 1e-6 * side, "longs {long} vs {side}");
    assert!(
        (short - side).abs() <= 1e-6 * side,
        "shorts {short} vs {side}"
    );
    assert_eq!(mean(&r, 0, "liquidated_positions"), 100.0);
    // Open interest lost is net of what opened, and a side's forced closes count once:
    // the cohort came and went on both sides and the start book is whole, so none is lost
    // (counting both sides' closes against one side's opening made it side / 1e9).
    let lost = mean(&r, 0, "open_interest_lost");
    assert!(lost.abs() < 1e-12, "{lost}");
    // Fills at the step's average price: no bad debt at 20x on 1% moves.
    assert_eq!(mean(&r, 0, "bad_debt"), 0.0);

    // Under a 10x cap the cohort opens at 10x: longs trigger 9.1% lower (85.6, never
    // reached), shorts 8.9% higher (102.6, reached).
    let long = mean(&r, 1, "liquidated_long_notional");
    let short = mean(&r, 1, "liquidated_short_notional");
    assert_eq!(long, 0.0);
    assert!((short - side).abs() <= 1e-6 * side, "capped shorts {short}");
}

#[test]
fn a_cohorts_liquidated_traders_had_their_margin_at_the_price_it_opened_at() {
    // The rebound path of the test above, through the library for the path's ledger: both
    // sides of the 5% cohort are liquidated and nothing of the 1x start book, so the margin
    // at stake is the cohort's, 1/20 of its notional at the price it opened at (100 e^-0.06,
    // not the level's 95 that its ladders were built at): 2 x (2e8 / 95) x 94.18 / 20. Under
    // the 10x cap only its shorts go, with a tenth of their notional at stake.
    let r = replay(SCENARIO);
    let units = 2.0e8 / 95.0;
    let opened = 100.0 * (-0.06f64).exp();
    for (market, stake) in [
        (&r.markets[0], 2.0 * units * opened / 20.0),
        (&r.markets[1], units * opened / 10.0),
    ] {
        let mut row = vec![0.0; RowLayout { venues: 1 }.len()];
        let ledger = engine::simulate(market, &r.path, &mut Scratch::default(), &mut row);
        assert!(
            (ledger.stake - stake).abs() <= 1e-6 * stake,
            "stake {} vs {stake}",
            ledger.stake
        );
    }
}

#[test]
fn a_cohort_opened_past_its_level_is_liquidated_at_its_own_triggers() {
    // The 5% cohort opens at 100 e^-0.06 = 94.18 (step 6), below its level of 95 where its
    // ladders were built: its 20x longs trigger at 90.37 and are crossed at step 11 (89.58;
    // 90.48 at step 10). The start book's 11x longs (entries around 100) trigger near 91 and
    // are crossed at steps 9 and 10: those steps search the venue's ladders, the cohort's
    // too, and must not take the cohort's longs, which a trigger shifted the wrong way (to
    // 91.96) would.
    let r = replay(&SCENARIO.replacen(
        "long_leverage = { median = 1.0, dispersion = 0.0 }",
        "long_leverage = { median = 11.0, dispersion = 0.0 }",
        1,
    ));
    // No impact: the depth is far beyond any flow.
    let prices = prices(&r.path);
    // The step (from 0) whose price first reaches a long's trigger, if any does.
    let margin = MarginSchedule::flat(0.02, 0.01);
    let crossed_at = |p: &Position| {
        let trigger = p.trigger(&margin).price;
        prices.iter().position(|&x| x <= trigger)
    };
    let cohort = Position {
        side: Side::Long,
        quantity: 2.0e8 / 95.0,
        entry: prices[5],
        leverage: 20.0,
    };
    assert_eq!(crossed_at(&cohort), Some(10));
    let start: Vec<&Position> = r.books[0].iter().filter(|p| p.side == Side::Long).collect();
    let searched = |step| start.iter().any(|p| crossed_at(p) == Some(step));
    assert!(
        searched(8) || searched(9),
        "a weak case: no search before step 10"
    );
    let want = start
        .iter()
        .filter_map(|p| Some(p.quantity * prices[crossed_at(p)?]))
        .sum::<f64>()
        + cohort.quantity * prices[10];
    let got = simulate(&r.markets[0], &r.path).0[Metric::LiquidatedLongValue.index()];
    assert!(
        (got - want).abs() <= 1e-6 * want,
        "liquidated longs at {got}, want {want}"
    );
}

#[test]
fn each_cohort_that_opens_is_liquidated_at_its_own_triggers() {
    // Cohorts at falls of 3% and 5% open at steps 3 (96.08) and 5 (94.18), each with 2e8 of
    // notional at its level; their 20x longs are crossed at steps 8 (trigger 92.19) and 10
    // (90.37). Each cohort keeps its own state: the second to open must not take the
    // first's.
    let r = replay(&SCENARIO.replace("levels = [0.05, 0.2]", "levels = [0.03, 0.05]"));
    let prices = prices(&r.path);
    let margin = MarginSchedule::flat(0.02, 0.01);
    let mut crossings = Vec::new();
    let mut want = 0.0;
    for level in [97.0, 95.0] {
        let opened = prices.iter().position(|&p| p <= level).unwrap();
        let long = Position {
            side: Side::Long,
            quantity: 2.0e8 / level,
            entry: prices[opened],
            leverage: 20.0,
        };
        let trigger = long.trigger(&margin).price;
        let crossed = opened + prices[opened..].iter().position(|&p| p <= trigger).unwrap();
        crossings.push(crossed);
        want += long.quantity * prices[crossed];
    }
    assert_eq!(crossings, [8, 10]);
    let got = simulate(&r.markets[0], &r.path).0[Metric::LiquidatedLongValue.index()];
    assert!(
        (got - want).abs() <= 1e-6 * want,
        "liquidated longs at {got}, want {want}"
    );
}

#[test]
fn a_cohorts_forced_sales_move_the_price() {
    // The 5% cohort's 20x longs (2e8 / 95 units, USD 210.5M at the start price) are crossed
    // at step 10; its 2x shorts and the 1x start book never are. With linear, permanent
    // impact and USD 2.105e10 of depth per 1%, shared and local alike, their sale moves the
    // price down by 0.01 x 210.5M / 2.105e10 = 1e-4 in log at that step (after it, arbitrage
    // relaxes the venue's local part).
    let depth = 2.0e8 / 95.0 * 100.0 / 1e-2;
    let r = replay(&SCENARIO.replace("1.0e15", &format!("{depth:e}")).replace(
        "short_leverage = { median = 20.0",
        "short_leverage = { median = 2.0",
    ));
    let (row, scratch) = simulate(&r.markets[0], &r.path);
    assert_eq!(row[Metric::LiquidatedPositions.index()], 50.0);
    let mut exogenous = 0.0;
    for (t, r) in r.path.iter().enumerate().take(11) {
        exogenous += r;
        let impact = if t == 10 { -1e-4 } else { 0.0 };
        let moved = scratch.log_price_path[t] - exogenous;
        assert!(
            (moved - impact).abs() < 1e-9,
            "step {t}: moved {moved}, want {impact}"
        );
    }
}

#[test]
fn a_cohort_whose_level_is_never_reached_changes_nothing() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    fs::write(d.join("returns.csv"), returns()).unwrap();
    // Only the 20% cohort: the price never falls that far, so results equal having none.
    let with = SCENARIO.replace("levels = [0.05, 0.2]", "levels = [0.2]");
    let start = with.find("[venues.opening]").unwrap();
    let end = with.find("[[policies]]").unwrap();
    let without = format!("{}{}", &with[..start], &with[end..]);
    fs::write(d.join("with.toml"), with.replace("\"opening\"", "\"with\"")).unwrap();
    fs::write(
        d.join("without.toml"),
        without.replace("\"opening\"", "\"with\""),
    )
    .unwrap();
    for (file, out) in [("with.toml", "a"), ("without.toml", "b")] {
        let (code, _, err) = run_cli(d, &["run", file, "--out", out, "--quiet", "--no-report"]);
        assert_eq!(code, 0, "{err}");
    }
    for file in ["summary.json", "paths.csv", "timeline.csv"] {
        // The summary names the scenario it came from, which differs; nothing else may.
        let read = |dir: &str| {
            let text = fs::read_to_string(d.join(dir).join(file)).unwrap();
            let figures: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("\"scenario_sha256\""))
                .collect();
            (figures.join("\n"), text.lines().count() - figures.len())
        };
        let ((a, hashes), (b, _)) = (read("a"), read("b"));
        assert_eq!(hashes, usize::from(file == "summary.json"), "{file}");
        assert!(a == b, "{file} differs");
    }
}

/// A cohort's ladder built at its level and swept after opening at `lambda` times the level,
/// with a margin add-on on top, must account exactly as the opened positions do one by one:
/// entries, triggers and bankruptcy prices scaled by `lambda`, triggers and bankruptcy prices
/// also by the add-on. (The ledger identity alone holds whatever the shifts are.)
#[test]
fn a_shifted_cohort_sweeps_like_the_positions_that_opened() {
    let margin = MarginSchedule::flat(0.02, 0.01);
    let fee = 0.005;
    let level = 100.0;
    let lambda: f64 = 0.93;
    for side in [Side::Long, Side::Short] {
        let s = side.sign();
        // The add-on posts 5% of the bankruptcy notional more margin: bankruptcy moves away by 5%.
        let add_on = (1.0 - s * 0.05f64).ln();
        let book: Vec<Position> = (0..50)
            .map(|i| Position {
                side,
                quantity: 1.0 + f64::from(i),
                entry: level,
                leverage: 5.0 + f64::from(i),
            })
            .collect();
        let ladder = Ladder::build(&book, side, &margin, fee, None, ImpactLaw::Sqrt);
        let fill = level * lambda * (1.0 - s * 0.08);
        let shift = lambda.ln() + add_on;
        let crossed = ladder.crossed_until(0, fill.ln() - shift);
        let sweep = ladder.sweep(0, crossed, Fill::at(fill.ln()), shift, lambda);
        let [mut q, mut stake, mut owed, mut bad, mut fees, mut back] = [0.0; 6];
        for p in &book {
            let entry = p.entry * lambda;
            let bk = p.bankruptcy_price() * lambda * add_on.exp();
            let trigger = p.trigger(&margin).price * lambda * add_on.exp();
            if s * (trigger - fill) < 0.0 {
                continue;
            }
            q += p.quantity;
            stake += s * p.quantity * (entry - bk);
            owed += s * p.quantity * (entry - fill);
            let equity = s * p.quantity * (fill - bk);
            if equity < 0.0 {
                bad -= equity;
            } else {
                let f = equity.min(fee * p.quantity * fill);
                fees += f;
                back += equity - f;
            }
        }
        assert!(q > 0.0 && bad > 0.0 && back > 0.0, "{side:?}: a weak case");
        for (what, got, want) in [
            ("quantity", sweep.quantity, q),
            ("stake", sweep.stake, stake),
            ("counterparty", sweep.counterparty, owed),
            ("bad debt", sweep.bad_debt, bad),
            ("fees", sweep.fees, fees),
            ("returned", sweep.returned, back),
        ] {
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{side:?} {what}: {got} vs {want}"
            );
        }
    }
}

/// Auto-deleveraging draws on every profitable position of the opposite side, including those
/// that opened during the horizon. The 5% cohort of [`adl_cohort_run`] opens at 100 e^-0.06 =
/// 94.18; a 15% gap then bankrupts its 20x longs, and only its own shorts, now in profit, can
/// pay.
#[test]
fn adl_draws_on_the_profits_of_cohorts_that_opened() {
    let mut returns = [0.0; 12];
    returns[..6].fill(-0.01);
    returns[6] = -0.15;
    let tmp = adl_cohort_run(returns);
    let d = tmp.path();
    let r = d.join("r");
    // The cohort's longs (bankrupt at 95% of 94.18) fill at the gap step's average price,
    // below that: bad debt, with nothing in the fund.
    let bad = mean(&r, 0, "bad_debt");
    assert!(bad > 1.0e6, "bad debt {bad}");
    assert_eq!(mean(&r, 0, "insurance_fund_drawn"), 0.0);
    // The cohort's shorts hold 2e8 / 95 units entered at 94.18, worth 100 e^-0.21 now: their
    // profit covers the shortfall many times, so nothing is left unpaid, and the notional
    // deleveraged is the shortfall's share of that profit times the shorts' quantity, valued
    // at the start price (100) like every position figure.
    assert_eq!(mean(&r, 0, "unabsorbed_loss"), 0.0);
    assert_eq!(mean(&r, 0, "insolvent_venues"), 0.0);
    let entry = 100.0 * (-0.06f64).exp();
    let price = 100.0 * (-0.21f64).exp();
    let expected = bad * 100.0 / (entry - price);
    let adl = mean(&r, 0, "adl_notional");
    assert!(
        (adl - expected).abs() <= 1e-9 * expected,
        "adl notional {adl} vs {expected}"
    );
}

/// But not on positions a path has liquidated. The cohort opens at 94.18 as above; a 4.6%
/// rise then liquidates its 20x shorts (triggered 3.96% above their entry, short of their
/// bankruptcy at 5%), and a 25% gap bankrupts its 20x longs: nobody in profit is left on the
/// other side, so all of their bad debt is unabsorbed. (Counting the liquidated shorts as
/// open, ADL took USD 118M of their notional.)
#[test]
fn adl_does_not_draw_on_cohort_positions_already_liquidated() {
    let mut returns = [0.0; 12];
    returns[..6].fill(-0.01);
    returns[6] = 0.045;
    returns[7] = -0.25;
    let tmp = adl_cohort_run(returns);
    let r = tmp.path().join("r");
    assert!(mean(&r, 0, "liquidated_short_notional") > 1.0e8);
    let bad = mean(&r, 0, "bad_debt");
    assert!(bad > 1.0e6, "bad debt {bad}");
    assert_eq!(mean(&r, 0, "adl_notional"), 0.0);
    assert_eq!(mean(&r, 0, "unabsorbed_loss"), bad);
    assert_eq!(mean(&r, 0, "insolvent_venues"), 1.0);
}

/// Runs one path of a venue whose start book holds only 1x longs (never liquidated, and no
/// shorts to deleverage), with an empty fund, ADL, and a cohort of 20x longs and shorts that
/// opens when the price first falls 5%, on the log returns `returns` (12 steps). Depth is so
/// large that impact moves no price beyond a part in 1e14. Returns the directory holding the
/// result `r`.
fn adl_cohort_run(returns: [f64; 12]) -> TempDir {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let scenario = r#"
name = "adl"

[simulation]
paths = 1
steps = 12
seed = 1

[price]
start = 100.0
model = "historical"
returns_csv = "returns.csv"

[liquidity]
impact = "linear"
shared_depth_1pct = 1.0e21
permanent_fraction = 1.0

[[venues]]
name = "solo"
jurisdiction = "x"
initial_margin = 0.02
maintenance_margin = 0.01
insurance_fund = 0.0
adl = true
depth_1pct = 1.0e21

[venues.book]
positions_csv = "book.csv"

[venues.opening]
levels = [0.05]
notional = 2.0e8
positions = 50
long_leverage = { median = 20.0, dispersion = 0.0 }
short_leverage = { median = 20.0, dispersion = 0.0 }
"#;
    fs::write(d.join("adl.toml"), scenario).unwrap();
    fs::write(
        d.join("book.csv"),
        "side,notional,entry_price,leverage\nlong,1000000000,100,1\n",
    )
    .unwrap();
    let mut text = String::from("log_return\n");
    for r in returns {
        text.push_str(&format!("{r}\n"));
    }
    fs::write(d.join("returns.csv"), text).unwrap();
    let (code, _, err) = run_cli(
        d,
        &["run", "adl.toml", "--out", "r", "--quiet", "--no-report"],
    );
    assert_eq!(code, 0, "{err}");
    tmp
}

#[test]
fn a_cohorts_defaults_are_filled_in_so_spelling_them_out_changes_nothing() {
    let text = |extra: &str| {
        format!(
            "name = \"d\"\n[simulation]\npaths = 2\nsteps = 5\nseed = 1\n[price]\nstart = 100.0\nannual_volatility = 0.5\n[liquidity]\nshared_depth_1pct = 1.0e9\n[[venues]]\nname = \"v\"\njurisdiction = \"x\"\ninitial_margin = 0.02\nmaintenance_margin = 0.01\ndepth_1pct = 1.0e9\nopen_interest = 1.0e9\n[venues.opening]\nlevels = [0.05]\nnotional = 1.0e8\nlong_leverage = {{ median = 4.5, dispersion = 0.6 }}\nshort_leverage = {{ median = 4.5, dispersion = 0.6 }}\n{extra}[[policies]]\nname = \"baseline\"\n"
        )
    };
    let parse =
        |t: String| cascade::scenario::Scenario::from_toml(&t, Path::new("d.toml"), &[]).unwrap();
    let implicit = parse(text(""));
    let explicit = parse(text("positions = 1000\nsize_tail = 1.5\n"));
    let opening = implicit.file().venues[0].opening.as_ref().unwrap();
    // `validate` prints the resolved scenario, and results hash it.
    assert_eq!(
        (opening.positions, opening.size_tail),
        (Some(1000), Some(1.5))
    );
    assert_eq!(implicit.to_toml(), explicit.to_toml());
    assert_eq!(implicit.sha256(), explicit.sha256());
}
