//! The static liquidation ladder of one side of one venue, and the O(log n) sweep over it.
//!
//! Every position is cut at build time into tranches (one for full liquidation, several for
//! partial), each with the price that triggers it. Tranches are sorted so that a falling price
//! (for longs) or a rising one (for shorts) crosses them front to back; a path's whole state
//! on a ladder is then how many tranches it has crossed. Sums over any stretch of the ladder,
//! and the fee / bad-debt split of a stretch filled during a step (see [`Fill`]), come from
//! prefix sums and binary search: a path never loops over positions.

use std::collections::BTreeMap;

use crate::book::{Position, Side};
use crate::liquidity::{join_power, join_weight};
use crate::margin::MarginSchedule;
use crate::scenario::file::ImpactLaw;

/// Width, in log price, of the maintenance classes of a tiered ladder: a tranche's
/// bankruptcy price is taken as its class's multiple of its (exact) trigger, so it is off by
/// at most half of this, 0.5 basis points of price.
pub const CLASS_WIDTH: f64 = 1e-4;

/// Keys past its start that a search counts in one go, without branches, before it gallops:
/// on the benchmark scenario nearly three searches in four that cross anything cross fewer
/// than this many tranches, and a count costs no mispredicted branch where a gallop's end
/// costs one.
const WINDOW: usize = 16;

/// Keys per entry of a run's sample (every this-many-th key): a search past its window
/// gallops over the sample, a sixteenth of the keys and so mostly in the cache, then counts
/// the keys of one stretch this long, whose two cache lines load side by side. Galloping and
/// bisecting over the keys themselves waited on one cache miss after another on a large book
/// (half of a search's time at 1,000,000 positions).
const SAMPLE: usize = 16;

/// A sorted ladder of tranches with prefix sums.
///
/// The fee / bad-debt split of a stretch needs the tranches in order of bankruptcy price as
/// well as of trigger. Under one maintenance rate the bankruptcy price is a fixed multiple
/// `exp(log_bk_ratio)` of the trigger (at a trigger, equity is exactly `rate x notional`),
/// so one order serves both, and the split is a pair of binary searches. Margin tiers give
/// larger positions higher effective rates; such a ladder also keeps its tranches grouped in
/// *classes* of nearly equal rate (see [`CLASS_WIDTH`]), each a ladder of its own for the
/// split, while crossing and flows still use the single order of all tranches.
#[derive(Debug, Clone)]
pub struct Ladder {
    side: Side,
    /// All tranches: keys and prefix sums (see [`Run`]).
    all: Run,
    /// Classes of a ladder with several rates, in ascending rate; empty when every tranche
    /// has the same rate (then `all` carries it).
    classes: Vec<Run>,
    /// The first and last key of each class, in the order of `classes`, side by side: a sweep
    /// reads them for every class, and skips the classes with no tranche in its stretch.
    class_keys: Vec<[f64; 2]>,
    /// Liquidation fee rate, and `ln(1 - sign x fee)`: where equity just pays the fee.
    fee: f64,
    log_fee_factor: f64,
    /// The side's whole quantity, including positions that can never be liquidated.
    total_quantity: f64,
    /// The weight of a fill's join price under the scenario's impact law
    /// ([`join_weight`]).
    join_weight: f64,
}

/// Tranches sorted by trigger, with prefix sums.
#[derive(Debug, Clone, Default)]
struct Run {
    /// `-sign x ln(trigger)`: ascending, so the crossed tranches are a prefix beyond the pointer.
    keys: Vec<f64>,
    /// Every [`SAMPLE`]-th key, from the first.
    sample: Vec<f64>,
    /// Prefix sums, one entry per boundary (length n + 1), kept together (48 bytes) so that a
    /// lookup touches one or two adjacent cache lines rather than six arrays.
    prefix: Vec<Prefix>,
    /// Log of bankruptcy price / trigger price: `ln(1 - rate)` for longs, `ln(1 + rate)` for
    /// shorts (unused on the `all` run of a ladder with classes).
    log_bk_ratio: f64,
    /// `exp(log_bk_ratio)`, for the common sweep with no shift (saves an `exp` a sweep).
    bk_ratio: f64,
}

/// Prefix sums up to one boundary of the ladder.
#[derive(Debug, Clone, Copy, Default)]
struct Prefix {
    /// Quantity.
    qty: f64,
    /// Quantity x trigger price.
    qty_trigger: f64,
    /// Quantity x entry price.
    qty_entry: f64,
    /// Quantity x the trigger price to the power [`join_weight`]: a tranche that joins a
    /// step's cascade late fills at its trigger and the step's last price weighted so.
    qty_join_trigger: f64,
    /// Quantity x key (log trigger, signed as the keys are): where a stretch's tranches lie,
    /// for the join offsets of a venue marked to the index ([`Fill::join_offset`]).
    qty_key: f64,
    /// Tranches that are a position's first (counts liquidated positions).
    first: u32,
}

/// Bytes a tranche takes in a built ladder: its key and its prefix sums (the sampled keys add
/// a sixteenth of a key). A ladder of a tiered schedule also keeps each tranche in the ladder
/// of its tier's class, twice in all.
pub const TRANCHE_BYTES: usize = size_of::<f64>() + size_of::<Prefix>();

/// Bytes a tranche takes while its ladder is built, besides [`TRANCHE_BYTES`]: the list of
/// tranches and the (key, index) pairs that sort them are held while the sorted ladder is
/// built from them.
pub const BUILD_BYTES: usize = size_of::<Tranche>() + size_of::<(f64, usize)>();

/// One tranche before sorting (its key, `-sign x ln(trigger)`, is kept apart: see
/// [`Ladder::build`]).
#[derive(Debug, Clone, Copy)]
struct Tranche {
    trigger: f64,
    /// `trigger` to the power [`join_weight`].
    join_trigger: f64,
    quantity: f64,
    entry: f64,
    first: bool,
    /// Its exact log bankruptcy / trigger ratio.
    log_bk_ratio: f64,
}

