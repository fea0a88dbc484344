//! Command-line flags and the commands behind them.

/// Prints to stdout. A closed pipe (`cascade validate s.toml | head`) ends the output
/// quietly instead of panicking: everything printed is also in the result files. Any other
/// failure (a full disk under `cascade schema > file`) is reported once the command has
/// finished: see [`stdout_result`].
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let written = std::io::stdout().lock().write_all(format!($($arg)*).as_bytes());
        $crate::cli::note_stdout(written);
    }};
}

/// [`say!`] with a newline.
macro_rules! sayln {
    ($($arg:tt)*) => {{
        say!($($arg)*);
        say!("\n");
    }};
}

/// A line on standard error (progress, warnings), written like [`say!`]: a reader that has
/// gone (`2>&1 | head -1`) must not turn a note into a panic that stops the work.
macro_rules! noteln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod backtest;
mod calibrate;
mod sweep;
mod table;
mod whole_number;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use cascade::error::{Error, Result};
use cascade::footprint;
use cascade::memory_limit::{self, MemoryLimit};
use cascade::results::{Committed, Destination};
use cascade::runner::RunOptions;
use cascade::scenario::load::{key_within, parse_key};
use cascade::scenario::{Override, Scenario};
use cascade::shard::{self, Shard};
use cascade::study::{self, Provenance};
use cascade::units::counted;
use whole_number::whole;

/// `cascade --version`: the version and the code it was built from.
const VERSION_LINE: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CASCADE_BUILD"), ")");

/// Liquidation cascades across derivatives venues, and what cross-border cooperation changes.
#[derive(Debug, Parser)]
#[command(name = "cascade", version = VERSION_LINE, about, long_about = None)]
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
        /// The worker threads `run` will use (default: one per core): the memory check
        /// counts each thread's histograms.
        #[arg(long, allow_negative_numbers = true, value_parser = whole(1, 1024))]
        threads: Option<i64>,
        /// Check the memory of shard K of N, as `run --shard K/N` would, rather than of the
        /// whole study (what a job array's node must hold).
        #[arg(long, value_name = "K/N", allow_hyphen_values = true)]
        shard: Option<Shard>,
        #[command(flatten)]
        memory: Memory,
        /// Check the memory of `cascade merge` of the whole study (every path's results, as
        /// its merge job holds them) rather than of a run.
        #[arg(long, conflicts_with_all = ["shard", "threads"])]
        merge: bool,
    },
    /// Run a grid of overrides (--set KEY=V1,V2 or KEY=FROM..TO:N), one result per cell.
    Sweep(sweep::SweepArgs),
    /// Find the value of a field (default price.stress.drop) whose median METRIC hits a target.
    Calibrate(calibrate::CalibrateArgs),
    /// Calibrate historical episodes to their observed drop and tabulate what was not fitted.
    Backtest(backtest::BacktestArgs),
    /// (Re)build the charts and report.html of a result directory, without rerunning it.
    Report {
        /// Result directory (as `cascade run` printed it).
        dir: PathBuf,
    },
    /// Combine shard results into the result an unsharded run would have written.
    Merge {
        /// Shard result directories (from `run --shard K/N`), in any order.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Where to write the merged result.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing --out directory.
        #[arg(long)]
        force: bool,
        /// Also write paths.parquet.
        #[arg(long)]
        parquet: bool,
        /// Skip the charts and report.html.
        #[arg(long)]
        no_report: bool,
        /// No warnings (results, and where they were written, still print), as for `run`, so
        /// that a batch script can pass it to every step.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        memory: Memory,
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

/// The memory a command's study may hold: every command that simulates or merges checks it
/// before it draws or reads anything, and `validate` checks it alone.
#[derive(Debug, Args)]
struct Memory {
    /// The memory to check the study against, written as SLURM's --mem (4G, 500M): what a
    /// job array's task will be given, or less than this machine has, to leave room for other
    /// work. Default: what this process may use (the least of the machine's memory, its
    /// control group's limit and its SLURM job's).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true,
          value_parser = memory_limit::parse_size)]
    memory: Option<f64>,
}

impl Memory {
    /// The limit given, if one was.
    fn limit(&self) -> Option<MemoryLimit> {
        self.memory.map(|bytes| MemoryLimit {
            bytes,
            source: "given by --memory",
        })
    }
}

