//! Command-line flags and the commands behind them.

mod table;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use cascade::error::{Error, Result};
use cascade::results::{self, Destination, Manifest};
use cascade::runner::{self, PathRange, RunOptions};
use cascade::scenario::{Override, Scenario};
use cascade::summary::Summary;
use cascade::{VERSION, policy};

/// Liquidation cascades across derivatives venues, and what cross-border cooperation changes.
#[derive(Debug, Parser)]
#[command(name = "cascade", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every policy of a scenario and write a result directory.
    Run(RunArgs),
    /// Check a scenario without running it and print it resolved (defaults filled in).
    Validate {
        /// Scenario file.
        scenario: PathBuf,
        /// Override a field by its dotted path, e.g. --set liquidity.routing=0.3.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print the JSON Schema of the scenario format (for editors).
    Schema,
    /// Write a commented starter scenario.
    Init {
        /// Where to write it.
        #[arg(default_value = "scenario.toml")]
        path: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Scenario file.
    scenario: PathBuf,
    /// Number of paths (overrides simulation.paths).
    #[arg(long)]
    paths: Option<u64>,
    /// Seed (overrides simulation.seed); TOML integers are signed, so at most 2^63 - 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    seed: Option<u64>,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Result directory (default: a new output/<scenario>/<UTC timestamp>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace an existing --out directory.
    #[arg(long)]
    force: bool,
    /// Override a field by its dotted path, e.g. --set venues.0.initial_margin=0.05.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Parses flags and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run_scenario(args),
        Command::Validate { scenario, set } => {
            let s = Scenario::load(&scenario, &overrides(&set)?)?;
            print!("{}", s.to_toml());
            Ok(())
        }
        Command::Schema => {
            let schema = cascade::scenario::load::schema_json();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("a schema always serializes")
            );
            Ok(())
        }
        Command::Init { path, force } => init(&path, force),
    }
}

fn overrides(set: &[String]) -> Result<Vec<Override>> {
    set.iter()
        .map(|s| Override::parse(s).map_err(Error::BadInput))
        .collect()
}

/// The starter scenario `init` writes: the quickstart, which CI runs on every change.
const STARTER: &str = include_str!("../../scenarios/quickstart.toml");

fn init(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        return Err(Error::BadInput(format!(
            "{} already exists; pass --force to replace it",
            path.display()
        )));
    }
    std::fs::write(path, STARTER)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    eprintln!(
        "wrote {}; run it with: cascade run {}",
        path.display(),
        path.display()
    );
    Ok(())
}

fn run_scenario(args: RunArgs) -> Result<()> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mut ovs = overrides(&args.set)?;
    if let Some(p) = args.paths {
        ovs.push(Override::parse(&format!("simulation.paths={p}")).map_err(Error::BadInput)?);
    }
    if let Some(s) = args.seed {
        ovs.push(Override::parse(&format!("simulation.seed={s}")).map_err(Error::BadInput)?);
    }
    let scenario = Scenario::load(&args.scenario, &ovs)?;
    let f = scenario.file();
    let destination = Destination::plan(
        args.out.as_deref(),
        Path::new("output"),
        &f.name,
        args.force,
    )?;

    let books = scenario.books();
    let markets = policy::markets(&scenario, &books);
    let range = PathRange {
        start: 0,
        end: f.simulation.paths,
    };
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let out = runner::run(
        &scenario,
        &markets,
        range,
        RunOptions {
            threads: args.threads.map(usize::from),
            progress: show_progress,
        },
    )?;
    let summary = Summary::build(&scenario, &markets, &out);
    let manifest = Manifest {
        tool: "cascade",
        version: VERSION,
        scenario_path: args.scenario.display().to_string(),
        scenario_file_sha256: scenario.source_sha256().to_string(),
        scenario_sha256: scenario.sha256(),
        seed: scenario.seed(),
        paths: range.len() as u64,
        path_range: [range.start, range.end],
        threads: out.threads,
        overrides: args.set.clone(),
        started_at: started_at.to_rfc3339(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        wall_seconds: started.elapsed().as_secs_f64(),
        simulation_seconds: out.seconds,
    };
    let dir =
        destination.commit(|dir| results::write_all(dir, &scenario, &out, &summary, &manifest))?;
    print!("{}", table::headline(&summary));
    print!("{}", table::comparisons(&summary));
    let venue_steps = range.len() as f64
        * f64::from(f.simulation.steps)
        * f.venues.len() as f64
        * markets.len() as f64;
    println!(
        "\n{} paths x {} policies in {:.2} s ({:.0} M venue-steps/s on {} threads), seed {}",
        range.len(),
        markets.len(),
        out.seconds,
        venue_steps / out.seconds.max(1e-9) / 1e6,
        out.threads,
        scenario.seed()
    );
    println!("results: {}", dir.display());
    Ok(())
}
