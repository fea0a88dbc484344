//! The exogenous price: per-step log returns of the fundamental, one model per variant.
//!
//! Models are built once per scenario with validated parameters ([`ShockModel::new`]) and
//! then fill a path's returns from that path's generator; sampling never fails. Every model
//! is a martingale in price (the drift compensates the convexity of the log), so the shock
//! process does not by itself push prices down; the stress drop is layered on top. Two
//! exceptions: Student-t innovations are compensated to second order only (the exponential
//! of a Student-t variable has no finite mean), and historical replay returns the series as
//! it is, drift included.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, StandardNormal, StudentT, Uniform};

use crate::csv_lines::{self, BadLines};
use crate::scenario::file::{Price, PriceModel};

/// Seconds in a year, for annualised volatility (crypto trades every day).
const SECONDS_PER_YEAR: f64 = 365.0 * 86_400.0;

#[derive(Debug, Clone)]
enum Innovation {
    Gaussian,
    StudentT { dist: StudentT<f64>, scale: f64 },
}

/// A validated shock model for a given step length and horizon.
#[derive(Debug, Clone)]
pub struct ShockModel {
    sigma: f64,
    drift: f64,
    innovation: Innovation,
    /// Per-step jump probability parameter (Poisson intensity x dt) and log jump law.
    jumps: Option<(f64, f64, f64)>,
    /// Deterministic stress: log return per step, first step, number of steps; then the
    /// recovery's log return per step and number of steps (0 for none).
    stress: Option<(f64, usize, usize, f64, usize)>,
    /// Where the returns come from, when not from the i.i.d. diffusion above.
    source: Source,
}

/// The return generator: i.i.d. diffusion (with optional jumps), GARCH(1,1), or replay.
#[derive(Debug, Clone)]
enum Source {
    Iid,
    /// sigma2_t = omega + alpha eps_(t-1)^2 + beta sigma2_(t-1), started at the
    /// unconditional variance omega / (1 - alpha - beta).
    Garch {
        omega: f64,
        alpha: f64,
        beta: f64,
    },
    /// The series, and the block length of a moving-block bootstrap (none: replay as is).
    Replay {
        returns: Arc<[f64]>,
        block: Option<usize>,
    },
}

/// The standard deviation of a step's log return under an annualised volatility.
pub fn step_volatility(annual_volatility: f64, step_seconds: f64) -> f64 {
    annual_volatility * (step_seconds / SECONDS_PER_YEAR).sqrt()
}

/// The largest conditional variance a GARCH step may reach (a standard deviation of 100 in
/// log price per step).
const MAX_GARCH_VARIANCE: f64 = 1.0e4;

/// The most jumps a Merton step may expect: beyond it a step's jump loop would run for
/// thousands of draws, and no market jumps a hundred times a step.
pub const MAX_JUMPS_PER_STEP: f64 = 100.0;

impl ShockModel {
    /// Builds the model of a validated `price` section.
    pub fn new(price: &Price, step_seconds: f64) -> ShockModel {
        let sigma = step_volatility(price.annual_volatility, step_seconds);
        let mut drift = -0.5 * sigma * sigma;
        let innovation = match price.model {
            PriceModel::StudentT => {
                let nu = price.degrees_of_freedom.expect("validated for student_t");
                Innovation::StudentT {
                    dist: StudentT::new(nu).expect("validated: nu > 2"),
                    scale: ((nu - 2.0) / nu).sqrt(),
                }
            }
            _ => Innovation::Gaussian,
        };
        let jumps = (price.model == PriceModel::Merton).then(|| {
            let lambda = price.jump_intensity_per_day.expect("validated") * step_seconds / 86_400.0;
            let mean = price.jump_mean.expect("validated");
            let stdev = price.jump_stdev.expect("validated");
            // Compensate so the expected price change from jumps is zero.
            drift -= lambda * ((mean + 0.5 * stdev * stdev).exp() - 1.0);
            (lambda, mean, stdev)
        });
        let source = match price.model {
            PriceModel::Garch => {
                let alpha = price.alpha.expect("validated for garch");
                let beta = price.beta.expect("validated for garch");
                // Variance targeting: the unconditional per-step variance is sigma^2.
                let omega = price.omega.unwrap_or((1.0 - alpha - beta) * sigma * sigma);
                Source::Garch { omega, alpha, beta }
            }
            PriceModel::Historical => Source::Replay {
                returns: price.returns.as_slice().into(),
                block: price.block_bootstrap.map(|b| b as usize),
            },
            _ => Source::Iid,
        };
        let stress = price.stress.as_ref().map(|s| {
            let n = s.duration_steps as usize;
            let log_drop = (1.0 - s.drop).ln();
            let m = s.recovery_steps.unwrap_or(0) as usize;
            let back = if m > 0 {
                -s.recovery * log_drop / m as f64
            } else {
                0.0
            };
            (log_drop / n as f64, s.start_step as usize, n, back, m)
        });
        ShockModel {
            sigma,
            drift,
            innovation,
            jumps,
            stress,
            source,
        }
    }

