//! Leveraged positions: generated from a venue's distributions, or read from a CSV snapshot.
//!
//! A book is drawn once per scenario from the scenario's seed, on a random stream of its own
//! (disjoint from every path's stream), so adding paths never changes the book and every
//! policy starts from the same positions.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Pareto, StandardNormal};
use serde::Deserialize;

use crate::margin::{MarginSchedule, Trigger};
use crate::scenario::file::{Book, LeverageMix};

/// Which side of the market a position is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Profits when the price rises; liquidated on the way down.
    Long,
    /// Profits when the price falls; liquidated on the way up.
    Short,
}

impl Side {
    /// +1 for longs, -1 for shorts: the sign of a position's profit per unit price rise.
    pub fn sign(self) -> f64 {
        match self {
            Side::Long => 1.0,
            Side::Short => -1.0,
        }
    }
}

/// One isolated-margin linear perpetual position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// Long or short.
    pub side: Side,
    /// Quantity of the underlying (notional / entry price).
    pub quantity: f64,
    /// Entry price.
    pub entry: f64,
    /// Leverage at entry (notional / posted margin), at least 1.
    pub leverage: f64,
}

impl Position {
    /// Price at which equity is zero.
    pub fn bankruptcy_price(&self) -> f64 {
        self.entry * (1.0 - self.side.sign() / self.leverage)
    }

    /// Where the position is liquidated under `margin`: equity falls to the maintenance
    /// requirement of its notional there.
    pub fn trigger(&self, margin: &MarginSchedule) -> Trigger {
        margin.trigger(self.side, self.quantity, self.bankruptcy_price())
    }

    /// Equity per unit of quantity at `price`.
    fn equity_per_unit(&self, price: f64) -> f64 {
        self.entry / self.leverage + self.side.sign() * (price - self.entry)
    }

    /// Leverage at `price`: notional over equity (infinite at or past bankruptcy).
    pub fn leverage_at(&self, price: f64) -> f64 {
        let equity = self.equity_per_unit(price);
        if equity > 0.0 {
            price / equity
        } else {
            f64::INFINITY
        }
    }

    /// The position after its trader posts the margin that brings its leverage at `price`
    /// down to `cap` (unchanged if it is already at or below it). Entry and size are kept.
    pub fn capped_at(&self, price: f64, cap: f64) -> Position {
        if self.leverage_at(price) <= cap {
            return *self;
        }
        // Margin per unit such that equity at `price` is price / cap.
        let margin = price / cap - self.side.sign() * (price - self.entry);
        Position {
            leverage: self.entry / margin,
            ..*self
        }
    }
}

/// Where the random stream of venue `v`'s book starts: far above every path's stream.
const BOOK_STREAM_BASE: u64 = 1 << 63;

/// Prices (USD) a scenario may start at or a position may have been entered at. Far wider
/// than any traded asset, and narrow enough that prices moved by any cascade, times any
/// quantity the money limit allows, stay finite in double precision.
pub const PRICE_LIMITS: (f64, f64) = (1e-12, 1e12);

/// The most USD one figure of a scenario may hold (open interest, a fund, a position's
/// notional): a thousand times world GDP, so that sums over venues and paths stay finite.
pub const MAX_USD: f64 = 1e15;

/// The random stream of a book: the venue's opening book, or one of its cohorts opened
/// during the horizon (cohort `k` of venue `v` at `BOOK_STREAM_BASE + (k + 1) x 2^32 + v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The book at the start.
    Start {
        /// Venue index.
        venue: usize,
    },
    /// A cohort opened during the horizon.
    Cohort {
        /// Venue index.
        venue: usize,
        /// Cohort index (by level).
        cohort: usize,
    },
}

impl Stream {
    fn index(self) -> u64 {
        match self {
            Stream::Start { venue } => BOOK_STREAM_BASE + venue as u64,
            Stream::Cohort { venue, cohort } => {
                BOOK_STREAM_BASE + ((cohort as u64 + 1) << 32) + venue as u64
            }
        }
    }
}

/// Parameters of a generated book, with the scenario's defaults filled in.
#[derive(Debug, Clone, Copy)]
pub struct BookSpec {
    /// Positions per side.
    pub positions: u32,
    /// Long leverage distribution.
    pub long_leverage: LeverageMix,
    /// Short leverage distribution.
    pub short_leverage: LeverageMix,
    /// Standard deviation of log(entry / start).
    pub entry_dispersion: f64,
    /// Pareto tail index of sizes.
    pub size_tail: f64,
}

