//! The built model the engine runs: one [`Market`] per policy, shared read-only by all paths.
//!
//! Building sorts every venue's book into liquidation ladders and derives every constant a
//! step needs, so that the per-path work is only arithmetic on a small state.

use rayon::prelude::*;

use crate::book::{self, BookSpec, Position, Side, Stream};
use crate::error::Result;
use crate::ladder::{EntryIndex, Ladder};
use crate::liquidity::LiquidityModel;
use crate::margin::MarginSchedule;
use crate::runner::check_interrupt;
use crate::scenario::Scenario;
use crate::scenario::file::{
    LiquidationMode, MarkPrice, Supervision, SupervisionMetric, SupervisoryAction, Venue,
};

/// One venue, ready to run.
#[derive(Debug, Clone)]
pub struct VenueModel {
    /// Venue name.
    pub name: String,
    /// Jurisdiction.
    pub jurisdiction: String,
    /// Long liquidation ladder (crossed as the price falls).
    pub longs: Ladder,
    /// Short liquidation ladder (crossed as the price rises).
    pub shorts: Ladder,
    /// Longs by entry price, for auto-deleveraging against profitable longs.
    pub long_entries: EntryIndex,
    /// Shorts by entry price, for auto-deleveraging against profitable shorts.
    pub short_entries: EntryIndex,
    /// Index into [`Market::funds`] of the fund that absorbs this venue's losses.
    pub fund: usize,
    /// Whether auto-deleveraging covers what the fund cannot.
    pub adl: bool,
    /// Local depth (USD per 1%).
    pub depth: f64,
    /// Share of net forced flow routed to the shared pool.
    pub routing: f64,
    /// How the mark price is formed.
    pub mark: MarkPrice,
    /// Weight in the traded-price index (share of total open interest).
    pub weight: f64,
    /// Open interest at the start price (USD): the larger side's notional.
    pub open_interest: f64,
    /// Cohorts of positions that open during the horizon, by ascending level of fall.
    pub cohorts: Vec<Cohort>,
    /// Index of this venue's first cohort among every venue's cohorts (venue by venue),
    /// where a path keeps its state of each.
    pub first_cohort: usize,
}

impl VenueModel {
    /// The long and short ladders of the book at the start.
    #[inline]
    pub fn ladders(&self) -> (&Ladder, &Ladder) {
        (&self.longs, &self.shorts)
    }

    /// Unrealised profit of the venue's open profitable positions of `side` at log price
    /// `log_price`, and their quantity: what auto-deleveraging can draw on. They are the start
    /// book's, of which the path has liquidated the first `crossed` tranches of the side's
    /// ladder, plus those of the cohorts that opened, each given as the log shift it opened at
    /// from its level and its own tranches crossed (first cohorts first).
    ///
    /// Out of line and cold: few settlements reach ADL, and inlined, the compiler computed the
    /// price (an `exp`, which it may move freely) on every settlement of every venue, in
    /// case (0.6% of the engine's instructions on the benchmark scenario).
    #[cold]
    #[inline(never)]
    pub fn profits(
        &self,
        side: Side,
        log_price: f64,
        crossed: usize,
        opened: impl Iterator<Item = (f64, usize)>,
    ) -> (f64, f64) {
        let price = log_price.exp();
        let (mut profit, mut quantity) = open_profits(
            side,
            self.ladders(),
            (&self.long_entries, &self.short_entries),
            crossed,
            price,
        );
        for (c, (shift, crossed)) in self.cohorts.iter().zip(opened) {
            // A cohort opened at `scale` times its level has every entry scaled by it, and its
            // quantities kept: its profit at `price` is `scale` times the built one's at
            // price / scale.
            let scale = shift.exp();
            let (p, q) = open_profits(
                side,
                c.ladders(),
                (&c.long_entries, &c.short_entries),
                crossed,
                price / scale,
            );
            profit += scale * p;
            quantity += q;
        }
        (profit, quantity)
    }
}

/// Unrealised profit at `price` of one book's profitable positions of `side`, and their
/// quantity, less those of the `crossed` tranches of the side's ladder a path has liquidated.
///
/// The entry index holds the whole book, so it counts the liquidated positions too (a short
/// liquidated on a rise is in the money again after the fall that brings ADL against shorts).
/// The crossed tranches are a prefix of the ladder, whose prefix sums give their profit and
/// quantity at once; that is exact when every one of them is in the money, as on a path that
/// liquidated them on an earlier move the other way and has since fallen past their entries.
/// When some are not, their own prefix sums cannot tell the two apart: the net profit of
/// the crossed tranches is taken out while it is positive (so the profit stays between what
/// is open and the whole side's, and the quantity loses that of the crossed tranches out of
/// the money too), and nothing is taken out otherwise.
fn open_profits(
    side: Side,
    (longs, shorts): (&Ladder, &Ladder),
    (long_entries, short_entries): (&EntryIndex, &EntryIndex),
    crossed: usize,
    price: f64,
) -> (f64, f64) {
    let (ladder, entries) = match side {
        Side::Long => (longs, long_entries),
        Side::Short => (shorts, short_entries),
    };
    let (profit, quantity) = entries.profits(price);
    let (gone, gone_quantity) = ladder.crossed_profit(crossed, price);
    if gone > 0.0 {
        (
            (profit - gone).max(0.0),
            (quantity - gone_quantity).max(0.0),
        )
    } else {
        (profit, quantity)
    }
}