/// The prices a step's crossed stretch is filled between, in log.
///
/// A step's forced flow is one metaorder that moves the venue's price from `log_before` (when
/// the step's cascade began) to `log_after` (its fixed point). A tranche whose trigger the price
/// had already passed at `log_before` is sold along the whole move and fills at its average
/// over the flow: between the two, weighted by the impact law ([`join_weight`]; the geometric
/// midpoint under the linear law, a third of the way from `log_after` under the square root,
/// which moves most early in the flow). A tranche that the cascade itself reached joins the
/// flow at its trigger and fills between its trigger and `log_after`, weighted the same. So no
/// tranche fills better than the price that triggered it, and fills do not depend on how many
/// rounds the cascade took. On a venue marked to the index, "past its trigger" and "at its
/// trigger" are the index's, and the venue's own price then is the trigger moved by the
/// venue's offset from the index: `offset_before` when the cascade began, and for the
/// tranches it reached, the offset where the index reached them (`Fill::join_offset`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fill {
    /// Log price when the step's cascade began.
    pub log_before: f64,
    /// Log price at its end.
    pub log_after: f64,
    /// Log of the venue's price over its mark price when the cascade began (0 for a venue
    /// marked to its own price): a tranche was past its trigger then if the mark was.
    pub offset_before: f64,
    /// The same at the cascade's end.
    pub offset_after: f64,
}

impl Fill {
    /// A move from `log_before` to `log_after` on a venue marked to its own price.
    pub fn between(log_before: f64, log_after: f64) -> Fill {
        Fill {
            log_before,
            log_after,
            offset_before: 0.0,
            offset_after: 0.0,
        }
    }

    /// The venue's price over its mark (log) when the mark reached a stretch of tranches whose
    /// mean log trigger (as the mark sees them) `mean_log_trigger` gives: interpolated between
    /// the offsets at the cascade's start and end, at that point of the mark's move. Both
    /// prices move with the step's cumulative forced flow, and so does the offset; taking it
    /// linear in the mark is exact when the offset moves in proportion to the mark (as when
    /// the venue's price stays put while the index moves), and one offset for the stretch's
    /// mean trigger is off for its other tranches only to second order in their spread (the
    /// prefix sums carry one offset per stretch).
    fn join_offset(&self, mean_log_trigger: impl FnOnce() -> f64) -> f64 {
        if self.offset_after == self.offset_before {
            return self.offset_before;
        }
        let mark_before = self.log_before - self.offset_before;
        let moved = (self.log_after - self.offset_after) - mark_before;
        let along = if moved != 0.0 {
            ((mean_log_trigger() - mark_before) / moved).clamp(0.0, 1.0)
        } else {
            0.5
        };
        self.offset_before + along * (self.offset_after - self.offset_before)
    }

    /// Every crossed tranche filled at the one price `exp(log_price)`.
    pub fn at(log_price: f64) -> Fill {
        Fill::between(log_price, log_price)
    }
}

/// Quantity x trigger and quantity x fill of the three parts of a filled stretch: bankruptcy
/// beyond the fill (bad debt), equity short of the fee, equity paying the whole fee.
#[derive(Debug, Default)]
struct Parts {
    qty_trigger: [f64; 3],
    qty_fill: [f64; 3],
}

/// What liquidating a stretch of a ladder during a step does, in USD.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sweep {
    /// Quantity closed.
    pub quantity: f64,
    /// Positions liquidated for the first time.
    pub positions: u32,
    /// Margin the liquidated traders had at stake: quantity x |entry - bankruptcy price|.
    pub stake: f64,
    /// Equity returned to the traders after the fee.
    pub returned: f64,
    /// Liquidation fees (to the insurance fund).
    pub fees: f64,
    /// Shortfall where the fill was worse than the bankruptcy price.
    pub bad_debt: f64,
    /// What the other side of the closed positions is owed: quantity x |entry - fill|.
    pub counterparty: f64,
    /// What the closed quantity traded for: quantity x fill (USD at the fill prices, as
    /// exchanges and aggregators report liquidations).
    pub value: f64,
}

impl Sweep {
    /// Adds another sweep's figures to these.
    pub fn add(&mut self, o: &Sweep) {
        self.quantity += o.quantity;
        self.positions += o.positions;
        self.stake += o.stake;
        self.returned += o.returned;
        self.fees += o.fees;
        self.bad_debt += o.bad_debt;
        self.counterparty += o.counterparty;
        self.value += o.value;
    }
}

impl Run {
    fn from_sorted<'a>(
        tranches: impl ExactSizeIterator<Item = (f64, &'a Tranche)>,
        log_bk_ratio: f64,
    ) -> Run {
        // Sized up front: the length is known, and grown by doubling a run of millions of
        // tranches is reallocated some twenty times.
        let mut run = Run {
            keys: Vec::with_capacity(tranches.len()),
            prefix: Vec::with_capacity(tranches.len() + 1),
            log_bk_ratio,
            bk_ratio: log_bk_ratio.exp(),
            ..Run::default()
        };
        let (mut q, mut qt, mut qe, mut qs, mut qk, mut c) = (0.0, 0.0, 0.0, 0.0, 0.0, 0u32);
        run.prefix.push(Prefix::default());
        for (key, t) in tranches {
            run.keys.push(key);
            q += t.quantity;
            qt += t.quantity * t.trigger;
            qe += t.quantity * t.entry;
            qs += t.quantity * t.join_trigger;
            qk += t.quantity * key;
            c += u32::from(t.first);
            run.prefix.push(Prefix {
                qty: q,
                qty_trigger: qt,
                qty_entry: qe,
                qty_join_trigger: qs,
                qty_key: qk,
                first: c,
            });
        }
        run.sample = sample(&run.keys);
        run
    }