impl BookSpec {
    /// The generated-book parameters of `book`, defaults filled in.
    pub fn from_book(book: &Book) -> BookSpec {
        BookSpec {
            positions: book.positions.unwrap_or(10_000),
            long_leverage: book.long_leverage.unwrap_or(LeverageMix {
                median: 10.0,
                dispersion: 0.8,
            }),
            short_leverage: book.short_leverage.unwrap_or(LeverageMix {
                median: 3.0,
                dispersion: 0.6,
            }),
            entry_dispersion: book.entry_dispersion.unwrap_or(0.05),
            size_tail: book.size_tail.unwrap_or(1.5),
        }
    }
}

/// Draws a venue's book: `spec.positions` longs and as many shorts, each side holding
/// `open_interest / start` units (a cohort opening during the horizon is a book with no
/// entry dispersion, its `start` the level's price), with leverage in `[1, max]` (the maximum leverage of the
/// position's margin tier at the start price) and no position past its liquidation price at
/// the start.
pub fn generate(
    spec: &BookSpec,
    start: f64,
    open_interest: f64,
    margin: &MarginSchedule,
    seed: u64,
    stream: Stream,
) -> Vec<Position> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream.index());
    let sizes = Pareto::new(1.0, spec.size_tail).expect("validated: size_tail > 1");
    let entries = Normal::new(0.0, spec.entry_dispersion).expect("validated: dispersion >= 0");
    let mut book = Vec::with_capacity(2 * spec.positions as usize);
    for (side, mix) in [
        (Side::Long, spec.long_leverage),
        (Side::Short, spec.short_leverage),
    ] {
        // Draw first (three numbers per position, in a fixed order), then size: a tier
        // depends on the notional, known only once the side's sizes are scaled.
        let draws: Vec<(f64, f64, f64)> = (0..spec.positions)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                let offset = entries.sample(&mut rng);
                let size: f64 = sizes.sample(&mut rng);
                (z, offset, size)
            })
            .collect();
        let total: f64 = draws.iter().map(|d| d.2).sum();
        // Scale sizes so the side holds open_interest / start units.
        let units = open_interest / start;
        for (z, offset, size) in draws {
            let quantity = size * (units / total);
            let max_leverage = margin.max_leverage(quantity * start);
            let leverage = (mix.median.ln() + mix.dispersion * z)
                .exp()
                .clamp(1.0, max_leverage);
            // An entry that would start past its trigger is mirrored to the other side of the
            // start price (a long bought above the price where it would now be liquidated is
            // taken as bought as far below it), where it is always safe. Mirroring instead of
            // redrawing keeps the number of draws per position fixed, so changing a margin
            // rate changes only the positions it touches.
            let mut position = Position {
                side,
                quantity,
                entry: start * offset.exp(),
                leverage,
            };
            let trigger = position.trigger(margin).price;
            let past = match side {
                Side::Long => trigger >= start,
                Side::Short => trigger <= start,
            };
            if past {
                position.entry = start * (-offset).exp();
            }
            book.push(position);
        }
    }
    book
}

/// One row of a positions CSV.
#[derive(Debug, Deserialize)]
struct Row {
    side: String,
    notional: f64,
    entry_price: f64,
    leverage: f64,
}

/// Reads a positions snapshot with columns `side,notional,entry_price,leverage`.
///
/// Errors name the line and the column, so the message can be shown as is.
pub fn read_csv(path: &Path) -> Result<Vec<Position>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    for column in ["side", "notional", "entry_price", "leverage"] {
        if !headers.iter().any(|h| h == column) {
            return Err(format!(
                "{}: missing column `{column}` (expected side,notional,entry_price,leverage)",
                path.display()
            ));
        }
    }
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| format!("{} line {line}: {e}", path.display()))?;
        let side = match row.side.to_ascii_lowercase().as_str() {
            "long" => Side::Long,
            "short" => Side::Short,
            other => {
                return Err(format!(
                    "{} line {line}: side `{other}` must be `long` or `short`",
                    path.display()
                ));
            }
        };
        let bad =
            |what: &str, v: f64| format!("{} line {line}: {what} ({v}) must be", path.display());
        if !(row.notional > 0.0 && row.notional <= MAX_USD) {
            return Err(format!(
                "{} positive and at most {MAX_USD:e}",
                bad("notional", row.notional)
            ));
        }
        let (low, high) = PRICE_LIMITS;
        if !(low..=high).contains(&row.entry_price) {
            return Err(format!(
                "{} between {low:e} and {high:e}",
                bad("entry_price", row.entry_price)
            ));
        }
        if !(row.leverage.is_finite() && row.leverage >= 1.0) {
            return Err(format!("{} at least 1", bad("leverage", row.leverage)));
        }
        out.push(Position {
            side,
            quantity: row.notional / row.entry_price,
            entry: row.entry_price,
            leverage: row.leverage,
        });
    }
    if out.is_empty() {
        return Err(format!("{}: no positions", path.display()));
    }
    Ok(out)
}
