//! A study from validated scenario to written result: the steps `run`, `sweep` and `merge`
//! share, so that a merged or swept result is written by exactly the code a plain run uses.

use std::path::Path;
use std::time::Instant;

use crate::columnar;
use crate::error::Result;
use crate::footprint;
use crate::market::Market;
use crate::policy;
use crate::results::{self, Manifest};
use crate::runner::{self, PathRange, RunOptions, RunOutput};
use crate::scenario::Scenario;
use crate::shard::{self, Shard};
use crate::summary::Summary;

/// A finished simulation of all policies over some paths, summarised.
#[derive(Debug)]
pub struct Study {
    /// The scenario that was run.
    pub scenario: Scenario,
    /// One market per policy.
    pub markets: Vec<Market>,
    /// Rows and histograms.
    pub out: RunOutput,
    /// Statistics of the rows.
    pub summary: Summary,
    /// The shard this is, if the study was split.
    pub shard: Option<Shard>,
}

/// How the study came about, for the manifest.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The scenario file, absolute ([`absolute`]).
    pub scenario_path: String,
    /// `--set` overrides as given.
    pub overrides: Vec<String>,
    /// When the command started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Monotonic start, for wall time.
    pub started: Instant,
}

impl Provenance {
    /// Provenance starting now.
    pub fn now(scenario_path: &Path, overrides: &[String]) -> Provenance {
        Provenance {
            scenario_path: absolute(scenario_path),
            overrides: overrides.to_vec(),
            started_at: chrono::Utc::now(),
            started: Instant::now(),
        }
    }
}

/// `path` as a manifest records it: absolute, with symbolic links resolved where it exists,
/// so that it still names the file read outside the directory the command ran in.
pub fn absolute(path: &Path) -> String {
    path.canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The paths of the scenario a run simulates: all, or one shard's.
fn path_range(scenario: &Scenario, shard: Option<Shard>) -> PathRange {
    let paths = scenario.file().simulation.paths;
    shard.map_or(
        PathRange {
            start: 0,
            end: paths,
        },
        |s| s.range(paths),
    )
}

/// Refuses a run that would hold more than `options.memory` ([`crate::footprint::check`]):
/// for a command to call before it creates anything, as [`simulate`] does before drawing
/// books.
pub fn check_memory(scenario: &Scenario, shard: Option<Shard>, options: &RunOptions) -> Result<()> {
    let (paths, threads) = sizes(scenario, shard, options);
    footprint::check(scenario, paths, threads, options.memory)
}

/// Paths and worker threads of a run, as its memory depends on them.
fn sizes(scenario: &Scenario, shard: Option<Shard>, options: &RunOptions) -> (u64, usize) {
    let threads = options.threads.unwrap_or_else(rayon::current_num_threads);
    (path_range(scenario, shard).len() as u64, threads)
}

/// Builds the books and markets and simulates the scenario's paths (or one shard of them).
pub fn simulate(scenario: Scenario, shard: Option<Shard>, options: RunOptions) -> Result<Study> {
    let range = path_range(&scenario, shard);
    // Before the books are drawn: an impossible size fails in the first second.
    check_memory(&scenario, shard, &options)?;
    let books = scenario.books();
    runner::check_interrupt()?;
    // Again with the positions migration moves, before any ladder is built.
    let (paths, threads) = sizes(&scenario, shard, &options);
    footprint::check_books(&scenario, &books, paths, threads, options.memory)?;
    // Venues are built in parallel (`Market::build`), on the run's threads up to the cores.
    let building = RunOptions {
        threads: Some(threads.min(runner::cores())),
        ..options
    };
    let markets = runner::pool(&building)?.install(|| policy::markets(&scenario, &books))?;
    // The ladders hold what the paths need: the positions' memory is free for the run's.
    drop(books);
    let out = runner::run(&scenario, &markets, range, options)?;
    let summary = Summary::build(&scenario, &markets, &out);
    Ok(Study {
        scenario,
        markets,
        out,
        summary,
        shard,
    })
}

/// Summarises rows that were simulated elsewhere (the shards of a merge).
pub fn from_rows(scenario: Scenario, out: RunOutput) -> Result<Study> {
    // One venue at a time: the merge's memory check counts no more builds at once.
    let one = RunOptions {
        threads: Some(1),
        progress: false,
        memory: None,
    };
    let markets = runner::pool(&one)?.install(|| policy::markets(&scenario, &scenario.books()))?;
    let summary = Summary::build(&scenario, &markets, &out);
    Ok(Study {
        scenario,
        markets,
        out,
        summary,
        shard: None,
    })
}

impl Study {
    /// The manifest of this study.
    pub fn manifest(&self, p: &Provenance) -> Manifest {
        Manifest {
            tool: "cascade",
            version: crate::VERSION,
            build: crate::BUILD,
            scenario_path: p.scenario_path.clone(),
            scenario_file_sha256: self.scenario.source_sha256().to_string(),
            scenario_sha256: self.scenario.sha256(),
            seed: self.scenario.seed(),
            paths: self.out.range.len() as u64,
            path_range: [self.out.range.start, self.out.range.end],
            shard: self.shard,
            // Set when the files are written (see `write`).
            shard_files: None,
            merged_from: None,
            threads: self.out.threads,
            overrides: p.overrides.clone(),
            started_at: p.started_at.to_rfc3339(),
            // Set when the files are written (see `write`).
            finished_at: String::new(),
            wall_seconds: 0.0,
            simulation_seconds: self.out.seconds,
        }
    }

    /// Writes every result file into `dir` (shards also keep their raw histograms), and
    /// `paths.parquet` beside `paths.csv` when `parquet` is set; `manifest.json` last, with
    /// the end time and the wall seconds since `p` began, so that they cover writing the
    /// files (a million-path `paths.parquet` takes a second). Charts and the report are drawn
    /// from these files afterwards, and show this manifest.
    pub fn write(
        &self,
        dir: &Path,
        manifest: &Manifest,
        p: &Provenance,
        parquet: bool,
    ) -> Result<()> {
        results::write_all(dir, &self.scenario, &self.out, &self.summary)?;
        if parquet {
            columnar::write_paths(dir, &self.scenario, &self.out)?;
        }
        let shard_files = match self.shard {
            Some(_) => {
                shard::write_histograms(dir, &self.out.timeline)?;
                Some(shard::merged_files(dir)?)
            }
            None => None,
        };
        let manifest = Manifest {
            shard_files,
            finished_at: chrono::Utc::now().to_rfc3339(),
            wall_seconds: p.started.elapsed().as_secs_f64(),
            ..manifest.clone()
        };
        results::write_json(dir, "manifest.json", &manifest)
    }

    /// Venue-steps simulated per second (paths x steps x venues x policies / seconds).
    pub fn venue_steps_per_second(&self) -> f64 {
        let f = self.scenario.file();
        self.out.range.len() as f64
            * f64::from(f.simulation.steps)
            * f.venues.len() as f64
            * self.markets.len() as f64
            / self.out.seconds.max(1e-9)
    }
}
