//! One path of one policy: the step loop and the cascade rounds within a step.
//!
//! The state of a path is small: the fundamental, one impact [`Pool`] for the shared
//! liquidity and one per venue, a pointer into each ladder, the fund balances and running
//! totals. A step with nothing near a trigger costs a few additions and two comparisons
//! (the "quiet band" test; for a while after a cascade, while venues trade apart, also
//! every venue's price and the index); only steps that cross a trigger run cascade rounds,
//! and a round costs binary searches and prefix-sum differences, never a loop over positions.

use crate::book::Side;
use crate::ladder::{Fill, Ladder, Sweep};
use crate::liquidity::{LiquidityModel, Pool};
use crate::market::{Cohort, Market, VenueModel};
use crate::metrics::{self, Metric, RowLayout, VenueMetric};
use crate::scenario::file::{MarkPrice, SupervisionMetric, SupervisoryAction};
use crate::window_max::WindowMax;

/// Local dislocations smaller than this (in log price) are set to zero, so that a market that
/// has calmed down returns to the fast path where every venue trades at the shared price.
/// 1e-7 is a tenth of a tick of BTC perpetuals (0.1 USD at 100,000 USD) and far below the
/// tick of any other market. Tracking them down to 1e-9 (the value until 2026-12-02) priced
/// every venue on 48% of the steps of a calm benchmark path (no stress drop; 38% now) and
/// executed 12% more instructions there. The cutoff moves a benchmark path's bad debt by at
/// most 7e-6 of it (one venue's, on one path, by 1e-4), and the shipped scenarios' means and
/// 99th percentiles by under 4e-6.
const NEGLIGIBLE_DISLOCATION: f64 = 1e-7;

/// How far (in log price) the quiet band is narrowed on each side. A band edge is a trigger
/// shifted by add-ons (`t + a + shift`) while a search shifts the mark instead
/// (`mark - a - shift`); the two roundings can disagree by an ulp, so a mark an ulp past an
/// edge could look quiet to the band yet crossed to the search. Narrowing the band by far more
/// than that leaves every decision to the search.
const BAND_SLACK: f64 = 1e-12;

/// The furthest the fundamental may move from the start price, in log (a factor of about
/// 2.4e17): beyond any price model's reach except absurd inputs (a replayed CSV of huge
/// returns), whose prices it keeps finite and strictly positive.
const MAX_FUNDAMENTAL_MOVE: f64 = 40.0;

/// Drawdowns below one basis point count as one basis point in the amplification ratio.
const DRAWDOWN_FLOOR: f64 = 1e-4;

/// Where every dollar moved by liquidations went on one path (USD, summed over venues).
///
/// The accounts balance: `counterparty = stake - returned - fees + bad_debt` (what the other
/// side is owed is what the liquidated traders lost plus the shortfall), and
/// `bad_debt = fund_drawn + adl + unabsorbed` (every shortfall has a payer or is left unpaid).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ledger {
    /// Margin the liquidated traders had at stake.
    pub stake: f64,
    /// Equity returned to liquidated traders.
    pub returned: f64,
    /// Liquidation fees paid into the funds.
    pub fees: f64,
    /// Shortfall beyond bankruptcy prices.
    pub bad_debt: f64,
    /// Paid by insurance funds.
    pub fund_drawn: f64,
    /// Covered by auto-deleveraging.
    pub adl: f64,
    /// Left unpaid.
    pub unabsorbed: f64,
    /// Owed to the other side of the liquidated positions.
    pub counterparty: f64,
    /// Insurance fund balances at the start, summed.
    pub funds_start: f64,
    /// Insurance fund balances at the end, summed.
    pub funds_end: f64,
}

impl Ledger {
    fn add_sweep(&mut self, s: &Sweep) {
        self.stake += s.stake;
        self.returned += s.returned;
        self.fees += s.fees;
        self.bad_debt += s.bad_debt;
        self.counterparty += s.counterparty;
    }
}

/// How far a path has gone down the two ladders of one book (a venue's start book, or a
/// cohort opened during the horizon).
#[derive(Debug, Clone, Copy, Default)]
struct Holding {
    /// Tranches crossed so far on each ladder (this step's crossings included).
    long_ptr: usize,
    short_ptr: usize,
    /// Tranches already filled and booked: the step's sweep is `settled..ptr`.
    long_settled: usize,
    short_settled: usize,
    /// Crossed ranges of the current round (from the pointers).
    long_to: usize,
    short_to: usize,
    /// Log of the price the book opened at over the price its ladders were built at (0 for
    /// the start book): shifts its triggers, bankruptcy and entry prices alike.
    shift: f64,
}

impl Holding {
    /// A book opened at `shift` (log) from the price its ladders were built at.
    fn opened(shift: f64) -> Holding {
        Holding {
            shift,
            ..Holding::default()
        }
    }

    /// Finds the tranches the log mark has crossed, given the venue's add-on shifts, on the
    /// sides `sides` (long, short) says may have crossed (a side not searched crosses
    /// nothing this round); returns whether any is new.
    #[inline(always)]
    fn find(
        &mut self,
        (longs, shorts): (&Ladder, &Ladder),
        mark: f64,
        add_on: (f64, f64),
        sides: (bool, bool),
    ) -> bool {
        self.long_to = if sides.0 {
            longs.crossed_until(self.long_ptr, mark - add_on.0 - self.shift)
        } else {
            self.long_ptr
        };
        self.short_to = if sides.1 {
            shorts.crossed_until(self.short_ptr, mark - add_on.1 - self.shift)
        } else {
            self.short_ptr
        };
        self.long_to > self.long_ptr || self.short_to > self.short_ptr
    }

    /// Takes the round's crossings; returns their net forced sell quantity.
    #[inline]
    fn advance(&mut self, (longs, shorts): (&Ladder, &Ladder)) -> f64 {
        let q = longs.quantity_between(self.long_ptr, self.long_to)
            - shorts.quantity_between(self.short_ptr, self.short_to);
        self.long_ptr = self.long_to;
        self.short_ptr = self.short_to;
        q
    }

    /// Fills and books what was crossed since the last booking, during the step's `fill`.
    #[inline]
    fn settle(
        &mut self,
        (longs, shorts): (&Ladder, &Ladder),
        fill: Fill,
        add_on: (f64, f64),
    ) -> (Sweep, Sweep) {
        // The start book's entries are used as built (exp(0) is exactly 1, without the call).
        let entry_scale = if self.shift == 0.0 {
            1.0
        } else {
            self.shift.exp()
        };
        let l = longs.sweep(
            self.long_settled,
            self.long_ptr,
            fill,
            add_on.0 + self.shift,
            entry_scale,
        );
        let s = shorts.sweep(
            self.short_settled,
            self.short_ptr,
            fill,
            add_on.1 + self.shift,
            entry_scale,
        );
        self.long_settled = self.long_ptr;
        self.short_settled = self.short_ptr;
        (l, s)
    }

