//! Policies and the paired comparison (MODEL.md sections 7 and 8): what each lever must and
//! must not do, checked on common random numbers.

use std::path::{Path, PathBuf};

use cascade::book::Side;
use cascade::market::Market;
use cascade::metrics::{Metric, RowLayout, VenueMetric};
use cascade::policy;
use cascade::runner::{self, PathRange, RunOptions, RunOutput};
use cascade::scenario::file::{FundSizing, MarginFloor, Policy, PooledFund};
use cascade::scenario::{Override, Scenario};
use cascade::summary::{GroupSummary, Summary};

/// Two jurisdictions with two venues each, plus `policies` (TOML `[[policies]]` entries after
/// the baseline) and `liquidity` (the `[liquidity]` body).
pub(crate) fn scenario(
    liquidity: &str,
    venue_extra: &str,
    short_leverage: &str,
    policies: &str,
) -> Scenario {
    let text = scenario_text(liquidity, venue_extra, short_leverage, policies);
    Scenario::from_toml(&text, Path::new("policies.toml"), &[]).unwrap()
}

/// The text of [`scenario`].
fn scenario_text(
    liquidity: &str,
    venue_extra: &str,
    short_leverage: &str,
    policies: &str,
) -> String {
    let venue = |name: &str, jur: &str, im: f64, mm: f64, oi: f64| {
        format!(
            "[[venues]]\nname = \"{name}\"\njurisdiction = \"{jur}\"\ninitial_margin = {im}\nmaintenance_margin = {mm}\nliquidation_fee = 0.003\ninsurance_fund = 2.0e6\ndepth_1pct = 4.0e6\nopen_interest = {oi}\n{venue_extra}\n[venues.book]\npositions = 400\nlong_leverage = {{ median = 12.0, dispersion = 0.8 }}\nshort_leverage = {short_leverage}\n"
        )
    };
    format!(
        "name = \"policies\"\n[simulation]\npaths = 200\nsteps = 180\nseed = 5\n[price]\nstart = 60000.0\nannual_volatility = 0.6\n[price.stress]\ndrop = 0.12\nstart_step = 30\nduration_steps = 30\n[liquidity]\n{liquidity}\n{}{}{}{}[[policies]]\nname = \"fragmented\"\n{policies}",
        venue("on-1", "onshore", 0.02, 0.01, 3.0e8),
        venue("on-2", "onshore", 0.05, 0.025, 2.0e8),
        venue("off-1", "offshore", 0.008, 0.004, 6.0e8),
        venue("off-2", "offshore", 0.01, 0.005, 4.0e8),
    )
}

pub(crate) const DEFAULT_LIQUIDITY: &str =
    "impact = \"sqrt\"\nshared_depth_1pct = 5.0e7\nrouting = 0.6\ndepth_withdrawal = 0.5";
pub(crate) const SHORTS: &str = "{ median = 3.0, dispersion = 0.6 }";

pub(crate) fn run(s: &Scenario) -> (Vec<Market>, RunOutput) {
    let markets = policy::markets(s, &s.books()).unwrap();
    let range = PathRange {
        start: 0,
        end: s.file().simulation.paths,
    };
    let out = runner::run(
        s,
        &markets,
        range,
        RunOptions {
            threads: Some(2),
            progress: false,
            memory: None,
        },
    )
    .unwrap();
    (markets, out)
}

pub(crate) fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_policy_with_no_cooperating_jurisdiction_is_the_baseline_byte_for_byte() {
    let s = scenario(
        DEFAULT_LIQUIDITY,
        "",
        SHORTS,
        "[[policies]]\nname = \"nobody\"\ncooperating = []\n[[policies]]\nname = \"everybody\"\ncooperating = [\"onshore\", \"offshore\"]\nmargin_floor = { initial = 0.5, maintenance = 0.25 }\n",
    );
    let (_, out) = run(&s);
    let n = s.file().simulation.paths;
    let rows = |out: &RunOutput, p: usize| -> Vec<u64> {
        (0..n).flat_map(|i| bits(out.row(i, p))).collect()
    };
    assert_eq!(rows(&out, 0), rows(&out, 1));
    assert_ne!(
        rows(&out, 0),
        rows(&out, 2),
        "a policy that does something changes results"
    );
    let summary = serde_json::to_value(Summary::build(
        &s,
        &policy::markets(&s, &s.books()).unwrap(),
        &out,
    ))
    .unwrap();
    let c = &summary["comparisons"][0]["metrics"]["liquidated_notional"];
    assert_eq!(c["mean_difference"], 0.0);
    assert_eq!(c["share_better"], 0.0);

    // Levers adopted by nobody change nothing: the market is the baseline's.
    let levers = Policy {
        name: "levers-for-nobody".to_string(),
        margin_floor: Some(MarginFloor {
            initial: 0.5,
            maintenance: 0.25,
        }),
        leverage_cap: Some(2.0),
        migration: Some(0.5),
        routing: Some(0.1),
        pooled_default_fund: Some(PooledFund {
            sizing: FundSizing::Sum,
            stress_move: None,
        }),
        ..Policy::default()
    };
    let market = policy::market(&s, &s.books(), &levers).unwrap();
    let range = PathRange { start: 0, end: n };
    let options = RunOptions {
        threads: Some(2),
        progress: false,
        memory: None,
    };
    let alone = runner::run(&s, &[market], range, options).unwrap();
    assert_eq!(rows(&alone, 0), rows(&out, 0));
    // A scenario cannot say so: the reader would conclude that the levers do nothing.
    let text = scenario_text(
        DEFAULT_LIQUIDITY,
        "",
        SHORTS,
        "[[policies]]\nname = \"nobody\"\nleverage_cap = 2.0\n",
    );
    let refused = Scenario::from_toml(&text, Path::new("policies.toml"), &[]).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("policies[1].cooperating: is empty"),
        "{refused}"
    );
}

