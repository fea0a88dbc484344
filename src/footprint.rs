//! How much memory a study holds at once, checked before it starts.
//!
//! A trillion paths, a billion steps or billions of positions are valid numbers but not
//! runnable ones: without this check they end in an allocation failure or the kernel's
//! out-of-memory killer, minutes or hours in. With it they are bad input that names the
//! figures that make the run too large and what to change.

use crate::book::{BookSpec, Position};
use crate::error::{Error, Result};
use crate::ladder::{BUILD_BYTES, ENTRY_BYTES, TRANCHE_BYTES, tranches_per_position};
use crate::metrics::RowLayout;
use crate::runner::BATCH;
use crate::scenario::Scenario;
use crate::timeline;

/// Columns of per-path figures the statistics hold at once besides the rows (a column, its
/// sorted copy, a jurisdiction's sums by side): measured, 1,000,000 paths of the quickstart
/// peak 63 MB above their rows.
const WORKING_COLUMNS: f64 = 8.0;

/// Bytes a position takes in a book (the drawn or read positions, and each policy's copy of
/// them while its ladders are built).
const POSITION_BYTES: usize = size_of::<Position>();

/// The memory a study holds, in bytes, by what holds it: the books while they are built, and
/// the ladders and the run's results after. Counted from the sizes of the structures that
/// hold them: an estimate, not a bound (allocators round up, a process holds some megabytes
/// besides, and the peak of building the books comes at its own moment for each shape of
/// book). Against the peak resident memory of runs of the shipped scenarios with books of up
/// to 4 million positions, 8 million tranches, 300,000 steps or a million paths, it was
/// between 2% below and 15% above.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Footprint {
    /// Per-path result rows (every policy's metrics of every path), and the columns the
    /// statistics work on.
    pub rows: f64,
    /// Per-step histograms, one set per worker thread that takes a batch of paths.
    pub histograms: f64,
    /// What every policy's market keeps through the run: ladders and entry indexes, and the
    /// snapshots as read.
    pub books: f64,
    /// What building the books holds besides, and frees before the run: the positions, one
    /// policy's copy of them, and the largest ladder's unsorted tranches.
    pub building: f64,
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
        let (mut positions, mut resident, mut largest) = (0.0, 0.0, 0.0_f64);
        for (i, v) in f.venues.iter().enumerate() {
            let start = scenario.book_len(i) as f64;
            let opening = v.opening.as_ref().map_or(0.0, |o| {
                let per_side = f64::from(BookSpec::from_opening(o).positions);
                o.levels.len() as f64 * 2.0 * per_side
            });
            let slices = tranches_per_position(v.partial_fraction) as f64;
            // A tiered schedule keeps every tranche twice: in the ladder and in its class's.
            let copies = if v.margin_tiers.is_empty() { 1.0 } else { 2.0 };
            positions += start;
            resident += policies
                * ((start + opening)
                    * (slices * copies * TRANCHE_BYTES as f64 + ENTRY_BYTES as f64));
            // One side of the book, as its ladder is sorted.
            largest = largest.max(start / 2.0 * slices * BUILD_BYTES as f64);
        }
        let snapshots: f64 = scenario
            .inputs()
            .iter()
            .map(|input| input.bytes.len() as f64)
            .sum::<f64>()
            + (0..f.venues.len())
                .filter(|&i| scenario.has_snapshot(i))
                .map(|i| scenario.book_len(i) as f64 * POSITION_BYTES as f64)
                .sum::<f64>();
        // Only workers that take a batch of paths allocate histograms.
        let batches = paths.div_ceil(BATCH as u64);
        let sets = (threads as u64).min(batches) as f64;
        Footprint {
            rows: paths as f64 * (policies * row + WORKING_COLUMNS) * 8.0,
            histograms: sets * policies * f64::from(f.simulation.steps) * timeline::BYTES_PER_STEP,
            books: resident + snapshots,
            building: 2.0 * positions * POSITION_BYTES as f64 + largest,
        }
    }

    /// The most it holds at once, in bytes: the books and, first, what building them takes,
    /// then the run's rows and histograms.
    pub fn total(&self) -> f64 {
        self.books + self.building.max(self.rows + self.histograms)
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
        "this run would hold about {} at once, more than this machine's {}: per-path results {} \
         ({paths} paths x {} {}), step histograms {} ({} steps, a set per thread that takes a \
         batch of {BATCH} paths), books {} ({} more while they are built). Use fewer paths (or split them: --shard K/N, then cascade merge), fewer steps, \
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
        gb(need.building),
    )))
}

/// Physical memory in bytes, if the system says (`MemTotal` of `/proc/meminfo`).
fn physical_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn quickstart() -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
        Scenario::load(&path, &[]).expect("the quickstart loads")
    }

    #[test]
    fn only_threads_that_take_a_batch_hold_histograms() {
        // One batch of paths: one set of histograms however many threads there are (the
        // estimate counted a set per thread and one more, and refused runs that fit).
        let s = quickstart();
        let one = Footprint::of(&s, 10, 1).histograms;
        assert!(one > 0.0);
        assert_eq!(Footprint::of(&s, 10, 16).histograms, one);
        let batches = 3 * BATCH as u64;
        assert_eq!(Footprint::of(&s, batches, 16).histograms, 3.0 * one);
        assert_eq!(Footprint::of(&s, 1_000_000, 2).histograms, 2.0 * one);
    }

    #[test]
    fn books_count_what_their_ladders_hold_and_the_build_holds_more() {
        // A generated venue of n more positions per side, full liquidation, flat margin: 2n
        // more tranches of TRANCHE_BYTES and 2n more entries; building holds the positions
        // twice and the largest side's unsorted tranches (now this venue's).
        let base = quickstart();
        let o = |v: &str| crate::scenario::Override::parse(v).unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
        let big = Scenario::load(&path, &[o("venues.2.book.positions=1000000")]).unwrap();
        let (a, b) = (Footprint::of(&base, 10, 1), Footprint::of(&big, 10, 1));
        let n = 1e6 - base.book_len(2) as f64 / 2.0;
        let books = 2.0 * n * (TRANCHE_BYTES + ENTRY_BYTES) as f64;
        assert!(((b.books - a.books) - books).abs() < 1.0, "{a:?} {b:?}");
        let building = 4.0 * n * POSITION_BYTES as f64 + 0.9 * n * BUILD_BYTES as f64;
        assert!(b.building - a.building >= building, "{a:?} {b:?}");
        assert_eq!(
            b.total(),
            b.books + b.building,
            "building the books is the peak"
        );
    }
}
