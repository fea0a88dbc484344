//! `cascade calibrate`: solve for the value of a scenario field that makes a metric's median
//! hit a target, and write the calibrated scenario.

use std::path::{Path, PathBuf};

use clap::Args;

use cascade::calibrate::{self, MIN_EVALUATIONS, Search};
use cascade::error::{Error, Result};

use super::Common;

/// Flags of `cascade calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Scenario file.
    scenario: PathBuf,
    #[command(flatten)]
    common: Common,
    /// The median to reach, e.g. --target max_drawdown=0.13.
    #[arg(long, value_name = "METRIC=VALUE")]
    target: String,
    /// The real-valued scenario field to solve for, by its dotted path.
    #[arg(long, default_value = calibrate::DEFAULT_KEY)]
    key: String,
    /// Where to write the calibrated scenario (default: <stem>.calibrated.toml beside it).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The policy whose median is matched (default: the baseline, the first policy).
    #[arg(long)]
    policy: Option<String>,
    /// Range of the key searched (default 0,0.95 for price.stress.drop; required otherwise).
    #[arg(long, value_name = "LO,HI", allow_hyphen_values = true)]
    bracket: Option<String>,
    /// Stop once the median is within this share of the target.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    tolerance: f64,
    /// Give up after this many simulations (at least 2: both ends of the bracket).
    #[arg(long, default_value_t = 40, allow_negative_numbers = true,
          value_parser = super::whole_number::whole(MIN_EVALUATIONS as i64, i64::MAX))]
    max_evaluations: i64,
}

/// Runs the search and writes the calibrated scenario.
pub fn run(args: CalibrateArgs) -> Result<()> {
    let (metric, target) = calibrate::parse_target(&args.target)?;
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        return Err(Error::BadInput(format!(
            "--tolerance {}: must be a finite non-negative number",
            args.tolerance
        )));
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| calibrate::default_out(&args.scenario));
    // A directory first: "already exists; pass --force" would only lead to that refusal.
    let made = cascade::results::check_file_target(&out)?;
    refuse_existing(&out, args.common.force)?;
    // With --force the calibrated scenario would replace the one it was calibrated from.
    if cascade::results::same_file(&out, &args.scenario) {
        return Err(Error::BadInput(format!(
            "--out {} is the scenario being calibrated; write the calibrated one elsewhere",
            out.display()
        )));
    }
    let search = Search {
        // `venues[0].depth_1pct`, as error messages and --set write keys, is
        // `venues.0.depth_1pct`; a key that is neither is left to the scenario's checks.
        key: cascade::scenario::load::parse_key(&args.key, &args.key)
            .unwrap_or_else(|_| args.key.clone()),
        metric,
        target,
        policy: args.policy.clone(),
        bracket: args
            .bracket
            .as_deref()
            .map(calibrate::parse_bracket)
            .transpose()?,
        tolerance: args.tolerance,
        max_evaluations: args.max_evaluations as usize,
    };
    let quiet = args.common.quiet;
    let mut n = 0;
    let overrides = args.common.overrides()?;
    let found = calibrate::calibrate(
        &args.scenario,
        &overrides,
        &search,
        args.common.options(),
        |e| {
            n += 1;
            if !quiet {
                noteln!(
                    "evaluation {n:>2}: {} = {:<12.6} median {} = {:<12.6} target {}",
                    search.key,
                    e.value,
                    metric.name(),
                    e.median,
                    target
                );
            }
        },
    )?;
    refuse_existing(&out, args.common.force)?;
    cascade::results::write_file_atomic(
        &out,
        calibrate::calibrated_text(&found, &search, &overrides, &out).as_bytes(),
    )?;
    made.keep();
    sayln!("{} = {}", search.key, found.value);
    sayln!(
        "median {} = {} (target {target}) after {} evaluations, {} paths, seed {}",
        metric.name(),
        found.median,
        found.evaluations.len(),
        found.scenario.file().simulation.paths,
        found.scenario.seed()
    );
    if !found.within_tolerance {
        noteln!(
            "warning: the median jumps across the target near this value; this is the closest \
             value found. The median of {} paths is piecewise constant, and more paths smooth \
             that; but if the paths split into two groups near here (most cascades stop, or \
             most run away), no value reaches the target and more paths will not help.",
            found.scenario.file().simulation.paths
        );
    }
    sayln!("calibrated scenario: {}", out.display());
    Ok(())
}

fn refuse_existing(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        return Err(Error::BadInput(format!(
            "{} already exists; pass --force to replace it",
            out.display()
        )));
    }
    Ok(())
}
