//! Price impact: how forced flow moves prices, and how impact fades.
//!
//! Prices are kept in logs, so every price is `exp(...)` of a finite number and stays
//! strictly positive whatever the flow. Impact within a step is a function of the step's
//! cumulative net flow into a pool (the step's "metaorder"), so splitting a cascade into more
//! rounds does not change where it ends, for the square-root law as for the linear one.
//! Flow is measured in notional at the scenario's start price (quantity x start price), which
//! makes impact a function of quantity alone and the cascade's fixed point exact.

use crate::scenario::file::{ImpactLaw, Liquidity};

/// The furthest one step's metaorder moves a pool's log price either way (a factor of about
/// 22,000), and the furthest each part of the pool's displacement, permanent and transient,
/// reaches: together at most twice this (where the two parts split it, as with a
/// `permanent_fraction` strictly between 0 and 1). Only a book absurdly thin for the flow it
/// meets gets there; the bound keeps every price strictly positive and finite, and so every
/// sum of money.
pub const MAX_LOG_IMPACT: f64 = 10.0;

/// Log-price move (positive = down) caused by net sell notional `flow` into depth `depth`.
///
/// `depth` is the notional that moves the price by 1% (0.01 in log): the two laws agree there.
#[inline]
pub fn impact(law: ImpactLaw, flow: f64, depth: f64) -> f64 {
    // No flow moves no price, even against depth thinned to nothing (0 / 0 is NaN).
    if flow == 0.0 {
        return 0.0;
    }
    let x = flow / depth;
    match law {
        ImpactLaw::Linear => 0.01 * x,
        ImpactLaw::Sqrt => 0.01 * x.signum() * x.abs().sqrt(),
    }
}

/// The weight, in log price, of the price at which a sell joins a step's flow in its average
/// fill; the step's last price has the rest: a fill is `exp(w ln(join) + (1 - w) ln(last))`.
///
/// Within a step impact grows with the step's cumulative flow as flow^b (b = 1 for the linear
/// law, 1/2 for the square root). A sell spread evenly over the step's flow from its start
/// fills at the move's average over that flow, 1/(1 + b) of the whole move, so w = b/(1 + b):
/// 1/2 under the linear law, 1/3 under the square root, whose move comes early in the flow. A
/// sell that joins later, at its trigger, is given the same weights: exact for the linear
/// law; for the square root its fill is off by at most 5.7% of the step's move (toward the
/// last price), as its exact weight depends on where it joined, which prefix sums over a
/// ladder cannot carry.
pub fn join_weight(law: ImpactLaw) -> f64 {
    match law {
        ImpactLaw::Linear => 0.5,
        ImpactLaw::Sqrt => 1.0 / 3.0,
    }
}

/// `price` to the power [`join_weight`], by the exact root (the weights are 1/2 and 1/3).
pub fn join_power(law: ImpactLaw, price: f64) -> f64 {
    match law {
        ImpactLaw::Linear => price.sqrt(),
        ImpactLaw::Sqrt => price.cbrt(),
    }
}

/// Per-step decay factors and impact parameters derived once from the scenario.
#[derive(Debug, Clone, Copy)]
pub struct LiquidityModel {
    /// Impact law.
    pub law: ImpactLaw,
    /// Depth of the shared pool (USD per 1%).
    pub shared_depth: f64,
    /// Share of impact that is permanent.
    pub permanent: f64,
    /// Per-step factor of the transient part (book resilience).
    pub resilience_decay: f64,
    /// Per-step factor of local dislocations (arbitrage toward the shared price).
    pub arbitrage_decay: f64,
    /// Depth withdrawal per % of recent average absolute move per step.
    pub withdrawal: f64,
}

impl LiquidityModel {
    /// Derives the model from a validated `liquidity` section.
    pub fn new(l: &Liquidity) -> LiquidityModel {
        let decay = |half_life: f64| (-std::f64::consts::LN_2 / half_life).exp();
        LiquidityModel {
            law: l.impact,
            shared_depth: l.shared_depth_1pct,
            permanent: l.permanent_fraction,
            resilience_decay: decay(l.resilience_half_life_steps),
            arbitrage_decay: decay(l.arbitrage_half_life_steps),
            withdrawal: l.depth_withdrawal,
        }
    }

    /// The factor depths are multiplied by, given the recent average absolute move
    /// (log units per step). The move is scaled first: a withdrawal near the largest float
    /// times 100 would be infinite, and times no move NaN. Past that, depth thins to 0 and
    /// impact is bounded by [`MAX_LOG_IMPACT`].
    #[inline]
    pub fn depth_factor(&self, recent_move: f64) -> f64 {
        1.0 / (1.0 + self.withdrawal * (100.0 * recent_move))
    }
}

/// Impact state of one pool (the shared pool or a venue's local book) on one path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pool {
    /// Permanent part of the log-price displacement.
    pub permanent: f64,
    /// Transient part, decaying with resilience.
    pub transient: f64,
    /// Cumulative net sell notional this step.
    step_flow: f64,
    /// The impact of `step_flow` (kept so that a round computes one impact, not two).
    step_impact: f64,
}

impl Pool {
    /// Total log-price displacement.
    #[inline]
    pub fn level(&self) -> f64 {
        self.permanent + self.transient
    }