    /// Whether anything was crossed since the last booking.
    #[inline]
    fn unsettled(&self) -> bool {
        self.long_ptr > self.long_settled || self.short_ptr > self.short_settled
    }

    /// Log prices of the next long and short triggers (the edges of the quiet band).
    #[inline]
    fn band(&self, (longs, shorts): (&Ladder, &Ladder), add_on: (f64, f64)) -> (f64, f64) {
        (
            longs.next_log_trigger(self.long_ptr) + add_on.0 + self.shift,
            shorts.next_log_trigger(self.short_ptr) + add_on.1 + self.shift,
        )
    }

    /// Quantity still open whose trigger lies within `log_distance` of the mark, or that the
    /// mark has already passed: a supervisor looks at a step's move before its liquidations,
    /// and a move that gaps past the triggers (the cascade a breaker exists to hold) carries
    /// them beyond "near" without liquidating them yet.
    fn near(
        &self,
        (longs, shorts): (&Ladder, &Ladder),
        mark: f64,
        add_on: (f64, f64),
        log_distance: f64,
    ) -> f64 {
        let (ml, ms) = (mark - add_on.0 - self.shift, mark - add_on.1 - self.shift);
        let near_long = longs.crossed_until(self.long_ptr, ml - log_distance);
        let near_short = shorts.crossed_until(self.short_ptr, ms + log_distance);
        longs.quantity_between(self.long_ptr, near_long)
            + shorts.quantity_between(self.short_ptr, near_short)
    }
}

#[derive(Debug, Clone, Default)]
struct VenueState {
    /// The book at the start. It is a field of its own, not the first entry of a list of
    /// open books shared with the cohorts, although every method then reads "the start
    /// book, then the open cohorts": one loop per venue over a list of open books gives
    /// byte-identical results but executes 7.5% more instructions on the benchmark scenario
    /// (callgrind, 32 paths: 33.7M against 31.3M in `simulate`), almost all of it loop and
    /// bounds-check overhead in the rounds, where most venues hold no cohort.
    start: Holding,
    /// Cohorts opened so far (they open in level order).
    cohorts_open: usize,
    local: Pool,
    /// `local` has taken flow since the venues last traded at the shared price (else it is
    /// zero, and a dislocated calm step leaves the venue at the shared price without
    /// decaying it). A flag rather than a test of the pool's two parts for zero: it is read
    /// for every venue on every dislocated calm step.
    moved: bool,
    /// `exp(level) - 1` of `local`: the venue's price over the shared price, less one. Kept
    /// with the pool, so that the index costs a weighted sum rather than an exponential per
    /// venue: a round recomputes it only for the venues that crossed (a dislocated calm step,
    /// where every pool decays, for all).
    dislocation: f64,
    /// Current log price.
    log_price: f64,
    /// Log price when the step's cascade began (the first half of its fills' average).
    log_price_before: f64,
    /// What ADL has taken from profitable longs / shorts on this path.
    adl_from_longs: Deleveraged,
    adl_from_shorts: Deleveraged,
    /// Log prices strictly between which the venue's mark crosses no trigger and opens no
    /// cohort.
    band_low: f64,
    band_high: f64,
    /// Bad debt of this step's fills owed by longs / shorts, until the funds pay it.
    shortfall: (f64, f64),
    /// Liquidations are paused (circuit breaker) while the step index is below this.
    halted_until: usize,
    /// The venue's books moved (a crossing taken, a cohort opened) since its band was set.
    band_stale: bool,
    /// The last search for crossings found new ones on this venue.
    crossing: bool,
    /// Log shift of every trigger after margin add-ons (<= 0 for longs, >= 0 for shorts).
    long_shift: f64,
    short_shift: f64,
    /// The shifts of a margin add-on called this step, which take effect once the step's
    /// liquidations are done.
    called_shift: (f64, f64),
}

impl VenueState {
    fn add_on(&self) -> (f64, f64) {
        (self.long_shift, self.short_shift)
    }

    /// Whether the venue, marked `mark`, crosses nothing at its own price (a venue marked to
    /// the index is tested against the index instead).
    #[inline]
    fn quiet_at_own_price(&self, mark: MarkPrice) -> bool {
        mark == MarkPrice::Index || inside(self.log_price, self.band_low, self.band_high)
    }
}

/// What auto-deleveraging has taken from one side of a venue on a path.
#[derive(Debug, Clone, Copy, Default)]
struct Deleveraged {
    /// Profit taken (USD).
    profit: f64,
    /// Quantity closed: the most that the share of the open profit taken so far, times the
    /// quantity holding it, has been.
    quantity: f64,
}

/// A supervisor's state on one path.
#[derive(Debug, Clone, Default)]
struct SupervisorState {
    /// The supervisor does not act again before this step (its circuit breaker is running).
    busy_until: usize,
    /// Its margin add-on has been imposed (once per path).
    added: bool,
    /// The peak of the watched venues' recent log prices (drawdown metric).
    peaks: WindowMax,
}

/// Reusable per-thread buffers; one path at a time.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    venues: Vec<VenueState>,
    /// Every venue's cohorts, venue by venue ([`crate::market::VenueModel::first_cohort`]).
    cohorts: Vec<Holding>,
    funds: Vec<f64>,
    /// Per fund: the step's claims on it, then the share of them it pays.
    claims: Vec<f64>,
    supervisors: Vec<SupervisorState>,
    /// The step at which a supervisor first acted on the last path, if any.
    pub first_intervention: Option<usize>,
    /// Per step: log of traded price over start price, at the step's end.
    pub log_price_path: Vec<f64>,
    /// Per step: cumulative liquidated notional at the step's end (USD).
    pub liquidated_path: Vec<f64>,
}

/// Runs one path of `market` on the exogenous log returns `returns`, writing the path's row
/// into `row` (laid out by [`RowLayout`]) and the per-step figures into `scratch`.
pub fn simulate(
    market: &Market,
    returns: &[f64],
    scratch: &mut Scratch,
    row: &mut [f64],
) -> Ledger {
    let mut path = PathRun::new(market, scratch, row, returns.len());
    path.run(returns);
    path.finish()
}