#[test]
fn a_full_coverage_leverage_cap_never_increases_liquidations() {
    // Higher initial margin everywhere, maintenance unchanged, no migration: on every path the
    // cap liquidates no more than the baseline. Shorts at 1x are inert in a crash, so the
    // books are long-only in effect; impact is linear, permanent and integrated, the domain in
    // which this is a theorem (see tests/engine.rs for why it can fail outside it).
    let s = scenario(
        "impact = \"linear\"\nshared_depth_1pct = 5.0e7\nrouting = 1.0\npermanent_fraction = 1.0",
        "",
        "{ median = 1.0, dispersion = 0.0 }",
        "[[policies]]\nname = \"capped\"\ncooperating = [\"onshore\", \"offshore\"]\nmargin_floor = { initial = 0.1, maintenance = 0.001 }\n",
    );
    let (_, out) = run(&s);
    let liq = Metric::LiquidatedNotional.index();
    let mut fewer = 0;
    for path in 0..s.file().simulation.paths {
        let (base, capped) = (out.row(path, 0)[liq], out.row(path, 1)[liq]);
        assert!(
            capped <= base * (1.0 + 1e-12),
            "path {path}: {capped} > {base}"
        );
        fewer += usize::from(capped < base);
    }
    assert!(fewer > 0, "the cap mattered on some path");
}

#[test]
fn migration_conserves_open_interest_and_moves_it_offshore() {
    let s = scenario(
        DEFAULT_LIQUIDITY,
        "",
        SHORTS,
        "[[policies]]\nname = \"partial\"\ncooperating = [\"onshore\"]\nleverage_cap = 5.0\nmigration = 0.4\n",
    );
    let markets = policy::markets(&s, &s.books()).unwrap();
    let (base, partial) = (&markets[0], &markets[1]);
    let units = |m: &Market, side: Side| -> f64 {
        m.venues
            .iter()
            .map(|v| match side {
                Side::Long => v.longs.total_quantity(),
                Side::Short => v.shorts.total_quantity(),
            })
            .sum()
    };
    for side in [Side::Long, Side::Short] {
        let (a, b) = (units(base, side), units(partial, side));
        assert!(
            (a - b).abs() <= 1e-9 * a,
            "{side:?}: {a} units before, {b} after"
        );
    }
    let oi = |m: &Market, i: usize| m.venues[i].open_interest;
    for i in [2, 3] {
        assert!(
            oi(partial, i) > oi(base, i),
            "offshore venue {i} gains open interest"
        );
    }
    for i in [0, 1] {
        assert!(
            oi(partial, i) < oi(base, i),
            "onshore venue {i} loses open interest"
        );
    }
    // More longs than shorts move: the onshore venues keep more of their shorts' open interest
    // than the offshore ones gain of longs, so the venues' figures sum to more than before.
    // Shares of open interest stay shares of the baseline's (the study's) figure.
    let summed = |m: &Market| m.venues.iter().map(|v| v.open_interest).sum::<f64>();
    assert!(summed(partial) > summed(base) * (1.0 + 1e-9));
    assert_eq!(summed(base), base.total_open_interest);
    assert_eq!(partial.total_open_interest, base.total_open_interest);
}

/// A `[[venues]]` entry at 50x (2% initial, 1% maintenance margin) whose book is the CSV
/// `csv`, with the keys `extra` (fee, fund, depth).
pub(crate) fn csv_venue(name: &str, jurisdiction: &str, csv: &Path, extra: &str) -> String {
    format!(
        "[[venues]]\nname = \"{name}\"\njurisdiction = \"{jurisdiction}\"\ninitial_margin = 0.02\nmaintenance_margin = 0.01\n{extra}\n[venues.book]\npositions_csv = {:?}\n",
        csv.to_str().unwrap()
    )
}

/// Writes a positions CSV `name` into `dir` with the header and `rows`; returns its path.
pub(crate) fn positions_csv(dir: &Path, name: &str, rows: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("side,notional,entry_price,leverage\n{rows}")).unwrap();
    path
}

#[test]
fn migrating_positions_go_where_their_side_trades() {
    // A snapshot's sides need not match: outside venue "longs-only" holds no short, so a
    // short displaced by the cap must all go to "both", whatever the venues' long interest
    // (which once split shorts too, sending three quarters of this one to "longs-only").
    let dir = tempfile::TempDir::new().unwrap();
    let book = |name: &str, rows: &str| positions_csv(dir.path(), name, rows);
    let inside = book("inside.csv", "long,1000000,100,2\nshort,1000000,100,20\n");
    let longs_only = book("longs-only.csv", "long,3000000,100,2\n");
    let both = book("both.csv", "long,1000000,100,2\nshort,1000000,100,2\n");
    let venue = |name: &str, jurisdiction: &str, csv: &Path| {
        csv_venue(
            name,
            jurisdiction,
            csv,
            "liquidation_fee = 0.0\ninsurance_fund = 0.0\ndepth_1pct = 1.0e9",
        )
    };
    let text = format!(
        "name = \"sides\"\n[simulation]\npaths = 1\nsteps = 2\nseed = 1\n[price]\nstart = 100.0\nannual_volatility = 0.0\n[liquidity]\nshared_depth_1pct = 1.0e9\n{}{}{}[[policies]]\nname = \"baseline\"\n[[policies]]\nname = \"cap\"\ncooperating = [\"in\"]\nleverage_cap = 5.0\nmigration = 0.5\n",
        venue("inside", "in", &inside),
        venue("longs-only", "out", &longs_only),
        venue("both", "out", &both),
    );
    let s = Scenario::from_toml(&text, Path::new("sides.toml"), &[]).unwrap();
    let markets = policy::markets(&s, &s.books()).unwrap();
    let (base, cap) = (&markets[0], &markets[1]);
    let shorts = |m: &Market, i: usize| m.venues[i].shorts.total_quantity();
    let longs = |m: &Market, i: usize| m.venues[i].longs.total_quantity();
    // Half the short (10,000 units at 100) moves, all of it to "both".
    assert_eq!(shorts(cap, 1), 0.0, "no short lands where none trades");
    assert!((shorts(cap, 2) - shorts(base, 2) - 5_000.0).abs() < 1e-9);
    assert!((shorts(cap, 0) - 5_000.0).abs() < 1e-9);
    // The longs were under the cap: nothing of them moves.
    for i in 0..3 {
        assert_eq!(longs(cap, i), longs(base, i), "venue {i}");
    }
}

