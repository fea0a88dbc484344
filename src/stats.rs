//! Statistics across paths: moments, quantiles, expected shortfall, confidence intervals.
//!
//! Every statistic is computed from the full column of per-path values in path order, with
//! sequential sums, so it depends only on the values, never on threads or shard splits.
//! Quantiles are nearest-rank order statistics (VaR at level p is the smallest value with at
//! least a share p of paths at or below it); expected shortfall at p is the mean of the
//! `ceil((1 - p) n)` largest values, the worst share `1 - p` of paths (rounded up to whole
//! paths, so it never averages fewer than one).
//!
//! A statistic of no values is undefined: NaN, which `summary.json` writes as null (a shard
//! of a study split into more shards than it has paths holds none).

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Summary of one metric over paths.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Distribution {
    /// Mean.
    pub mean: f64,
    /// Standard deviation (n - 1 denominator; undefined, so null, for one path).
    pub std: f64,
    /// Median.
    pub p50: f64,
    /// 90% quantile.
    pub p90: f64,
    /// 95% quantile (VaR 95).
    pub p95: f64,
    /// 99% quantile (VaR 99).
    pub p99: f64,
    /// 99.9% quantile (VaR 99.9).
    pub p999: f64,
    /// Largest value.
    pub max: f64,
    /// Expected shortfall at 95%: mean of the worst 5% of paths (rounded up to whole paths).
    pub es95: f64,
    /// Expected shortfall at 99%: mean of the worst 1% of paths.
    pub es99: f64,
    /// Expected shortfall at 99.9%: mean of the worst 0.1% of paths (MODEL.md section 8).
    pub es999: f64,
}

/// Mean of values, summed in order (NaN for none), kept within the values' range.
pub fn mean(values: &[f64]) -> f64 {
    let m = values.iter().sum::<f64>() / values.len() as f64;
    // Rounding can carry the sum of equal values past their count times the value (fifty
    // paths of 4340373.233993646 averaged ...649): clamped, the mean of equal values is that
    // value, their deviations are zero, and no mean lies beyond the largest value.
    let (low, high) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    if low <= high { m.clamp(low, high) } else { m }
}

/// Sample standard deviation (two-pass): NaN for fewer than two values, whose spread the
/// sample does not show (a single path's 0 would read as "no spread").
pub fn std_dev(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return f64::NAN;
    }
    let m = mean(values);
    (values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1) as f64).sqrt()
}

fn rank(n: usize, p: f64) -> usize {
    ((p * n as f64).ceil() as usize).clamp(1, n) - 1
}

/// Where the worst share `1 - p` of `n` sorted values begins: `n - ceil((1 - p) n)`, written as
/// `floor(p n)` because `1 - p` is not exact in binary (`1 - 0.95` is above 0.05, and
/// `ceil((1 - 0.95) x 20)` would be 2 paths rather than 1).
fn tail_start(n: usize, p: f64) -> usize {
    ((p * n as f64).floor() as usize).min(n - 1)
}

/// The nearest-rank `p` quantile of ascending `sorted` values (NaN for none): the smallest
/// value with at least a share `p` of the values at or below it.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[rank(sorted.len(), p)]
}

