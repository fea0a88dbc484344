//! The static liquidation ladder of one side of one venue, and the O(log n) sweep over it.
//!
//! Every position is cut at build time into tranches (one for full liquidation, several for
//! partial), each with the price that triggers it. Tranches are sorted so that a falling price
//! (for longs) or a rising one (for shorts) crosses them front to back; a path's whole state
//! on a ladder is then how many tranches it has crossed. Sums over any stretch of the ladder,
//! and the fee / bad-debt split of a stretch filled at one price, come from prefix sums and
//! binary search: a path never loops over positions.

use crate::book::{Position, Side};

/// A sorted ladder of tranches with prefix sums.
///
/// Within a ladder every tranche has the same maintenance rate, so the bankruptcy price is a
/// fixed multiple `exp(log_bk_ratio)` of the trigger price (at a trigger, equity is exactly `mm x
/// notional`). That is what makes the fee / bad-debt split of a stretch a pair of binary
/// searches.
#[derive(Debug, Clone)]
pub struct Ladder {
    side: Side,
    /// `-sign x ln(trigger)`: ascending, so the crossed tranches are a prefix beyond the pointer.
    keys: Vec<f64>,
    /// Prefix sums, one entry per boundary (length n + 1), kept together so that a lookup
    /// touches one cache line rather than four arrays.
    prefix: Vec<Prefix>,
    /// Log of bankruptcy price / trigger price: `ln(1 - mm)` for longs, `ln(1 + mm)` for shorts.
    log_bk_ratio: f64,
    /// Liquidation fee rate, and `ln(1 - sign x fee)`: where equity just pays the fee.
    fee: f64,
    log_fee_factor: f64,
    /// The side's whole quantity, including positions that can never be liquidated.
    total_quantity: f64,
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
    /// Tranches that are a position's first (counts liquidated positions).
    first: u32,
}

/// One tranche before sorting.
#[derive(Debug, Clone, Copy)]
struct Tranche {
    trigger: f64,
    quantity: f64,
    entry: f64,
    first: bool,
}

/// What liquidating a stretch of a ladder at one fill price does, in USD.
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
}

impl Ladder {
    /// Builds the ladder of the positions of `side` in `book`.
    ///
    /// `partial_fraction` of `None` closes a position whole at its trigger; `Some(f)` closes
    /// `f` of the original quantity per trigger, the closed part's equity less the fee staying
    /// with the rest as margin, which sets the rest's next (lower, for longs) trigger.
    pub fn build(
        book: &[Position],
        side: Side,
        mm: f64,
        fee: f64,
        partial_fraction: Option<f64>,
    ) -> Ladder {
        let s = side.sign();
        let mut tranches = Vec::new();
        let mut total_quantity = 0.0;
        for p in book.iter().filter(|p| p.side == side) {
            total_quantity += p.quantity;
            let mut trigger = p.liquidation_price(mm);
            let mut left = p.quantity;
            let slice = partial_fraction.map_or(p.quantity, |f| f * p.quantity);
            let mut first = true;
            while left > 0.0 && trigger > 0.0 && trigger.is_finite() {
                let q = if left - slice <= 1e-12 * p.quantity {
                    left
                } else {
                    slice
                };
                tranches.push(Tranche {
                    trigger,
                    quantity: q,
                    entry: p.entry,
                    first,
                });
                first = false;
                // Equity of the whole remaining position at its trigger is mm x notional;
                // the closed slice's share less the fee stays as margin with the rest.
                let equity = mm * left * trigger - fee.min(mm) * q * trigger;
                left -= q;
                if left <= 0.0 {
                    break;
                }
                trigger = (trigger - s * equity / left) / (1.0 - s * mm);
            }
        }
        tranches.sort_by(|a, b| (-s * a.trigger.ln()).total_cmp(&(-s * b.trigger.ln())));
        let n = tranches.len();
        let mut ladder = Ladder {
            side,
            keys: Vec::with_capacity(n),
            prefix: Vec::with_capacity(n + 1),
            log_bk_ratio: (1.0 - s * mm).ln(),
            fee,
            log_fee_factor: (1.0 - s * fee).ln(),
            total_quantity,
        };
        let (mut q, mut qt, mut qe, mut c) = (0.0, 0.0, 0.0, 0u32);
        ladder.prefix.push(Prefix::default());
        for t in &tranches {
            ladder.keys.push(-s * t.trigger.ln());
            q += t.quantity;
            qt += t.quantity * t.trigger;
            qe += t.quantity * t.entry;
            c += u32::from(t.first);
            ladder.prefix.push(Prefix {
                qty: q,
                qty_trigger: qt,
                qty_entry: qe,
                first: c,
            });
        }
        ladder
    }