struct PathRun<'a> {
    m: &'a Market,
    s: &'a mut Scratch,
    row: &'a mut [f64],
    layout: RowLayout,
    ledger: Ledger,
    log_start: f64,
    x: f64,
    shared: Pool,
    locals_active: bool,
    /// Quiet band: with every venue at the shared price, nothing triggers strictly inside.
    band_low: f64,
    band_high: f64,
    /// The band every venue marked to the index shares (their bands' intersection).
    index_band_low: f64,
    index_band_high: f64,
    recent_move: f64,
    liquidated: f64,
    /// Some venue settled bad debt this step that the funds have not yet covered.
    shortfalls: bool,
    /// A margin add-on was called this step ([`Self::impose_add_ons`] imposes it).
    add_on_called: bool,
    /// Notional (at the start price, per side) of cohorts opened so far.
    opened: f64,
    /// Index of the current step.
    step: usize,
    /// The log index the last search for crossings priced.
    crossing_index: f64,
    /// What the step needs of the venues' prices while they trade apart: a dislocated calm
    /// step's `decay_locals` gathers it, a cascade step its spread.
    step_prices: StepPrices,
    /// The log index when the step's cascade began (its first search).
    index_before: f64,
}

impl<'a> PathRun<'a> {
    fn new(m: &'a Market, s: &'a mut Scratch, row: &'a mut [f64], steps: usize) -> Self {
        let layout = RowLayout {
            venues: m.venues.len(),
        };
        debug_assert_eq!(row.len(), layout.len());
        row.fill(0.0);
        let log_start = m.start.ln();
        s.venues.clear();
        s.venues.resize(
            m.venues.len(),
            VenueState {
                log_price: log_start,
                ..VenueState::default()
            },
        );
        s.cohorts.clear();
        s.cohorts.resize(m.cohorts, Holding::default());
        s.funds.clear();
        s.funds.extend_from_slice(&m.funds);
        s.claims.resize(m.funds.len(), 0.0);
        // Reset in place: each keeps the memory of its window from path to path.
        s.supervisors
            .resize_with(m.supervisors.len(), SupervisorState::default);
        for (state, sup) in s.supervisors.iter_mut().zip(&m.supervisors) {
            state.busy_until = 0;
            state.added = false;
            // A step's drawdown is from the peak of the window's `window` steps before it and
            // itself. The window starts at the start price: a fall in the first steps is a
            // fall from it (an empty window would measure the first step from its own end).
            state.peaks.reset(sup.window + 1);
            state.peaks.push(log_start);
        }
        s.first_intervention = None;
        // Every step writes its entry: a buffer already this long is reused as it is.
        s.log_price_path.resize(steps, 0.0);
        s.liquidated_path.resize(steps, 0.0);
        let funds_start = m.funds.iter().sum();
        let mut run = PathRun {
            m,
            s,
            row,
            layout,
            ledger: Ledger {
                funds_start,
                ..Ledger::default()
            },
            log_start,
            x: log_start,
            shared: Pool::default(),
            locals_active: false,
            band_low: 0.0,
            band_high: 0.0,
            index_band_low: 0.0,
            index_band_high: 0.0,
            recent_move: 0.0,
            liquidated: 0.0,
            shortfalls: false,
            add_on_called: false,
            opened: 0.0,
            step: 0,
            crossing_index: log_start,
            step_prices: StepPrices::default(),
            index_before: log_start,
        };
        run.update_band(true);
        run
    }

    /// Recomputes the quiet bands: every venue's if `all`, else only those whose books moved
    /// since (`band_stale`), then the path's from the venues'. A cascade step moves the books
    /// of a few venues; the others' bands stand.
    fn update_band(&mut self, all: bool) {
        let (mut low, mut high) = (f64::NEG_INFINITY, f64::INFINITY);
        let (mut index_low, mut index_high) = (f64::NEG_INFINITY, f64::INFINITY);
        for (v, st) in self.m.venues.iter().zip(&mut self.s.venues) {
            if all || st.band_stale {
                st.band_stale = false;
                let (mut vl, mut vh) = st.start.band(v.ladders(), st.add_on());
                if !v.cohorts.is_empty() {
                    let open = open_cohorts(&self.s.cohorts, v, st.cohorts_open);
                    for (c, h) in v.cohorts.iter().zip(open) {
                        let (l, hi) = h.band(c.ladders(), st.add_on());
                        vl = vl.max(l);
                        vh = vh.min(hi);
                    }
                    // The next cohort opens once the mark reaches its level.
                    if let Some(c) = v.cohorts.get(st.cohorts_open) {
                        vl = vl.max(c.log_level);
                    }
                }
                st.band_low = vl + BAND_SLACK;
                st.band_high = vh - BAND_SLACK;
            }
            // Comparisons rather than f64::max/min: edges are never NaN.
            if st.band_low > low {
                low = st.band_low;
            }
            if st.band_high < high {
                high = st.band_high;
            }
            if v.mark == MarkPrice::Index {
                if st.band_low > index_low {
                    index_low = st.band_low;
                }
                if st.band_high < index_high {
                    index_high = st.band_high;
                }
            }
        }
        self.band_low = low;
        self.band_high = high;
        self.index_band_low = index_low;
        self.index_band_high = index_high;
    }

    /// The step's log index if no venue can cross a trigger at shared log price `z`, `None`
    /// if one may: the common band when every venue trades at `z`, else each venue's own
    /// band against its own mark. The index is computed here, exactly, because the step
    /// records it anyway; testing index marks against a bound on it instead (the range of
    /// venue prices) sent two in three calm steps after a cascade into a search that found
    /// nothing (callgrind, benchmark scenario).
    fn quiet(&mut self, z: f64) -> Option<f64> {
        if !self.locals_active {
            return inside(z, self.band_low, self.band_high).then_some(z);
        }
        // `decay_locals` priced the venues at `z`.
        let log_index = log_index(z, self.step_prices.weighted_dislocation);
        // Venues marked to the index are tested at once, against their common band.
        let index_quiet = inside(log_index, self.index_band_low, self.index_band_high);
        // `decay_locals` tested the venues marked to their own prices, unless a supervisor
        // may have moved their bands since.
        let own_quiet = if self.m.supervisors.is_empty() {
            self.step_prices.own_quiet
        } else {
            self.m
                .venues
                .iter()
                .zip(&self.s.venues)
                .all(|(v, st)| st.quiet_at_own_price(v.mark))
        };
        let quiet = (index_quiet || !self.m.any_index_mark) && own_quiet;
        quiet.then_some(log_index)
    }