#[test]
fn migrants_keep_to_their_destinations_tiers_and_stay_where_their_side_has_nowhere_to_go() {
    // Inside, a long and a short at 20x meet a 5x cap with half of each above-cap position
    // migrating. The one venue outside holds longs only and allows 2x above 100,000 of
    // notional: the migrating long (500,000) arrives at 2x, not at its own 20x, and survives
    // a 10% fall that liquidates the baseline's 20x long (trigger 96). The short has nowhere
    // to go: it stays whole, topped up to the cap, rather than losing the half that found no
    // destination.
    let dir = tempfile::TempDir::new().unwrap();
    let book = |name: &str, rows: &str| positions_csv(dir.path(), name, rows);
    let inside = book("inside.csv", "long,1000000,100,20\nshort,1000000,100,20\n");
    let outside = book("outside.csv", "long,1000000,100,1\n");
    let extra = "liquidation_fee = 0.0\ninsurance_fund = 0.0\ndepth_1pct = 1.0e15";
    let text = format!(
        "name = \"tiers\"\n[simulation]\npaths = 1\nsteps = 4\nseed = 1\n[price]\nstart = 100.0\nannual_volatility = 0.0\n[price.stress]\ndrop = 0.1\nstart_step = 1\nduration_steps = 1\n[liquidity]\nshared_depth_1pct = 1.0e15\n{}{}[[policies]]\nname = \"baseline\"\n[[policies]]\nname = \"cap\"\ncooperating = [\"in\"]\nleverage_cap = 5.0\nmigration = 0.5\n",
        csv_venue("inside", "in", &inside, extra),
        csv_venue(
            "outside",
            "out",
            &outside,
            &format!(
                "{extra}\nmargin_tiers = [{{ above = 1.0e5, initial_margin = 0.5, maintenance_margin = 0.1 }}]"
            ),
        ),
    );
    let s = Scenario::from_toml(&text, Path::new("tiers.toml"), &[]).unwrap();
    let (markets, out) = run(&s);
    let (base, cap) = (&markets[0], &markets[1]);
    let longs = |m: &Market, i: usize| m.venues[i].longs.total_quantity();
    // Half the long (5,000 units) moved; all of the short (10,000 units) stayed.
    assert!((longs(cap, 1) - longs(base, 1) - 5_000.0).abs() < 1e-9);
    assert_eq!(cap.venues[0].shorts.total_quantity(), 10_000.0);
    assert_eq!(cap.venues[1].shorts.total_quantity(), 0.0);
    let liq = Metric::LiquidatedNotional.index();
    assert!(out.row(0, 0)[liq] > 0.0, "{:?}", out.row(0, 0));
    assert_eq!(out.row(0, 1)[liq], 0.0, "{:?}", out.row(0, 1));
}

#[test]
fn a_cover2_pool_holds_the_two_largest_stressed_losses_of_one_move() {
    // Each venue's loss beyond bankruptcy prices under a 15% move: on the fall, "a" a long at
    // 10x (bankrupt at 90, closed at 85): 10,000 x 5 = 50,000, and "c" a long at 20x
    // (bankrupt at 95): 10,000 x 10 = 100,000; on the rise, "b" a short at 10x (bankrupt at
    // 110, closed at 115): 30,000 x 5 = 150,000. Each venue's other side is at 2x, out of
    // reach. The fall costs the pool 50,000 + 100,000 and the rise 150,000: cover-2 is
    // 150,000 (not b's rise plus c's fall, 250,000, which no one move brings), unless the
    // members' own funds sum to more.
    let dir = tempfile::TempDir::new().unwrap();
    let book = |name: &str, rows: &str| positions_csv(dir.path(), name, rows);
    let books = [
        (
            "a",
            book("a.csv", "long,1000000,100,10\nshort,1000000,100,2\n"),
        ),
        (
            "b",
            book("b.csv", "short,3000000,100,10\nlong,3000000,100,2\n"),
        ),
        (
            "c",
            book("c.csv", "long,1000000,100,20\nshort,1000000,100,2\n"),
        ),
    ];
    for (own, pool) in [(1_000.0, 150_000.0), (100_000.0, 300_000.0)] {
        let venues: String = books
            .iter()
            .map(|(name, csv)| {
                csv_venue(
                    name,
                    "in",
                    csv,
                    &format!("liquidation_fee = 0.0\ninsurance_fund = {own}\ndepth_1pct = 1.0e9"),
                )
            })
            .collect();
        let text = format!(
            "name = \"cover2\"\n[simulation]\npaths = 1\nsteps = 2\nseed = 1\n[price]\nstart = 100.0\nannual_volatility = 0.0\n[liquidity]\nshared_depth_1pct = 1.0e9\n{venues}[[policies]]\nname = \"baseline\"\n[[policies]]\nname = \"pooled\"\ncooperating = [\"in\"]\npooled_default_fund = {{ sizing = \"cover2\", stress_move = 0.15 }}\n",
        );
        let s = Scenario::from_toml(&text, Path::new("cover2.toml"), &[]).unwrap();
        let markets = policy::markets(&s, &s.books()).unwrap();
        assert_eq!(markets[0].funds, vec![own; 3]);
        // The pool takes the first member's place; the others' funds are merged into it.
        let funds = &markets[1].funds;
        assert!(
            (funds[0] - pool).abs() < 1e-6 && funds[1] == 0.0 && funds[2] == 0.0,
            "own funds {own}: {funds:?}, expected a pool of {pool}"
        );
        assert!(markets[1].venues.iter().all(|v| v.fund == 0));
    }
}

/// A `[[venues]]` entry holding USD `long` of 50x longs entered at 100 (bankrupt at 98) and
/// USD 1M of 1x shorts, with the fund `fund`, no fee, no ADL and no impact.
fn jump_venue(dir: &Path, name: &str, jurisdiction: &str, long: f64, fund: f64) -> String {
    let rows = format!("long,{long},100,50\nshort,1000000,100,1\n");
    let csv = positions_csv(dir, &format!("{name}.csv"), &rows);
    let extra = format!(
        "liquidation_fee = 0.0\ninsurance_fund = {fund:?}\nadl = false\ndepth_1pct = 1.0e15"
    );
    csv_venue(name, jurisdiction, &csv, &extra)
}