impl Cohort {
    /// The cohort's long and short ladders.
    #[inline]
    pub fn ladders(&self) -> (&Ladder, &Ladder) {
        (&self.longs, &self.shorts)
    }
}

/// Positions that open when a venue's mark first falls to a level: ladders built at the
/// level's price, shifted on each path by the mark at which they actually open.
///
/// The shift scales every price of a position by one factor, which is exact under flat
/// margin rates. Under tiers the maintenance amounts are fixed dollars, so a cohort that opens
/// below its level is liquidated slightly early (on Binance's brackets up to 0.3% of price
/// for openings 5% below the level and 1.4% for 20% below, the most for positions of USD 20M
/// and more) and its leverage cap is read at the level's notional.
#[derive(Debug, Clone)]
pub struct Cohort {
    /// Log of the level's price.
    pub log_level: f64,
    /// Longs (dip buyers).
    pub longs: Ladder,
    /// Shorts (momentum sellers).
    pub shorts: Ladder,
    /// Longs and shorts by entry price, for auto-deleveraging once the cohort has opened.
    pub long_entries: EntryIndex,
    pub short_entries: EntryIndex,
}

/// Everything one policy's paths run on.
#[derive(Debug, Clone)]
pub struct Market {
    /// Start price.
    pub start: f64,
    /// Venues in scenario order.
    pub venues: Vec<VenueModel>,
    /// Starting balances of the insurance funds.
    pub funds: Vec<f64>,
    /// Impact and decay parameters.
    pub liquidity: LiquidityModel,
    /// Cap on cascade rounds within a step.
    pub max_rounds: u32,
    /// The study's open interest (USD at the start price): the sum of the venues' in the
    /// scenario's books, the denominator of `open_interest_lost` and of the timeline's
    /// liquidation shares. A policy keeps the baseline's ([`crate::policy::market`]), so that
    /// every policy's shares are of the same figure.
    pub total_open_interest: f64,
    /// Whether any venue marks to the index (then marks need every venue's price).
    pub any_index_mark: bool,
    /// Supervisors watching groups of venues (none in the baseline).
    pub supervisors: Vec<Supervisor>,
    /// Cohorts of all venues.
    pub cohorts: usize,
}

/// A supervisor, resolved to the venues it watches.
#[derive(Debug, Clone)]
pub struct Supervisor {
    /// Indices of the watched venues (also those its action covers).
    pub venues: Vec<usize>,
    /// Each watched venue's weight in the watched venues' price index (the drawdown metric),
    /// summing to one: their open-interest weights, as the traded price weighs every venue
    /// (MODEL.md section 8), so that a global supervisor watches the price the path reports.
    /// Venues with no open interest (all of it migrated away) weigh nothing in an index:
    /// watched alone, they count equally.
    pub index_weights: Vec<f64>,
    /// The metric watched.
    pub metric: SupervisionMetric,
    /// Level at which it acts.
    pub threshold: f64,
    /// `ln(1 + distance)` for the near-liquidation metric.
    pub log_distance: f64,
    /// Look-back window in steps for the drawdown metric.
    pub window: usize,
    /// The action.
    pub action: SupervisoryAction,
    /// Steps a circuit breaker pauses liquidations.
    pub halt_steps: usize,
    /// Margin add-on as a share of the notional at the bankruptcy price.
    pub add_on: f64,
}

impl Supervisor {
    /// A supervisor of `venues` with a validated `supervision` section; `weights` are every
    /// venue's weights in the traded price.
    pub fn new(s: &Supervision, venues: Vec<usize>, weights: &[f64]) -> Supervisor {
        let watched: f64 = venues.iter().map(|&i| weights[i]).sum();
        let index_weights = venues
            .iter()
            .map(|&i| {
                if watched > 0.0 {
                    weights[i] / watched
                } else {
                    1.0 / venues.len() as f64
                }
            })
            .collect();
        Supervisor {
            venues,
            index_weights,
            metric: s.metric,
            threshold: s.threshold,
            log_distance: s.distance.map_or(0.0, f64::ln_1p),
            window: s.window_steps.unwrap_or(1) as usize,
            action: s.action,
            halt_steps: s.halt_steps.unwrap_or(0) as usize,
            add_on: s.add_on.unwrap_or(0.0),
        }
    }
}

