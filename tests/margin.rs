//! Margin tiers (issue: historical episodes): Binance-style brackets raise the rates of large
//! positions; the requirement stays continuous; the ladder's sweep of a tiered book agrees
//! with a position-by-position computation; generated books respect each tier's leverage cap.

use cascade::book::{self, BookSpec, Position, Side};
use cascade::ladder::{CLASS_WIDTH, Fill, Ladder, Sweep};
use cascade::margin::MarginSchedule;
use cascade::scenario::file::{ImpactLaw, LeverageMix};

/// Binance USDS-M BTCUSDT brackets of 2021-03-18 (CALIBRATION.md), up to 50M USD.
fn binance() -> MarginSchedule {
    MarginSchedule::tiered(
        0.008,
        0.004,
        &[
            (5.0e4, 0.01, 0.005),
            (2.5e5, 0.02, 0.01),
            (1.0e6, 0.05, 0.025),
            (1.0e7, 0.1, 0.05),
            (2.0e7, 0.2, 0.1),
        ],
    )
}

/// Positions from 1,000 USD to ~30M USD of notional, at each size's highest leverage or less,
/// with entries spread around 100.
fn book(side: Side, margin: &MarginSchedule) -> Vec<Position> {
    let mut out = Vec::new();
    let mut notional = 1_000.0;
    let mut i = 0u32;
    while notional < 3.0e7 {
        let entry = 100.0 * (1.0 + 0.04 * f64::from(i).sin());
        let cap = margin.max_leverage(notional);
        let leverage = (2.0 + f64::from(i * 7 % 120)).min(cap);
        out.push(Position {
            side,
            quantity: notional / entry,
            entry,
            leverage,
        });
        notional *= 1.01;
        i += 1;
    }
    out
}

/// Fees, bad debt, returned equity and stake of closing every position the fill crossed,
/// one position at a time with its exact bankruptcy price.
/// Position-by-position accounting of a step whose price moved from `before` to `after`: each
/// position crossed by `after` fills at `joined^w x after^(1 - w)`, where `joined` is the
/// later of `before` and its trigger (see `cascade::ladder::Fill`), and `w` is 1/2 under the
/// linear impact law and 1/3 under the square root.
fn by_position(
    book: &[Position],
    margin: &MarginSchedule,
    fee: f64,
    (before, after): (f64, f64),
    w: f64,
) -> [f64; 5] {
    let [mut quantity, mut fees, mut bad, mut returned, mut stake] = [0.0; 5];
    for p in book {
        let s = p.side.sign();
        let trigger = p.trigger(margin).price;
        if s * (trigger - after) < 0.0 {
            continue;
        }
        let joined = if s * (trigger - before) >= 0.0 {
            before
        } else {
            trigger
        };
        let fill = joined.powf(w) * after.powf(1.0 - w);
        let bk = p.bankruptcy_price();
        let equity = s * p.quantity * (fill - bk);
        quantity += p.quantity;
        stake += s * p.quantity * (p.entry - bk);
        if equity < 0.0 {
            bad -= equity;
        } else {
            let paid = equity.min(fee * p.quantity * fill);
            fees += paid;
            returned += equity - paid;
        }
    }
    [quantity, fees, bad, returned, stake]
}

/// Asserts that a ladder's sweep has the fees, bad debt, returned equity and stake of
/// position-by-position accounting, within `tol`.
fn agrees(sweep: &Sweep, [fees, bad, returned, stake]: [f64; 4], tol: f64, label: &str) {
    for (what, got, want) in [
        ("fees", sweep.fees, fees),
        ("bad debt", sweep.bad_debt, bad),
        ("returned", sweep.returned, returned),
        ("stake", sweep.stake, stake),
    ] {
        assert!(
            (got - want).abs() <= tol,
            "{label}: {what} {got} vs {want} (tolerance {tol})"
        );
    }
}

