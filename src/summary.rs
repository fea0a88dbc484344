//! `summary.json`: statistics per policy, per venue and per jurisdiction, and paired
//! comparisons of every policy against the baseline.
//!
//! One serializable type per object of the file, every field documented: this is the
//! contract researchers' notebooks read. Maps keep the order of [`Metric::ALL`].

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::market::Market;
use crate::metrics::{Metric, VenueMetric, insolvent};
use crate::runner::RunOutput;
use crate::scenario::Scenario;
use crate::stats::{self, Distribution};

/// The whole `summary.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Version of this file's layout.
    pub schema_version: u32,
    /// Scenario name.
    pub scenario: String,
    /// SHA-256 of the resolved scenario and its data files, as in `manifest.json`: a summary
    /// copied away from its result directory still says what produced it.
    pub scenario_sha256: String,
    /// Version of `cascade` that ran.
    pub cascade_version: String,
    /// Seed of every random number.
    pub seed: u64,
    /// Number of paths summarised. With none (a shard of a study split into more shards than
    /// it has paths) every statistic is null.
    pub paths: u64,
    /// One entry per policy, the baseline first.
    pub policies: Vec<PolicySummary>,
    /// Every policy after the baseline, against the baseline, path by path.
    pub comparisons: Vec<Comparison>,
}

/// A list of named values that serializes as a JSON object in list order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered<V>(pub Vec<(String, V)>);

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Results of one policy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicySummary {
    /// Policy name.
    pub name: String,
    /// Distribution over paths of every metric.
    pub metrics: Ordered<Distribution>,
    /// Probabilities of events over paths.
    pub probabilities: Probabilities,
    /// Per-venue figures, in scenario order.
    pub venues: Vec<GroupSummary>,
    /// Per-jurisdiction figures (venues summed per path), in order of first appearance.
    pub jurisdictions: Vec<GroupSummary>,
    /// The insurance funds under this policy: one per venue, or a pool shared by members.
    pub funds: Vec<FundSummary>,
}

/// One insurance (or pooled default) fund.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FundSummary {
    /// Venues whose losses the fund absorbs.
    pub members: Vec<String>,
    /// Balance at the start (USD).
    pub start: f64,
    /// Mean paid out towards bad debt (USD).
    pub drawn_mean: f64,
    /// 99% quantile of what was paid out (USD).
    pub drawn_p99: f64,
}

/// Probabilities of events over paths.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probabilities {
    /// Share of paths on which at least one venue is left with unabsorbed loss.
    pub any_insolvency: f64,
    /// Share of paths on which auto-deleveraging closed any position.
    pub adl: f64,
    /// Share of paths on which the round cap stopped a cascade before its fixed point.
    pub round_cap_hit: f64,
}

/// Means over paths of a venue's (or a jurisdiction's venues') figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupSummary {
    /// Venue or jurisdiction name.
    pub name: String,
    /// A venue's jurisdiction (absent for a jurisdiction's entry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// Open interest at the start price under this policy (USD; the larger side's), to the
    /// cent: a generated book's positions add up to the file's figure only to rounding
    /// (5999999999.999998 for 6.0e9), which a reader comparing the two would trip on.
    pub open_interest: f64,
    /// Mean liquidated notional (USD).
    pub liquidated_notional_mean: f64,
    /// Mean liquidated notional of longs (USD).
    pub liquidated_long_notional_mean: f64,
    /// Mean liquidated notional of shorts (USD).
    pub liquidated_short_notional_mean: f64,
    /// 99% quantile of liquidated notional (USD).
    pub liquidated_notional_p99: f64,
    /// Mean of what the liquidations traded for, at their fill prices (USD): the figure to
    /// set against a venue's reported liquidations.
    pub liquidated_value_mean: f64,
    /// Mean of what the liquidated longs traded for (USD).
    pub liquidated_long_value_mean: f64,
    /// Mean of what the liquidated shorts traded for (USD).
    pub liquidated_short_value_mean: f64,
    /// Mean bad debt (USD).
    pub bad_debt_mean: f64,
    /// Mean insurance fund drawn (USD).
    pub insurance_fund_drawn_mean: f64,
    /// Mean ADL notional (USD).
    pub adl_notional_mean: f64,
    /// Mean bad debt ADL covered (USD).
    pub adl_haircut_mean: f64,
    /// Mean unabsorbed loss (USD).
    pub unabsorbed_loss_mean: f64,
    /// Share of paths with unabsorbed loss.
    pub insolvency_probability: f64,
}

/// A policy against the baseline on common random numbers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    /// The policy.
    pub policy: String,
    /// The baseline it is compared with.
    pub baseline: String,
    /// Paired statistics of every metric.
    pub metrics: Ordered<Paired>,
}