/// Two paths of a price that jumps 15% down at step 2, over `venues`: the baseline, then the
/// `[[policies]]` entries `policies`.
fn jump_scenario(dir: &Path, venues: &str, policies: &str) -> Scenario {
    let text = format!(
        "name = \"jump\"\n[simulation]\npaths = 2\nsteps = 5\nseed = 1\n[price]\nstart = 100.0\nannual_volatility = 0.0\n[price.stress]\ndrop = 0.15\nstart_step = 2\n[liquidity]\nshared_depth_1pct = 1.0e15\n{venues}[[policies]]\nname = \"baseline\"\n{policies}",
    );
    Scenario::from_toml(&text, &dir.join("jump.toml"), &[]).unwrap()
}

#[test]
fn a_jurisdiction_is_insolvent_where_any_of_its_venues_is() {
    // In jurisdiction "j", venue "small" owes 65,000 of bad debt against a fund of 1,000,
    // and venue "large" owes 1.17e14, all paid from its fund. The unpaid 64,000 is under
    // 1e-9 of the jurisdiction's bad debt, but it is all of the small venue's: the small
    // venue is insolvent, and so is its jurisdiction.
    let dir = tempfile::TempDir::new().unwrap();
    let venues = jump_venue(dir.path(), "small", "j", 5.0e5, 1000.0)
        + &jump_venue(dir.path(), "large", "j", 9.0e14, 1.0e15);
    let s = jump_scenario(dir.path(), &venues, "");
    let (markets, out) = run(&s);
    let summary = Summary::build(&s, &markets, &out);
    let base = &summary.policies[0];
    let venue = |name: &str| base.venues.iter().find(|v| v.name == name).unwrap();
    assert_eq!(venue("small").insolvency_probability, 1.0);
    assert_eq!(venue("large").insolvency_probability, 0.0);
    assert!(venue("small").unabsorbed_loss_mean < 1e-9 * venue("large").bad_debt_mean);
    assert_eq!(base.jurisdictions[0].insolvency_probability, 1.0);
    assert_eq!(base.probabilities.any_insolvency, 1.0);
}

#[test]
fn a_pooled_fund_books_each_members_draw_and_loss_at_that_member() {
    // Venue "a" keeps its own fund and liquidates nothing (1x positions); "b" and "c" pool
    // theirs (1,000 and 2,000) and their 50x longs owe 130,000 and 260,000 after the 15%
    // jump. The pool pays each claim the same share, 3,000 / 390,000: b draws 1,000 and
    // leaves 129,000 unpaid, c draws 2,000 and leaves 258,000. Each figure is the member's
    // own, in its own place: the pool's index among the funds is not a venue's index.
    let dir = tempfile::TempDir::new().unwrap();
    let calm = positions_csv(
        dir.path(),
        "a.csv",
        "long,1000000,100,1\nshort,1000000,100,1\n",
    );
    let venues = csv_venue(
        "a",
        "a",
        &calm,
        "liquidation_fee = 0.0\ninsurance_fund = 5000.0\nadl = false\ndepth_1pct = 1.0e15",
    ) + &jump_venue(dir.path(), "b", "b", 1.0e6, 1000.0)
        + &jump_venue(dir.path(), "c", "c", 2.0e6, 2000.0);
    let pooled = "[[policies]]\nname = \"pooled\"\ncooperating = [\"b\", \"c\"]\npooled_default_fund = { sizing = \"sum\" }\n";
    let s = jump_scenario(dir.path(), &venues, pooled);
    let (markets, out) = run(&s);
    let summary = Summary::build(&s, &markets, &out);
    let pooled = &summary.policies[1];
    let close = |x: f64, want: f64| (x - want).abs() <= 1e-6 * want.max(1.0);
    for (name, bad, drawn) in [
        ("a", 0.0, 0.0),
        ("b", 130_000.0, 1_000.0),
        ("c", 260_000.0, 2_000.0),
    ] {
        let v = pooled.venues.iter().find(|v| v.name == name).unwrap();
        let got = (
            v.bad_debt_mean,
            v.insurance_fund_drawn_mean,
            v.unabsorbed_loss_mean,
        );
        assert!(
            close(got.0, bad) && close(got.1, drawn) && close(got.2, bad - drawn),
            "{name}: (bad debt, drawn, unabsorbed) {got:?}, expected ({bad}, {drawn}, {})",
            bad - drawn
        );
    }
}

#[test]
fn a_position_counts_once_however_many_slices_close_it() {
    // One 50x long in four slices of 25%, all past their triggers after the 15% jump: one
    // liquidated position, its whole notional (the report and README said each slice
    // counted).
    let dir = tempfile::TempDir::new().unwrap();
    let venue = jump_venue(dir.path(), "a", "a", 1.0e6, 1000.0).replace(
        "liquidation_fee = 0.0",
        "liquidation_fee = 0.0\nliquidation = \"partial\"\npartial_fraction = 0.25",
    );
    let s = jump_scenario(dir.path(), &venue, "");
    let (markets, out) = run(&s);
    assert_eq!(markets[0].venues[0].ladders().0.len(), 4, "four slices");
    for path in 0..2 {
        let row = out.row(path, 0);
        assert_eq!(row[Metric::LiquidatedPositions.index()], 1.0);
        assert!((row[Metric::LiquidatedLongNotional.index()] - 1.0e6).abs() < 1e-6);
    }
}