/// The per-venue settings a policy may change before the ladders are built.
#[derive(Debug, Clone)]
pub struct VenueTerms {
    /// Margin rates by position size.
    pub margin: MarginSchedule,
    /// Highest leverage a policy allows (infinite unless one caps it); positions opened
    /// during the horizon open under it.
    pub leverage_cap: f64,
    /// Routing share (alpha).
    pub routing: f64,
    /// Mark price.
    pub mark: MarkPrice,
    /// Fund index.
    pub fund: usize,
    /// The venue's positions.
    pub positions: Vec<Position>,
}

impl VenueTerms {
    /// Every venue's own terms, in scenario order, each with its own fund.
    pub fn all_baseline(scenario: &Scenario, books: &[Vec<Position>]) -> Vec<VenueTerms> {
        let f = scenario.file();
        f.venues
            .iter()
            .zip(books)
            .enumerate()
            .map(|(i, (v, b))| VenueTerms::baseline(v, f.liquidity.routing, i, b.clone()))
            .collect()
    }

    /// A venue's own terms, as the scenario states them.
    pub fn baseline(v: &Venue, routing: f64, fund: usize, positions: Vec<Position>) -> Self {
        VenueTerms {
            margin: v.margin(),
            leverage_cap: f64::INFINITY,
            routing,
            mark: v.mark_price,
            fund,
            positions,
        }
    }
}

/// Open interest of a book (USD at the start price `start`): contracts outstanding, the larger
/// side's notional. A snapshot may hold more of one side than the other, and the unlevered
/// rest of the market (never liquidated) holds the difference (MODEL.md section 4); a
/// generated book holds equal sides.
pub fn open_interest(positions: &[Position], start: f64) -> f64 {
    side_notional(positions, Side::Long, start).max(side_notional(positions, Side::Short, start))
}

/// Notional of one side of a book (USD at the start price `start`).
pub fn side_notional(positions: &[Position], side: Side, start: f64) -> f64 {
    positions
        .iter()
        .filter(|p| p.side == side)
        .map(|p| p.quantity * start)
        .sum()
}

impl Market {
    /// Builds the market of a scenario under given venue terms and fund balances; stopped
    /// between ladders by an interrupt ([`crate::runner::check_interrupt`]), since one
    /// ladder of millions of positions takes a second.
    ///
    /// Venues are built in parallel, on the threads of the pool it is called in: with books of
    /// a million positions building is most of a study's time (sorting, and the kernel
    /// zeroing the ladders' fresh pages), and each venue's ladders depend on its own terms
    /// alone, so the market is the same whatever the thread count.
    pub fn build(scenario: &Scenario, terms: Vec<VenueTerms>, funds: Vec<f64>) -> Result<Market> {
        let f = scenario.file();
        let start = f.price.start;
        let open_interest: Vec<f64> = terms
            .iter()
            .map(|t| open_interest(&t.positions, start))
            .collect();
        let total: f64 = open_interest.iter().sum();
        let law = f.liquidity.impact;
        let mut venues: Vec<VenueModel> = f
            .venues
            .par_iter()
            .zip(terms)
            .zip(&open_interest)
            .enumerate()
            .map(|(i, ((v, t), &oi))| {
                let partial = match v.liquidation {
                    LiquidationMode::Full => None,
                    LiquidationMode::Partial => v.partial_fraction,
                };
                // A look at the flag before each ladder: several venues build at once, so a
                // signal waits for one ladder, not one venue.
                let ladder = |side| {
                    check_interrupt()?;
                    Ok(Ladder::build(
                        &t.positions,
                        side,
                        &t.margin,
                        v.liquidation_fee,
                        partial,
                        law,
                    ))
                };
                let (longs, shorts) = (ladder(Side::Long)?, ladder(Side::Short)?);
                check_interrupt()?;
                Ok(VenueModel {
                    name: v.name.clone(),
                    jurisdiction: v.jurisdiction.clone(),
                    longs,
                    shorts,
                    long_entries: EntryIndex::build(&t.positions, Side::Long),
                    short_entries: EntryIndex::build(&t.positions, Side::Short),
                    fund: t.fund,
                    adl: v.adl,
                    depth: v.depth_1pct,
                    routing: t.routing,
                    mark: t.mark,
                    weight: if total > 0.0 { oi / total } else { 0.0 },
                    open_interest: oi,
                    cohorts: cohorts(scenario, i, &t, partial),
                    // Set below, once every venue's cohorts are counted.
                    first_cohort: 0,
                })
            })
            .collect::<Result<_>>()?;
        let mut cohorts_before = 0;
        for v in &mut venues {
            v.first_cohort = cohorts_before;
            cohorts_before += v.cohorts.len();
        }
        Ok(Market {
            start,
            any_index_mark: venues.iter().any(|v| v.mark == MarkPrice::Index),
            cohorts: venues.iter().map(|v| v.cohorts.len()).sum(),
            venues,
            funds,
            liquidity: LiquidityModel::new(&f.liquidity),
            max_rounds: f.simulation.max_rounds,
            total_open_interest: total,
            supervisors: Vec::new(),
        })
    }

