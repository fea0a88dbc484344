//! `cascade`: a Monte Carlo simulator of liquidation cascades across derivatives venues, and
//! of how cross-border cooperation (harmonized margins, shared supervision, pooled default
//! funds) changes them.
//!
//! The pipeline, one module per concept:
//! [`scenario`] (file, overrides, validation) -> [`book`] (positions) -> [`policy`] (overlays)
//! -> [`market`] (ladders and constants, per policy, with [`margin`] for tiered rates) ->
//! [`runner`] (parallel paths, with [`shocks`] for the exogenous price, [`engine`] for one
//! path, using [`ladder`] and [`liquidity`], [`metrics`] for the row each path writes, and
//! [`progress`] for the bar) -> [`summary`] (statistics, with [`stats`] and [`timeline`]) ->
//! [`results`] (the result directory, with [`columnar`] for `paths.parquet` and [`sha256`]
//! for the digests it records). [`study`] strings these together for the commands, refusing beforehand a study larger than [`memory_limit`] allows
//! ([`footprint`]); [`sweep`] runs one study per cell of a grid of overrides, and [`shard`]
//! splits a study across machines and merges it back exactly.
//! [`report`] draws the [`charts`] and writes `report.html` from a result directory's files
//! ([`result_dir`], reading its CSV files with [`csv_lines`], which also reads the input CSV
//! files naming their bad lines), with [`units`] for how figures are shown. [`calibrate`]
//! solves for the shock behind an observed outcome, and [`backtest`] runs the validation
//! protocol against historical episodes. Every module fails with [`error`]'s type.

pub mod backtest;
pub mod book;
pub mod calibrate;
pub mod charts;
pub mod columnar;
pub mod csv_lines;
pub mod engine;
pub mod error;
pub mod footprint;
pub mod ladder;
pub mod liquidity;
pub mod margin;
pub mod market;
pub mod memory_limit;
pub mod metrics;
pub mod policy;
pub mod progress;
pub mod report;
pub mod result_dir;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod sha256;
pub mod shard;
pub mod shocks;
pub mod stats;
pub mod study;
pub mod summary;
pub mod sweep;
pub mod timeline;
pub mod units;
mod window_max;

pub use error::{Error, Result};
pub use scenario::Scenario;

/// The version recorded in every result.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The code the binary was built from, recorded in every result beside [`VERSION`]:
/// `git <commit>`, with `-dirty` when the binary's sources had uncommitted changes (set by
/// `build.rs`, which lists them: an edited README or test does not count).
pub const BUILD: &str = env!("CASCADE_BUILD");