#[test]
fn a_tiered_ladder_sweeps_like_position_by_position_accounting() {
    let margin = binance();
    let fee = 0.005;
    for side in [Side::Long, Side::Short] {
        let s = side.sign();
        let positions = book(side, &margin);
        let ladder = Ladder::build(&positions, side, &margin, fee, None, ImpactLaw::Sqrt);
        assert!(
            ladder.classes() > 10,
            "tiers should give many rates, got {}",
            ladder.classes()
        );
        // Fills from just past the first triggers to deep into bad debt.
        for move_ in [0.005, 0.02, 0.05, 0.1, 0.3] {
            let fill = 100.0 * (1.0 - s * move_);
            let crossed = ladder.crossed_until(0, fill.ln());
            let sweep = ladder.sweep(0, crossed, Fill::at(fill.ln()), 0.0, 1.0);
            let [q, fees, bad, returned, stake] =
                by_position(&positions, &margin, fee, (fill, fill), 0.5);
            assert!(q > 0.0, "{side:?} {move_}: nothing crossed");
            assert!(
                (sweep.quantity - q).abs() <= 1e-9 * q,
                "{side:?} {move_}: quantity {} vs {q}",
                sweep.quantity
            );
            // Bankruptcy prices are class multiples of triggers: off by at most half a class
            // width of price per unit closed.
            let tol = 0.5 * CLASS_WIDTH * fill * q * 1.001 + 1e-9 * fill * q;
            agrees(
                &sweep,
                [fees, bad, returned, stake],
                tol,
                &format!("{side:?} move {move_}"),
            );
        }
    }
}

#[test]
fn a_tiered_ladder_swept_in_pieces_books_what_one_sweep_books() {
    // A step's stretch is swept from where the last step's ended, so a tiered ladder must map
    // both ends of any stretch into each of its classes: the pieces of a stretch, cut at
    // crossing points, add up to the whole (a class mapping that ignored a start past zero,
    // or searched past its end, would count tranches twice or not at all).
    let (margin, fee) = (binance(), 0.005);
    for side in [Side::Long, Side::Short] {
        let s = side.sign();
        let positions = book(side, &margin);
        let ladder = Ladder::build(&positions, side, &margin, fee, None, ImpactLaw::Sqrt);
        assert!(ladder.classes() > 10, "{side:?}: {}", ladder.classes());
        let fill = Fill::at((100.0 * (1.0 - s * 0.03)).ln());
        // From the ladder's start (some of this book's positions are past their trigger at
        // the start price) to a 30% move.
        let cuts: Vec<usize> = [0.0, 0.004, 0.01, 0.02, 0.05, 0.1, 0.3]
            .iter()
            .map(|m: &f64| ladder.crossed_until(0, (100.0 * (1.0 - s * m)).ln()))
            .collect();
        let cuts = [&[0][..], &cuts].concat();
        assert!(
            cuts.windows(2).filter(|w| w[1] > w[0]).count() >= 6,
            "{cuts:?}"
        );
        let whole = ladder.sweep(0, cuts[cuts.len() - 1], fill, 0.0, 1.0);
        let mut pieces = Sweep::default();
        for w in cuts.windows(2) {
            pieces.add(&ladder.sweep(w[0], w[1], fill, 0.0, 1.0));
        }
        assert_eq!(pieces.positions, whole.positions, "{side:?}");
        for (name, a, b) in [
            ("quantity", pieces.quantity, whole.quantity),
            ("stake", pieces.stake, whole.stake),
            ("returned", pieces.returned, whole.returned),
            ("fees", pieces.fees, whole.fees),
            ("bad debt", pieces.bad_debt, whole.bad_debt),
            ("counterparty", pieces.counterparty, whole.counterparty),
        ] {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{side:?} {name}: {a} vs {b}"
            );
        }
        assert!(
            whole.bad_debt > 0.0 && whole.fees > 0.0,
            "{side:?}: {whole:?}"
        );
    }
}