    /// First index in `from..n` whose key fails `pred`, or `n` (keys ascending, `pred` true on
    /// a prefix of them), by counting the [`WINDOW`] keys after `from`, then galloping over
    /// the [`SAMPLE`] and counting the stretch of keys it ends in: the boundaries a cascade
    /// looks for lie close to where it starts.
    #[inline]
    fn partition_within(&self, from: usize, n: usize, pred: impl Fn(f64) -> bool) -> usize {
        // Cut to `n` once: the sample's gallop and the last count look at no key past it.
        let keys = &self.keys[..n];
        if from >= n || !pred(keys[from]) {
            return from;
        }
        let count =
            |stretch: &[f64]| -> usize { stretch.iter().map(|&k| usize::from(pred(k))).sum() };
        // Every key before `passed` passes.
        let mut passed = from + 1;
        if let Some(window) = keys.get(passed..passed + WINDOW) {
            let crossed = count(window);
            if crossed < WINDOW {
                return passed + crossed;
            }
            passed += WINDOW;
        }
        // The answer lies in the stretch before the first sampled key at or after `passed`
        // that fails (stretch `j - 1`); the keys before `from` pass too (`pred` holds on a
        // prefix), so it is that stretch's start plus its keys that pass.
        let sample = &self.sample[..n.div_ceil(SAMPLE)];
        let j = gallop(sample, passed.div_ceil(SAMPLE), &pred);
        let start = (j - 1) * SAMPLE;
        start + count(&keys[start..(j * SAMPLE).min(n)])
    }

    fn sums(&self, a: usize, b: usize) -> (f64, f64, f64) {
        (
            self.prefix[b].qty - self.prefix[a].qty,
            self.prefix[b].qty_trigger - self.prefix[a].qty_trigger,
            self.prefix[b].qty_entry - self.prefix[a].qty_entry,
        )
    }

    /// Adds tranches `a..b` to `parts`, cut where the keys reach `bad_key` (bankruptcy beyond
    /// the fill before it) and `fee_key` (equity short of the fee before it); `qty_fill(x, y)`
    /// is the quantity x fill of the tranches between prefixes `x` and `y`.
    fn split(
        &self,
        (a, b): (usize, usize),
        (bad_key, fee_key): (f64, f64),
        qty_fill: impl Fn(&Prefix, &Prefix) -> f64,
        parts: &mut Parts,
    ) {
        let c1 = self.partition_within(a, b, |k| k < bad_key);
        let c2 = self.partition_within(c1, b, |k| k < fee_key);
        for (i, (x, y)) in [(a, c1), (c1, c2), (c2, b)].into_iter().enumerate() {
            let (x, y) = (&self.prefix[x], &self.prefix[y]);
            parts.qty_trigger[i] += y.qty_trigger - x.qty_trigger;
            parts.qty_fill[i] += qty_fill(x, y);
        }
    }

    /// Tranches `a..b` filled during a step (see [`Fill`]) under the side and fee of
    /// `ladder`; see [`Ladder::sweep`].
    fn sweep(
        &self,
        ladder: &Ladder,
        (a, b): (usize, usize),
        fill: Fill,
        log_scale: f64,
        entry_scale: f64,
    ) -> Sweep {
        let (side, fee, log_fee_factor) = (ladder.side, ladder.fee, ladder.log_fee_factor);
        if a >= b {
            return Sweep::default();
        }
        let s = side.sign();
        // Bankruptcy price over the *unscaled* trigger, so the keys and prefix sums (built
        // from unscaled triggers) serve as they are.
        let log_r = self.log_bk_ratio + log_scale;
        // x + 0.0 is x, so the stored exponential is the one computed here.
        let r = if log_scale == 0.0 {
            self.bk_ratio
        } else {
            log_r.exp()
        };
        let mut parts = Parts::default();
        // A fill weighs where a tranche joined the flow by w, the step's last price by 1 - w.
        let w = ladder.join_weight;
        // Tranches the mark had passed when the cascade began sort first (their scaled
        // triggers are at or beyond the mark then, `log_before - offset_before`): one fill
        // price, `exp(log_mid)`. Bankruptcy beyond the fill (bad debt) sorts first, then
        // equity short of the fee, then equity that pays the whole fee.
        let late = self.partition_within(a, b, |k| {
            k <= -s * (fill.log_before - fill.offset_before - log_scale)
        });
        // Most stretches are all early or all late: skip the other part's searches and exp.
        if a < late {
            let log_mid = w * fill.log_before + (1.0 - w) * fill.log_after;
            let mid = log_mid.exp();
            self.split(
                (a, late),
                (
                    -s * (log_mid - log_r),
                    -s * (log_mid + log_fee_factor - log_r),
                ),
                |x, y| mid * (y.qty - x.qty),
                &mut parts,
            );
        }
        // The others fill at (trigger x scale x join)^w x after^(1 - w), `join` the venue's
        // price over its mark as they were reached, = trigger^w x exp(log_root):
        // bankruptcy (r x trigger) is beyond that where trigger^(1 - w) is beyond
        // exp(log_root) / r, and equity is short of the fee where that holds with the fill
        // times the fee factor.
        if late < b {
            let join_offset = fill.join_offset(|| {
                let (x, y) = (&self.prefix[late], &self.prefix[b]);
                let qty = y.qty - x.qty;
                // A stretch below half an ulp of the ladder's quantity before it (dust after
                // a whale in a snapshot) vanishes from the difference of the prefix sums, and
                // 0 / 0 would make every fill of the sweep NaN: its first key says where it is.
                let mean_key = if qty > 0.0 {
                    (y.qty_key - x.qty_key) / qty
                } else {
                    self.keys[late]
                };
                -s * mean_key + log_scale
            });
            let log_root = w * (log_scale + join_offset) + (1.0 - w) * fill.log_after;
            let root = log_root.exp();
            self.split(
                (late, b),
                (
                    -s * ((log_root - log_r) / (1.0 - w)),
                    -s * ((log_root + log_fee_factor - log_r) / (1.0 - w)),
                ),
                |x, y| root * (y.qty_join_trigger - x.qty_join_trigger),
                &mut parts,
            );
        }
        let (q, t, e) = self.sums(a, b);
        let e = e * entry_scale;
        let Parts {
            qty_trigger: qt,
            qty_fill: qf,
        } = parts;
        let full_fees = fee * qf[2];
        let value = qf[0] + qf[1] + qf[2];
        Sweep {
            quantity: q,
            positions: self.prefix[b].first - self.prefix[a].first,
            stake: s * (e - r * t),
            returned: (s * (qf[2] - r * qt[2]) - full_fees).max(0.0),
            fees: full_fees + (s * (qf[1] - r * qt[1])).max(0.0),
            bad_debt: (s * (r * qt[0] - qf[0])).max(0.0),
            counterparty: s * (e - value),
            value,
        }
    }
}

