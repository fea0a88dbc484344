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

use crate::csv_lines::{self, BadLines};
use crate::margin::{MarginSchedule, Trigger};
use crate::scenario::file::{Book, LeverageMix, Opening};
use crate::units::quoted;

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

    /// Whether the position is past its trigger under `margin` at `price` (a long triggering at
    /// or above it, a short at or below): it is liquidated in the first step.
    pub fn past_trigger(&self, margin: &MarginSchedule, price: f64) -> bool {
        let trigger = self.trigger(margin).price;
        match self.side {
            Side::Long => trigger >= price,
            Side::Short => trigger <= price,
        }
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
    /// The parameters of each cohort `opening` opens, defaults filled in: entries at the
    /// level's price (no dispersion).
    pub fn from_opening(opening: &Opening) -> BookSpec {
        BookSpec {
            positions: opening.positions.unwrap_or(1_000),
            long_leverage: opening.long_leverage,
            short_leverage: opening.short_leverage,
            entry_dispersion: 0.0,
            size_tail: opening.size_tail.unwrap_or(1.5),
        }
    }

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
    // No overflow: the memory check refuses, before any book is drawn, books of more bytes
    // than a process can address.
    let both = usize::try_from(spec.positions)
        .ok()
        .and_then(|n| n.checked_mul(2))
        .expect("footprint::check refuses books past what a process can address");
    let mut book = Vec::with_capacity(both);
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
            let drawn = (mix.median.ln() + mix.dispersion * z).exp().max(1.0);
            // An entry that would start past its trigger is mirrored to the other side of the
            // start price (a long bought above the price where it would now be liquidated is
            // taken as bought as far below it), where it is safe at any leverage the venue
            // allows. Mirroring instead of redrawing keeps the number of draws per position
            // fixed. Whether to mirror is decided at the drawn leverage bounded by the one at
            // which a position entered at the start price sits at its maintenance requirement,
            // not at the venue's cap. Decided at the cap, a higher initial margin left
            // unmirrored (bought above the start, so triggering just below it) positions that
            // a lower one mirrored, and liquidated more on the same path (MODEL.md section 9).
            // Decided at an unbounded drawn leverage, a long bought just below the start (past
            // its trigger only at such leverage) was mirrored above it, and was past its
            // trigger at the cap when the initial margin is below twice the maintenance. Within
            // the bound an entry on the safe side of the start is never past its trigger, so
            // only entries on the other side are mirrored, and the capped position is safe.
            // So the entries do not depend on the initial margin, and raising it only lowers
            // leverage, and with it every long's trigger (raises every short's).
            let notional = quantity * start;
            let at_maintenance = notional / margin.maintenance(notional);
            let mut position = Position {
                side,
                quantity,
                entry: start * offset.exp(),
                leverage: drawn.min(at_maintenance),
            };
            if position.past_trigger(margin, start) {
                position.entry = start * (-offset).exp();
            }
            position.leverage = drawn.min(margin.max_leverage(notional));
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
/// `bytes` is the file's content, read from `path` (which names it in messages). Every bad line
/// is reported (up to [`MAX_BAD_LINES`](crate::csv_lines::MAX_BAD_LINES), then a count of the
/// rest), each message naming the file, the line and the column, so they can be shown as they
/// are.
pub fn read_csv(path: &Path, bytes: &[u8]) -> Result<Vec<Position>, Vec<String>> {
    let whole = |e: &dyn std::fmt::Display| vec![format!("{}: {e}", path.display())];
    let mut reader = csv_lines::input_reader(bytes);
    let headers = reader.headers().map_err(|e| whole(&e))?.clone();
    let columns = ["side", "notional", "entry_price", "leverage"];
    if let Some(missing) = csv_lines::missing_columns(&headers, &columns) {
        return Err(whole(&missing));
    }
    let mut bad = BadLines::new(path, bytes);
    // Which of two columns of one name is read would be the reader's guess.
    if let Some(twice) = columns
        .iter()
        .find(|c| headers.iter().filter(|h| h == *c).count() > 1)
    {
        let problem = format!("column `{twice}` appears more than once; keep one");
        bad.add(headers.position(), 0, vec![problem]);
        return Err(bad.finish());
    }
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let at = match &record {
            Ok(r) => r.position(),
            Err(e) => e.position(),
        }
        .cloned();
        let found = match record {
            Ok(r) if csv_lines::is_blank(&r) => continue,
            Ok(r) => match csv_lines::wrong_length(&r, &headers) {
                Some(problem) => vec![problem],
                None => match r
                    .deserialize::<Row>(Some(&headers))
                    .map(|row| position(&row))
                {
                    Ok(Ok(p)) => {
                        out.push(p);
                        continue;
                    }
                    Ok(Err(found)) => found,
                    Err(e) => vec![csv_lines::unreadable(&e, &headers, Some(&r))],
                },
            },
            Err(e) => vec![csv_lines::unreadable(&e, &headers, None)],
        };
        bad.add(at.as_ref(), i, found);
    }
    let problems = bad.finish();
    if !problems.is_empty() {
        return Err(problems);
    }
    if out.is_empty() {
        return Err(whole(&"no positions"));
    }
    Ok(out)
}