#[test]
fn a_pool_sized_to_exactly_the_loss_it_meets_leaves_no_venue_insolvent() {
    // Two venues' 50x longs (bankrupt at 98) fill at 85 after a 15% jump: bad debt 130,000
    // and 260,000. A cover-2 pool at the same 15% holds exactly their sum, but the path's
    // price reaches 85 by another road (exp of summed logs) than the stress (100 x 0.85):
    // the pool falls short by the last bits, a few 1e-5 USD. That is rounding, not two
    // insolvent venues; the baseline's small funds leave both insolvent. Nor is it a call on
    // ADL where the venues have it: deleveraging profitable shorts for the last bits of a sum
    // made every path an ADL event.
    for adl in [false, true] {
        let dir = tempfile::TempDir::new().unwrap();
        let venues = jump_venue(dir.path(), "a", "a", 1.0e6, 1000.0)
            + &jump_venue(dir.path(), "c", "c", 2.0e6, 1000.0);
        let venues = venues.replace("adl = false", &format!("adl = {adl}"));
        let pooled = "[[policies]]\nname = \"pooled\"\ncooperating = [\"a\", \"c\"]\npooled_default_fund = { sizing = \"cover2\", stress_move = 0.15 }\n";
        let s = jump_scenario(dir.path(), &venues, pooled);
        let (markets, out) = run(&s);
        assert!(
            (markets[1].funds[0] - 390_000.0).abs() < 1e-6,
            "{:?}",
            markets[1].funds
        );
        let (u, insolvent, deleveraged) = (
            Metric::UnabsorbedLoss.index(),
            Metric::InsolventVenues.index(),
            Metric::AdlNotional.index(),
        );
        for path in 0..2 {
            let (base, pooled) = (out.row(path, 0), out.row(path, 1));
            // With ADL the shorts' profit (150,000 a venue) covers venue a's loss beyond its
            // fund, not venue c's.
            assert_eq!(base[insolvent], if adl { 1.0 } else { 2.0 }, "adl {adl}");
            assert_eq!(base[deleveraged] > 0.0, adl);
            assert!(
                pooled[u] > 0.0 && pooled[u] < 1e-3,
                "the case this test is about: a shortfall of rounding, not {}",
                pooled[u]
            );
            assert_eq!(pooled[insolvent], 0.0, "path {path}: {pooled:?}");
            assert_eq!(
                pooled[deleveraged], 0.0,
                "adl {adl}, path {path}: {pooled:?}"
            );
        }
        let summary = Summary::build(&s, &markets, &out);
        let pooled = &summary.policies[1];
        assert_eq!(pooled.probabilities.any_insolvency, 0.0);
        assert_eq!(pooled.probabilities.adl, 0.0);
        assert!(
            pooled
                .venues
                .iter()
                .all(|v| v.insolvency_probability == 0.0)
        );
        if !adl {
            assert!(
                summary.policies[0]
                    .venues
                    .iter()
                    .all(|v| v.insolvency_probability == 1.0)
            );
        }
    }
}

#[test]
fn pooling_the_default_fund_never_increases_unabsorbed_loss() {
    // Without ADL, a pooled fund meets every shortfall a member's own fund would have met.
    let s = scenario(
        DEFAULT_LIQUIDITY,
        "adl = false",
        SHORTS,
        "[[policies]]\nname = \"pooled\"\ncooperating = [\"onshore\", \"offshore\"]\npooled_default_fund = { sizing = \"sum\" }\n",
    );
    let (_, out) = run(&s);
    let u = Metric::UnabsorbedLoss.index();
    let mut helped = 0;
    for path in 0..s.file().simulation.paths {
        let (base, pooled) = (out.row(path, 0)[u], out.row(path, 1)[u]);
        assert!(
            pooled <= base + 1e-6,
            "path {path}: pooled {pooled} > separate {base}"
        );
        helped += usize::from(pooled < base);
    }
    assert!(helped > 0, "pooling helped on some path");
}