/// The most tranches partial liquidation cuts a position into: one per slice of
/// `partial_fraction` of it (the last slice may be smaller), one under full liquidation.
pub fn tranches_per_position(partial_fraction: Option<f64>) -> usize {
    // The margin keeps a share exactly 1 / k from counting a (k + 1)th slice of rounding.
    partial_fraction.map_or(1, |f| (1.0 / f - 1e-9).ceil().max(1.0) as usize)
}

impl Ladder {
    /// Builds the ladder of the positions of `side` in `book` under `margin`, filled under
    /// the impact law `law` (see [`Fill`]).
    ///
    /// `partial_fraction` of `None` closes a position whole at its trigger; `Some(f)` closes
    /// `f` of the original quantity per trigger, the closed part's equity less the fee staying
    /// with the rest as margin, which sets the rest's next (lower, for longs) trigger. With
    /// tiers, the smaller rest may fall into a lower tier: large positions are reduced tier
    /// by tier, as on the venues.
    pub fn build(
        book: &[Position],
        side: Side,
        margin: &MarginSchedule,
        fee: f64,
        partial_fraction: Option<f64>,
        law: ImpactLaw,
    ) -> Ladder {
        let s = side.sign();
        let slices = tranches_per_position(partial_fraction);
        // Sized up front: grown by doubling, the list held up to three times its tranches
        // while it moved, on books of millions of positions.
        let positions = book.iter().filter(|p| p.side == side).count();
        let mut tranches = Vec::with_capacity(positions.saturating_mul(slices));
        // The sort moves (key, index) pairs, not the tranches: on books of millions of
        // positions a stable sort of the tranches themselves took half the time of building
        // the markets. Ties keep the order of the list (the index decides), so the prefix
        // sums' rounding does not depend on the sort's algorithm, which an unstable sort of
        // the keys alone would leave to the Rust release.
        let mut order: Vec<(f64, usize)> = Vec::with_capacity(tranches.capacity());
        let mut total_quantity = 0.0;
        for p in book.iter().filter(|p| p.side == side) {
            total_quantity += p.quantity;
            let mut trigger = p.trigger(margin);
            let mut left = p.quantity;
            let slice = partial_fraction.map_or(p.quantity, |f| f * p.quantity);
            let mut first = true;
            let mut cut = 0;
            while left > 0.0 && trigger.price > 0.0 && trigger.price.is_finite() {
                cut += 1;
                // The last slice takes the rest, at the latest at the count the fraction makes:
                // on a position of a few subnormal units (5e-324) a slice rounds to nothing,
                // and cutting it once looped until memory ran out.
                let q = if cut >= slices || slice <= 0.0 || left - slice <= 1e-12 * p.quantity {
                    left
                } else {
                    slice
                };
                let (price, rate) = (trigger.price, trigger.rate);
                order.push((-s * price.ln(), tranches.len()));
                tranches.push(Tranche {
                    trigger: price,
                    join_trigger: join_power(law, price),
                    quantity: q,
                    entry: p.entry,
                    first,
                    log_bk_ratio: (1.0 - s * rate).ln(),
                });
                first = false;
                // Equity of the whole remaining position at its trigger is rate x notional;
                // the closed slice's share less the fee stays as margin with the rest.
                let equity = rate * left * price - fee.min(rate) * q * price;
                left -= q;
                if left <= 0.0 {
                    break;
                }
                trigger = margin.trigger(side, left, price - s * equity / left);
            }
        }
        order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let in_order = || order.iter().map(|&(key, i)| (key, &tranches[i]));
        let common = tranches.first().map_or(0.0, |t| t.log_bk_ratio);
        let single = tranches.iter().all(|t| t.log_bk_ratio == common);
        let all = Run::from_sorted(in_order(), if single { common } else { 0.0 });
        let classes = if single {
            Vec::new()
        } else {
            classes(in_order())
        };
        let class_keys = classes
            .iter()
            .map(|c| [c.keys[0], c.keys[c.keys.len() - 1]])
            .collect();
        Ladder {
            side,
            all,
            classes,
            class_keys,
            fee,
            log_fee_factor: (1.0 - s * fee).ln(),
            total_quantity,
            join_weight: join_weight(law),
        }
    }

    /// Number of tranches.
    pub fn len(&self) -> usize {
        self.all.keys.len()
    }

    /// Whether the ladder has no tranche.
    pub fn is_empty(&self) -> bool {
        self.all.keys.is_empty()
    }

    /// Number of maintenance classes (1 unless margin tiers give tranches different rates).
    pub fn classes(&self) -> usize {
        self.classes.len().max(1)
    }

    /// The side's whole quantity (liquidatable or not).
    pub fn total_quantity(&self) -> f64 {
        self.total_quantity
    }

