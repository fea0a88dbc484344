//! The parallel Monte Carlo: paths in fixed-size batches on rayon, results in path order.
//!
//! Path `i` draws its exogenous returns from ChaCha8 seeded with the scenario seed on stream
//! `i`, and every policy runs on those same returns (common random numbers). Batches are
//! defined by path index, not by worker, and each writes its own slice of the result buffer,
//! so the buffer is the same for any thread count; timeline histograms are integer counts
//! that add up the same in any order.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::engine::{self, Scratch};
use crate::error::{Error, Result};
use crate::market::Market;
use crate::memory_limit::MemoryLimit;
use crate::metrics::RowLayout;
use crate::progress::Progress;
use crate::scenario::Scenario;
use crate::shocks::ShockModel;
use crate::timeline::{Recorder, Timeline};

/// Paths per batch: the unit of parallel work and of progress.
pub const BATCH: usize = 64;

/// Set (by the command line's Ctrl-C handler) to stop a run between batches; the run then
/// returns [`Error::Interrupted`] and its caller writes nothing.
pub static INTERRUPT: AtomicBool = AtomicBool::new(false);

/// [`Error::Interrupted`] if [`INTERRUPT`] is set: for the steps before the paths (drawing
/// books, building each venue's ladders), so that a signal stops a run with books of millions
/// of positions within seconds rather than after the whole build.
pub fn check_interrupt() -> Result<()> {
    if INTERRUPT.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    Ok(())
}

/// A contiguous block of paths `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRange {
    /// First path index.
    pub start: u64,
    /// One past the last path index.
    pub end: u64,
}

impl PathRange {
    /// Number of paths.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// How to run: threads, progress display and the memory a study may hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Worker threads; `None` uses one per core.
    pub threads: Option<usize>,
    /// Whether to show a progress bar (it hides itself when stderr is not a terminal).
    pub progress: bool,
    /// The memory a study may hold before it is refused ([`crate::footprint`]); `None`: what
    /// this process may use ([`MemoryLimit::of_process`]).
    pub memory: Option<MemoryLimit>,
}

/// Everything a run computed, before it is summarised and written.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Paths simulated.
    pub range: PathRange,
    /// Row layout of one path under one policy.
    pub layout: RowLayout,
    /// `rows[(path - range.start) * policies + policy]` is a row of `layout.len()` values.
    pub rows: Vec<f64>,
    /// Number of policies.
    pub policies: usize,
    /// Per-step histograms.
    pub timeline: Timeline,
    /// Wall-clock seconds of the simulation.
    pub seconds: f64,
    /// Threads used.
    pub threads: usize,
}

impl RunOutput {
    /// The row of `path` (absolute index) under `policy`.
    pub fn row(&self, path: u64, policy: usize) -> &[f64] {
        let n = self.layout.len();
        let at = ((path - self.range.start) as usize * self.policies + policy) * n;
        &self.rows[at..at + n]
    }

    /// Column `index` of `policy`'s rows, in path order.
    pub fn column(&self, policy: usize, index: usize) -> Vec<f64> {
        (self.range.start..self.range.end)
            .map(|p| self.row(p, policy)[index])
            .collect()
    }
}

/// A batch of consecutive paths, from its first.
struct Batch<'a> {
    markets: &'a [Market],
    shocks: &'a ShockModel,
    seed: u64,
    first: u64,
    /// Length of one policy's row of one path.
    row_len: usize,
}

impl Batch<'_> {
    /// Simulates the batch's paths into `rows` (each path's rows of every policy in turn),
    /// recording their timelines. Out of line: profiles and the README's count of a path's
    /// instructions (`--toggle-collect`) find it by its name.
    #[inline(never)]
    fn simulate(
        &self,
        rows: &mut [f64],
        scratch: &mut Scratch,
        returns: &mut [f64],
        recorder: &mut Recorder,
    ) {
        let path_len = self.markets.len() * self.row_len;
        for (k, path_rows) in rows.chunks_mut(path_len).enumerate() {
            self.shocks
                .fill_path(self.seed, self.first + k as u64, returns);
            for (p, (market, row)) in self
                .markets
                .iter()
                .zip(path_rows.chunks_mut(self.row_len))
                .enumerate()
            {
                engine::simulate(market, returns, scratch, row);
                recorder.record(p, &scratch.log_price_path, &scratch.liquidated_path);
            }
        }
    }
}