    /// The scenario's own market: every venue on its own terms, each with its own fund.
    pub fn baseline(scenario: &Scenario, books: &[Vec<Position>]) -> Result<Market> {
        let funds = scenario
            .file()
            .venues
            .iter()
            .map(|v| v.insurance_fund)
            .collect();
        Market::build(scenario, VenueTerms::all_baseline(scenario, books), funds)
    }
}

/// The cohorts of venue `i` under its terms: drawn on their own random streams (so every
/// policy sees the same draws), at each level's price, with leverage capped by the venue's
/// tiers and the policy's cap.
fn cohorts(scenario: &Scenario, i: usize, t: &VenueTerms, partial: Option<f64>) -> Vec<Cohort> {
    let f = scenario.file();
    let (v, law) = (&f.venues[i], f.liquidity.impact);
    let Some(o) = &v.opening else {
        return Vec::new();
    };
    let spec = BookSpec::from_opening(o);
    o.levels
        .iter()
        .enumerate()
        .map(|(k, &level)| {
            let price = f.price.start * (1.0 - level);
            let mut positions = book::generate(
                &spec,
                price,
                o.notional,
                &t.margin,
                scenario.seed(),
                Stream::Cohort {
                    venue: i,
                    cohort: k,
                },
            );
            for p in &mut positions {
                p.leverage = p.leverage.min(t.leverage_cap);
            }
            let ladder =
                |side| Ladder::build(&positions, side, &t.margin, v.liquidation_fee, partial, law);
            Cohort {
                log_level: price.ln(),
                longs: ladder(Side::Long),
                shorts: ladder(Side::Short),
                long_entries: EntryIndex::build(&positions, Side::Long),
                short_entries: EntryIndex::build(&positions, Side::Short),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::file::ImpactLaw;

    #[test]
    fn adl_draws_on_open_profits_exactly_or_within_the_whole_sides() {
        // Three shorts: 50x at 80 (3 BTC) and at 100 (1 BTC), the two a path crosses first
        // (triggers 1.5% above their entries), and 1x at 95 (2 BTC), never crossed here.
        let short = |entry, quantity, leverage| Position {
            side: Side::Short,
            quantity,
            entry,
            leverage,
        };
        let book = [
            short(80.0, 3.0, 50.0),
            short(100.0, 1.0, 50.0),
            short(95.0, 2.0, 1.0),
        ];
        let margin = MarginSchedule::flat(0.01, 0.005);
        let ladder = |side| Ladder::build(&book, side, &margin, 0.0, None, ImpactLaw::Linear);
        let ladders = (&ladder(Side::Long), &ladder(Side::Short));
        let entries = (
            &EntryIndex::build(&book, Side::Long),
            &EntryIndex::build(&book, Side::Short),
        );
        let crossed = 2;
        // The third tranche is the 1x short's: the first two are the ones crossed.
        let third = ladders.1.next_log_trigger(crossed);
        assert!(
            (third - (95.0f64 * 2.0 / 1.005).ln()).abs() < 1e-12,
            "{third}"
        );
        let at = |price| open_profits(Side::Short, ladders, entries, crossed, price);
        // At 70 every crossed short is in the money: what is open is the 1x short's.
        let (profit, quantity) = at(70.0);
        assert!((profit - 2.0 * 25.0).abs() < 1e-9, "{profit}");
        assert!((quantity - 2.0).abs() < 1e-12, "{quantity}");
        // At 90 the crossed short at 80 is out of the money and outweighs the one at 100: the
        // open profit (the 1x short's, 10) is not known, and the figure stays between it and
        // the whole side's (20: 10 each from the shorts at 100 and 95), never above.
        let (profit, _) = at(90.0);
        let whole = EntryIndex::build(&book, Side::Short).profits(90.0).0;
        assert!((whole - 20.0).abs() < 1e-9, "{whole}");
        assert!(
            (10.0..=whole).contains(&profit),
            "{profit} against 10 and {whole}"
        );
        // Nothing crossed, nothing taken out.
        assert_eq!(
            open_profits(Side::Short, ladders, entries, 0, 90.0),
            EntryIndex::build(&book, Side::Short).profits(90.0)
        );
    }
}