/// The position on one row of a positions CSV, or every problem with the row.
fn position(row: &Row) -> Result<Position, Vec<String>> {
    let mut problems = Vec::new();
    let side = match row.side.to_ascii_lowercase().as_str() {
        "long" => Some(Side::Long),
        "short" => Some(Side::Short),
        other => {
            problems.push(format!(
                "side `{}` must be `long` or `short`",
                other.escape_debug()
            ));
            None
        }
    };
    if !(row.notional > 0.0 && row.notional <= MAX_USD) {
        problems.push(format!(
            "notional ({}) must be positive and at most {MAX_USD:e}",
            quoted(row.notional)
        ));
    }
    let (low, high) = PRICE_LIMITS;
    if !(low..=high).contains(&row.entry_price) {
        problems.push(format!(
            "entry_price ({}) must be between {low:e} and {high:e}",
            quoted(row.entry_price)
        ));
    }
    if !(row.leverage.is_finite() && row.leverage >= 1.0) {
        problems.push(format!(
            "leverage ({}) must be at least 1",
            quoted(row.leverage)
        ));
    }
    match side {
        Some(side) if problems.is_empty() => Ok(Position {
            side,
            quantity: row.notional / row.entry_price,
            entry: row.entry_price,
            leverage: row.leverage,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{
        BOOK_STREAM_BASE, BookSpec, MAX_USD, PRICE_LIMITS, Position, Side, Stream, generate,
        read_csv,
    };
    use crate::csv_lines::MAX_BAD_LINES;
    use crate::margin::MarginSchedule;
    use crate::scenario::file::LeverageMix;

    /// Every book, the start's and each cohort's of every venue, draws from a stream of its
    /// own, above every path's: a cohort sharing a stream would repeat another book's draws.
    #[test]
    fn every_book_has_its_own_random_stream_above_the_paths() {
        let mut streams: Vec<u64> = (0..5)
            .flat_map(|venue| {
                let cohorts = (0..5).map(move |cohort| Stream::Cohort { venue, cohort });
                std::iter::once(Stream::Start { venue }).chain(cohorts)
            })
            .map(Stream::index)
            .collect();
        assert!(
            streams.iter().all(|&s| s >= BOOK_STREAM_BASE),
            "{streams:?}"
        );
        streams.sort_unstable();
        streams.dedup();
        assert_eq!(streams.len(), 30);
    }

    /// Leverage is notional over equity at the price, for positions entered away from it, and
    /// a cap tops up the margin to exactly the capped leverage, keeping entry and size.
    #[test]
    fn leverage_follows_the_price_and_a_cap_posts_just_enough_margin() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b;
        // A 10x long entered at 110 posted 11 a unit: at 100 it has lost 10 of it (100 / 1),
        // at 121 gained 11 (121 / 22).
        let long = Position {
            side: Side::Long,
            quantity: 2.0,
            entry: 110.0,
            leverage: 10.0,
        };
        assert!(close(long.leverage_at(100.0), 100.0));
        assert!(close(long.leverage_at(121.0), 5.5));
        assert_eq!(long.leverage_at(99.0), f64::INFINITY);
        // A 10x short entered at 90 posted 9: past bankruptcy at 100, 81 / 18 at 81.
        let short = Position {
            side: Side::Short,
            quantity: 1.0,
            entry: 90.0,
            leverage: 10.0,
        };
        assert_eq!(short.leverage_at(100.0), f64::INFINITY);
        assert!(close(short.leverage_at(81.0), 4.5));
        // Capped at 20x at 100, the long needs equity 5 there: margin 15 a unit, 110 / 15 at
        // entry.
        let capped = long.capped_at(100.0, 20.0);
        assert_eq!(
            (capped.side, capped.quantity, capped.entry),
            (Side::Long, 2.0, 110.0)
        );
        assert!(close(capped.leverage, 110.0 / 15.0));
        assert!(close(capped.leverage_at(100.0), 20.0));
        let capped = short.capped_at(81.0, 3.0);
        assert!(close(capped.leverage_at(81.0), 3.0));
        assert_eq!(long.capped_at(121.0, 5.5), long);
    }

    /// Raising the initial margin (maintenance unchanged) redraws the same book with less
    /// leverage and the same entries: no long's trigger rises, no short's falls, and none
    /// starts past its trigger. Levered positions whose entries lie beyond their triggers
    /// are most of this book, so a choice of entry that depended on the cap would show.
    #[test]
    fn a_higher_initial_margin_only_moves_triggers_away_from_the_start() {
        let spec = BookSpec {
            positions: 2_000,
            long_leverage: LeverageMix {
                median: 15.0,
                dispersion: 0.3,
            },
            short_leverage: LeverageMix {
                median: 15.0,
                dispersion: 0.3,
            },
            entry_dispersion: 0.05,
            size_tail: 1.5,
        };
        let book = |im: f64| {
            let margin = MarginSchedule::flat(im, 0.02);
            let positions = generate(&spec, 100.0, 1e9, &margin, 7, Stream::Start { venue: 0 });
            (positions, margin)
        };
        let (loose, loose_margin) = book(0.05);
        let (tight, tight_margin) = book(0.10);
        let mut capped = 0;
        for (a, b) in loose.iter().zip(&tight) {
            assert_eq!(
                (a.side, a.entry),
                (b.side, b.entry),
                "entries must not move"
            );
            assert!(b.leverage <= a.leverage && b.leverage <= 10.0);
            capped += usize::from(b.leverage < a.leverage);
            let (ta, tb) = (
                a.trigger(&loose_margin).price,
                b.trigger(&tight_margin).price,
            );
            match a.side {
                Side::Long => assert!(tb <= ta && tb < 100.0, "{a:?} {ta} -> {b:?} {tb}"),
                Side::Short => assert!(tb >= ta && tb > 100.0, "{a:?} {ta} -> {b:?} {tb}"),
            }
        }
        assert!(
            capped > 1_000,
            "the tighter cap binds on most positions ({capped})"
        );
    }

    /// No generated position starts past its trigger, whatever the margin rates: with an
    /// initial margin close to the maintenance (CME-like 11% and 10%), a long drawn at 1,000x
    /// and bought just below the start was once mirrored above it, past its trigger at the
    /// venue's 9x, and liquidated in the first step of a calm market (10% of such a book).
    #[test]
    fn no_generated_position_starts_past_its_trigger() {
        let spec = BookSpec {
            positions: 20_000,
            long_leverage: LeverageMix {
                median: 10.0,
                dispersion: 1.5,
            },
            short_leverage: LeverageMix {
                median: 10.0,
                dispersion: 1.5,
            },
            entry_dispersion: 0.05,
            size_tail: 1.5,
        };
        let schedules = [
            MarginSchedule::flat(0.11, 0.10),
            MarginSchedule::flat(0.05, 0.04),
            MarginSchedule::flat(0.05, 0.02),
            MarginSchedule::tiered(0.02, 0.01, &[(5e4, 0.1, 0.05), (2.5e5, 0.3, 0.25)]),
        ];
        for margin in &schedules {
            let book = generate(&spec, 100.0, 1e9, margin, 3, Stream::Start { venue: 0 });
            let past = book
                .iter()
                .filter(|p| p.past_trigger(margin, 100.0))
                .count();
            assert_eq!(
                past, 0,
                "{margin:?}: {past} positions start past their trigger"
            );
        }
    }

    /// A row is read at each column's bounds and refused just past them, with the column
    /// named; a column missing from the header is named too.
    #[test]
    fn a_row_is_read_at_each_bound_and_refused_past_it() {
        let read = |header: &str, row: &str| {
            read_csv(Path::new("b.csv"), format!("{header}\n{row}\n").as_bytes())
        };
        let header = "side,notional,entry_price,leverage";
        assert_eq!(
            read(header, "Long,1000,50,2"),
            Ok(vec![Position {
                side: Side::Long,
                quantity: 20.0,
                entry: 50.0,
                leverage: 2.0,
            }])
        );
        let (low, high) = PRICE_LIMITS;
        for row in [
            format!("short,{MAX_USD:e},100,1"),
            format!("long,1e-9,{low:e},5"),
            format!("long,1,{high:e},5"),
        ] {
            assert!(read(header, &row).is_ok(), "{row}");
        }
        for (row, problem) in [
            ("flat,1000,100,5".to_string(), "side `flat`"),
            ("long,0,100,5".to_string(), "notional (0)"),
            ("long,-1,100,5".to_string(), "notional (-1)"),
            (format!("long,{:e},100,5", 2.0 * MAX_USD), "notional (2"),
            (format!("long,1,{:e},5", low / 2.0), "entry_price (5e-13)"),
            (format!("long,1,{:e},5", 2.0 * high), "entry_price (2"),
            ("long,1,100,0.999".to_string(), "leverage (0.999)"),
            ("long,1,100,inf".to_string(), "leverage (inf)"),
            ("long,lots,100,5".to_string(), "notional `lots`"),
        ] {
            let problems = read(header, &row).expect_err(&row);
            assert!(
                problems.len() == 1 && problems[0].contains(&format!("b.csv line 2: {problem}")),
                "{row}: {problems:?}"
            );
        }
        let problems = read("side,notional,entry_price", "long,1,100").expect_err("no leverage");
        assert!(
            problems[0].contains("b.csv: missing column `leverage`"),
            "{problems:?}"
        );
    }

    /// Every bad line is listed up to the cap, then counted; a good line is never listed.
    #[test]
    fn a_csv_with_many_bad_lines_lists_the_first_and_counts_the_rest() {
        let mut text = String::from("side,notional,entry_price,leverage\n");
        for _ in 0..MAX_BAD_LINES + 5 {
            text.push_str("long,1000,100,5\nlong,1000,100,0.5\n");
        }
        let problems =
            read_csv(Path::new("book.csv"), text.as_bytes()).expect_err("bad lines are refused");
        assert_eq!(problems.len(), MAX_BAD_LINES + 1, "{problems:#?}");
        // Bad lines are the odd data lines: 3, 5, 7, ...
        for (k, p) in problems[..MAX_BAD_LINES].iter().enumerate() {
            let line = 3 + 2 * k;
            assert!(p.contains(&format!(" line {line}: leverage (0.5)")), "{p}");
        }
        assert!(problems[MAX_BAD_LINES].ends_with(": 5 more bad lines not listed"));
    }

    /// Line numbers are the file's, whatever its line ends, blank lines or quoted line breaks.
    #[test]
    fn bad_lines_are_named_by_their_line_in_the_file() {
        let lf = "side,notional,entry_price,leverage\nlong,1000,100,5\n\n\"lo\nng\",1000,100,5\nshort,1000,100,0.5\n";
        let crlf = lf.replace('\n', "\r\n");
        for text in [lf, crlf.as_str()] {
            let problems =
                read_csv(Path::new("book.csv"), text.as_bytes()).expect_err("two bad lines");
            assert_eq!(problems.len(), 2, "{problems:#?}");
            // The quoted side starts on line 4 (after a blank line 3) and spans line 5.
            assert!(
                problems[0].starts_with("book.csv line 4: side `lo"),
                "{problems:#?}"
            );
            assert!(
                !problems[0].contains('\n'),
                "one line per message: {}",
                problems[0]
            );
            assert!(
                problems[1].starts_with("book.csv line 6: leverage (0.5)"),
                "{problems:#?}"
            );
        }
    }

    /// A line of spaces is skipped like an empty one; a short row, a column named twice, bytes
    /// that are not text and an empty file are each told with one line number, the file's.
    #[test]
    fn blank_lines_are_skipped_and_bad_ones_named_by_one_line() {
        let read = |text: &[u8]| read_csv(Path::new("book.csv"), text);
        let header = "side,notional,entry_price,leverage";
        let spaces = format!("{header}\nlong,1000,100,5\n   \n\t\nshort,1000,100,5\n");
        assert_eq!(read(spaces.as_bytes()).map(|p| p.len()), Ok(2));
        for (text, problem) in [
            (
                format!("{header}\nlong,1000,100,5\n\nshort,1000,100,5\nlong,1\n").into_bytes(),
                "book.csv line 5: 2 fields, but the header has 4",
            ),
            (
                format!("\n{header},side\nlong,1000,100,5,long\n").into_bytes(),
                "book.csv line 2: column `side` appears more than once; keep one",
            ),
            (
                [format!("{header}\nlong,1").as_bytes(), b"\xff0,100,5\n"].concat(),
                "book.csv line 2: notional is not UTF-8 text",
            ),
            (
                Vec::new(),
                "book.csv: is empty; its first line must be the header, naming \
                 side,notional,entry_price,leverage",
            ),
        ] {
            assert_eq!(read(&text), Err(vec![problem.to_string()]));
        }
    }
}
