//! `cascade backtest`: the validation protocol over historical episodes, written as a
//! Markdown table (`VALIDATION.md`).

use std::path::{Path, PathBuf};

use clap::Args;

use cascade::backtest;
use cascade::error::{self, Error, Result};

use super::Common;

/// Flags of `cascade backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Episode scenarios with an [observed] table, or folders of them (every *.toml inside).
    #[arg(default_value = "scenarios/history")]
    scenarios: Vec<PathBuf>,
    #[command(flatten)]
    common: Common,
    /// Where to write the table (replacing it needs --force).
    #[arg(long, default_value = "VALIDATION.md")]
    out: PathBuf,
}

/// Backtests every episode in the order given (a folder's files in name order), and writes
/// the table.
pub fn run(args: BacktestArgs) -> Result<()> {
    // A directory first: "already exists; pass --force" would only lead to that refusal.
    let made = cascade::results::check_file_target(&args.out)?;
    if args.out.exists() && !args.common.force {
        return Err(Error::BadInput(format!(
            "{} already exists; pass --force to replace it",
            args.out.display()
        )));
    }
    let files = episode_files(&args.scenarios)?;
    // With --force the table would replace an episode it is about to read.
    if let Some(file) = files
        .iter()
        .find(|f| cascade::results::same_file(f, &args.out))
    {
        return Err(Error::BadInput(format!(
            "--out {} is the episode {}; write the table elsewhere",
            args.out.display(),
            file.display()
        )));
    }
    let overrides = args.common.overrides()?;
    let quiet = args.common.quiet;
    // Every episode is loaded and checked before the first runs: calibrating one takes
    // minutes, and a bad file found after it would throw that work away.
    let prepared: Vec<backtest::Prepared> = files
        .iter()
        .map(|file| backtest::prepare(file, &overrides).map_err(|e| in_file(e, file)))
        .collect::<Result<_>>()?;
    // One episode under two files would be calibrated twice and share one section and anchor.
    for (i, p) in prepared.iter().enumerate() {
        if let Some(first) = prepared[..i].iter().find(|q| q.name() == p.name()) {
            return Err(Error::BadInput(format!(
                "{} and {} are both episode `{}`; backtest each episode once (a copy `cascade \
                 calibrate` wrote beside its episode, *.calibrated.toml, is one: move it out \
                 of the folder)",
                first.path().display(),
                p.path().display(),
                p.name()
            )));
        }
    }
    let mut episodes = Vec::new();
    for p in &prepared {
        let file = p.path();
        if !quiet {
            noteln!(
                "{}: calibrating the shock to the observed drop",
                file.display()
            );
        }
        let e = backtest::episode(p, args.common.options(), |ev| {
            if !quiet {
                noteln!(
                    "  stress drop {:<10.6} median max_drawdown {:.6}",
                    ev.value,
                    ev.median
                );
            }
        })
        .map_err(|e| in_file(e, file))?;
        let (within, compared) = e.within();
        sayln!(
            "{}: shock {:.4} gives median drawdown {:.4} (observed {}); {within} of {compared} untargeted outcomes within the 90% interval",
            e.name,
            e.shock,
            e.drawdown.p50,
            e.observed.price_drop,
        );
        episodes.push(e);
    }
    let command = command_line(&args);
    let text = backtest::markdown(&episodes, &command);
    // An interrupted run leaves the old table whole.
    cascade::results::write_file_atomic(&args.out, text.as_bytes())?;
    made.keep();
    sayln!("validation table: {}", args.out.display());
    Ok(())
}

/// Several episodes run in one command: says which one a problem belongs to.
fn in_file(e: Error, file: &Path) -> Error {
    match e {
        Error::BadInput(m) if !m.contains(&file.display().to_string()) => {
            Error::BadInput(format!("{}: {m}", file.display()))
        }
        other => other,
    }
}

/// The files named, folders expanded to their `*.toml` files in name order. A file named
/// twice (itself and in its folder, or by two spellings) is refused: it would be calibrated
/// twice and appear twice in the table.
fn episode_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", p.display())))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            inside.sort();
            if inside.is_empty() {
                return Err(Error::BadInput(format!(
                    "{}: no *.toml scenario in this folder",
                    p.display()
                )));
            }
            files.extend(inside);
        } else if p.is_file() {
            files.push(p.clone());
        } else if p.exists() {
            return Err(Error::BadInput(format!(
                "{}: not a scenario file or a folder of them (a device, FIFO or socket)",
                p.display()
            )));
        } else {
            return Err(Error::BadInput(format!(
                "{}: no such file or folder",
                p.display()
            )));
        }
    }
    error::named_once(&files, "the same episode", "name each episode once")?;
    Ok(files)
}

/// The command as a user would type it again (machine-specific flags left out).
fn command_line(args: &BacktestArgs) -> String {
    let mut parts = vec!["cascade backtest".to_string()];
    parts.extend(args.scenarios.iter().map(|p| p.display().to_string()));
    if let Some(p) = args.common.paths {
        parts.push(format!("--paths {p}"));
    }
    if let Some(s) = args.common.seed {
        parts.push(format!("--seed {s}"));
    }
    for s in &args.common.set {
        parts.push(format!("--set {s}"));
    }
    // The table it wrote is there now: writing it again needs --force.
    parts.push(format!("--out {} --force", args.out.display()));
    parts.join(" ")
}
