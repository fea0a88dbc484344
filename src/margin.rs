//! Margin schedules: a venue's initial and maintenance margin as functions of position size.
//!
//! Venues tier margin by position notional, as Binance's leverage brackets do: above each
//! tier's notional bound, the initial rate (so the maximum leverage) and the maintenance rate
//! step up. The maintenance requirement of a position of notional `N` in tier `k` is
//! `mm_k x N - amount_k`, where the *maintenance amount* `amount_k = amount_{k-1} +
//! above_k x (mm_k - mm_{k-1})` makes the requirement continuous in `N`: a position growing
//! across a bound does not see its requirement jump, and neither does its liquidation price.
//! The initial rate applies to the whole notional and does jump (the maximum leverage of a
//! bracket), as on the venues.
//!
//! Notional is measured where it matters: at the trigger price for maintenance (the venue's
//! check at that moment), and at the start price for the leverage cap a book is drawn under.
//! A venue without tiers has one tier, and every formula reduces exactly (bit for bit) to the
//! flat-rate one.

use crate::book::Side;

/// One tier: the rates for notional above `above` (up to the next tier's bound).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tier {
    /// Notional (USD) above which the tier applies; 0 for the base tier.
    above: f64,
    /// Initial margin rate.
    initial: f64,
    /// Maintenance margin rate.
    maintenance: f64,
    /// Maintenance amount (USD) subtracted from `maintenance x notional`.
    amount: f64,
}

/// A venue's margin rates by position notional. Never empty; tiers ascend.
#[derive(Debug, Clone, PartialEq)]
pub struct MarginSchedule {
    tiers: Vec<Tier>,
}

/// Where a position is liquidated, and the maintenance rate it is held to there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trigger {
    /// The liquidation price.
    pub price: f64,
    /// Maintenance requirement over notional at that price: the equity share left at the
    /// trigger, which sets the bankruptcy price `price x (1 - sign x rate)`.
    pub rate: f64,
}

impl MarginSchedule {
    /// One initial and one maintenance rate for every position size.
    pub fn flat(initial: f64, maintenance: f64) -> MarginSchedule {
        MarginSchedule::tiered(initial, maintenance, &[])
    }

    /// Base rates up to the first bound, then `(above, initial, maintenance)` per tier
    /// (validated: bounds ascending, rates not falling).
    pub fn tiered(initial: f64, maintenance: f64, tiers: &[(f64, f64, f64)]) -> MarginSchedule {
        let mut out = vec![Tier {
            above: 0.0,
            initial,
            maintenance,
            amount: 0.0,
        }];
        for &(above, initial, maintenance) in tiers {
            let prev = out[out.len() - 1];
            out.push(Tier {
                above,
                initial,
                maintenance,
                amount: prev.amount + above * (maintenance - prev.maintenance),
            });
        }
        MarginSchedule { tiers: out }
    }

    /// The schedule with every tier's rates raised to at least the floors (a harmonized
    /// minimum), maintenance amounts recomputed so the requirement stays continuous.
    pub fn with_floor(&self, initial: f64, maintenance: f64) -> MarginSchedule {
        let base = self.tiers[0];
        let rest: Vec<(f64, f64, f64)> = self.tiers[1..]
            .iter()
            .map(|t| {
                (
                    t.above,
                    t.initial.max(initial),
                    t.maintenance.max(maintenance),
                )
            })
            .collect();
        MarginSchedule::tiered(
            base.initial.max(initial),
            base.maintenance.max(maintenance),
            &rest,
        )
    }

    /// The base tier's initial rate: the lowest, so `1 / base_initial()` is the highest
    /// leverage the venue allows any position.
    pub fn base_initial(&self) -> f64 {
        self.tiers[0].initial
    }

    /// The tier of a position of `notional`: a bound belongs to the tier below it ("up to
    /// 50,000").
    fn tier(&self, notional: f64) -> &Tier {
        let k = self.tiers.partition_point(|t| t.above < notional);
        &self.tiers[k.saturating_sub(1)]
    }

    /// Maintenance requirement (USD) of a position of `notional`.
    pub fn maintenance(&self, notional: f64) -> f64 {
        let t = self.tier(notional);
        t.maintenance * notional - t.amount
    }

    /// Initial margin rate of a position of `notional`.
    pub fn initial_rate(&self, notional: f64) -> f64 {
        self.tier(notional).initial
    }

    /// The highest leverage a position of `notional` may carry.
    pub fn max_leverage(&self, notional: f64) -> f64 {
        1.0 / self.initial_rate(notional)
    }