    fn run(&mut self, returns: &[f64]) {
        let lm = self.m.liquidity;
        let mut track = Track::new(self.log_start);
        let supervised = !self.m.supervisors.is_empty();
        // The per-step figures leave the scratch buffers for the loop, so that a calm stretch
        // can write them beside the path's state.
        let mut log_price_path = std::mem::take(&mut self.s.log_price_path);
        let mut liquidated_path = std::mem::take(&mut self.s.liquidated_path);
        let mut t = 0;
        while t < returns.len() {
            if !self.locals_active && !supervised {
                t = self.calm_steps(
                    t,
                    returns,
                    &mut track,
                    &mut log_price_path,
                    &mut liquidated_path,
                );
                if t == returns.len() {
                    break;
                }
            }
            self.step = t;
            (self.x, self.shared.transient) =
                self.advanced(self.x, self.shared.transient, returns[t]);
            let z = self.x + self.shared.level();
            if self.locals_active {
                self.decay_locals(z);
            }
            if supervised {
                self.supervise();
            }
            let log_index = match self.quiet(z) {
                Some(log_index) => log_index,
                None => {
                    let depth_factor = lm.depth_factor(self.recent_move);
                    self.cascade(depth_factor);
                    if self.locals_active {
                        // The cascade's last search for crossings priced the venues and the
                        // index where the cascade left them.
                        let spread = self
                            .s
                            .venues
                            .iter()
                            .fold(Spread::EMPTY, |s, st| s.widened(st.log_price));
                        self.step_prices.spread = spread;
                        self.crossing_index
                    } else {
                        // Nothing crossed and nothing is dislocated: the shared price.
                        self.x + self.shared.level()
                    }
                }
            };
            if self.add_on_called {
                self.impose_add_ons();
            }
            if self.locals_active && self.step_prices.spread.width() > track.max_gap {
                track.max_gap = self.step_prices.spread.width();
            }
            track.close_step(&lm, &mut self.recent_move, self.x, log_index);
            log_price_path[t] = log_index - self.log_start;
            liquidated_path[t] = self.liquidated;
            t += 1;
        }
        self.s.log_price_path = log_price_path;
        self.s.liquidated_path = liquidated_path;
        let dd = 1.0 - (track.min_log_index - self.log_start).exp();
        let exo = 1.0 - (track.min_x - self.log_start).exp();
        self.set(Metric::MaxDrawdown, dd);
        self.set(Metric::ExogenousDrawdown, exo);
        self.set(
            Metric::Amplification,
            dd.max(DRAWDOWN_FLOOR) / exo.max(DRAWDOWN_FLOOR),
        );
        self.set(Metric::MaxVenueGap, track.max_gap.exp() - 1.0);
    }

    /// The fundamental and the shared pool's transient part one step on, after the exogenous
    /// log return `r`, from `x` and `transient`.
    #[inline(always)]
    fn advanced(&self, x: f64, transient: f64, r: f64) -> (f64, f64) {
        (
            (x + r).clamp(
                self.log_start - MAX_FUNDAMENTAL_MOVE,
                self.log_start + MAX_FUNDAMENTAL_MOVE,
            ),
            transient * self.m.liquidity.resilience_decay,
        )
    }

    /// Runs the steps from `t` on while they are calm: nothing dislocated, no supervisor, and
    /// the shared price inside the quiet band, where a step is the fundamental's move, the
    /// shared pool's decay and two comparisons. The path's scalars are copied into locals
    /// for the stretch, so that they stay in registers (as fields they were loaded and
    /// stored on every step, a third of a calm step's instructions). Returns the first step
    /// that is not calm, not yet run (its arithmetic is repeated when it runs), or the end.
    fn calm_steps(
        &mut self,
        t: usize,
        returns: &[f64],
        track: &mut Track,
        log_price_path: &mut [f64],
        liquidated_path: &mut [f64],
    ) -> usize {
        let lm = self.m.liquidity;
        let (mut x, mut transient, mut recent_move, mut tr) =
            (self.x, self.shared.transient, self.recent_move, *track);
        let (permanent, low, high) = (self.shared.permanent, self.band_low, self.band_high);
        let mut end = t;
        let figures = log_price_path[t..]
            .iter_mut()
            .zip(&mut liquidated_path[t..]);
        for (&r, (log_price_out, liquidated_out)) in returns[t..].iter().zip(figures) {
            let (next_x, next_transient) = self.advanced(x, transient, r);
            // The shared pool's level, summed as `Pool::level` sums it.
            let z = next_x + (permanent + next_transient);
            if !inside(z, low, high) {
                break;
            }
            (x, transient) = (next_x, next_transient);
            tr.close_step(&lm, &mut recent_move, x, z);
            *log_price_out = z - self.log_start;
            *liquidated_out = self.liquidated;
            end += 1;
        }
        (self.x, self.shared.transient, self.recent_move, *track) = (x, transient, recent_move, tr);
        end
    }

    /// Lets the venues' dislocations decay toward the shared log price `z` for a step, prices
    /// the venues at `z` and keeps what the step needs of their prices ([`StepPrices`]); ends
    /// the dislocations once all are negligible.
    fn decay_locals(&mut self, z: f64) {
        let lm = self.m.liquidity;
        let mut any = false;
        let mut prices = StepPrices::default();
        for (v, st) in self.m.venues.iter().zip(&mut self.s.venues) {
            // A venue no cascade has moved (the onshore ones, mostly) trades at `z` as it is.
            if !st.moved {
                st.log_price = z;
            } else {
                st.local.permanent *= lm.arbitrage_decay;
                st.local.transient *= lm.arbitrage_decay * lm.resilience_decay;
                let level = st.local.level();
                st.dislocation = exp_m1(level);
                st.log_price = z + level;
                any |= level.abs() >= NEGLIGIBLE_DISLOCATION;
            }
            prices.weighted_dislocation += v.weight * st.dislocation;
            prices.spread = prices.spread.widened(st.log_price);
            prices.own_quiet &= st.quiet_at_own_price(v.mark);
        }
        self.step_prices = prices;
        if !any {
            for st in &mut self.s.venues {
                st.local = Pool::default();
                st.moved = false;
                st.dislocation = 0.0;
                st.log_price = z;
            }
            self.locals_active = false;
        }
    }

    /// Sets every venue's current log price and returns the log index.
    fn price_venues(&mut self) -> f64 {
        let base = self.x + self.shared.level();
        let mut weighted_dislocation = 0.0;
        for (v, st) in self.m.venues.iter().zip(&mut self.s.venues) {
            st.log_price = base + st.local.level();
            weighted_dislocation += v.weight * st.dislocation;
        }
        log_index(base, weighted_dislocation)
    }