/// Flags shared by `run` and `sweep`.
#[derive(Debug, Args)]
struct Common {
    /// Number of paths (overrides simulation.paths); at most 2^63 - 1, the largest integer a
    /// scenario file holds.
    // Negative numbers are taken as values, so that `--paths -5` is refused as out of range
    // rather than with clap's advice to write `-- -5`, which would pass a file named -5.
    #[arg(long, allow_negative_numbers = true, value_parser = whole(1, i64::MAX))]
    paths: Option<i64>,
    /// Seed (overrides simulation.seed); at most 2^63 - 1, the largest integer a scenario
    /// file holds.
    #[arg(long, allow_negative_numbers = true, value_parser = whole(0, i64::MAX))]
    seed: Option<i64>,
    /// Worker threads (default: one per core); at most 1024 (each thread keeps histograms of
    /// its own, and tens of thousands of threads exhaust a machine long before they help).
    #[arg(long, allow_negative_numbers = true, value_parser = whole(1, 1024))]
    threads: Option<i64>,
    /// Replace an existing --out.
    #[arg(long)]
    force: bool,
    /// Override a field by its dotted path, e.g. --set venues.0.initial_margin=0.05.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// No progress bar or progress lines, and no warnings about the scenario (results, and
    /// where they were written, still print).
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    memory: Memory,
}

/// Flags of the commands that write result directories (`run`, `sweep`).
#[derive(Debug, Args)]
struct Outputs {
    /// Also write paths.parquet (the paths table as Parquet, for pandas and polars).
    #[arg(long)]
    parquet: bool,
    /// Skip the charts and report.html (`cascade report DIR` builds them later).
    #[arg(long)]
    no_report: bool,
}

impl Common {
    /// Every override: `--set`, then `--paths` and `--seed`.
    fn overrides(&self) -> Result<Vec<Override>> {
        let mut ovs = overrides(&self.set)?;
        ovs.append(&mut self.overrides_without_set()?);
        Ok(ovs)
    }

    /// The overrides `--paths` and `--seed` stand for.
    fn overrides_without_set(&self) -> Result<Vec<Override>> {
        // Both would be applied, the flag last: the --set value would be silently dropped
        // while the manifest still lists it.
        for (flag, given, key) in [
            ("--paths", self.paths.is_some(), "simulation.paths"),
            ("--seed", self.seed.is_some(), "simulation.seed"),
        ] {
            let set_too = self.set.iter().find_map(|s| {
                let (k, _) = s.split_once('=')?;
                parse_key(s, k).ok().filter(|k| overlap(k, key))
            });
            if let (true, Some(set)) = (given, set_too) {
                return Err(Error::BadInput(format!(
                    "{flag} and --set {set} both set {key}; give one of them"
                )));
            }
        }
        let mut ovs = Vec::new();
        if let Some(p) = self.paths {
            ovs.push(Override::parse(&format!("simulation.paths={p}")).map_err(Error::BadInput)?);
        }
        if let Some(s) = self.seed {
            ovs.push(Override::parse(&format!("simulation.seed={s}")).map_err(Error::BadInput)?);
        }
        Ok(ovs)
    }

    fn options(&self) -> RunOptions {
        RunOptions {
            threads: self.threads.map(|t| t as usize),
            progress: !self.quiet && std::io::stderr().is_terminal(),
            memory: self.memory.limit(),
        }
    }
}

/// What `run` and `sweep` both take: the scenario, how to simulate it, what to write.
#[derive(Debug, Args)]
struct StudyArgs {
    /// Scenario file.
    scenario: PathBuf,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    outputs: Outputs,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    study: StudyArgs,
    /// Result directory (default: a new output/<scenario>/<UTC timestamp>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Simulate only shard K of N (contiguous blocks of paths), for `cascade merge`.
    #[arg(long, value_name = "K/N", allow_hyphen_values = true)]
    shard: Option<Shard>,
}

/// The first failure to write standard output other than a reader that has gone.
static STDOUT_FAILURE: std::sync::Mutex<Option<std::io::Error>> = std::sync::Mutex::new(None);

/// Keeps the first failure of a write to standard output for [`stdout_result`]; a closed pipe
/// is not one.
fn note_stdout(written: std::io::Result<()>) {
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let mut first = STDOUT_FAILURE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        first.get_or_insert(e);
    }
}