#[test]
fn tranches_the_cascade_reaches_fill_no_better_than_their_trigger() {
    // A step whose cascade moves the price 4% and then 12% past where it began: positions
    // already past their trigger when it began fill between the two prices, the others between
    // their own trigger and the end, never better than the trigger; weighted half and half
    // under the linear impact law, and a third to two thirds under the square root, which
    // moves the price most early in the flow. A flat ladder must match position-by-position
    // accounting to rounding; a tiered one to its classes' half a basis point.
    let fee = 0.005;
    for (margin, class_tol, (law, w)) in [
        (
            MarginSchedule::flat(0.008, 0.004),
            0.0,
            (ImpactLaw::Linear, 0.5),
        ),
        (
            MarginSchedule::flat(0.008, 0.004),
            0.0,
            (ImpactLaw::Sqrt, 1.0 / 3.0),
        ),
        (binance(), 0.5 * CLASS_WIDTH, (ImpactLaw::Linear, 0.5)),
        (binance(), 0.5 * CLASS_WIDTH, (ImpactLaw::Sqrt, 1.0 / 3.0)),
    ] {
        for side in [Side::Long, Side::Short] {
            let s = side.sign();
            let positions = book(side, &margin);
            let ladder = Ladder::build(&positions, side, &margin, fee, None, law);
            for (from, to) in [(0.04, 0.12), (0.01, 0.02), (0.0, 0.3)] {
                let (before, after) = (100.0 * (1.0 - s * from), 100.0 * (1.0 - s * to));
                let crossed = ladder.crossed_until(0, after.ln());
                let fill = Fill::between(before.ln(), after.ln());
                let sweep = ladder.sweep(0, crossed, fill, 0.0, 1.0);
                let [q, fees, bad, returned, stake] =
                    by_position(&positions, &margin, fee, (before, after), w);
                assert!(q > 0.0 && (sweep.quantity - q).abs() <= 1e-9 * q);
                let tol = class_tol * before * q * 1.001 + 1e-9 * before * q;
                let label = format!("{law:?} {side:?} {from}..{to}");
                agrees(&sweep, [fees, bad, returned, stake], tol, &label);
                // Filling everything as though it were sold along the whole move would report
                // less.
                let along = ladder.sweep(
                    0,
                    crossed,
                    Fill::at(w * fill.log_before + (1.0 - w) * fill.log_after),
                    0.0,
                    1.0,
                );
                assert!(sweep.bad_debt >= along.bad_debt - tol, "{label}");
            }
        }
    }
}

#[test]
fn partial_liquidation_steps_large_positions_down_the_tiers() {
    // One 30M USD long at 4x (the bracket above 20M allows 5x) closed 20% at a time: each
    // smaller rest falls into a lower bracket and is held to a lower rate, so its next
    // trigger is lower.
    let margin = binance();
    let p = Position {
        side: Side::Long,
        quantity: 3.0e5,
        entry: 100.0,
        leverage: 4.0,
    };
    let ladder = Ladder::build(&[p], Side::Long, &margin, 0.0, Some(0.2), ImpactLaw::Linear);
    assert_eq!(ladder.len(), 5);
    assert!(ladder.classes() >= 3, "{}", ladder.classes());
    let triggers: Vec<f64> = (0..5).map(|i| ladder.next_log_trigger(i).exp()).collect();
    assert!(
        triggers.windows(2).all(|w| w[1] < w[0]),
        "triggers should fall: {triggers:?}"
    );
    // The first trigger is the whole position's.
    assert!((triggers[0] - p.trigger(&margin).price).abs() < 1e-9);
}

#[test]
fn generated_books_respect_each_tiers_leverage_cap_and_start_safe() {
    let margin = binance();
    let spec = BookSpec {
        positions: 5_000,
        long_leverage: LeverageMix {
            median: 60.0,
            dispersion: 1.0,
        },
        short_leverage: LeverageMix {
            median: 30.0,
            dispersion: 1.0,
        },
        entry_dispersion: 0.05,
        size_tail: 1.2,
    };
    let start = 50_000.0;
    let positions = book::generate(
        &spec,
        start,
        2.0e9,
        &margin,
        7,
        book::Stream::Start { venue: 0 },
    );
    let mut above_base = 0;
    for p in &positions {
        let notional = p.quantity * start;
        assert!(
            p.leverage <= margin.max_leverage(notional) * (1.0 + 1e-12),
            "{p:?}: leverage above the cap of its tier"
        );
        let t = p.trigger(&margin).price;
        assert!(
            p.side.sign() * (start - t) > 0.0,
            "{p:?} starts past its trigger {t}"
        );
        above_base += usize::from(notional > 5.0e4 && p.leverage > 100.0);
    }
    assert_eq!(above_base, 0, "no position above 50k USD may exceed 100x");
}