#[test]
fn the_summary_adds_venues_into_jurisdictions_and_funds_and_pairs_paths() {
    // summary.json's groups are sums of venues path by path, so their means are sums of the
    // venues' means; each venue's figures are its own cells; a pool reports what its members
    // drew; a comparison's figures are those of the per-path differences.
    let policies = "[[policies]]\nname = \"pooled\"\ncooperating = [\"onshore\", \"offshore\"]\nmargin_floor = { initial = 0.05, maintenance = 0.01 }\npooled_default_fund = { sizing = \"sum\" }\n";
    let s = scenario(DEFAULT_LIQUIDITY, "", SHORTS, policies);
    let (markets, out) = run(&s);
    let summary = Summary::build(&s, &markets, &out);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    let cell = |p: usize, v: usize, m: VenueMetric| out.column(p, out.layout.venue(v, m));
    let figures = |g: &GroupSummary| {
        [
            g.liquidated_notional_mean,
            g.liquidated_long_notional_mean,
            g.liquidated_short_notional_mean,
            g.bad_debt_mean,
            g.insurance_fund_drawn_mean,
            g.adl_notional_mean,
            g.unabsorbed_loss_mean,
            g.open_interest,
            g.liquidated_value_mean,
            g.liquidated_long_value_mean,
            g.liquidated_short_value_mean,
        ]
    };
    let mut drawn = 0.0;
    for (p, ps) in summary.policies.iter().enumerate() {
        for (v, venue) in ps.venues.iter().enumerate() {
            let long = cell(p, v, VenueMetric::LiquidatedLongNotional);
            let short = cell(p, v, VenueMetric::LiquidatedShortNotional);
            let total: Vec<f64> = long.iter().zip(&short).map(|(a, b)| a + b).collect();
            assert!(
                close(venue.liquidated_notional_mean, mean(&total)),
                "{venue:?}"
            );
            // The 99% quantile of the venue's total: the smallest path with at least 99% of
            // the paths at or below it.
            let mut sorted = total.clone();
            sorted.sort_by(f64::total_cmp);
            let rank = (0.99 * sorted.len() as f64).ceil() as usize;
            assert_eq!(venue.liquidated_notional_p99, sorted[rank - 1], "{venue:?}");
            assert!(close(venue.liquidated_long_notional_mean, mean(&long)));
            for (got, m) in [
                (
                    venue.liquidated_long_value_mean,
                    VenueMetric::LiquidatedLongValue,
                ),
                (
                    venue.liquidated_short_value_mean,
                    VenueMetric::LiquidatedShortValue,
                ),
            ] {
                assert!(close(got, mean(&cell(p, v, m))), "{venue:?}");
            }
            assert!(close(
                venue.bad_debt_mean,
                mean(&cell(p, v, VenueMetric::BadDebt))
            ));
        }
        let names: Vec<&str> = ps.jurisdictions.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["onshore", "offshore"]);
        for (j, members) in ps.jurisdictions.iter().zip([[0, 1], [2, 3]]) {
            let sum = members.map(|v| figures(&ps.venues[v]));
            for (k, got) in figures(j).into_iter().enumerate() {
                assert!(close(got, sum[0][k] + sum[1][k]), "{}: figure {k}", j.name);
            }
        }
        let venues_total: f64 = ps.venues.iter().map(|v| v.liquidated_notional_mean).sum();
        let metric = |name: &str| &ps.metrics.0.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(close(venues_total, metric("liquidated_notional").mean));
        let venues_value: f64 = ps.venues.iter().map(|v| v.liquidated_value_mean).sum();
        assert!(venues_value > 0.0 && venues_value != venues_total);
        assert!(close(venues_value, metric("liquidated_value").mean));
        for fund in &ps.funds {
            let members: Vec<usize> = fund
                .members
                .iter()
                .map(|m| ps.venues.iter().position(|v| &v.name == m).unwrap())
                .collect();
            let of_members: f64 = members
                .iter()
                .map(|&v| ps.venues[v].insurance_fund_drawn_mean)
                .sum();
            assert!(close(fund.drawn_mean, of_members), "{fund:?}");
            // Its 99% quantile is that of the members' draws summed path by path.
            let mut sums = vec![0.0; out.range.len()];
            for &v in &members {
                for (sum, d) in sums
                    .iter_mut()
                    .zip(cell(p, v, VenueMetric::InsuranceFundDrawn))
                {
                    *sum += d;
                }
            }
            sums.sort_by(f64::total_cmp);
            let rank = (0.99 * sums.len() as f64).ceil() as usize;
            assert!(sums[rank - 1] > 0.0, "a weak case: {fund:?}");
            assert!(close(fund.drawn_p99, sums[rank - 1]), "{fund:?}");
            drawn += fund.drawn_mean;
        }
        let expected = if p == 0 { vec![1; 4] } else { vec![4] };
        assert_eq!(
            ps.funds.iter().map(|f| f.members.len()).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(
            ps.funds.iter().map(|f| f.start).sum::<f64>(),
            markets[p].funds.iter().sum::<f64>()
        );
    }
    assert!(drawn > 0.0, "some fund pays on some path");
    let liq = Metric::LiquidatedNotional.index();
    let (policy, base) = (out.column(1, liq), out.column(0, liq));
    // Differences within rounding of the figures (summary::TIE) are ties.
    let diff: Vec<f64> = policy
        .iter()
        .zip(&base)
        .map(|(a, b)| {
            let tie = (a - b).abs() <= cascade::summary::TIE * a.abs().max(b.abs());
            if tie { 0.0 } else { a - b }
        })
        .collect();
    let paired = &summary.comparisons[0].metrics.0[liq].1;
    let share =
        |f: fn(f64) -> bool| diff.iter().filter(|&&d| f(d)).count() as f64 / diff.len() as f64;
    assert!(close(paired.mean_difference, mean(&diff)));
    assert!(close(paired.relative.unwrap(), mean(&diff) / mean(&base)));
    assert_eq!(paired.share_better, share(|d| d < 0.0));
    assert_eq!(paired.share_worse, share(|d| d > 0.0));
    assert!(paired.share_better > 0.0 && paired.share_better < 1.0);
}

#[test]
fn common_random_numbers_narrow_the_confidence_interval() {
    let policies = "[[policies]]\nname = \"harmonized\"\ncooperating = [\"onshore\", \"offshore\"]\nmargin_floor = { initial = 0.05, maintenance = 0.01 }\n";
    let s = scenario(DEFAULT_LIQUIDITY, "", SHORTS, policies);
    let (markets, out) = run(&s);
    let paired = Summary::build(&s, &markets, &out);
    let paired = serde_json::to_value(&paired.comparisons[0].metrics).unwrap();
    let ci = &paired["liquidated_notional"]["ci95"];
    let paired_width = ci[1].as_f64().unwrap() - ci[0].as_f64().unwrap();
    // Two independent runs of the same size: the policy on another seed.
    let other = {
        let text = s.to_toml().replace("seed = 5", "seed = 6");
        Scenario::from_toml(&text, Path::new("other.toml"), &[]).unwrap()
    };
    let (_, out2) = run(&other);
    let liq = Metric::LiquidatedNotional.index();
    let n = s.file().simulation.paths as f64;
    let var = |v: &[f64]| cascade::stats::std_dev(v).powi(2);
    let independent_width = 2.0
        * 1.959_963_984_540_054
        * (var(&out.column(0, liq)) / n + var(&out2.column(1, liq)) / n).sqrt();
    assert!(
        paired_width < 0.5 * independent_width,
        "paired CI {paired_width} is not much narrower than independent {independent_width}"
    );
}

#[test]
fn overrides_reach_policies() {
    let s = scenario(
        DEFAULT_LIQUIDITY,
        "",
        SHORTS,
        "[[policies]]\nname = \"p\"\ncooperating = [\"onshore\"]\nleverage_cap = 10.0\nmigration = 0.1\n",
    );
    let text = s.to_toml();
    let o = Scenario::from_toml(
        &text,
        Path::new("o.toml"),
        &[Override::parse("policies.1.migration=0.7").unwrap()],
    )
    .unwrap();
    assert_eq!(o.file().policies[1].migration, Some(0.7));
}