    /// Log of the trigger price of tranche `i`; past the end, -infinity for longs and +infinity
    /// for shorts (never crossed).
    #[inline]
    pub fn next_log_trigger(&self, i: usize) -> f64 {
        match self.all.keys.get(i) {
            Some(k) => -self.side.sign() * k,
            None => -self.side.sign() * f64::INFINITY,
        }
    }

    /// The pointer after crossing every tranche whose trigger the log mark price `log_mark`
    /// has reached, starting from `from` (galloping search: cascades move pointers little).
    #[inline]
    pub fn crossed_until(&self, from: usize, log_mark: f64) -> usize {
        let limit = -self.side.sign() * log_mark;
        let to = self
            .all
            .partition_within(from, self.all.keys.len(), |k| k <= limit);
        // The caller reads the prefix sums there next ([`Ladder::quantity_between`]); a round
        // searches every venue's ladders before it reads any, so on a book too large for the
        // cache the misses overlap the other searches instead of following one another.
        prefetch(self.all.prefix.as_ptr().wrapping_add(to));
        to
    }

    /// Quantity of tranches `a..b`.
    #[inline]
    pub fn quantity_between(&self, a: usize, b: usize) -> f64 {
        self.all.prefix[b].qty - self.all.prefix[a].qty
    }

    /// Unrealised profit at `price` of the tranches before pointer `i` (those a path has
    /// liquidated), each with its sign, so that a tranche out of the money counts against the
    /// others; and their quantity. What auto-deleveraging must not draw on.
    pub fn crossed_profit(&self, i: usize, price: f64) -> (f64, f64) {
        let p = &self.all.prefix[i];
        (self.side.sign() * (price * p.qty - p.qty_entry), p.qty)
    }

    /// Liquidates tranches `a..b`, crossed during one step, at the fills `fill` gives them
    /// (see [`Fill`]), with the ladder's fee.
    ///
    /// `log_scale` shifts every trigger (and so every bankruptcy price) of the stretch in log
    /// price: 0 as built, below 0 for longs (above for shorts) after a margin add-on, and by
    /// the log of `entry_scale` too for positions that opened at `entry_scale` times the price
    /// their ladder was built at. Working in logs keeps logarithms off this hot path: keys are
    /// log triggers already.
    ///
    /// `a` and `b` are pointers [`Ladder::crossed_until`] returned (or 0), so no two tranches
    /// with the same trigger lie on either side of them: each class's share of the stretch is
    /// then the class's tranches with keys below those at `a` and `b`.
    pub fn sweep(&self, a: usize, b: usize, fill: Fill, log_scale: f64, entry_scale: f64) -> Sweep {
        if self.classes.is_empty() || a >= b {
            return self.all.sweep(self, (a, b), fill, log_scale, entry_scale);
        }
        let mut total = Sweep::default();
        let (first, last) = (self.all.keys[a], self.all.keys[b - 1]);
        for (class, &[low, high]) in self.classes.iter().zip(&self.class_keys) {
            // A tiered schedule makes hundreds of classes, and most steps' stretches meet few
            // of them: searched, every class cost two searches a settle. Skipped, it adds
            // nothing, as its empty share would (a sweep of nothing is +0.0, and adding +0.0
            // changes no sum that starts at +0.0).
            if high < first || low > last {
                continue;
            }
            // The class's tranches before pointer `i`, counted from `from` on (a search, as
            // the ends of a step's stretch lie close together).
            let local = |from: usize, i: usize| {
                let len = class.keys.len();
                match self.all.keys.get(i) {
                    Some(&bound) => class.partition_within(from, len, |k| k < bound),
                    None => len,
                }
            };
            let start = local(0, a);
            let end = local(start, b);
            let part = class.sweep(self, (start, end), fill, log_scale, entry_scale);
            total.add(&part);
        }
        total
    }
}

/// Every [`SAMPLE`]-th key of `keys`, from the first.
fn sample(keys: &[f64]) -> Vec<f64> {
    keys.iter().step_by(SAMPLE).copied().collect()
}

/// First index at or after `lo` whose key fails `pred`, or the length (keys ascending, `pred`
/// true on a prefix of them): steps doubling from `lo`, then a bisection of the last step.
fn gallop(keys: &[f64], mut lo: usize, pred: impl Fn(f64) -> bool) -> usize {
    let n = keys.len();
    let (mut hi, mut step) = (lo, 1);
    while hi < n && pred(keys[hi]) {
        lo = hi + 1;
        hi = lo + step;
        step *= 2;
    }
    let hi = hi.min(n);
    lo + keys[lo..hi].partition_point(|&k| pred(k))
}

/// Hints the CPU to load the cache line holding `*p` (nothing elsewhere than on x86-64).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and changes no state the program can
    // see, so any address is sound; SSE, which the instruction needs, is part of every x86-64
    // target.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Groups sorted tranches into classes of nearly equal rate, each still sorted by trigger.
/// A class's ratio is its members' common one when they share it, else the class's centre.
fn classes<'a>(tranches: impl Iterator<Item = (f64, &'a Tranche)>) -> Vec<Run> {
    let mut groups: BTreeMap<i64, Vec<(f64, &Tranche)>> = BTreeMap::new();
    for (key, t) in tranches {
        let id = (t.log_bk_ratio / CLASS_WIDTH).round() as i64;
        groups.entry(id).or_default().push((key, t));
    }
    groups
        .into_iter()
        .map(|(id, members)| {
            let first = members[0].1.log_bk_ratio;
            let ratio = if members.iter().all(|(_, t)| t.log_bk_ratio == first) {
                first
            } else {
                id as f64 * CLASS_WIDTH
            };
            Run::from_sorted(members.into_iter(), ratio)
        })
        .collect()
}

/// Bytes a position takes in its side's [`EntryIndex`]: its entry and two prefix sums.
pub const ENTRY_BYTES: usize = 3 * size_of::<f64>();