/// Flushes standard output and fails if anything written to it was lost and what the command
/// prints is its whole product (`validate`, `schema`: a scenario or schema cut short by a full
/// disk was left behind with exit code 0). A command whose product is files (a run, whose
/// table is also in `summary.json`) only warns: a log that hit its quota must not mark a
/// finished run as failed, whose rerun `--out` would then refuse.
fn stdout_result(product: bool) -> Result<()> {
    use std::io::Write as _;
    note_stdout(std::io::stdout().lock().flush());
    let mut first = STDOUT_FAILURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match first.take() {
        Some(e) if product => Err(Error::io("cannot write to standard output".to_string(), e)),
        Some(e) => {
            noteln!(
                "warning: cannot write to standard output ({e}); the command finished and its \
                 files are complete"
            );
            Ok(())
        }
        None => Ok(()),
    }
}

/// Parses flags and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    let product = matches!(cli.command, Command::Validate { .. } | Command::Schema);
    let result = run_command(cli);
    // The command's own error first: a failed write to stdout is rarely the cause of it.
    result.and_then(|()| stdout_result(product))
}

/// Runs the command the flags name.
fn run_command(cli: Cli) -> Result<()> {
    // Ctrl-C, SIGTERM (what SLURM's scancel and job time limits send) and SIGHUP stop the
    // simulation between batches, or drop the files being written; the temporary result
    // directory is then removed as the error unwinds, so an interrupted run leaves nothing
    // behind. A second signal exits at once, removing the temporary directory and the
    // folders made for it first.
    let _ = ctrlc::set_handler(|| {
        if cascade::runner::INTERRUPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
            cascade::results::remove_partial();
            // Without it, the last line a log shows is the promise to stop at a safe point.
            noteln!("error: interrupted again: stopped at once; what was being written is removed");
            std::process::exit(130);
        }
        // Every command stops at its next safe point: a run or sweep after the batches under
        // way, a report before it moves anything into place.
        noteln!(
            "\ninterrupting: stopping at the next safe point (interrupt again to exit at once)"
        );
    });
    match cli.command {
        Command::Run(args) => run_scenario(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Backtest(args) => backtest::run(args),
        Command::Validate {
            scenario,
            set,
            threads,
            shard,
            memory,
            merge,
        } => {
            let s = Scenario::load(&scenario, &overrides(&set)?)?;
            warn(&s, &scenario);
            // What `cascade run` of it would refuse here, before drawing anything.
            let options = RunOptions {
                threads: threads.map(|t| t as usize),
                progress: false,
                memory: memory.limit(),
            };
            if merge {
                footprint::check_merge(&s, s.file().simulation.paths, options.memory)?;
            } else {
                study::check_memory(&s, shard, &options)?;
            }
            say!("{}", s.to_toml());
            Ok(())
        }
        Command::Schema => {
            let schema = cascade::scenario::load::schema_json();
            sayln!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("a schema always serializes")
            );
            Ok(())
        }
        Command::Init { path, force } => init(&path, force),
        Command::Merge {
            shards,
            out,
            force,
            parquet,
            no_report,
            quiet,
            memory,
        } => merge(
            &shards,
            &out,
            force,
            MergeOutputs {
                parquet,
                no_report,
                quiet,
            },
            memory.limit(),
        ),
        Command::Report { dir } => {
            // The rebuild replaces charts/ whole: someone's own plot kept there would go.
            if cascade::results::is_result_dir(&dir) {
                cascade::results::refuse_foreign_charts(&dir)?;
            }
            let built = cascade::report::rebuild(&dir)?;
            if let Some(old) = &built.leftover {
                noteln!(
                    "warning: the old charts, moved to {}, could not be removed",
                    old.display()
                );
            }
            sayln!(
                "{} charts in {}\nreport: {}",
                built.charts.len(),
                dir.join("charts").display(),
                built.html.display()
            );
            Ok(())
        }
        Command::Sweep(args) => sweep::run(&args),
    }
}

/// Where a result went; warns when the old result it replaced could not be removed (it is
/// complete and in place all the same).
fn placed(committed: Committed) -> PathBuf {
    if let Some(old) = &committed.leftover {
        noteln!(
            "warning: the old result {} replaced, moved to {}, could not be removed",
            committed.path.display(),
            old.display()
        );
    }
    committed.path
}

/// Refuses `--shard` for a scenario whose seed was drawn at load: every shard (of a run or a
/// sweep, started together in a job array) would draw its own, and the shards would not be
/// one study.
fn seeded_for_shards(shard: Option<Shard>, scenario: &Scenario, path: &Path) -> Result<()> {
    match shard {
        Some(shard) if scenario.seed_drawn() => Err(Error::BadInput(format!(
            "--shard {shard}: {} sets no simulation.seed, so each shard would draw its own \
             and the shards would not be one study; pass the same --seed to every shard",
            path.display()
        ))),
        _ => Ok(()),
    }
}

