//! The exogenous price: per-step log returns of the fundamental, one model per variant.
//!
//! Models are built once per scenario with validated parameters ([`ShockModel::new`]) and
//! then fill a path's returns from that path's generator; sampling never fails. Every model
//! is a martingale in price (the drift compensates the convexity of the log), so the shock
//! process does not by itself push prices down; the stress drop is layered on top.

use rand::Rng;
use rand_distr::{Distribution, Exp1, StandardNormal, StudentT};

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
    /// Deterministic stress: log return per step, first step, number of steps.
    stress: Option<(f64, usize, usize)>,
}

impl ShockModel {
    /// Builds the model of a validated `price` section.
    pub fn new(price: &Price, step_seconds: f64) -> ShockModel {
        let dt = step_seconds / SECONDS_PER_YEAR;
        let sigma = price.annual_volatility * dt.sqrt();
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
        let stress = price.stress.as_ref().map(|s| {
            let n = s.duration_steps as usize;
            ((1.0 - s.drop).ln() / n as f64, s.start_step as usize, n)
        });
        ShockModel {
            sigma,
            drift,
            innovation,
            jumps,
            stress,
        }
    }

    /// Fills `out` with one path's log returns, step by step.
    pub fn fill<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) {
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
        if let Some((per_step, start, n)) = self.stress {
            let end = (start + n).min(out.len());
            for r in &mut out[start.min(end)..end] {
                *r += per_step;
            }
        }
    }
}
