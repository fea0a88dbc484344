//! Positions no path reaches, added to a scenario's books: with them a ladder is far longer
//! but a path crosses the same stretch of it, which is how a path is shown to cost nothing per
//! position it does not liquidate (MODEL.md section 4). Shared by the integration tests and
//! the `book_size` benchmark (`#[path]`).

use cascade::book::{Position, Side};

/// Leverage of the added positions: a long at 1.25x posts 80% of its notional, so its trigger
/// lies about 80% below its entry (a short's 80% above), beyond any move the scenarios here
/// make.
const LEVERAGE: f64 = 1.25;

/// Adds `per_side` longs and as many shorts to every book, at [`LEVERAGE`], with entries
/// spread evenly within 4% of `start` (so their triggers are distinct), each side together
/// holding `share` of the book's long quantity.
pub fn add_unreached(books: &mut [Vec<Position>], per_side: usize, start: f64, share: f64) {
    for book in books {
        let longs: f64 = book
            .iter()
            .filter(|p| p.side == Side::Long)
            .map(|p| p.quantity)
            .sum();
        let quantity = share * longs / per_side as f64;
        for side in [Side::Long, Side::Short] {
            book.extend((0..per_side).map(|k| Position {
                side,
                quantity,
                entry: start * (1.0 + 0.04 * (2.0 * (k as f64 + 0.5) / per_side as f64 - 1.0)),
                leverage: LEVERAGE,
            }));
        }
    }
}