fn overrides(set: &[String]) -> Result<Vec<Override>> {
    let ovs: Vec<Override> = set
        .iter()
        .map(|s| Override::parse(s).map_err(Error::BadInput))
        .collect::<Result<_>>()?;
    unique_keys(ovs.iter().map(|o| o.key.as_str()))?;
    Ok(ovs)
}

/// Prints the scenario's plausibility warnings (values valid but most likely in the wrong
/// unit) on stderr; they do not stop anything.
fn warn(scenario: &Scenario, path: &Path) {
    warn_cells(&[(String::new(), scenario)], path);
}

/// Prints the plausibility warnings of a sweep's cells (`(name, scenario)` each): every
/// distinct warning once, and one that only some cells give with how many and the first of
/// them, so a swept value in the wrong unit is warned about whichever cell holds it.
fn warn_cells(cells: &[(String, &Scenario)], path: &Path) {
    let mut seen: Vec<(String, Vec<&str>)> = Vec::new();
    for (name, scenario) in cells {
        for w in scenario.warnings() {
            let text = w.to_string();
            match seen.iter_mut().find(|(t, _)| *t == text) {
                Some((_, names)) => names.push(name),
                None => seen.push((text, vec![name])),
            }
        }
    }
    for (text, names) in seen {
        let which = if names.len() == cells.len() {
            String::new()
        } else {
            format!(
                " (in {} of {} cells, first {})",
                names.len(),
                cells.len(),
                names[0]
            )
        };
        noteln!("warning: {}: {text}{which}", path.display());
    }
}

/// Refuses a key given twice with `--set`: one value would be dropped silently (the run) or
/// the grid would be labelled with both (a sweep).
fn unique_keys<'a>(keys: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen: Vec<&str> = Vec::new();
    for key in keys {
        if let Some(first) = seen.iter().find(|k| overlap(k, key)) {
            let message = if *first == key {
                format!(
                    "--set {key} is given twice; give each key once (a sweep takes its values \
                     as one list: --set {key}=V1,V2)"
                )
            } else {
                // One sets a table, the other a key inside it: whichever came last would
                // silently undo the other.
                format!("--set {first} and --set {key} set the same value; give one of them")
            };
            return Err(Error::BadInput(message));
        }
        seen.push(key);
    }
    Ok(())
}

/// Whether two dotted keys set the same value: equal, or one a table holding the other.
fn overlap(a: &str, b: &str) -> bool {
    key_within(a, b) || key_within(b, a)
}

/// The starter scenario `init` writes: the quickstart, which CI runs on every change.
const STARTER: &str = include_str!("../../scenarios/quickstart.toml");

fn init(path: &Path, force: bool) -> Result<()> {
    // --force replaces a file; a directory here is a path missing its file name, which
    // neither --force nor the disk can fix.
    if path.is_dir() {
        return Err(Error::BadInput(format!(
            "{} is a directory; give the scenario file to write, e.g. {}",
            path.display(),
            path.join("scenario.toml").display()
        )));
    }
    // Written through, a link would replace the file it points to, which --force never
    // named (another scenario, say).
    cascade::results::refuse_link(&path.display().to_string(), path, "file")?;
    cascade::results::refuse_special_file(path)?;
    if path.exists() && !force {
        return Err(Error::BadInput(format!(
            "{} already exists; pass --force to replace it",
            path.display()
        )));
    }
    // A directory that is not there is a mistyped path (bad input), not a failing disk.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        let missing = if parent.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return Err(Error::BadInput(format!(
            "cannot write {}: {} {missing}",
            path.display(),
            parent.display()
        )));
    }
    std::fs::write(path, STARTER)
        .map_err(|e| Error::at_path(format!("cannot write {}", path.display()), e))?;
    noteln!(
        "wrote {}; run it with: cascade run {}",
        path.display(),
        path.display()
    );
    Ok(())
}