#[test]
fn a_maintenance_floor_tops_positions_up_rather_than_liquidating_them() {
    // A long entered at 107 at 10x is at 27x at the start price of 100: safe under the venue's
    // 1% maintenance, short of a 4% one. A floor that raises maintenance alone must treat it
    // as a floor that also raises initial margin does (its trader tops it up to the venue's
    // cap), not liquidate it in the first step of a flat market.
    let dir = tempfile::TempDir::new().unwrap();
    let csv = positions_csv(
        dir.path(),
        "book.csv",
        "long,1000,107,10\nshort,1000,100,2\n",
    );
    let text = format!(
        "name = \"floor\"\n[simulation]\npaths = 4\nsteps = 20\nseed = 1\n[price]\nstart = 100.0\nannual_volatility = 0.0\n[liquidity]\nshared_depth_1pct = 1.0e6\n[[venues]]\nname = \"v\"\njurisdiction = \"x\"\ninitial_margin = 0.1\nmaintenance_margin = 0.01\ndepth_1pct = 1.0e6\n[venues.book]\npositions_csv = {:?}\n[[policies]]\nname = \"baseline\"\n[[policies]]\nname = \"maintenance-only\"\ncooperating = [\"x\"]\nmargin_floor = {{ initial = 0.05, maintenance = 0.04 }}\n[[policies]]\nname = \"both\"\ncooperating = [\"x\"]\nmargin_floor = {{ initial = 0.11, maintenance = 0.04 }}\n",
        csv.to_str().unwrap()
    );
    let s = Scenario::from_toml(&text, Path::new("floor.toml"), &[]).unwrap();
    let (_, out) = run(&s);
    let liq = Metric::LiquidatedNotional.index();
    for path in 0..4 {
        for (policy, name) in ["baseline", "maintenance-only", "both"].iter().enumerate() {
            assert_eq!(out.row(path, policy)[liq], 0.0, "{name}, path {path}");
        }
    }
}

#[test]
fn a_tighter_rule_does_not_rescue_positions_already_past_their_trigger() {
    // Longs at 10x entered at 110 and 120 trigger at 104.2 and 113.7 under the venue's 5%
    // maintenance, above the start price of 100: a snapshot's positions the baseline
    // liquidates in the first step (the one at 120 past bankruptcy, 108). A floor a hair above
    // the venue's rates, or a cap a hair below its leverage, must not "top them up" (their
    // leverage at the start price is infinite or far above the cap) and so erase that loss.
    let dir = tempfile::TempDir::new().unwrap();
    let csv = positions_csv(
        dir.path(),
        "book.csv",
        "long,1000000,110,10\nlong,1000000,120,10\nshort,2000000,100,1\n",
    );
    let text = format!(
        "name = \"under\"\n[simulation]\npaths = 2\nsteps = 5\nseed = 1\n[price]\nstart = 100.0\nannual_volatility = 0.0\n[liquidity]\nshared_depth_1pct = 1.0e15\n[[venues]]\nname = \"v\"\njurisdiction = \"x\"\ninitial_margin = 0.1\nmaintenance_margin = 0.05\nliquidation_fee = 0.0\ninsurance_fund = 0.0\ndepth_1pct = 1.0e15\n[venues.book]\npositions_csv = {:?}\n[[policies]]\nname = \"baseline\"\n[[policies]]\nname = \"floor\"\ncooperating = [\"x\"]\nmargin_floor = {{ initial = 0.1000001, maintenance = 0.01 }}\n[[policies]]\nname = \"cap\"\ncooperating = [\"x\"]\nleverage_cap = 9.99\n",
        csv.to_str().unwrap()
    );
    let s = Scenario::from_toml(&text, Path::new("under.toml"), &[]).unwrap();
    let (_, out) = run(&s);
    let (liq, bad) = (Metric::LiquidatedNotional.index(), Metric::BadDebt.index());
    for path in 0..2 {
        let base = out.row(path, 0);
        assert!(base[liq] > 0.0 && base[bad] > 0.0, "{base:?}");
        for (policy, name) in [(1, "floor"), (2, "cap")] {
            let row = out.row(path, policy);
            assert_eq!(row[liq], base[liq], "{name}, path {path}");
            assert_eq!(row[bad], base[bad], "{name}, path {path}");
        }
    }
}

#[test]
fn a_leverage_cap_tops_a_large_position_up_to_its_own_tiers_cap() {
    // Above 1M of notional the venue allows 10x, below it 100x. A 5M long at 15x (a snapshot
    // may hold what the venue's rules no longer allow), whose maintenance is 5% of its
    // notional less the tiers' fixed 45,000, triggers at 97.3, so the baseline liquidates it
    // when the price falls 3.5% to 96.5. A 50x cap tightens the venue's 100x, so its positions
    // are checked against the cap and the tier each one's size falls in: topped up to 10x, the
    // long triggers at 93.8 and survives. Checked against the cap alone (50x), or against the
    // tier of a small position, it would stay at 15x and go.
    let dir = tempfile::TempDir::new().unwrap();
    let csv = positions_csv(
        dir.path(),
        "book.csv",
        "long,5000000,100,15\nshort,5000000,100,1\n",
    );
    let text = format!(
        "name = \"tiers\"\n[simulation]\npaths = 2\nsteps = 5\nseed = 1\n[price]\nstart = 100.0\nannual_volatility = 0.0\n[price.stress]\ndrop = 0.035\nstart_step = 1\nduration_steps = 1\n[liquidity]\nshared_depth_1pct = 1.0e15\n[[venues]]\nname = \"v\"\njurisdiction = \"x\"\ninitial_margin = 0.01\nmaintenance_margin = 0.005\nmargin_tiers = [{{ above = 1.0e6, initial_margin = 0.1, maintenance_margin = 0.05 }}]\ndepth_1pct = 1.0e15\n[venues.book]\npositions_csv = {:?}\n[[policies]]\nname = \"baseline\"\n[[policies]]\nname = \"cap\"\ncooperating = [\"x\"]\nleverage_cap = 50.0\n",
        csv.to_str().unwrap()
    );
    let s = Scenario::from_toml(&text, Path::new("tiers.toml"), &[]).unwrap();
    let (_, out) = run(&s);
    let liq = Metric::LiquidatedNotional.index();
    for path in 0..2 {
        assert!(out.row(path, 0)[liq] > 4.0e6, "{:?}", out.row(path, 0));
        assert_eq!(out.row(path, 1)[liq], 0.0, "{:?}", out.row(path, 1));
    }
}