    /// Finds the tranches each venue's mark has crossed; returns whether any has.
    fn find_crossings(&mut self) -> bool {
        let log_index = self.price_venues();
        self.crossing_index = log_index;
        let mut any = false;
        for (v, st) in self.m.venues.iter().zip(&mut self.s.venues) {
            let mark = mark(v.mark, st.log_price, log_index);
            // The band edges were the next triggers when the step began; crossings since have
            // only moved the triggers further away, so a mark inside an edge crosses nothing
            // on that side. A paused venue (circuit breaker) crosses nothing on either side.
            let sides = (mark <= st.band_low, mark >= st.band_high);
            st.crossing = false;
            // The band first: most venues leave here, and two tests of booleans compile to
            // less than a comparison of the pair (2.3% of a benchmark path's instructions).
            if !(sides.0 || sides.1) || self.step < st.halted_until {
                // Nothing to search: every pointer already equals its round's end.
                continue;
            }
            let add_on = st.add_on();
            st.crossing = st.start.find(v.ladders(), mark, add_on, sides);
            // Most venues have no cohort open: keep their rounds off the cohorts' state.
            if st.cohorts_open > 0 {
                let open = open_cohorts_mut(&mut self.s.cohorts, v, st.cohorts_open);
                st.crossing |= find_in_cohorts(&v.cohorts, open, mark, add_on, sides);
            }
            any |= st.crossing;
        }
        any
    }

    /// Lets every supervisor look at its venues and act if its metric crossed the threshold.
    fn supervise(&mut self) {
        let index = self.price_venues();
        let t = self.step;
        for (sup, state) in self.m.supervisors.iter().zip(&mut self.s.supervisors) {
            let value = match sup.metric {
                SupervisionMetric::NearLiquidation => {
                    let mut quantity = 0.0;
                    for &i in &sup.venues {
                        let (v, st) = (&self.m.venues[i], &self.s.venues[i]);
                        let m = mark(v.mark, st.log_price, index);
                        let (add_on, d) = (st.add_on(), sup.log_distance);
                        quantity += st.start.near(v.ladders(), m, add_on, d);
                        let open = open_cohorts(&self.s.cohorts, v, st.cohorts_open);
                        for (c, h) in v.cohorts.iter().zip(open) {
                            quantity += h.near(c.ladders(), m, add_on, d);
                        }
                    }
                    quantity * self.m.start
                }
                SupervisionMetric::Drawdown => {
                    // The watched venues' price index (see `Supervisor::index_weights`), from
                    // their dislocations over the shared price as `price_venues` sums them.
                    // (The fundamental, used here once, left out every move the cascade made.)
                    let mut dislocation = 0.0;
                    for (&i, &w) in sup.venues.iter().zip(&sup.index_weights) {
                        dislocation += w * self.s.venues[i].dislocation;
                    }
                    let now = log_index(self.x + self.shared.level(), dislocation);
                    let peak = state.peaks.push(now);
                    1.0 - (now - peak).exp()
                }
            };
            let ready = t >= state.busy_until && !state.added;
            if !(ready && value >= sup.threshold) {
                continue;
            }
            match sup.action {
                SupervisoryAction::CircuitBreaker => {
                    // After a pause the supervisor waits as long again before it may pause
                    // again, so the liquidations the pause held can run.
                    state.busy_until = t + 2 * sup.halt_steps;
                    for &i in &sup.venues {
                        let st = &mut self.s.venues[i];
                        st.halted_until = st.halted_until.max(t + sup.halt_steps);
                    }
                }
                SupervisoryAction::MarginAddOn => {
                    state.added = true;
                    self.add_on_called = true;
                    for &i in &sup.venues {
                        let st = &mut self.s.venues[i];
                        st.called_shift.0 += (1.0 - sup.add_on).ln();
                        st.called_shift.1 += (1.0 + sup.add_on).ln();
                    }
                }
            }
            self.row[Metric::Interventions.index()] += 1.0;
            self.s.first_intervention.get_or_insert(t);
        }
    }

    /// Imposes the margin add-ons called this step, now that its liquidations are done.
    ///
    /// A supervisor sees the step's move before its cascade and calls the add-on then; a
    /// position the move has already carried past its trigger, or past bankruptcy, is
    /// liquidated under the rules it had: margin posted after the loss does not undo it
    /// (as a leverage cap does not rescue a position already past its trigger). The
    /// positions still open, and those that open later, post it.
    fn impose_add_ons(&mut self) {
        self.add_on_called = false;
        for st in &mut self.s.venues {
            let (long, short) = std::mem::take(&mut st.called_shift);
            st.long_shift += long;
            st.short_shift += short;
        }
        // Every trigger of the venues acted on moved.
        self.update_band(true);
    }

    /// Cascade rounds within one step, to the fixed point or the round cap, then the step's
    /// fills and loss waterfall.
    ///
    /// A round finds the tranches every venue's mark has crossed, nets and routes their forced
    /// flow and moves the prices (MODEL.md section 6). Fills are booked once, after the last
    /// round, between each venue's log price before the step's cascade and after it (see
    /// [`Fill`]: a tranche the cascade itself reached joins the flow at its trigger).
    /// Modelling choice: the step's forced flow is one metaorder (impact is already a
    /// function of the step's cumulative flow), so its fills are a property of the step, not
    /// of how many rounds a ladder's granularity needs to reach the fixed point; booking per
    /// round made a finer ladder (more, smaller rounds) fill closer to each trigger and report
    /// less bad debt for the same cascade. The rounds, the fixed point and the liquidated
    /// quantities are unchanged; `cascade_rounds` still counts rounds run (searches that found
    /// new crossings), and a round stopped by the cap is neither moved nor booked, as before.
    fn cascade(&mut self, depth_factor: f64) {
        let m = self.m;
        let lm = m.liquidity;
        self.shared.begin_step();
        for st in &mut self.s.venues {
            st.local.begin_step();
        }
        let mut rounds = 0u32;
        while self.find_crossings() {
            if rounds == m.max_rounds {
                self.add(Metric::RoundCapHits, 1.0);
                break;
            }
            if rounds == 0 {
                // The first search priced the venues before any forced flow.
                for st in &mut self.s.venues {
                    st.log_price_before = st.log_price;
                }
                self.index_before = self.crossing_index;
            }
            rounds += 1;
            // Net forced sells per venue, in notional at the start price.
            let mut shared_flow = 0.0;
            for (v, st) in m.venues.iter().zip(&mut self.s.venues) {
                // A venue that crossed nothing adds no flow (and zero flow moves no pool).
                if !st.crossing {
                    continue;
                }
                let mut q = st.start.advance(v.ladders());
                if st.cohorts_open > 0 {
                    let open = open_cohorts_mut(&mut self.s.cohorts, v, st.cohorts_open);
                    for (c, h) in v.cohorts.iter().zip(open) {
                        q += h.advance(c.ladders());
                    }
                }
                let flow = q * m.start;
                shared_flow += v.routing * flow;
                st.local
                    .absorb(&lm, (1.0 - v.routing) * flow, v.depth * depth_factor);
                st.moved = true;
                st.band_stale = true;
                st.dislocation = exp_m1(st.local.level());
            }
            self.shared
                .absorb(&lm, shared_flow, lm.shared_depth * depth_factor);
        }
        if rounds > 0 {
            self.locals_active = true;
            self.add(Metric::CascadeRounds, f64::from(rounds));
            self.add(Metric::CascadeSteps, 1.0);
            // The last search (the one that found no new crossing, or the one the cap
            // stopped) priced the venues after the last round.
            for i in 0..m.venues.len() {
                self.settle(i);
            }
            self.cover_shortfalls();
        }
        if m.cohorts > 0 {
            self.open_cohorts();
        }
        self.update_band(false);
    }