    /// Starts a step's metaorder: no flow yet.
    #[inline]
    pub fn begin_step(&mut self) {
        self.step_flow = 0.0;
        self.step_impact = 0.0;
    }

    /// Adds `flow` to this step's metaorder and moves the price by the change in impact.
    /// `depth` must be the same for every call of a step (the step's metaorder meets one book).
    #[inline]
    pub fn absorb(&mut self, m: &LiquidityModel, flow: f64, depth: f64) {
        if flow == 0.0 {
            return;
        }
        self.step_flow += flow;
        let bound = MAX_LOG_IMPACT;
        let after = impact(m.law, self.step_flow, depth).clamp(-bound, bound);
        let delta = after - self.step_impact;
        self.step_impact = after;
        self.permanent = (self.permanent - m.permanent * delta).clamp(-bound, bound);
        self.transient = (self.transient - (1.0 - m.permanent) * delta).clamp(-bound, bound);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The move's average over the flow from `from` to all of it, by the midpoint rule.
    fn average_move(law: ImpactLaw, from: f64, flow: f64, depth: f64) -> f64 {
        let n = 200_000;
        let width = (flow - from) / f64::from(n);
        (0..n)
            .map(|i| impact(law, from + width * (f64::from(i) + 0.5), depth))
            .sum::<f64>()
            / f64::from(n)
    }

    #[test]
    fn a_step_is_one_metaorder_split_into_permanent_and_transient_parts() {
        let m = LiquidityModel::new(&Liquidity {
            impact: ImpactLaw::Sqrt,
            permanent_fraction: 0.3,
            resilience_half_life_steps: 15.0,
            arbitrage_half_life_steps: 5.0,
            ..Liquidity::default()
        });
        // A half-life of n steps halves in n steps.
        assert!((m.resilience_decay.powi(15) - 0.5).abs() < 1e-12);
        assert!((m.arbitrage_decay.powi(5) - 0.5).abs() < 1e-12);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        // Two sells of 3e8 into 1e8 of depth in one step move the square-root law's price as
        // one sell of 6e8 (0.01 x sqrt 6), 30% of it permanent; the next step's 3e8 starts a
        // new metaorder (0.01 x sqrt 3 more), and a purchase of 4e8 in a third takes back
        // 0.01 x sqrt 4.
        let mut pool = Pool::default();
        pool.begin_step();
        pool.absorb(&m, 3.0e8, 1.0e8);
        pool.absorb(&m, 3.0e8, 1.0e8);
        let one = 0.01 * 6f64.sqrt();
        assert!(close(pool.permanent, -0.3 * one), "{pool:?}");
        assert!(close(pool.transient, -0.7 * one), "{pool:?}");
        pool.begin_step();
        pool.absorb(&m, 3.0e8, 1.0e8);
        let two = one + 0.01 * 3f64.sqrt();
        assert!(close(pool.level(), -two), "{pool:?}");
        pool.begin_step();
        pool.absorb(&m, -4.0e8, 1.0e8);
        assert!(close(pool.level(), 0.02 - two), "{pool:?}");
    }

    #[test]
    fn depth_withdrawn_to_nothing_keeps_prices_finite() {
        let m = LiquidityModel::new(&Liquidity {
            depth_withdrawal: f64::MAX,
            ..Liquidity::default()
        });
        assert_eq!(m.depth_factor(0.0), 1.0, "no move withdraws nothing");
        let depth = m.shared_depth * m.depth_factor(0.1);
        assert_eq!(depth, 0.0);
        // Sells move the price as far as impact may go; buys that net them out within the
        // step take back the step's whole impact, not a 0 / 0.
        let mut pool = Pool::default();
        pool.begin_step();
        pool.absorb(&m, 1.0e6, depth);
        assert_eq!(pool.level(), -MAX_LOG_IMPACT);
        pool.absorb(&m, -1.0e6, depth);
        assert_eq!(pool.level(), 0.0);
    }

    #[test]
    fn a_sell_spread_over_a_step_fills_at_the_average_of_its_move() {
        let (flow, depth) = (3.0e8, 1.0e8);
        for law in [ImpactLaw::Linear, ImpactLaw::Sqrt] {
            let whole = impact(law, flow, depth);
            // A fill at w x start + (1 - w) x end has moved (1 - w) of the whole move.
            let filled = (1.0 - join_weight(law)) * whole;
            let average = average_move(law, 0.0, flow, depth);
            assert!((average - filled).abs() < 1e-6 * whole, "{law:?}");
            let w = join_weight(law);
            assert!((join_power(law, 7.0) - 7.0f64.powf(w)).abs() < 1e-15 * 7.0f64.powf(w));

            // A sell joining the flow later, at the move `joined`, is given the same weights:
            // exact for the linear law, and never more than 5.7% of the step's move off
            // (and then filled worse, not better) for the square root.
            for k in 1..20 {
                let from = flow * f64::from(k) / 20.0;
                let joined = impact(law, from, depth);
                let exact = average_move(law, from, flow, depth);
                let given = joined + (1.0 - w) * (whole - joined);
                let off = given - exact;
                match law {
                    ImpactLaw::Linear => assert!(off.abs() < 1e-6 * whole, "{k}: {off}"),
                    ImpactLaw::Sqrt => assert!(
                        (-1e-6 * whole..=0.0572 * whole).contains(&off),
                        "{k}: {off} of {whole}"
                    ),
                }
            }
        }
    }
}