#[test]
fn a_pooled_fund_short_of_its_claims_serves_members_whatever_their_order_in_the_file() {
    // Two members hit in the same steps: one with ADL and no fund of its own, one without ADL.
    // Paid in file order, the first member took the pool and the second's loss went unpaid.
    let venue = |name: &str, jur: &str, adl: bool, fund: f64| {
        format!(
            "[[venues]]\nname = \"{name}\"\njurisdiction = \"{jur}\"\ninitial_margin = 0.02\nmaintenance_margin = 0.01\nliquidation_fee = 0.0\ninsurance_fund = {fund}\nadl = {adl}\ndepth_1pct = 2.0e6\nopen_interest = 3.0e8\n[venues.book]\npositions = 400\nlong_leverage = {{ median = 30.0, dispersion = 0.5 }}\nshort_leverage = {{ median = 2.0, dispersion = 0.3 }}\n"
        )
    };
    let (a, b) = (venue("a", "x", true, 0.0), venue("b", "y", false, 1.0e6));
    let text = |first: &str, second: &str| {
        format!(
            "name = \"order\"\n[simulation]\npaths = 40\nsteps = 60\nseed = 3\n[price]\nstart = 60000.0\nannual_volatility = 0.6\n[price.stress]\ndrop = 0.2\nstart_step = 10\nduration_steps = 10\n[liquidity]\nshared_depth_1pct = 1.0e7\nrouting = 0.5\n{first}{second}[[policies]]\nname = \"separate\"\n[[policies]]\nname = \"pooled\"\ncooperating = [\"x\", \"y\"]\npooled_default_fund = {{ sizing = \"sum\" }}\n"
        )
    };
    let ab = Scenario::from_toml(&text(&a, &b), Path::new("ab.toml"), &[]).unwrap();
    let ba = Scenario::from_toml(&text(&b, &a), Path::new("ba.toml"), &[]).unwrap();
    // The same two books in the other order (a book is drawn on its venue index's stream).
    let books = ab.books();
    let swapped: Vec<_> = books.iter().rev().cloned().collect();
    let outputs = [(&ab, books), (&ba, swapped)].map(|(s, books)| {
        let markets = policy::markets(s, &books).unwrap();
        let range = PathRange {
            start: 0,
            end: s.file().simulation.paths,
        };
        let options = RunOptions {
            threads: Some(1),
            progress: false,
            memory: None,
        };
        runner::run(s, &markets, range, options).unwrap()
    });
    let [out_ab, out_ba] = &outputs;
    let layout = RowLayout { venues: 2 };
    let (u, drawn) = (
        cascade::metrics::VenueMetric::UnabsorbedLoss,
        cascade::metrics::VenueMetric::InsuranceFundDrawn,
    );
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    let mut short = 0;
    for path in 0..40 {
        for policy in 0..2 {
            let (row_ab, row_ba) = (out_ab.row(path, policy), out_ba.row(path, policy));
            for metric in Metric::ALL {
                let (x, y) = (row_ab[metric.index()], row_ba[metric.index()]);
                assert!(
                    close(x, y),
                    "path {path} policy {policy} {metric:?}: {x} vs {y}"
                );
            }
            // Venue a is first in one file and second in the other.
            for (va, vb) in [(0, 1), (1, 0)] {
                for k in [u, drawn] {
                    let (x, y) = (row_ab[layout.venue(va, k)], row_ba[layout.venue(vb, k)]);
                    assert!(
                        close(x, y),
                        "path {path} policy {policy} venue {va} {k:?}: {x} vs {y}"
                    );
                }
            }
        }
        let pooled = out_ab.row(path, 1);
        // The pool paid venue a (no fund of its own) and fell short of b's loss.
        short +=
            usize::from(pooled[layout.venue(0, drawn)] > 0.0 && pooled[layout.venue(1, u)] > 0.0);
    }
    assert!(
        short > 0,
        "no path had the pool short of both members' claims"
    );
}

#[test]
fn a_cap_at_a_venues_own_limit_or_without_migration_changes_only_what_it_tightens() {
    // "in" allows 16x (6.25% initial margin, exact in binary), yet its snapshot holds a long
    // at 30x. A cap of exactly 16x tightens nothing, so nothing is re-checked and the 30x long
    // is liquidated as in the baseline, past its bankruptcy price; a cap of 4x with no
    // migration tops positions up where they are and sends nobody to "out".
    let dir = tempfile::TempDir::new().unwrap();
    let inside = positions_csv(
        dir.path(),
        "inside.csv",
        "long,1000000,100,30\nlong,1000000,100,8\nshort,2000000,100,2\n",
    );
    let outside = positions_csv(
        dir.path(),
        "outside.csv",
        "long,1000000,100,3\nshort,1000000,100,3\n",
    );
    let venue = |name: &str, jurisdiction: &str, csv: &Path| {
        format!(
            "[[venues]]\nname = \"{name}\"\njurisdiction = \"{jurisdiction}\"\ninitial_margin = 0.0625\nmaintenance_margin = 0.03125\nliquidation_fee = 0.0\ninsurance_fund = 0.0\ndepth_1pct = 1.0e9\n[venues.book]\npositions_csv = {:?}\n",
            csv.to_str().unwrap()
        )
    };
    let text = format!(
        "name = \"limits\"\n[simulation]\npaths = 1\nsteps = 4\nseed = 1\n[price]\nstart = 100.0\nannual_volatility = 0.0\n[price.stress]\ndrop = 0.05\nstart_step = 1\nduration_steps = 1\n[liquidity]\nshared_depth_1pct = 1.0e15\n{}{}[[policies]]\nname = \"baseline\"\n[[policies]]\nname = \"own\"\ncooperating = [\"in\"]\nleverage_cap = 16.0\n[[policies]]\nname = \"stay\"\ncooperating = [\"in\"]\nleverage_cap = 4.0\n",
        venue("in", "in", &inside),
        venue("out", "out", &outside),
    );
    let s = Scenario::from_toml(&text, Path::new("limits.toml"), &[]).unwrap();
    let (_, out) = run(&s);
    let base = out.row(0, 0);
    assert!(base[Metric::BadDebt.index()] > 0.0, "{base:?}");
    assert_eq!(
        bits(out.row(0, 1)),
        bits(base),
        "a cap at the venue's own limit"
    );
    assert_ne!(bits(out.row(0, 2)), bits(base), "the 4x cap acts");
    let books = s.books();
    let sides = |p: usize| policy::book_sides(&s, &books, &s.file().policies[p]);
    assert_eq!(sides(2), sides(0), "topped up where they are, none moved");
    assert_eq!(sides(0), [(2, 1), (1, 1)]);
}
