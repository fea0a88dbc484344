//! Throughput benchmarks on the named benchmark scenario (`scenarios/benchmark.toml`).
//!
//! - `venue_steps`: the whole Monte Carlo ([`runner::run`]) on one thread for a fixed batch of
//!   paths; criterion reports venue-steps per second (paths x steps x venues x policies). The
//!   target is at least 100 million per second per core.
//! - `book_size`: one path of [`engine::simulate`] with 1,000 versus 1,000,000 positions per
//!   side per venue, on the same pre-drawn exogenous returns. The design promises that a path
//!   costs nothing per position it does not liquidate, so the two should be within 1.5x.
//!
//! Scenarios, books and markets are built outside the timed loops. Run with
//! `cargo bench --bench throughput`; these machines are small and noisy, so samples are few.

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
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Paths per timed run of the whole Monte Carlo.
const RUN_PATHS: u64 = 256;

/// Distinct pre-drawn paths the per-path benchmark cycles through.
const PATH_SET: u64 = 64;

/// Positions per side per venue compared by `book_size`.
const BOOK_SIZES: [u32; 2] = [1_000, 1_000_000];

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
    policy::markets(scenario, &books)
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

/// Per-path cost of [`engine::simulate`] with small and huge books, on the same returns.
fn book_size(c: &mut Criterion) {
    let mut group = c.benchmark_group("book_size");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    for positions in BOOK_SIZES {
        let overrides: Vec<Override> = (0..load(&[]).file().venues.len())
            .map(|v| {
                Override::parse(&format!("venues.{v}.book.positions={positions}"))
                    .expect("a well-formed override")
            })
            .collect();
        let scenario = load(&overrides);
        let market = markets(&scenario).swap_remove(0);
        let f = scenario.file();
        let steps = f.simulation.steps as usize;

        // The same exogenous returns for both book sizes: drawn as the runner draws path i.
        let shocks = ShockModel::new(&f.price, f.simulation.step_seconds);
        let returns: Vec<Vec<f64>> = (0..PATH_SET)
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed());
                rng.set_stream(i);
                let mut r = vec![0.0; steps];
                shocks.fill(&mut rng, &mut r);
                r
            })
            .collect();
        let mut scratch = Scratch::default();
        let mut row = vec![
            0.0;
            RowLayout {
                venues: f.venues.len()
            }
            .len()
        ];
        let mut next = 0usize;

        group.bench_function(BenchmarkId::new("simulate_one_path", positions), |b| {
            b.iter(|| {
                let r = &returns[next % returns.len()];
                next += 1;
                let ledger = engine::simulate(black_box(&market), r, &mut scratch, &mut row);
                black_box(ledger)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, venue_steps, book_size);
criterion_main!(benches);