/// Paired difference (policy minus baseline) of one metric over paths.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Paired {
    /// Mean of the per-path differences.
    pub mean_difference: f64,
    /// 95% confidence interval of the mean difference (Student's t, n - 1 degrees of freedom);
    /// null with fewer than two paths, where the spread of the differences is unknown.
    pub ci95: Option<[f64; 2]>,
    /// Mean difference over the baseline mean; null where the baseline mean is zero.
    pub relative: Option<f64>,
    /// Share of paths where the policy's value is lower than the baseline's, beyond rounding
    /// ([`TIE`]): better for the losses, not necessarily for a fund's draw.
    pub share_better: f64,
    /// Share of paths where it is higher, beyond rounding.
    pub share_worse: f64,
}

/// Relative difference below which two per-path values are the same figure up to rounding.
pub const TIE: f64 = 1e-12;

impl Paired {
    /// Paired statistics of `policy` against `baseline` (same length, same path order).
    ///
    /// Differences within [`TIE`] of the values count as ties (zero): two policies that
    /// liquidate the same positions sum their fills in a different order, and the last bits
    /// of a billion-dollar sum would otherwise read as a policy "worse on 90% of paths" with
    /// an interval excluding zero.
    pub fn of(policy: &[f64], baseline: &[f64]) -> Paired {
        let diff: Vec<f64> = policy
            .iter()
            .zip(baseline)
            .map(|(&p, &b)| {
                let d = p - b;
                if d.abs() <= TIE * p.abs().max(b.abs()) {
                    0.0
                } else {
                    d
                }
            })
            .collect();
        // With no paths every figure is NaN (null in the file).
        let n = diff.len() as f64;
        let mean = stats::mean(&diff);
        let base = stats::mean(baseline);
        Paired {
            mean_difference: mean,
            ci95: stats::mean_ci95(&diff),
            relative: (base != 0.0 && !base.is_nan()).then(|| mean / base),
            share_better: diff.iter().filter(|&&d| d < 0.0).count() as f64 / n,
            share_worse: diff.iter().filter(|&&d| d > 0.0).count() as f64 / n,
        }
    }
}

fn group(
    (name, jurisdiction): (String, Option<String>),
    open_interest: f64,
    out: &RunOutput,
    policy: usize,
    venues: &[usize],
) -> GroupSummary {
    let l = out.layout;
    let col = |m: VenueMetric| -> Vec<f64> {
        let mut sum = vec![0.0; out.range.len()];
        for &v in venues {
            for (s, x) in sum.iter_mut().zip(out.column(policy, l.venue(v, m))) {
                *s += x;
            }
        }
        sum
    };
    let long = col(VenueMetric::LiquidatedLongNotional);
    let short = col(VenueMetric::LiquidatedShortNotional);
    let total: Vec<f64> = long.iter().zip(&short).map(|(a, b)| a + b).collect();
    let long_value = stats::mean(&col(VenueMetric::LiquidatedLongValue));
    let short_value = stats::mean(&col(VenueMetric::LiquidatedShortValue));
    GroupSummary {
        name,
        jurisdiction,
        open_interest: (open_interest * 100.0).round() / 100.0,
        liquidated_notional_mean: stats::mean(&total),
        liquidated_long_notional_mean: stats::mean(&long),
        liquidated_short_notional_mean: stats::mean(&short),
        liquidated_notional_p99: Distribution::of(&total).p99,
        liquidated_value_mean: long_value + short_value,
        liquidated_long_value_mean: long_value,
        liquidated_short_value_mean: short_value,
        bad_debt_mean: stats::mean(&col(VenueMetric::BadDebt)),
        insurance_fund_drawn_mean: stats::mean(&col(VenueMetric::InsuranceFundDrawn)),
        adl_notional_mean: stats::mean(&col(VenueMetric::AdlNotional)),
        adl_haircut_mean: stats::mean(&col(VenueMetric::AdlHaircut)),
        unabsorbed_loss_mean: stats::mean(&col(VenueMetric::UnabsorbedLoss)),
        // A group is insolvent on a path where any of its venues is: one venue's unpaid loss
        // is not rounding because a sister venue's bad debt is large.
        insolvency_probability: {
            let venue = |v: usize, m: VenueMetric| out.column(policy, l.venue(v, m));
            let mut any = vec![false; out.range.len()];
            for &v in venues {
                let unabsorbed = venue(v, VenueMetric::UnabsorbedLoss);
                let bad_debt = venue(v, VenueMetric::BadDebt);
                for (a, (&u, &b)) in any.iter_mut().zip(unabsorbed.iter().zip(&bad_debt)) {
                    *a |= insolvent(u, b);
                }
            }
            any.iter().filter(|&&a| a).count() as f64 / any.len() as f64
        },
    }
}