impl Distribution {
    /// Summarises a column of per-path values (an empty column gives NaN throughout).
    pub fn of(values: &[f64]) -> Distribution {
        let n = values.len();
        if n == 0 {
            let nan = f64::NAN;
            return Distribution {
                mean: nan,
                std: nan,
                p50: nan,
                p90: nan,
                p95: nan,
                p99: nan,
                p999: nan,
                max: nan,
                es95: nan,
                es99: nan,
                es999: nan,
            };
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let q = |p: f64| quantile(&sorted, p);
        let es = |p: f64| mean(&sorted[tail_start(n, p)..]);
        Distribution {
            mean: mean(values),
            std: std_dev(values),
            p50: q(0.5),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: sorted[n - 1],
            es95: es(0.95),
            es99: es(0.99),
            es999: es(0.999),
        }
    }
}

/// 95% confidence interval of the mean, from Student's t with n - 1 degrees of freedom: `None`
/// for fewer than two values, whose spread the sample does not show. The normal 1.96 would
/// make the interval of ten paths 13% too narrow (t = 2.262 at 9 degrees of freedom), and the
/// small studies analysts run first are the ones whose intervals they read most carefully.
pub fn mean_ci95(values: &[f64]) -> Option<[f64; 2]> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let t = t_975((n - 1) as f64);
    let mean = mean(values);
    let half = t * std_dev(values) / (n as f64).sqrt();
    Some([mean - half, mean + half])
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom. statrs inverts the
/// incomplete beta function, which loses precision as `df` grows (its quantile for 99,999
/// degrees of freedom is 6.7e-6 short, for 999,999 already 3.5e-5: the intervals of large runs
/// were too narrow in their sixth digit). Beyond 1,000 degrees of freedom the Cornish-Fisher
/// expansion around the normal quantile takes over; its first omitted term is of order
/// `df^-5`, below 1e-15 there.
fn t_975(df: f64) -> f64 {
    if df <= 1000.0 {
        return StudentsT::new(0.0, 1.0, df)
            .expect("at least one degree of freedom is valid")
            .inverse_cdf(0.975);
    }
    // The normal distribution's 0.975 quantile.
    let z: f64 = 1.959_963_984_540_054;
    let (z2, v) = (z * z, df);
    let g1 = z * (z2 + 1.0) / 4.0;
    let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
    z + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v)
}