    /// Fills `out` with the log returns of path `path` of a run seeded `seed`: every random
    /// number of a path comes from ChaCha8 seeded by `seed` on stream `path`, so a path is
    /// the same whatever thread, batch or shard draws it.
    pub fn fill_path(&self, seed: u64, path: u64, out: &mut [f64]) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(path);
        self.fill(&mut rng, out);
    }

    /// Fills `out` with one path's log returns, step by step.
    pub fn fill<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) {
        match &self.source {
            Source::Iid => self.fill_iid(rng, out),
            &Source::Garch { omega, alpha, beta } => {
                let mut sigma2 = omega / (1.0 - alpha - beta);
                for r in out.iter_mut() {
                    let z: f64 = StandardNormal.sample(rng);
                    let eps = sigma2.sqrt() * z;
                    // Drift -sigma2/2 keeps E[exp(r) | past] = 1: a martingale in price.
                    *r = eps - 0.5 * sigma2;
                    // Validation bounds the long-run variance, but one path's variance can
                    // still run up by compounding large draws; the cap (far beyond any step a
                    // market makes) keeps it, and so every return, finite.
                    sigma2 = (omega + alpha * eps * eps + beta * sigma2).min(MAX_GARCH_VARIANCE);
                }
            }
            Source::Replay {
                returns,
                block: None,
            } => out.copy_from_slice(&returns[..out.len()]),
            Source::Replay {
                returns,
                block: Some(block),
            } => {
                // Moving-block bootstrap: blocks start anywhere a whole block fits.
                let starts = Uniform::new_inclusive(0, returns.len() - block)
                    .expect("validated: the block fits in the series");
                for chunk in out.chunks_mut(*block) {
                    let start = starts.sample(rng);
                    chunk.copy_from_slice(&returns[start..start + chunk.len()]);
                }
            }
        }
        if let Some((per_step, start, n, back, m)) = self.stress {
            let end = (start + n).min(out.len());
            for r in &mut out[start.min(end)..end] {
                *r += per_step;
            }
            let rebound_end = (end + m).min(out.len());
            for r in &mut out[end..rebound_end] {
                *r += back;
            }
        }
    }

    /// Gaussian or Student-t diffusion with optional Merton jumps, i.i.d. across steps.
    fn fill_iid<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) {
        for r in out.iter_mut() {
            let z: f64 = match &self.innovation {
                Innovation::Gaussian => StandardNormal.sample(rng),
                Innovation::StudentT { dist, scale } => dist.sample(rng) * scale,
            };
            *r = self.drift + self.sigma * z;
            if let Some((lambda, mean, stdev)) = self.jumps {
                // Poisson count by summing exponential waiting times within one step.
                let mut clock: f64 = Exp1.sample(rng);
                while clock < lambda {
                    let j: f64 = StandardNormal.sample(rng);
                    *r += mean + stdev * j;
                    let wait: f64 = Exp1.sample(rng);
                    clock += wait;
                }
            }
        }
    }
}

/// The largest one-step move a replayed return may make, in log (a factor of about 22,000):
/// far beyond any traded asset's worst step (Terra's LUNA lost 99.99% over days, a log of
/// -9.2), yet far below what a column of prices written by mistake holds. It also bounds the
/// typical step of the random models (their step volatility and jump size), which keeps
/// every variance and drift they compute finite.
pub const MAX_LOG_RETURN: f64 = 10.0;