impl Summary {
    /// Summarises a run of all `markets` (one per policy) over the paths in `out`.
    pub fn build(scenario: &Scenario, markets: &[Market], out: &RunOutput) -> Summary {
        let f = scenario.file();
        let jurisdictions = f.jurisdictions();
        let policies: Vec<PolicySummary> = f
            .policies
            .iter()
            .zip(markets)
            .enumerate()
            .map(|(p, (policy, market))| {
                let metrics = Ordered(
                    Metric::ALL
                        .iter()
                        .map(|m| {
                            (
                                m.name().to_string(),
                                Distribution::of(&out.column(p, m.index())),
                            )
                        })
                        .collect(),
                );
                let venues = market
                    .venues
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let name = (v.name.clone(), Some(v.jurisdiction.clone()));
                        group(name, v.open_interest, out, p, &[i])
                    })
                    .collect();
                let jurisdictions = jurisdictions
                    .iter()
                    .map(|j| {
                        let members: Vec<usize> = (0..market.venues.len())
                            .filter(|&i| market.venues[i].jurisdiction == *j)
                            .collect();
                        let oi = members
                            .iter()
                            .map(|&i| market.venues[i].open_interest)
                            .sum();
                        group((j.to_string(), None), oi, out, p, &members)
                    })
                    .collect();
                let funds = (0..market.funds.len())
                    .filter_map(|k| {
                        let members: Vec<usize> = (0..market.venues.len())
                            .filter(|&i| market.venues[i].fund == k)
                            .collect();
                        if members.is_empty() {
                            return None;
                        }
                        let mut drawn = vec![0.0; out.range.len()];
                        for &i in &members {
                            let col =
                                out.column(p, out.layout.venue(i, VenueMetric::InsuranceFundDrawn));
                            for (d, x) in drawn.iter_mut().zip(col) {
                                *d += x;
                            }
                        }
                        Some(FundSummary {
                            members: members
                                .iter()
                                .map(|&i| market.venues[i].name.clone())
                                .collect(),
                            start: market.funds[k],
                            drawn_mean: stats::mean(&drawn),
                            drawn_p99: Distribution::of(&drawn).p99,
                        })
                    })
                    .collect();
                PolicySummary {
                    funds,
                    name: policy.name.clone(),
                    metrics,
                    probabilities: Probabilities {
                        any_insolvency: stats::share_positive(
                            &out.column(p, Metric::InsolventVenues.index()),
                        ),
                        adl: stats::share_positive(&out.column(p, Metric::AdlNotional.index())),
                        round_cap_hit: stats::share_positive(
                            &out.column(p, Metric::RoundCapHits.index()),
                        ),
                    },
                    venues,
                    jurisdictions,
                }
            })
            .collect();
        let comparisons = (1..f.policies.len())
            .map(|p| Comparison {
                policy: f.policies[p].name.clone(),
                baseline: f.policies[0].name.clone(),
                metrics: Ordered(
                    Metric::ALL
                        .iter()
                        .map(|m| {
                            let i = m.index();
                            (
                                m.name().to_string(),
                                Paired::of(&out.column(p, i), &out.column(0, i)),
                            )
                        })
                        .collect(),
                ),
            })
            .collect();
        Summary {
            schema_version: 1,
            scenario: f.name.clone(),
            scenario_sha256: scenario.sha256(),
            cascade_version: crate::VERSION.to_string(),
            seed: scenario.seed(),
            paths: out.range.len() as u64,
            policies,
            comparisons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Paired;

    #[test]
    fn rounding_differences_are_ties_and_real_ones_count() {
        // The same liquidations summed in another order: a difference in the last bits.
        let base = [1.1e9, 2.3e9, 0.0, 5.0e8];
        let noisy: Vec<f64> = base.iter().map(|b| b + b * 4e-16).collect();
        let p = Paired::of(&noisy, &base);
        assert_eq!(
            (p.mean_difference, p.share_worse, p.share_better),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(p.ci95, Some([0.0, 0.0]));
        // One dollar less on a billion is a difference.
        let better = [1.1e9 - 1.0, 2.3e9, 0.0, 5.0e8];
        let p = Paired::of(&better, &base);
        assert_eq!((p.share_better, p.share_worse), (0.25, 0.0));
        assert_eq!(p.mean_difference, -0.25);
    }

    #[test]
    fn a_difference_is_relative_only_to_a_baseline_that_is_not_zero() {
        let p = Paired::of(&[3.0, 5.0], &[2.0, 2.0]);
        assert_eq!(p.relative, Some(1.0));
        // Nothing is lost under the baseline: a policy that loses something has no ratio to
        // it (not an infinity), and neither has one that loses nothing too (not 0/0).
        assert_eq!(Paired::of(&[1.0, 0.0], &[0.0, 0.0]).relative, None);
        assert_eq!(Paired::of(&[0.0, 0.0], &[0.0, 0.0]).relative, None);
        // No paths: no mean, no ratio.
        assert_eq!(Paired::of(&[], &[]).relative, None);
    }
}
