//! Throughput benchmarks on the named benchmark scenario (`scenarios/benchmark.toml`).
//!
//! - `venue_steps`: the whole Monte Carlo ([`runner::run`]) on one thread for a fixed batch of
//!   paths; criterion reports venue-steps per second (paths x steps x venues x policies). The
//!   target is at least 100 million per second per core.
//! - `book_size`: one path of [`engine::simulate`] with 1,000, 10,000, 100,000 and 1,000,000
//!   positions per side per venue, on the same pre-drawn exogenous returns. A path costs
//!   nothing per position it does not liquidate; the target is the 1,000,000-position path
//!   within 1.5x of the 1,000-position one (not met: the README's performance section says
//!   what grows with the book and why). A fifth case isolates the size of the book from what
//!   a path liquidates: the 1,000-position books plus 999,000 positions per side per venue
//!   that no path reaches, so ladders a thousand times longer and the same liquidations.
//!
//! Scenarios, books and markets are built outside the timed loops (the huge books only when
//! their benchmark is selected). Run with `cargo bench --bench throughput`, or one group with
//! `cargo bench --bench throughput -- book_size`; these machines are small and noisy, so
//! samples are few and the whole run takes about two minutes.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cascade::Scenario;
use cascade::engine::{self, Scratch};
use cascade::market::Market;
use cascade::metrics::RowLayout;
use cascade::policy;
use cascade::runner::{self, PathRange, RunOptions};
use cascade::scenario::Override;
use cascade::shocks::ShockModel;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

#[path = "../tests/unreached_books.rs"]
mod unreached_books;

/// Paths per timed run of the whole Monte Carlo. A run has a fixed cost of a few milliseconds
/// (thread pool, timeline histograms allocated and merged), about 10% of a 256-path run and
/// 2-3% of this one, so this measures the per-path throughput real runs see.
const RUN_PATHS: u64 = 1024;

/// Distinct pre-drawn paths the per-path benchmark cycles through.
const PATH_SET: u64 = 64;

/// Positions per side per venue compared by `book_size`.
const BOOK_SIZES: [u32; 4] = [1_000, 10_000, 100_000, 1_000_000];

/// Positions per side per venue that no path reaches, added to the 1,000-position books in
/// `book_size`'s fifth case (holding 1% of each venue's open interest).
const UNREACHED: usize = 999_000;

fn scenario_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/benchmark.toml")
}

/// The benchmark scenario, with `overrides` applied.
fn load(overrides: &[Override]) -> Scenario {
    Scenario::load(&scenario_path(), overrides)
        .unwrap_or_else(|e| panic!("the benchmark scenario must load: {e}"))
}

/// One market per policy, from the scenario's own books.
fn markets(scenario: &Scenario) -> Vec<Market> {
    let books = scenario.books();
    policy::markets(scenario, &books).expect("no interrupt in a benchmark")
}

/// The whole Monte Carlo, single-threaded, in venue-steps per second.
fn venue_steps(c: &mut Criterion) {
    let scenario = load(&[]);
    let markets = markets(&scenario);
    let f = scenario.file();
    let elements =
        RUN_PATHS * u64::from(f.simulation.steps) * f.venues.len() as u64 * markets.len() as u64;
    let range = PathRange {
        start: 0,
        end: RUN_PATHS,
    };
    let options = RunOptions {
        threads: Some(1),
        progress: false,
        memory: None,
    };

    let mut group = c.benchmark_group("venue_steps");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(elements));
    group.bench_function(
        BenchmarkId::new("benchmark_scenario_1_thread", RUN_PATHS),
        |b| {
            b.iter(|| {
                let out = runner::run(&scenario, black_box(&markets), range, options)
                    .expect("the benchmark run must succeed");
                black_box(out.rows.len())
            })
        },
    );
    group.finish();
}

/// One market with `positions` per side per venue (and `unreached` more that no path
/// reaches), and pre-drawn returns to run it on.
struct PathBench {
    market: Market,
    returns: Vec<Vec<f64>>,
    scratch: Scratch,
    row: Vec<f64>,
    next: usize,
}

impl PathBench {
    fn new(positions: u32, unreached: usize) -> PathBench {
        let overrides: Vec<Override> = (0..load(&[]).file().venues.len())
            .map(|v| {
                Override::parse(&format!("venues.{v}.book.positions={positions}"))
                    .expect("a well-formed override")
            })
            .collect();
        let scenario = load(&overrides);
        let f = scenario.file();
        let mut books = scenario.books();
        if unreached > 0 {
            unreached_books::add_unreached(&mut books, unreached, f.price.start, 0.01);
        }
        let market = policy::markets(&scenario, &books)
            .expect("no interrupt in a benchmark")
            .swap_remove(0);
        let steps = f.simulation.steps as usize;
        // The same exogenous returns for every book size: path i drawn as the runner draws it.
        let shocks = ShockModel::new(&f.price, f.simulation.step_seconds);
        let returns = (0..PATH_SET)
            .map(|i| {
                let mut r = vec![0.0; steps];
                shocks.fill_path(scenario.seed(), i, &mut r);
                r
            })
            .collect();
        let row = vec![
            0.0;
            RowLayout {
                venues: f.venues.len()
            }
            .len()
        ];
        PathBench {
            market,
            returns,
            scratch: Scratch::default(),
            row,
            next: 0,
        }
    }

    /// Simulates the next pre-drawn path (cycling through the set).
    fn next_path(&mut self) -> engine::Ledger {
        let r = &self.returns[self.next % self.returns.len()];
        self.next += 1;
        let ledger = engine::simulate(black_box(&self.market), r, &mut self.scratch, &mut self.row);
        black_box(ledger)
    }
}

/// Per-path cost of [`engine::simulate`] with small and huge books, on the same returns.
fn book_size(c: &mut Criterion) {
    let mut group = c.benchmark_group("book_size");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    let cases = BOOK_SIZES
        .map(|positions| ("simulate_one_path".to_string(), positions, 0))
        .into_iter()
        .chain([(format!("plus_{UNREACHED}_unreached"), 1_000, UNREACHED)]);
    for (name, positions, unreached) in cases {
        // Built on first use, outside the timed loop, so that filtering this benchmark out
        // (`cargo bench --bench throughput -- venue_steps`) skips building the huge books.
        let mut setup: Option<PathBench> = None;
        group.bench_function(BenchmarkId::new(name, positions), |b| {
            let p = setup.get_or_insert_with(|| PathBench::new(positions, unreached));
            b.iter(|| p.next_path())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: the plotters backend panics on machines without fonts (FontUnavailable), and
    // the figures are read from the terminal or target/criterion/*/new/estimates.json.
    config = Criterion::default().without_plots();
    targets = venue_steps, book_size
}
criterion_main!(benches);