/// Share of values above zero (NaN for none).
pub fn share_positive(values: &[f64]) -> f64 {
    values.iter().filter(|&&v| v > 0.0).count() as f64 / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::Distribution;

    #[test]
    fn the_t_quantile_is_right_to_twelve_digits_at_any_number_of_paths() {
        // Quantiles from mpmath (the root of the regularized incomplete beta function at 40
        // digits), to the digits a double holds; the expansion takes over above 1,000 degrees
        // of freedom. statrs is not exact to the last digit below that (3e-13 off at 299
        // degrees of freedom, a review found), so the bound is 1e-12, not an ulp.
        for (df, exact) in [
            (9.0, 2.262_157_162_798_206),
            (999.0, 1.962_341_461_133_45),
            (1000.0, 1.962_339_080_826_408),
            (1001.0, 1.962_336_705_280_88),
            (99_999.0, 1.959_987_707_771_845),
            (999_999.0, 1.959_966_356_816_479),
        ] {
            let t = super::t_975(df);
            assert!(
                (t / exact - 1.0).abs() < 1e-12,
                "{df} degrees of freedom: {t} against {exact}"
            );
        }
    }

    /// The values 1..=n in a scrambled order.
    fn ranks(n: u32) -> Vec<f64> {
        (0..n).map(|i| f64::from((i * 7919) % n + 1)).collect()
    }

    #[test]
    fn equal_values_have_their_value_as_mean_and_no_spread() {
        // Summed in order, these fifty values average 4340373.233993649, above each of them.
        let values = [4_340_373.233_993_646; 50];
        assert!(values.iter().sum::<f64>() / 50.0 > values[0]);
        let d = Distribution::of(&values);
        assert_eq!(
            (d.mean, d.std, d.max, d.es99),
            (values[0], 0.0, values[0], values[0])
        );
        assert!(super::mean(&[]).is_nan());
        assert!(super::mean(&[1.0, f64::NAN]).is_nan());
    }

    #[test]
    fn expected_shortfall_averages_the_worst_share_of_paths() {
        // 20 paths: the worst 5% is one path, the worst 1% rounds up to one path.
        let d = Distribution::of(&ranks(20));
        assert_eq!((d.p95, d.es95, d.es99, d.max), (19.0, 20.0, 20.0, 20.0));
        // 2,000 paths: the worst 1% is the 20 largest, 1981..=2000 (mean 1990.5); the worst
        // 5% the 100 largest, 1901..=2000 (mean 1950.5).
        let d = Distribution::of(&ranks(2000));
        assert_eq!((d.p99, d.es99), (1980.0, 1990.5));
        assert_eq!((d.p95, d.es95), (1900.0, 1950.5));
        // ... and the worst 0.1% the 2 largest, 1999 and 2000.
        assert_eq!((d.p999, d.es999), (1998.0, 1999.5));
        // 7 paths: 5% of 7 rounds up to one path.
        let d = Distribution::of(&ranks(7));
        assert_eq!((d.p95, d.es95), (7.0, 7.0));
        // A tail that is not a whole number of paths is rounded up: 5% of 30 paths is 1.5, so
        // the worst two (29 and 30); 1% of 150 is 1.5, the worst two (149 and 150).
        assert_eq!(Distribution::of(&ranks(30)).es95, 29.5);
        assert_eq!(Distribution::of(&ranks(150)).es99, 149.5);
        // A quantile is the smallest value with at least its share of paths at or below it:
        // 95% of 12 paths is 11.4, so the 12th (12); 90% of 7 is 6.3, the 7th; and of 1..=20
        // the median is the 10th and p90 the 18th.
        assert_eq!(Distribution::of(&ranks(12)).p95, 12.0);
        assert_eq!(Distribution::of(&ranks(7)).p90, 7.0);
        let d = Distribution::of(&ranks(20));
        assert_eq!((d.p50, d.p90), (10.0, 18.0));
        // One path is its own tail.
        let d = Distribution::of(&[3.5]);
        assert_eq!((d.p50, d.es95, d.es99), (3.5, 3.5, 3.5));
        assert!(d.std.is_nan(), "one path shows no spread: {d:?}");
    }

    #[test]
    fn confidence_interval_uses_students_t() {
        // Two values 0 and 2: mean 1, standard deviation sqrt(2), so the half-width is the
        // t quantile at one degree of freedom, 12.7062 (tables), not the normal 1.96.
        let [low, high] = super::mean_ci95(&[0.0, 2.0]).unwrap();
        assert!((high - 1.0 - 12.706_204_736).abs() < 1e-6, "{high}");
        assert!((1.0 - low - 12.706_204_736).abs() < 1e-6, "{low}");
        // Ten values 1..=10: mean 5.5, s = 3.02765, t(0.975, 9) = 2.262157.
        let [low, high] = super::mean_ci95(&ranks(10)).unwrap();
        let half = 2.262_157_163 * 3.027_650_354 / 10f64.sqrt();
        assert!((high - 5.5 - half).abs() < 1e-6 && (5.5 - low - half).abs() < 1e-6);
        // Equal values: a point; one value: no interval.
        assert_eq!(super::mean_ci95(&[4.0; 3]), Some([4.0, 4.0]));
        assert_eq!(super::mean_ci95(&[4.0]), None);
    }

    #[test]
    fn share_positive_counts_only_values_above_zero() {
        // A probability such as P(bad debt > 0): a path with none counts against it.
        assert_eq!(super::share_positive(&[-1.0, 0.0, 2.0, 3.0, 0.0]), 0.4);
        assert_eq!(super::share_positive(&[0.0; 3]), 0.0);
    }

    #[test]
    fn statistics_of_no_paths_are_undefined_not_zero() {
        let d = Distribution::of(&[]);
        for v in [d.mean, d.std, d.p50, d.p99, d.max, d.es95, d.es99, d.es999] {
            assert!(v.is_nan(), "{d:?}");
        }
        assert!(super::share_positive(&[]).is_nan());
        // summary.json writes them as null.
        assert_eq!(
            serde_json::to_value(d).unwrap()["p99"],
            serde_json::Value::Null
        );
    }
}