    /// Opens every cohort whose level its venue's mark has reached, at that mark: entries,
    /// triggers and bankruptcy prices follow the price the positions actually opened at.
    /// Longs and shorts open in equal quantity, so opening moves no price.
    fn open_cohorts(&mut self) {
        let index = if self.m.any_index_mark {
            self.crossing_index
        } else {
            0.0
        };
        for (v, st) in self.m.venues.iter().zip(&mut self.s.venues) {
            let mark = mark(v.mark, st.log_price, index);
            while let Some(c) = v.cohorts.get(st.cohorts_open) {
                if mark > c.log_level {
                    break;
                }
                self.s.cohorts[v.first_cohort + st.cohorts_open] =
                    Holding::opened(mark - c.log_level);
                self.opened += c.longs.total_quantity() * self.m.start;
                st.cohorts_open += 1;
                st.band_stale = true;
            }
        }
    }

    /// Fills venue `i`'s tranches crossed this step between its log price before and after
    /// the step's cascade (see [`Fill`]) and books them: fees into its fund, and the bad debt
    /// as a shortfall that [`Self::cover_shortfalls`] pays once every venue has settled.
    fn settle(&mut self, i: usize) {
        let v = &self.m.venues[i];
        let st = &mut self.s.venues[i];
        let open = open_cohorts_mut(&mut self.s.cohorts, v, st.cohorts_open);
        if !st.start.unsettled() && (st.cohorts_open == 0 || !open.iter().any(Holding::unsettled)) {
            return;
        }
        let post = st.log_price;
        let fill = match v.mark {
            MarkPrice::Own => Fill::between(st.log_price_before, post),
            // The last search priced the index after the last round.
            MarkPrice::Index => Fill {
                offset_before: st.log_price_before - self.index_before,
                offset_after: post - self.crossing_index,
                ..Fill::between(st.log_price_before, post)
            },
        };
        let add_on = st.add_on();
        let (mut longs, mut shorts) = st.start.settle(v.ladders(), fill, add_on);
        for (c, h) in v.cohorts.iter().zip(open.iter_mut()) {
            let (l, s) = h.settle(c.ladders(), fill, add_on);
            longs.add(&l);
            shorts.add(&s);
        }
        self.s.funds[v.fund] += longs.fees + shorts.fees;
        st.shortfall = (longs.bad_debt, shorts.bad_debt);
        self.shortfalls |= longs.bad_debt > 0.0 || shorts.bad_debt > 0.0;

        // Liquidated notional is valued at the start price, like open interest: a deeper crash
        // then never makes the same liquidations look smaller.
        let long_notional = longs.quantity * self.m.start;
        let short_notional = shorts.quantity * self.m.start;
        self.liquidated += long_notional + short_notional;
        self.ledger.add_sweep(&longs);
        self.ledger.add_sweep(&shorts);

        let (path, venue) = self.layout.cells(self.row, i);
        path[Metric::LiquidatedNotional.index()] += long_notional + short_notional;
        path[Metric::LiquidatedLongNotional.index()] += long_notional;
        path[Metric::LiquidatedShortNotional.index()] += short_notional;
        path[Metric::LiquidatedPositions.index()] += f64::from(longs.positions + shorts.positions);
        path[Metric::BadDebt.index()] += longs.bad_debt + shorts.bad_debt;
        path[Metric::LiquidatedValue.index()] += longs.value + shorts.value;
        path[Metric::LiquidatedLongValue.index()] += longs.value;
        path[Metric::LiquidatedShortValue.index()] += shorts.value;
        venue[VenueMetric::LiquidatedLongNotional.index()] += long_notional;
        venue[VenueMetric::LiquidatedShortNotional.index()] += short_notional;
        venue[VenueMetric::BadDebt.index()] += longs.bad_debt + shorts.bad_debt;
        venue[VenueMetric::LiquidatedLongValue.index()] += longs.value;
        venue[VenueMetric::LiquidatedShortValue.index()] += shorts.value;
    }