    /// The liquidation price of `quantity` units on `side` whose equity is zero at
    /// `bankruptcy`: where equity `sign x quantity x (P - bankruptcy)` falls to the
    /// maintenance requirement of the notional `quantity x P`.
    ///
    /// Equity less requirement is monotone in `P` (rates are below 1), so exactly one tier
    /// holds the root: the first, ascending, whose own linear root lies within its bound.
    /// A long that cannot be liquidated (bankruptcy at or below zero) gets a price at or
    /// below zero.
    pub fn trigger(&self, side: Side, quantity: f64, bankruptcy: f64) -> Trigger {
        let s = side.sign();
        let last = self.tiers.len() - 1;
        for (k, t) in self.tiers.iter().enumerate() {
            let price = (bankruptcy - s * t.amount / quantity) / (1.0 - s * t.maintenance);
            let fits = k == last || quantity * price <= self.tiers[k + 1].above;
            if fits {
                // The base tier has no amount: its rate is exact even where the price is 0.
                let rate = if t.amount == 0.0 {
                    t.maintenance
                } else {
                    t.maintenance - t.amount / (quantity * price)
                };
                return Trigger { price, rate };
            }
        }
        unreachable!("the last tier always fits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binance USDS-M BTCUSDT brackets of 2021-03-18 (CALIBRATION.md), first four.
    fn binance() -> MarginSchedule {
        MarginSchedule::tiered(
            0.008,
            0.004,
            &[
                (50_000.0, 0.01, 0.005),
                (250_000.0, 0.02, 0.01),
                (1_000_000.0, 0.05, 0.025),
            ],
        )
    }

    #[test]
    fn maintenance_amounts_match_the_published_ones() {
        // Binance publishes 0, 50, 1,300 and 16,300 USDT for these brackets.
        let m = binance();
        let amounts: Vec<f64> = m.tiers.iter().map(|t| t.amount).collect();
        for (a, b) in amounts.iter().zip([0.0, 50.0, 1_300.0, 16_300.0]) {
            assert!((a - b).abs() < 1e-9, "{amounts:?}");
        }
    }

    #[test]
    fn flat_schedule_reproduces_the_flat_formula_bit_for_bit() {
        let m = MarginSchedule::flat(0.02, 0.01);
        for (side, entry, leverage) in [(Side::Long, 100.0, 20.0), (Side::Short, 97.0, 3.0)] {
            let s = side.sign();
            let bk = entry * (1.0 - s / leverage);
            let t = m.trigger(side, 12.5, bk);
            assert_eq!(t.price, bk / (1.0 - s * 0.01));
            assert_eq!(t.rate, 0.01);
        }
    }

    #[test]
    fn a_bound_belongs_to_the_tier_below_it() {
        // "Up to 50k USDT: 125x": a position of exactly 50k may still carry 125x.
        let m = binance();
        for (bound, below, above) in [
            (50_000.0, 0.008, 0.01),
            (250_000.0, 0.01, 0.02),
            (1_000_000.0, 0.02, 0.05),
        ] {
            assert_eq!(m.initial_rate(bound), below, "at {bound}");
            assert_eq!(m.initial_rate(bound * (1.0 + 1e-12)), above, "past {bound}");
        }
        assert_eq!(m.max_leverage(50_000.0), 125.0);
    }

    #[test]
    fn requirement_is_continuous_across_every_bound() {
        let m = binance();
        for t in &m.tiers[1..] {
            let below = m.maintenance(t.above);
            let above = m.maintenance(t.above * (1.0 + 1e-12));
            assert!(
                (below - above).abs() <= 1e-9 * below,
                "jump at {}: {below} vs {above}",
                t.above
            );
        }
    }

    /// The root of equity less requirement by bisection, for comparison.
    fn brute_trigger(m: &MarginSchedule, side: Side, q: f64, bk: f64) -> f64 {
        let s = side.sign();
        let g = |p: f64| s * q * (p - bk) - m.maintenance(q * p);
        let (mut lo, mut hi) = (bk * 0.5, bk * 2.0);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            // g rises with p for longs and falls for shorts.
            if (g(mid) < 0.0) == (s > 0.0) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }

    #[test]
    fn trigger_is_the_root_and_continuous_in_position_size() {
        let m = binance();
        for side in [Side::Long, Side::Short] {
            let s = side.sign();
            let entry = 100.0;
            let bk = entry * (1.0 - s / 20.0);
            let mut previous: Option<f64> = None;
            // Notional from 1,000 to 5M USD in steps of 0.5%, across every bound.
            let mut notional = 1_000.0;
            while notional < 5.0e6 {
                let q = notional / entry;
                let t = m.trigger(side, q, bk);
                let brute = brute_trigger(&m, side, q, bk);
                assert!(
                    (t.price - brute).abs() <= 1e-9 * brute,
                    "{side:?} notional {notional}: {} vs bisection {brute}",
                    t.price
                );
                // Equity at the trigger is the requirement, and the rate says so.
                let equity = s * q * (t.price - bk);
                assert!((equity - t.rate * q * t.price).abs() <= 1e-9 * equity.abs());
                if let Some(p) = previous {
                    // A 0.5% larger position moves the trigger by far less than a tier's
                    // jump in rate would (0.5-2.5 points): no discontinuity.
                    assert!(
                        (t.price - p).abs() <= 0.002 * p,
                        "{side:?} jump at notional {notional}: {p} -> {}",
                        t.price
                    );
                }
                previous = Some(t.price);
                notional *= 1.005;
            }
        }
    }

    #[test]
    fn larger_positions_are_held_to_higher_rates() {
        let m = binance();
        let bk = 95.0;
        let small = m.trigger(Side::Long, 100.0, bk);
        let large = m.trigger(Side::Long, 20_000.0, bk);
        assert_eq!(small.rate, 0.004);
        // About 1.9M USD of notional: the fourth bracket, 2.5% less 16,300 USD.
        let expected = 0.025 - 16_300.0 / (20_000.0 * large.price);
        assert!((large.rate - expected).abs() < 1e-12, "{}", large.rate);
        assert!(large.price > small.price);
    }

    #[test]
    fn floors_raise_every_tier_and_keep_continuity() {
        let m = binance().with_floor(0.02, 0.008);
        assert_eq!(m.base_initial(), 0.02);
        let rates: Vec<(f64, f64)> = m.tiers.iter().map(|t| (t.initial, t.maintenance)).collect();
        assert_eq!(
            rates,
            vec![(0.02, 0.008), (0.02, 0.008), (0.02, 0.01), (0.05, 0.025)]
        );
        for t in &m.tiers[1..] {
            let jump = m.maintenance(t.above * (1.0 + 1e-12)) - m.maintenance(t.above);
            assert!(jump.abs() <= 1e-6, "{jump}");
        }
    }
}