/// Positions of one side sorted by entry price, for the profits auto-deleveraging draws on.
#[derive(Debug, Clone)]
pub struct EntryIndex {
    side: Side,
    entries: Vec<f64>,
    cum_qty: Vec<f64>,
    cum_qty_entry: Vec<f64>,
}

impl EntryIndex {
    /// Indexes the positions of `side` in `book`.
    pub fn build(book: &[Position], side: Side) -> EntryIndex {
        let mut rows: Vec<(f64, f64)> = book
            .iter()
            .filter(|p| p.side == side)
            .map(|p| (p.entry, p.quantity))
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut index = EntryIndex {
            side,
            entries: rows.iter().map(|r| r.0).collect(),
            cum_qty: Vec::with_capacity(rows.len() + 1),
            cum_qty_entry: Vec::with_capacity(rows.len() + 1),
        };
        index.cum_qty.push(0.0);
        index.cum_qty_entry.push(0.0);
        let (mut q, mut qe) = (0.0, 0.0);
        for (e, qty) in rows {
            q += qty;
            qe += qty * e;
            index.cum_qty.push(q);
            index.cum_qty_entry.push(qe);
        }
        index
    }

    /// Unrealised profit of the side's profitable positions at `price`, and their quantity.
    pub fn profits(&self, price: f64) -> (f64, f64) {
        let k = self.entries.partition_point(|&e| e <= price);
        let n = self.entries.len();
        let (q, qe) = match self.side {
            // Longs profit where entry < price: the front of the sorted entries.
            Side::Long => (self.cum_qty[k], self.cum_qty_entry[k]),
            // Shorts profit where entry > price: the back.
            Side::Short => (
                self.cum_qty[n] - self.cum_qty[k],
                self.cum_qty_entry[n] - self.cum_qty_entry[k],
            ),
        };
        let s = self.side.sign();
        ((s * (price * q - qe)).max(0.0), q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiered_ladder_books_each_positions_own_bankruptcy_price() {
        // Two longs under two tiers of maintenance margin: 1 at 50x (notional 100, the base
        // tier: bankrupt at 98) and 1,000 at 20x (notional 100,000, past the 50,000 bound:
        // bankrupt at 95), both filled at 90 without a fee. Their rates differ, so each is a
        // class of its own whose ratio is its member's exact one: bad debt 1 x 8 + 1,000 x 5
        // = 5,008 and stake 1 x 2 + 1,000 x 5 = 5,002, exactly (a class's centre ratio is up
        // to half a basis point off).
        let margin = MarginSchedule::tiered(0.008, 0.004, &[(5e4, 0.01, 0.005)]);
        let p = |quantity, leverage| Position {
            side: Side::Long,
            quantity,
            entry: 100.0,
            leverage,
        };
        let book = [p(1.0, 50.0), p(1000.0, 20.0)];
        let ladder = Ladder::build(&book, Side::Long, &margin, 0.0, None, ImpactLaw::Linear);
        let sweep = ladder.sweep(0, 2, Fill::at(90f64.ln()), 0.0, 1.0);
        assert!((sweep.bad_debt - 5008.0).abs() < 1e-9, "{sweep:?}");
        assert!((sweep.stake - 5002.0).abs() < 1e-9, "{sweep:?}");
    }

    #[test]
    fn partial_liquidation_leaves_the_rest_its_margin_less_the_fee() {
        // A long of 2 at 10x from 100 (bankrupt at 90) under a 5% maintenance margin, closed
        // in halves: the first half at the trigger 90 / 0.95 = 94.7368; the fee (1%) on that
        // half comes out of the margin the other half keeps, 0.05 x 2 x 94.7368 - 0.01 x
        // 94.7368 = 8.5263, so the rest is bankrupt at 94.7368 - 8.5263 = 86.2105 and
        // triggers at 86.2105 / 0.95 = 90.7479. Filled at 80, the halves' bad debt is 10 +
        // 6.2105. A fee above the maintenance rate takes only that rate: the rest keeps its
        // trigger.
        let margin = MarginSchedule::flat(0.1, 0.05);
        let long = Position {
            side: Side::Long,
            quantity: 2.0,
            entry: 100.0,
            leverage: 10.0,
        };
        let build = |fee| {
            Ladder::build(
                &[long],
                Side::Long,
                &margin,
                fee,
                Some(0.5),
                ImpactLaw::Linear,
            )
        };
        let ladder = build(0.01);
        let trigger = |ladder: &Ladder, i| ladder.next_log_trigger(i).exp();
        assert_eq!(ladder.len(), 2);
        assert!((trigger(&ladder, 0) - 90.0 / 0.95).abs() < 1e-9);
        let rest = 90.0 / 0.95 * (1.0 - 0.1 + 0.01);
        assert!(
            (trigger(&ladder, 1) - rest / 0.95).abs() < 1e-9,
            "{}",
            trigger(&ladder, 1)
        );
        let sweep = ladder.sweep(0, 2, Fill::at(80f64.ln()), 0.0, 1.0);
        assert!(
            (sweep.bad_debt - (10.0 + rest - 80.0)).abs() < 1e-9,
            "{sweep:?}"
        );
        let capped = build(0.08);
        assert!((trigger(&capped, 1) - trigger(&capped, 0)).abs() < 1e-9);
        // Past the last tranche a side has no trigger left: never crossed.
        assert_eq!(ladder.next_log_trigger(2), f64::NEG_INFINITY);
        let short = Position {
            side: Side::Short,
            ..long
        };
        let shorts = Ladder::build(
            &[short],
            Side::Short,
            &margin,
            0.01,
            None,
            ImpactLaw::Linear,
        );
        assert_eq!(shorts.next_log_trigger(1), f64::INFINITY);
    }

    #[test]
    fn a_stretch_the_prefix_sums_cannot_see_fills_at_finite_prices() {
        // 0.01 after 1e15 is below half an ulp of the prefix sum: the difference of the
        // quantity sums over the second tranche is 0. Filled late on a venue marked to the
        // index (offsets that move), its mean trigger was 0 / 0 and every fill of the sweep
        // NaN: fees and the fund NaN, and the stretch's bad debt (NaN).max(0) = 0.
        let p = |quantity, leverage| Position {
            side: Side::Long,
            quantity,
            entry: 1.0,
            leverage,
        };
        let book = [p(1e15, 2.0), p(0.01, 1.5)];
        let margin = MarginSchedule::flat(0.1, 0.05);
        let ladder = Ladder::build(&book, Side::Long, &margin, 0.01, None, ImpactLaw::Linear);
        let a = ladder.crossed_until(0, 0.5f64.ln());
        let b = ladder.crossed_until(a, 0.3f64.ln());
        assert_eq!((a, b), (1, 2), "the whale first, the dust later");
        let fill = Fill {
            log_before: 0.5f64.ln() - 0.01,
            log_after: 0.3f64.ln() - 0.02,
            offset_before: -0.01,
            offset_after: -0.02,
        };
        let sweep = ladder.sweep(a, b, fill, 0.0, 1.0);
        for (name, v) in [
            ("fees", sweep.fees),
            ("counterparty", sweep.counterparty),
            ("returned", sweep.returned),
            ("bad debt", sweep.bad_debt),
            ("stake", sweep.stake),
        ] {
            assert!(v.is_finite(), "{name} is {v}: {sweep:?}");
        }
        // Both tranches in one sweep: the whale's bad debt (it fills near 0.3, bankrupt at
        // 0.5) survives the dust beside it.
        let both = ladder.sweep(0, b, fill, 0.0, 1.0);
        assert!(both.bad_debt > 1e13 && both.fees.is_finite(), "{both:?}");
    }

    #[test]
    fn a_scaled_tranche_on_an_index_marked_venue_fills_where_the_mark_reached_it() {
        // One position, 10x from 1 under a 5% maintenance margin, its trigger moved 2% away
        // by an add-on (`log_scale`), on a venue whose price falls 2% behind the index (its
        // mark) while the mark moves from 5% to 10% against the position. Known answer: the
        // venue's price when the mark reached the scaled trigger T' is T' x exp(offset
        // there), the offset interpolated linearly along the mark's move; under the linear
        // law the fill is the geometric mean of that and the venue's last price.
        for side in [Side::Long, Side::Short] {
            let s = side.sign();
            let position = Position {
                side,
                quantity: 3.0,
                entry: 1.0,
                leverage: 10.0,
            };
            let (fee, margin) = (0.01, MarginSchedule::flat(0.1, 0.05));
            let ladder = Ladder::build(&[position], side, &margin, fee, None, ImpactLaw::Linear);
            let log_scale = -s * 0.02;
            let scaled = position.trigger(&margin).price * log_scale.exp();
            let (mark_before, mark_after) = (1.0 - s * 0.05, 1.0 - s * 0.10);
            let offset_after = -s * 0.02;
            let fill = Fill {
                log_before: mark_before.ln(),
                log_after: mark_after.ln() + offset_after,
                offset_before: 0.0,
                offset_after,
            };
            let along = (scaled / mark_before).ln() / (mark_after / mark_before).ln();
            assert!(
                0.2 < along && along < 0.8,
                "{side:?}: reached inside the move"
            );
            let joined = scaled * (along * offset_after).exp();
            let price = (joined * mark_after * offset_after.exp()).sqrt();
            let sweep = ladder.sweep(0, 1, fill, log_scale, 1.0);
            let value = 3.0 * price;
            assert!(
                (sweep.value - value).abs() < 1e-12 * value,
                "{side:?}: filled for {} against {value}",
                sweep.value
            );
            // Bankruptcy at 1 - s x 10%, scaled: for both sides the fill leaves more equity
            // than the fee, so the whole fee is paid and the rest returned.
            let bankruptcy = (1.0 - s * 0.1) * log_scale.exp();
            let equity = s * 3.0 * (price - bankruptcy);
            assert!(
                (sweep.fees - fee * value).abs() < 1e-12 * value,
                "{sweep:?}"
            );
            let returned = equity - fee * value;
            assert!(
                (sweep.returned - returned).abs() < 1e-12 * value,
                "{sweep:?}"
            );
            assert_eq!(sweep.bad_debt, 0.0);
        }
    }

    #[test]
    fn tranches_sort_by_trigger_and_equal_triggers_keep_the_order_of_the_book() {
        // Equal triggers: the same entry and leverage. The order of equal keys moves the
        // prefix sums' rounding, so it is pinned to the book's order, not left to the sort.
        let p = |quantity, leverage| Position {
            side: Side::Long,
            quantity,
            entry: 0.5,
            leverage,
        };
        let margin = MarginSchedule::flat(0.1, 0.05);
        let ladder = |book: &[Position]| {
            Ladder::build(book, Side::Long, &margin, 0.0, None, ImpactLaw::Linear)
        };
        let prefix =
            |l: &Ladder| -> Vec<f64> { (1..=l.len()).map(|b| l.quantity_between(0, b)).collect() };
        // The 8x position triggers first (highest), wherever it is in the book; then the 2x
        // ones in the book's order. Sixty of them: sorts keep small inputs in order anyway.
        let mut book: Vec<Position> = (1..=60).map(|k| p(f64::from(k), 2.0)).collect();
        book.insert(30, p(1000.0, 8.0));
        let expected = |book: &[Position]| -> Vec<f64> {
            let order = book.iter().filter(|q| q.leverage > 2.0);
            let sum = order.chain(book.iter().filter(|q| q.leverage == 2.0));
            sum.scan(0.0, |total, q| {
                *total += q.quantity;
                Some(*total)
            })
            .collect()
        };
        assert_eq!(prefix(&ladder(&book)), expected(&book));
        let reversed: Vec<Position> = book.iter().rev().copied().collect();
        assert_eq!(prefix(&ladder(&reversed)), expected(&reversed));
        assert_ne!(expected(&book), expected(&reversed));
        // Triggers on both sides of 1 (keys of both signs) and of shorts order by price too.
        let shorts: Vec<Position> = [0.5, 4.0, 1.5]
            .iter()
            .map(|&entry| Position {
                side: Side::Short,
                quantity: entry,
                entry,
                leverage: 5.0,
            })
            .collect();
        let l = Ladder::build(&shorts, Side::Short, &margin, 0.0, None, ImpactLaw::Linear);
        assert_eq!(prefix(&l), [0.5, 2.0, 6.0], "lowest short trigger first");
    }

    #[test]
    fn a_position_no_price_can_liquidate_has_no_tranche() {
        // A long at 1x goes bankrupt at a price of zero, and one at 0.5x below it: neither
        // trigger is a price the mark can reach, and their logarithms (-inf, NaN) would sort
        // into the ladder as keys its searches cannot order.
        let long = |leverage| Position {
            side: Side::Long,
            quantity: 1.0,
            entry: 100.0,
            leverage,
        };
        let margin = MarginSchedule::flat(0.1, 0.0);
        for partial in [None, Some(0.5)] {
            let book = [long(1.0), long(0.5), long(10.0)];
            let l = Ladder::build(&book, Side::Long, &margin, 0.0, partial, ImpactLaw::Linear);
            let reachable = tranches_per_position(partial);
            assert_eq!(l.len(), reachable, "{partial:?}");
            assert!((0..l.len()).all(|i| l.next_log_trigger(i).is_finite()));
        }
    }

    #[test]
    fn a_position_of_a_few_subnormal_units_is_cut_into_no_more_tranches_than_its_fraction_makes() {
        // 5e-324 is the smallest positive quantity: half of it rounds to nothing.
        let margin = MarginSchedule::flat(0.01, 0.005);
        for (quantity, fraction) in [(5e-324, 0.5), (1e-322, 0.2164), (3.0, 0.2164), (1.0, 0.01)] {
            let book = [Position {
                side: Side::Short,
                quantity,
                entry: 1.0,
                leverage: 2.0,
            }];
            let ladder = Ladder::build(
                &book,
                Side::Short,
                &margin,
                0.0,
                Some(fraction),
                ImpactLaw::Linear,
            );
            let most = tranches_per_position(Some(fraction));
            assert!(
                (1..=most).contains(&ladder.len()),
                "{quantity} at {fraction}: {} tranches, at most {most}",
                ladder.len()
            );
            let total = ladder.quantity_between(0, ladder.len());
            assert!(
                (total - quantity).abs() <= 1e-12 * quantity,
                "{total} of {quantity}"
            );
        }
        assert_eq!(tranches_per_position(Some(0.25)), 4);
        assert_eq!(tranches_per_position(Some(0.2164)), 5);
        assert_eq!(tranches_per_position(None), 1);
    }

    #[test]
    fn a_search_reads_a_logarithm_of_the_keys_it_passes_not_the_keys() {
        // A path's cost must not grow with the book (MODEL.md section 4): a search over a
        // million keys reads the window, a gallop's doubling steps over the sample and one
        // stretch, about 2 log2(distance / 16) + 2 x 16 keys. Counting its reads catches a
        // gallop whose steps grow by adding or stop growing, which still finds the key.
        let n = 1_000_000;
        let keys: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let run = Run {
            sample: sample(&keys),
            keys,
            ..Run::default()
        };
        for (from, target) in [(0, 999_999), (0, 500_000), (123_456, 654_321), (10, 5_000)] {
            let reads = std::cell::Cell::new(0_u32);
            let limit = target as f64 - 0.5;
            let found = run.partition_within(from, n, |k| {
                reads.set(reads.get() + 1);
                k <= limit
            });
            assert_eq!(found, target);
            let bound = 2.0 * ((target - from) as f64 / SAMPLE as f64).log2() + 2.0 * 17.0 + 4.0;
            assert!(
                f64::from(reads.get()) <= bound,
                "from {from} to {target}: {} keys read, more than {bound}",
                reads.get()
            );
        }
    }

    #[test]
    fn a_search_finds_the_first_key_past_the_limit_from_anywhere() {
        // Lengths and distances on both sides of the window, of the sample's stretches and
        // of its gallop's steps and bisections (up to a hundred sampled keys), with repeated
        // keys (tranches with one trigger), against the standard library's bisection. Searches also stop at ends short
        // of the ladder (a sweep searches within its stretch), where the keys past the end
        // would pass: a search that looked beyond its end would count them.
        for len in [
            0,
            1,
            2,
            WINDOW - 1,
            WINDOW,
            WINDOW + 1,
            WINDOW + 2,
            3 * WINDOW + 5,
            200,
            2_000,
        ] {
            let keys: Vec<f64> = (0..len).map(|i| (i / 3) as f64).collect();
            let run = Run {
                sample: sample(&keys),
                keys,
                ..Run::default()
            };
            for from in 0..=len {
                let ends = [0, 1, 2, WINDOW, WINDOW + 1, WINDOW + 2, 3 * WINDOW]
                    .map(|d| (from + d).min(len))
                    .into_iter()
                    .chain([len]);
                for n in ends {
                    for limit in -1..=(len as i32 / 3 + 1) {
                        let limit = f64::from(limit);
                        let expected = from + run.keys[from..n].partition_point(|&k| k <= limit);
                        let found = run.partition_within(from, n, |k| k <= limit);
                        assert_eq!(found, expected, "len {len}, from {from}, end {n}, {limit}");
                    }
                }
            }
        }
    }
}