/// The cores of the machine: the most threads that build markets at once (building is
/// compute- and memory-bound; more threads build no faster and hold more memory at once).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The threads `options` asks for (default: rayon's, one per core unless `RAYON_NUM_THREADS`
/// says otherwise), for the paths and, up to [`cores`], for building the markets they run on.
pub fn pool(options: &RunOptions) -> Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(t) = options.threads {
        b = b.num_threads(t);
    }
    b.build()
        .map_err(|e| Error::BadInput(format!("cannot start {:?} threads: {e}", options.threads)))
}

/// An empty vector with room for exactly the rows of `paths` paths of `policies` policies,
/// `row_len` figures each. The memory check lets through any size a process can address where
/// the system says nothing of its memory (not Linux): one the allocator cannot give then
/// fails as bad input, not as an abort, and one whose length overflows is not wrapped round
/// to a short buffer.
pub fn reserve_rows(paths: u64, policies: usize, row_len: usize) -> Result<Vec<f64>> {
    let mut rows = Vec::new();
    match rows_len(paths, policies, row_len).map(|n| rows.try_reserve_exact(n)) {
        Some(Ok(())) => Ok(rows),
        _ => Err(Error::BadInput(format!(
            "cannot hold the results of {paths} paths x {policies} policies x {row_len} \
             figures in memory; use fewer paths, or split them into shards (`run --shard K/N`) \
             and read the shards' paths.csv files as they are"
        ))),
    }
}

/// Figures in the rows of `paths` paths of `policies` policies, `row_len` each; `None` past
/// `usize`.
fn rows_len(paths: u64, policies: usize, row_len: usize) -> Option<usize> {
    usize::try_from(paths)
        .ok()
        .and_then(|p| p.checked_mul(policies))
        .and_then(|n| n.checked_mul(row_len))
}

/// Simulates paths `range` of `scenario` under each of `markets` (one per policy).
pub fn run(
    scenario: &Scenario,
    markets: &[Market],
    range: PathRange,
    options: RunOptions,
) -> Result<RunOutput> {
    let pool = pool(&options)?;
    let threads = pool.current_num_threads();
    let f = scenario.file();
    let steps = f.simulation.steps as usize;
    let shocks = ShockModel::new(&f.price, f.simulation.step_seconds);
    let layout = RowLayout {
        venues: f.venues.len(),
    };
    let policies = markets.len();
    let row_len = layout.len();
    let scale = markets
        .first()
        .map_or(1.0, |m| m.total_open_interest)
        .max(1.0);
    let paths = range.end - range.start;
    let mut rows = reserve_rows(paths, policies, row_len)?;
    rows.resize(rows_len(paths, policies, row_len).expect("reserved"), 0.0);
    let recorders: Vec<Mutex<Option<Recorder>>> = (0..threads).map(|_| Mutex::new(None)).collect();
    let progress = Progress::paths(range.len() as u64, options.progress);
    let seed = scenario.seed();
    let started = Instant::now();

    pool.install(|| {
        rows.par_chunks_mut(BATCH * policies * row_len)
            .enumerate()
            .for_each_init(
                || (Scratch::default(), vec![0.0; steps]),
                |(scratch, returns), (batch, chunk)| {
                    if INTERRUPT.load(Ordering::Relaxed) {
                        return;
                    }
                    let worker = rayon::current_thread_index().unwrap_or(0);
                    let mut slot = recorders[worker].lock().expect("no panics while held");
                    let recorder =
                        slot.get_or_insert_with(|| Recorder::new(policies, steps, scale));
                    let first = range.start + (batch * BATCH) as u64;
                    let batch = Batch {
                        markets,
                        shocks: &shocks,
                        seed,
                        first,
                        row_len,
                    };
                    batch.simulate(chunk, scratch, returns, recorder);
                    progress.advance(chunk.len() / (policies * row_len));
                },
            );
    });
    progress.finish();
    check_interrupt()?;
    // The first worker's timeline takes in the others' (a fresh one would cost an allocation
    // of megabytes and a pass over it, about 1% of a run of a thousand paths).
    let timeline = recorders
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .map(Recorder::finish)
        .reduce(|mut all, t| {
            all.merge(&t);
            all
        })
        .unwrap_or_else(|| Timeline::new(policies, steps, scale));
    Ok(RunOutput {
        range,
        layout,
        rows,
        policies,
        timeline,
        seconds: started.elapsed().as_secs_f64(),
        threads,
    })
}