fn run_scenario(args: RunArgs) -> Result<()> {
    let StudyArgs {
        scenario: scenario_path,
        common,
        outputs,
    } = &args.study;
    let provenance = Provenance::now(scenario_path, &common.set);
    let scenario = Scenario::load(scenario_path, &common.overrides()?)?;
    seeded_for_shards(args.shard, &scenario, scenario_path)?;
    if !common.quiet {
        warn(&scenario, scenario_path);
    }
    // Before the destination's folders are created: a refused run leaves nothing behind.
    study::check_memory(&scenario, args.shard, &common.options())?;
    let tag = args
        .shard
        .map(|s| format!("shard-{}-of-{}", s.index, s.count));
    let destination = Destination::plan(
        args.out.as_deref(),
        Path::new("output"),
        &scenario.file().name,
        tag.as_deref(),
        common.force,
    )?;
    let study = study::simulate(scenario, args.shard, common.options())?;
    let manifest = study.manifest(&provenance);
    // A shard of a study split into more shards than it has paths holds none: its files
    // still merge, but it has no figures to show or chart.
    let empty = study.out.range.is_empty();
    let report = !outputs.no_report && !empty;
    let dir = placed(destination.commit(|dir| {
        study.write(dir, &manifest, &provenance, outputs.parquet)?;
        if report {
            cascade::report::build(dir)?;
        }
        Ok(())
    })?);
    if empty {
        sayln!(
            "this shard holds none of the study's {} paths (it has more shards than paths): \
             its statistics are null and it has no report, but it merges with the others",
            study.scenario.file().simulation.paths
        );
    } else {
        say!("{}", table::headline(&study.summary));
        say!("{}", table::comparisons(&study.summary));
    }
    let shard = args
        .shard
        .map(|s| {
            let r = study.out.range;
            if r.is_empty() {
                format!(" (shard {s}: no paths)")
            } else {
                format!(" (shard {s}: paths {}..{})", r.start, r.end)
            }
        })
        .unwrap_or_default();
    sayln!(
        "\n{} x {}{shard} in {:.2} s ({:.0} M venue-steps/s on {}), seed {}",
        counted(study.out.range.len(), "path", "paths"),
        counted(study.markets.len(), "policy", "policies"),
        study.out.seconds,
        study.venue_steps_per_second() / 1e6,
        counted(study.out.threads, "thread", "threads"),
        study.scenario.seed()
    );
    sayln!("results: {}", dir.display());
    if report {
        sayln!("report: {}", dir.join("report.html").display());
    }
    Ok(())
}

/// What `merge` writes and prints, beside the merged result.
struct MergeOutputs {
    parquet: bool,
    no_report: bool,
    quiet: bool,
}

fn merge(
    dirs: &[PathBuf],
    out: &Path,
    force: bool,
    outputs: MergeOutputs,
    memory: Option<MemoryLimit>,
) -> Result<()> {
    let MergeOutputs {
        parquet,
        no_report,
        quiet,
    } = outputs;
    let provenance = Provenance::now(Path::new("merge"), &[]);
    // Replacing a shard, or a directory holding one, with the merge would lose that shard's
    // data, --force or not.
    let within = |shard: &Path, out: &Path| match (shard.canonicalize(), out.canonicalize()) {
        (Ok(shard), Ok(out)) => shard.starts_with(out),
        _ => false,
    };
    if let Some(shard) = dirs.iter().find(|d| within(d, out)) {
        return Err(Error::BadInput(format!(
            "--out {} is or holds one of the shards being merged ({}); write the merge elsewhere",
            out.display(),
            shard.display()
        )));
    }
    let destination = Destination::plan(Some(out), Path::new("output"), "merge", None, force)?;
    let merged = shard::merge(dirs, memory)?;
    // Shards run with --parquet merge into what the unsharded run would have written: with it.
    let with_parquet = dirs
        .iter()
        .filter(|d| d.join("paths.parquet").is_file())
        .count();
    let parquet = parquet || with_parquet == dirs.len();
    if !parquet && with_parquet > 0 && !quiet {
        noteln!(
            "warning: {with_parquet} of {} shards were run with --parquet, the others without; \
             the merge writes no paths.parquet unless given --parquet",
            dirs.len()
        );
    }
    let study = study::from_rows(merged.scenario, merged.out)?;
    let mut manifest = study.manifest(&provenance);
    let origin = merged.origin;
    manifest.scenario_path = origin.scenario_path;
    manifest.scenario_file_sha256 = origin.scenario_file_sha256;
    manifest.overrides = origin.overrides;
    manifest.threads = origin.threads;
    manifest.simulation_seconds = origin.simulation_seconds;
    manifest.merged_from = Some(merged.shards.iter().map(|d| study::absolute(d)).collect());
    let dir = placed(destination.commit(|dir| {
        study.write(dir, &manifest, &provenance, parquet)?;
        if !no_report {
            cascade::report::build(dir)?;
        }
        Ok(())
    })?);
    say!("{}", table::headline(&study.summary));
    sayln!(
        "merged {} into {}",
        counted(merged.shards.len(), "shard", "shards"),
        dir.display()
    );
    Ok(())
}