    /// Long or short.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Number of tranches.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ladder has no tranche.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The side's whole quantity (liquidatable or not).
    pub fn total_quantity(&self) -> f64 {
        self.total_quantity
    }

    /// Log of the trigger price of tranche `i`, or infinity past the end (never crossed).
    #[inline]
    pub fn next_log_trigger(&self, i: usize) -> f64 {
        match self.keys.get(i) {
            Some(k) => -self.side.sign() * k,
            None => -self.side.sign() * f64::INFINITY,
        }
    }

    /// The pointer after crossing every tranche whose trigger the log mark price `log_mark`
    /// has reached, starting from `from` (galloping search: cascades move pointers little).
    #[inline]
    pub fn crossed_until(&self, from: usize, log_mark: f64) -> usize {
        let limit = -self.side.sign() * log_mark;
        self.partition_from(from, |k| k <= limit)
    }

    /// First index at or after `from` whose key fails `pred` (keys ascending).
    #[inline]
    fn partition_from(&self, from: usize, pred: impl Fn(f64) -> bool) -> usize {
        self.partition_within(from, self.keys.len(), pred)
    }

    /// First index in `from..n` whose key fails `pred`, or `n` (keys ascending), by galloping
    /// search from `from`: the boundaries a cascade looks for lie close to where it starts.
    #[inline]
    fn partition_within(&self, from: usize, n: usize, pred: impl Fn(f64) -> bool) -> usize {
        if from >= n || !pred(self.keys[from]) {
            return from;
        }
        let mut lo = from + 1;
        let mut step = 1;
        let mut hi = lo;
        while hi < n && pred(self.keys[hi]) {
            lo = hi + 1;
            hi = lo + step;
            step *= 2;
        }
        let hi = hi.min(n);
        lo + self.keys[lo..hi].partition_point(|&k| pred(k))
    }

    /// Quantity of tranches `a..b`.
    #[inline]
    pub fn quantity_between(&self, a: usize, b: usize) -> f64 {
        self.prefix[b].qty - self.prefix[a].qty
    }

    fn sums(&self, a: usize, b: usize) -> (f64, f64, f64) {
        (
            self.prefix[b].qty - self.prefix[a].qty,
            self.prefix[b].qty_trigger - self.prefix[a].qty_trigger,
            self.prefix[b].qty_entry - self.prefix[a].qty_entry,
        )
    }

    /// Liquidates tranches `a..b` at the fill price `exp(log_fill)` with the ladder's fee.
    ///
    /// `log_scale` shifts every trigger (and so every bankruptcy price) of the stretch in log
    /// price: 0 as built, below 0 for longs (above for shorts) after a margin add-on. Working
    /// in logs keeps logarithms off this hot path: keys are log triggers already.
    pub fn sweep(&self, a: usize, b: usize, log_fill: f64, log_scale: f64) -> Sweep {
        if a >= b {
            return Sweep::default();
        }
        let s = self.side.sign();
        let fill = log_fill.exp();
        let fee = self.fee;
        // Bankruptcy price over the *unscaled* trigger, so the keys and prefix sums (built
        // from unscaled triggers) serve as they are.
        let log_r = self.log_bk_ratio + log_scale;
        let r = log_r.exp();
        // Bankruptcy beyond the fill (bad debt) sorts first, then equity below the fee, then
        // equity that pays the whole fee.
        let bad_key = -s * (log_fill - log_r);
        let fee_key = -s * (log_fill + self.log_fee_factor - log_r);
        let c1 = self.partition_within(a, b, |k| k < bad_key);
        let c2 = self.partition_within(c1, b, |k| k < fee_key);
        let (q_bad, t_bad, _) = self.sums(a, c1);
        let (q_cap, t_cap, _) = self.sums(c1, c2);
        let (q_full, t_full, _) = self.sums(c2, b);
        let (q, t, e) = self.sums(a, b);
        let full_fees = fee * fill * q_full;
        Sweep {
            quantity: q,
            positions: self.prefix[b].first - self.prefix[a].first,
            stake: s * (e - r * t),
            returned: (s * (fill * q_full - r * t_full) - full_fees).max(0.0),
            fees: full_fees + (s * (fill * q_cap - r * t_cap)).max(0.0),
            bad_debt: (s * (r * t_bad - fill * q_bad)).max(0.0),
            counterparty: s * (e - fill * q),
        }
    }
}

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
            cum_qty: vec![0.0],
            cum_qty_entry: vec![0.0],
        };
        let (mut q, mut qe) = (0.0, 0.0);
        for (e, qty) in rows {
            q += qty;
            qe += qty * e;
            index.cum_qty.push(q);
            index.cum_qty_entry.push(qe);
        }
        index
    }

    /// Unrealised profit of the side's profitable positions at `price`, and their notional.
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
        ((s * (price * q - qe)).max(0.0), price * q)
    }
}
