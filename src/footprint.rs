//! How much memory a study holds at once, checked before it starts.
//!
//! A trillion paths, a billion steps or billions of positions are valid numbers but not
//! runnable ones: without this check they end in an allocation failure or the kernel's
//! out-of-memory killer, minutes or hours in. With it they are bad input that names the
//! figures that make the run too large and what to change.

use crate::book::BookSpec;
use crate::error::{Error, Result};
use crate::ladder::tranches_per_position;
use crate::metrics::RowLayout;
use crate::scenario::Scenario;
use crate::timeline;

/// Bytes a generated position takes before its ladders are built.
const POSITION_BYTES: f64 = 32.0;

/// Bytes a tranche takes in one policy's ladders: its sort key and its prefix sums.
const TRANCHE_BYTES: f64 = 48.0;

/// The least memory a study holds at once, in bytes, by what holds it. A lower bound, so that
/// a run refused for it could not have fitted: books count one tranche per position and no
/// build-time copies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Footprint {
    /// Per-path result rows (every policy's metrics of every path).
    pub rows: f64,
    /// Per-step histograms, one set per worker thread plus the merged one.
    pub histograms: f64,
    /// Generated books and the ladders built from them, per policy.
    pub books: f64,
}

impl Footprint {
    /// The footprint of `paths` paths of `scenario` on `threads` worker threads. Every book
    /// counts, generated or read from CSV, and so do the cohorts that open during the horizon:
    /// each position is cut into as many tranches as its venue's `partial_fraction` makes
    /// (one slice of that share of it per trigger), in every policy's ladders.
    pub fn of(scenario: &Scenario, paths: u64, threads: usize) -> Footprint {
        let f = scenario.file();
        let policies = f.policies.len().max(1) as f64;
        let row = RowLayout {
            venues: f.venues.len(),
        }
        .len() as f64;
        let books = f
            .venues
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let start = scenario.book_len(i) as f64;
                let opening = v.opening.as_ref().map_or(0.0, |o| {
                    let per_side = f64::from(BookSpec::from_opening(o).positions);
                    o.levels.len() as f64 * 2.0 * per_side
                });
                start * POSITION_BYTES
                    + policies
                        * tranches_per_position(v.partial_fraction) as f64
                        * (start + opening)
                        * TRANCHE_BYTES
            })
            .sum();
        Footprint {
            rows: paths as f64 * policies * row * 8.0,
            histograms: (threads as f64 + 1.0)
                * policies
                * f64::from(f.simulation.steps)
                * timeline::BYTES_PER_STEP,
            books,
        }
    }

    /// All of it, in bytes.
    pub fn total(&self) -> f64 {
        self.rows + self.histograms + self.books
    }
}

/// Refuses a study of `paths` paths on `threads` threads that would hold more memory than the
/// machine has (where the machine says how much: Linux's `/proc/meminfo`).
pub fn check(scenario: &Scenario, paths: u64, threads: usize) -> Result<()> {
    let Some(memory) = physical_memory() else {
        return Ok(());
    };
    let need = Footprint::of(scenario, paths, threads);
    if need.total() <= memory {
        return Ok(());
    }
    let gb = |bytes: f64| format!("{:.1} GB", bytes / 1e9);
    let f = scenario.file();
    Err(Error::BadInput(format!(
        "this run would hold at least {} at once, more than this machine's {}: per-path results {} \
         ({paths} paths x {} {}), step histograms {} ({} steps on {threads} threads), books \
         {}. Use fewer paths (or split them: --shard K/N, then cascade merge), fewer steps, \
         fewer --threads, fewer book.positions or opening.positions, or a larger \
         partial_fraction",
        gb(need.total()),
        gb(memory),
        gb(need.rows),
        f.policies.len().max(1),
        if f.policies.len() > 1 {
            "policies"
        } else {
            "policy"
        },
        gb(need.histograms),
        f.simulation.steps,
        gb(need.books),
    )))
}

/// Physical memory in bytes, if the system says (`MemTotal` of `/proc/meminfo`).
fn physical_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}