/// Reads the per-step log returns of a `historical` price: a CSV with a header and a
/// `log_return` column (other columns are ignored), from `bytes` read from `path`. Every bad
/// line is reported (up to [`MAX_BAD_LINES`](crate::csv_lines::MAX_BAD_LINES)), each naming
/// the file and the line.
pub fn read_returns_csv(path: &std::path::Path, bytes: &[u8]) -> Result<Vec<f64>, Vec<String>> {
    let whole = |message: String| vec![format!("{}: {message}", path.display())];
    let mut reader = csv_lines::input_reader(bytes);
    let headers = reader.headers().map_err(|e| whole(e.to_string()))?.clone();
    // Two would leave which one is replayed to the reader's guess.
    if headers.iter().filter(|h| *h == "log_return").count() > 1 {
        return Err(whole(
            "column `log_return` appears more than once; keep the one to replay".to_string(),
        ));
    }
    let Some(column) = headers.iter().position(|h| h == "log_return") else {
        let missing = csv_lines::missing_columns(&headers, &["log_return"]);
        return Err(whole(format!(
            "{}; one per-step log return per row",
            missing.unwrap_or_default()
        )));
    };
    let mut out = Vec::new();
    let mut bad = BadLines::new(path, bytes);
    for (i, record) in reader.records().enumerate() {
        let record = match record {
            Ok(record) if csv_lines::is_blank(&record) => continue,
            Ok(record) => record,
            Err(e) => {
                bad.add(
                    e.position(),
                    i,
                    vec![csv_lines::unreadable(&e, &headers, None)],
                );
                continue;
            }
        };
        if let Some(problem) = csv_lines::wrong_length(&record, &headers) {
            bad.add(record.position(), i, vec![problem]);
            continue;
        }
        let field = record.get(column).unwrap_or("");
        let problem = match field.parse::<f64>() {
            Ok(v) if v.abs() <= MAX_LOG_RETURN => {
                out.push(v);
                continue;
            }
            Ok(v) if v.is_finite() => format!(
                "log_return `{field}` is not a one-step log return (at most {MAX_LOG_RETURN} \
                 either way, a factor of 22,000); is the column prices? Write ln(p_t / p_t-1)"
            ),
            _ => format!("log_return `{field}` must be a finite number"),
        };
        bad.add(record.position(), i, vec![problem]);
    }
    let problems = bad.finish();
    if !problems.is_empty() {
        return Err(problems);
    }
    if out.is_empty() {
        return Err(whole("no returns".to_string()));
    }
    // Small prices (a token at 0.5 USD) pass the bound, but a column of them, read as
    // returns, rises by more than 1% every step. A run of small rises is a valid series (a
    // dozen random steps are all up one time in 4,000).
    let mean = out.iter().sum::<f64>() / out.len() as f64;
    if out.len() >= 10 && out.iter().all(|&r| r > 0.0) && mean > 0.01 {
        return Err(whole(format!(
            "every log_return is positive, {mean:.3} a step on average, which no price series \
             does; is the column prices? Write ln(p_t / p_t-1)"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As in a positions snapshot: a line of spaces is skipped like an empty one, and a short
    /// row, bytes that are not text and an empty file are each told with one line number, the
    /// file's (a short row carried the csv crate's own record and line beside it).
    #[test]
    fn blank_lines_are_skipped_and_bad_ones_named_by_one_line() {
        let read = |text: &[u8]| read_returns_csv(std::path::Path::new("r.csv"), text);
        assert_eq!(
            read(b"step,log_return\n1,0.01\n   \n\t\n2,-0.02\n"),
            Ok(vec![0.01, -0.02])
        );
        for (text, problem) in [
            (
                b"step,log_return\n1,0.01\n\n3\n".to_vec(),
                "r.csv line 4: 1 field, but the header has 2",
            ),
            (
                [b"step,log_return\n1,0.0".as_slice(), b"\xff1\n"].concat(),
                "r.csv line 2: log_return is not UTF-8 text",
            ),
            (
                Vec::new(),
                "r.csv: is empty; its first line must be the header, naming log_return; one \
                 per-step log return per row",
            ),
        ] {
            assert_eq!(read(&text), Err(vec![problem.to_string()]));
        }
    }
}