    /// The loss waterfall of the step's settled shortfalls: each fund pays its venues' bad
    /// debt, then ADL covers what is left where enabled, and the rest is unpaid.
    ///
    /// A fund short of its claims pays each of them the same share (a pooled default fund
    /// serves its members alike): paid one venue after another, the venue listed first in
    /// the scenario would take the pool and leave the next one's loss unabsorbed, and
    /// reordering the venues would change the result. Every venue's fees of the step are in
    /// before any claim is paid.
    fn cover_shortfalls(&mut self) {
        if !std::mem::take(&mut self.shortfalls) {
            return;
        }
        // Each fund's claims, then the share of them it pays.
        let cover = &mut self.s.claims;
        cover.iter_mut().for_each(|c| *c = 0.0);
        for (v, st) in self.m.venues.iter().zip(&self.s.venues) {
            cover[v.fund] += st.shortfall.0 + st.shortfall.1;
        }
        for (c, fund) in cover.iter_mut().zip(&mut self.s.funds) {
            if *c <= *fund {
                *fund -= *c;
                *c = 1.0;
            } else {
                *c = (*fund / *c).clamp(0.0, 1.0);
                *fund = 0.0;
            }
        }
        for i in 0..self.m.venues.len() {
            let v = &self.m.venues[i];
            let st = &mut self.s.venues[i];
            let (long_bad, short_bad) = std::mem::take(&mut st.shortfall);
            if long_bad <= 0.0 && short_bad <= 0.0 {
                continue;
            }
            let share = self.s.claims[v.fund];
            let open = open_cohorts(&self.s.cohorts, v, st.cohorts_open);
            let mut drawn = 0.0;
            let mut adl_total = 0.0;
            let mut adl_notional = 0.0;
            let mut unabsorbed = 0.0;
            // Longs' shortfall is owed to shorts, so ADL draws on profitable shorts, and vice
            // versa.
            for (bad, opposite, taken) in [
                (long_bad, Side::Short, &mut st.adl_from_shorts),
                (short_bad, Side::Long, &mut st.adl_from_longs),
            ] {
                if bad <= 0.0 {
                    continue;
                }
                let paid = bad * share;
                drawn += paid;
                let mut rest = bad - paid;
                // A shortfall of rounding (a fund sized to exactly the loss it meets, short
                // by the last bits) is no call on the profitable side: it stays unpaid, which
                // `metrics::insolvent` does not count either.
                if rest > metrics::INSOLVENCY_ROUNDING * bad && v.adl {
                    let crossed = |h: &Holding| match opposite {
                        Side::Long => h.long_ptr,
                        Side::Short => h.short_ptr,
                    };
                    let opened = open.iter().map(|h| (h.shift, crossed(h)));
                    let (profit, quantity) =
                        v.profits(opposite, st.log_price, crossed(&st.start), opened);
                    let available = (profit - taken.profit).max(0.0);
                    let adl = rest.min(available);
                    if adl > 0.0 {
                        taken.profit += adl;
                        adl_total += adl;
                        // The haircuts so far are this share of the open profit: as much of
                        // the profitable quantity closed. A position whose profit was all
                        // taken before is not closed again when it wins more.
                        let closed = (taken.profit / profit).min(1.0) * quantity;
                        if closed > taken.quantity {
                            adl_notional += (closed - taken.quantity) * self.m.start;
                            taken.quantity = closed;
                        }
                        rest -= adl;
                    }
                }
                unabsorbed += rest;
            }
            self.ledger.fund_drawn += drawn;
            self.ledger.adl += adl_total;
            self.ledger.unabsorbed += unabsorbed;

            let (path, venue) = self.layout.cells(self.row, i);
            path[Metric::InsuranceFundDrawn.index()] += drawn;
            path[Metric::AdlNotional.index()] += adl_notional;
            path[Metric::AdlHaircut.index()] += adl_total;
            path[Metric::UnabsorbedLoss.index()] += unabsorbed;
            venue[VenueMetric::InsuranceFundDrawn.index()] += drawn;
            venue[VenueMetric::AdlNotional.index()] += adl_notional;
            venue[VenueMetric::AdlHaircut.index()] += adl_total;
            venue[VenueMetric::UnabsorbedLoss.index()] += unabsorbed;
        }
    }

    fn set(&mut self, metric: Metric, value: f64) {
        self.row[metric.index()] = value;
    }

    fn add(&mut self, metric: Metric, value: f64) {
        self.row[metric.index()] += value;
    }

    fn finish(mut self) -> Ledger {
        let mut insolvent = 0;
        for i in 0..self.m.venues.len() {
            let (_, venue) = self.layout.cells(self.row, i);
            insolvent += usize::from(metrics::insolvent(
                venue[VenueMetric::UnabsorbedLoss.index()],
                venue[VenueMetric::BadDebt.index()],
            ));
        }
        self.set(Metric::InsolventVenues, insolvent as f64);
        let oi = self.m.total_open_interest;
        if oi > 0.0 {
            // A forced sale and a forced purchase on one venue may close one contract between
            // them, so a venue loses the larger of its sides' forced closes, not their sum
            // (which counted all of a book's open interest lost while most of it stayed open).
            let mut closed = 0.0;
            for i in 0..self.m.venues.len() {
                let (_, venue) = self.layout.cells(self.row, i);
                closed += venue[VenueMetric::LiquidatedLongNotional.index()]
                    .max(venue[VenueMetric::LiquidatedShortNotional.index()]);
            }
            let lost = (closed - self.opened).max(0.0) / oi;
            self.set(Metric::OpenInterestLost, lost.min(1.0));
        }
        self.ledger.funds_end = self.s.funds.iter().sum();
        self.ledger
    }
}

/// What a step needs of the venues' prices, gathered while they are set (one pass over the
/// venues rather than one for the index and one for the spread).
#[derive(Debug, Clone, Copy)]
struct StepPrices {
    /// The venues' weights times their dislocations (`exp(level) - 1`), summed: see
    /// [`log_index`].
    weighted_dislocation: f64,
    /// The range of the venues' log prices.
    spread: Spread,
    /// No venue marked to its own price crosses anything at it.
    own_quiet: bool,
}

impl Default for StepPrices {
    fn default() -> Self {
        StepPrices {
            weighted_dislocation: 0.0,
            spread: Spread::EMPTY,
            own_quiet: true,
        }
    }
}

/// The range of some log prices.
#[derive(Debug, Clone, Copy)]
struct Spread {
    low: f64,
    high: f64,
}

impl Spread {
    /// No price yet.
    const EMPTY: Spread = Spread {
        low: f64::INFINITY,
        high: f64::NEG_INFINITY,
    };

    /// The range taking in `log_price` too.
    #[inline]
    fn widened(self, log_price: f64) -> Spread {
        // Comparisons rather than f64::min/max: prices are never NaN, and this runs for every
        // venue on every dislocated step.
        Spread {
            low: if log_price < self.low {
                log_price
            } else {
                self.low
            },
            high: if log_price > self.high {
                log_price
            } else {
                self.high
            },
        }
    }

    /// High less low.
    fn width(&self) -> f64 {
        self.high - self.low
    }
}

/// What the step loop tracks besides the path's state: running extremes and the last index.
#[derive(Debug, Clone, Copy)]
struct Track {
    min_log_index: f64,
    min_x: f64,
    /// Largest range of the venues' log prices so far.
    max_gap: f64,
    prev_log_index: f64,
}

impl Track {
    fn new(log_start: f64) -> Track {
        Track {
            min_log_index: log_start,
            min_x: log_start,
            max_gap: 0.0,
            prev_log_index: log_start,
        }
    }

    /// Takes in a step that ended at fundamental `x` and log index `log_index`, and moves
    /// `recent_move`, the recent average absolute move depth withdrawal follows.
    #[inline(always)]
    fn close_step(&mut self, lm: &LiquidityModel, recent_move: &mut f64, x: f64, log_index: f64) {
        // Comparisons rather than f64::min/max in the step loop: the same for the numbers
        // here (both skip NaN), in fewer instructions on every step.
        if x < self.min_x {
            self.min_x = x;
        }
        if log_index < self.min_log_index {
            self.min_log_index = log_index;
        }
        if lm.withdrawal > 0.0 {
            let d = lm.resilience_decay;
            *recent_move = d * *recent_move + (1.0 - d) * (log_index - self.prev_log_index).abs();
        }
        self.prev_log_index = log_index;
    }
}

/// Log of the open-interest-weighted average of the venues' prices, around the shared log
/// price `base`: `base + ln(1 + sum w (exp(d) - 1))` over the venues' dislocations `d`, given
/// that sum (each venue keeps its `exp(d) - 1` up to date as its pool moves).
#[inline]
fn log_index(base: f64, weighted_dislocation: f64) -> f64 {
    base + ln_1p(weighted_dislocation)
}

/// The cohorts venue `v` has opened so far (`open` of them), out of every venue's `cohorts`.
/// A function of the fields it reads, not a method: its callers hold the venues' state
/// borrowed beside it.
#[inline]
fn open_cohorts<'a>(cohorts: &'a [Holding], v: &VenueModel, open: usize) -> &'a [Holding] {
    &cohorts[v.first_cohort..v.first_cohort + open]
}

/// [`open_cohorts`], to change.
#[inline]
fn open_cohorts_mut<'a>(
    cohorts: &'a mut [Holding],
    v: &VenueModel,
    open: usize,
) -> &'a mut [Holding] {
    &mut cohorts[v.first_cohort..v.first_cohort + open]
}

/// [`Holding::find`] on each open cohort `open` of `cohorts`; whether any found a new crossing.
/// Out of line: inlined into the round's search, its loop held registers that every searched
/// venue then reloaded (1% of a benchmark path's instructions, where no cohort ever opens).
#[cold]
#[inline(never)]
fn find_in_cohorts(
    cohorts: &[Cohort],
    open: &mut [Holding],
    mark: f64,
    add_on: (f64, f64),
    sides: (bool, bool),
) -> bool {
    let mut crossing = false;
    for (c, h) in cohorts.iter().zip(open) {
        crossing |= h.find(c.ladders(), mark, add_on, sides);
    }
    crossing
}

/// Whether the log price `p` lies strictly inside the band from `low` to `high` (a quiet band:
/// no trigger strictly inside).
#[inline(always)]
fn inside(p: f64, low: f64, high: f64) -> bool {
    p > low && p < high
}

/// The log mark price of a venue: its own log price, or the index's.
#[inline]
fn mark(kind: MarkPrice, own: f64, index: f64) -> f64 {
    match kind {
        MarkPrice::Own => own,
        MarkPrice::Index => index,
    }
}

/// Below this magnitude the series in [`exp_m1`] and [`ln_1p`] are accurate to double
/// precision: the first omitted term is under 1e-21 of the result, and results lie within an
/// ulp of libm's. Below [`SHORT_SERIES_LIMIT`], where the dislocations of calm steps lie,
/// fewer terms do; the longer series, for a cascade's larger ones, still executes under half
/// the instructions of a libm call.
const SERIES_LIMIT: f64 = 1e-2;

/// Below this magnitude the series need only their first terms ([`EXP_M1_SHORT`] and
/// [`LN_1P_SHORT`] of them).
const SHORT_SERIES_LIMIT: f64 = 1e-3;

/// Taylor coefficients of `(exp(x) - 1) / x`, as reciprocals (multiplications, no divisions).
const EXP_M1: [f64; 8] = [
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
];
const EXP_M1_SHORT: usize = 6;

/// Taylor coefficients of `ln(1 + x) / x`.
const LN_1P: [f64; 10] = [
    1.0,
    -1.0 / 2.0,
    1.0 / 3.0,
    -1.0 / 4.0,
    1.0 / 5.0,
    -1.0 / 6.0,
    1.0 / 7.0,
    -1.0 / 8.0,
    1.0 / 9.0,
    -1.0 / 10.0,
];
const LN_1P_SHORT: usize = 7;

/// `x * (c[0] + c[1] x + ... + c[n - 1] x^(n - 1))`, in Estrin's form.
#[inline(always)]
fn series(x: f64, c: &[f64]) -> f64 {
    // Pairs first: c[2j] + c[2j + 1] x, then pairs of pairs in x^2, and so on. The terms of
    // each level are independent, so the chain of dependent operations is about log2(n)
    // steps long rather than n: a cascade round waits on two series, each crossing venue's
    // dislocation and then the index that marks the venues marked to it.
    let mut terms = [0.0; 8];
    // The lengths are constants where this is inlined, so the check costs nothing.
    assert!(c.len() <= 2 * terms.len(), "a series of at most 16 terms");
    let pairs = c.chunks_exact(2);
    let odd = pairs.remainder().first().copied();
    let mut m = 0;
    for (t, pair) in terms.iter_mut().zip(pairs) {
        *t = pair[0] + pair[1] * x;
        m += 1;
    }
    if let Some(last) = odd {
        terms[m] = last;
        m += 1;
    }
    let mut power = x * x;
    while m > 1 {
        let half = m.div_ceil(2);
        for j in 0..half {
            terms[j] = if 2 * j + 1 < m {
                terms[2 * j] + terms[2 * j + 1] * power
            } else {
                terms[2 * j]
            };
        }
        m = half;
        power *= power;
    }
    x * terms[0]
}

/// `exp(x) - 1`, by its Taylor series for small `x`.
#[inline]
fn exp_m1(x: f64) -> f64 {
    let a = x.abs();
    if a < SHORT_SERIES_LIMIT {
        series(x, &EXP_M1[..EXP_M1_SHORT])
    } else if a < SERIES_LIMIT {
        series(x, &EXP_M1)
    } else {
        x.exp_m1()
    }
}

/// `ln(1 + x)`, by its Taylor series for small `x`.
#[inline]
fn ln_1p(x: f64) -> f64 {
    let a = x.abs();
    if a < SHORT_SERIES_LIMIT {
        series(x, &LN_1P[..LN_1P_SHORT])
    } else if a < SERIES_LIMIT {
        series(x, &LN_1P)
    } else {
        x.ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::{exp_m1, ln_1p};

    #[test]
    fn series_match_libm_where_they_are_used() {
        // Both tiers, up to each one's limit.
        let xs = (-1000..=1000).flat_map(|i| [f64::from(i) * 0.999e-6, f64::from(i) * 0.999e-5]);
        for x in xs {
            let (a, b) = (exp_m1(x), x.exp_m1());
            assert!(
                (a - b).abs() <= 2.0 * f64::EPSILON * b.abs(),
                "exp_m1({x}): {a} vs {b}"
            );
            let (a, b) = (ln_1p(x), x.ln_1p());
            assert!(
                (a - b).abs() <= 2.0 * f64::EPSILON * b.abs(),
                "ln_1p({x}): {a} vs {b}"
            );
        }
    }
}
