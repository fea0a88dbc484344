//! Per-step quantile bands from fixed-bin histograms.
//!
//! Bin edges depend only on the scenario, and counts are integers, so histograms from any
//! number of threads or shards add up to exactly the same counts in any order: the bands in
//! `timeline.csv` do not depend on how the paths were split.

use ndarray::{Array2, Array3, Axis};

/// Price bins: log of price over start price, in two stretches of uniform bins. From
/// `PRICE_LOW` to `PRICE_HIGH` (about -80% to +100%, where nearly every study's prices are)
/// bins are 0.5% of log price wide; below, down to `PRICE_DEEP` (about -99.9%, a LUNA-like
/// collapse), 2.5%: without them every price below -80% fell into one bin, and the bands of a
/// deep crash collapsed onto the step's highest price.
const PRICE_DEEP: f64 = -6.9; // about -99.9%
const PRICE_LOW: f64 = -1.6; // about -80%
const PRICE_HIGH: f64 = 0.7; // about +100%
const DEEP_BINS: usize = 212; // 2.5% of log price per bin
const FINE_BINS: usize = 460; // 0.5% of log price per bin
const PRICE_BINS: usize = DEEP_BINS + FINE_BINS;

/// Liquidation bins: a zero bin, then log10 of the share of open interest from -7 to +1.
const LIQ_LOG_LOW: f64 = -7.0;
const LIQ_LOG_HIGH: f64 = 1.0;
const LIQ_BINS: usize = 1 + 8 * 40; // 40 bins per decade

/// The quantiles reported per step.
pub const QUANTILES: [f64; 5] = [0.05, 0.25, 0.50, 0.75, 0.95];

/// Bytes one policy's histograms take per step: both sets of counts and both ranges.
pub const BYTES_PER_STEP: f64 = ((PRICE_BINS + LIQ_BINS) * 4 + 2 * 2 * 8) as f64;

/// Histograms of price and cumulative liquidations, per policy, bin and step.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// `[policy, bin, step]` counts of the traded price.
    pub price: Array3<u32>,
    /// `[policy, bin, step]` counts of cumulative liquidated notional.
    pub liquidated: Array3<u32>,
    /// `[policy, step, {min, max}]` of the log price over start price. Quantiles are clamped
    /// into this range, so a price every path shares (a calm market, a deterministic stress)
    /// is reported exactly rather than spread over its bin.
    pub price_range: Array3<f64>,
    /// `[policy, step, {min, max}]` of cumulative liquidated notional (USD).
    pub liquidated_range: Array3<f64>,
    /// Open interest the liquidation bins are relative to (USD).
    pub scale: f64,
}

impl Timeline {
    /// Empty histograms for `policies` policies over `steps` steps.
    pub fn new(policies: usize, steps: usize, scale: f64) -> Timeline {
        Timeline {
            price: Array3::zeros((policies, PRICE_BINS, steps)),
            liquidated: Array3::zeros((policies, LIQ_BINS, steps)),
            price_range: empty_ranges(policies, steps),
            liquidated_range: empty_ranges(policies, steps),
            scale,
        }
    }

    /// Adds one path of one policy.
    pub fn record(&mut self, policy: usize, log_price: &[f64], liquidated: &[f64]) {
        // Plain slices of the policy's `[bin, step]` and `[step, {min, max}]` blocks, each
        // pass counting and widening together: this runs every step of every path, and
        // ndarray's checked 2-d indexing costs more than the counting.
        let steps = self.price.len_of(Axis(2));
        let price = policy_block(&mut self.price, policy);
        let price_range = policy_block(&mut self.price_range, policy);
        for ((t, &lp), range) in log_price
            .iter()
            .enumerate()
            .zip(price_range.chunks_exact_mut(2))
        {
            price[price_bin(lp) * steps + t] += 1;
            widen(range, lp);
        }
        let liq = policy_block(&mut self.liquidated, policy);
        let liq_range = policy_block(&mut self.liquidated_range, policy);
        // Cumulative liquidations change on few steps: reuse the bin (a log10) while they don't.
        let (mut last, mut bin) = (f64::NAN, 0);
        for ((t, &l), range) in liquidated
            .iter()
            .enumerate()
            .zip(liq_range.chunks_exact_mut(2))
        {
            if l != last {
                last = l;
                bin = liq_bin(l / self.scale);
            }
            liq[bin * steps + t] += 1;
            widen(range, l);
        }
    }

    /// Adds another timeline's counts (exact, in any order).
    pub fn merge(&mut self, other: &Timeline) {
        self.price += &other.price;
        self.liquidated += &other.liquidated;
        for (mine, theirs) in [
            (&mut self.price_range, &other.price_range),
            (&mut self.liquidated_range, &other.liquidated_range),
        ] {
            for (mut a, b) in mine.outer_iter_mut().zip(theirs.outer_iter()) {
                for (mut a, b) in a.outer_iter_mut().zip(b.outer_iter()) {
                    a[0] = a[0].min(b[0]);
                    a[1] = a[1].max(b[1]);
                }
            }
        }
    }

    /// Quantile bands of policy `policy`: `[step, quantile]` of price (USD, from `start`) and
    /// of cumulative liquidated notional (USD).
    pub fn bands(&self, policy: usize, start: f64) -> (Array2<f64>, Array2<f64>) {
        let steps = self.price.len_of(Axis(2));
        let mut price = Array2::zeros((steps, QUANTILES.len()));
        let mut liq = Array2::zeros((steps, QUANTILES.len()));
        let ph = self.price.index_axis(Axis(0), policy);
        let lh = self.liquidated.index_axis(Axis(0), policy);
        for t in 0..steps {
            let pc = ph.index_axis(Axis(1), t);
            let lc = lh.index_axis(Axis(1), t);
            for (j, &q) in QUANTILES.iter().enumerate() {
                let p = price_value(quantile(pc.iter().copied(), q));
                let p = clamp(
                    p,
                    self.price_range[[policy, t, 0]],
                    self.price_range[[policy, t, 1]],
                );
                price[[t, j]] = start * p.exp();
                let l = self.scale * liq_value(quantile(lc.iter().copied(), q));
                liq[[t, j]] = clamp(
                    l,
                    self.liquidated_range[[policy, t, 0]],
                    self.liquidated_range[[policy, t, 1]],
                );
            }
        }
        (price, liq)
    }
}

/// Ranges that any value widens: min = +inf, max = -inf.
fn empty_ranges(policies: usize, steps: usize) -> Array3<f64> {
    let mut r = Array3::zeros((policies, steps, 2));
    r.index_axis_mut(Axis(2), 0).fill(f64::INFINITY);
    r.index_axis_mut(Axis(2), 1).fill(f64::NEG_INFINITY);
    r
}

/// One policy's block of a `[policy, ..]` array, as a plain slice.
fn policy_block<T>(a: &mut Array3<T>, policy: usize) -> &mut [T] {
    a.index_axis_mut(Axis(0), policy)
        .into_slice()
        .expect("timelines are in standard layout")
}

/// Widens a `{min, max}` pair to take in `v`.
#[inline]
fn widen(pair: &mut [f64], v: f64) {
    // Comparisons rather than f64::min and max: both skip a NaN, but the comparisons take
    // fewer instructions, and this runs on every step of every path.
    if v < pair[0] {
        pair[0] = v;
    }
    if v > pair[1] {
        pair[1] = v;
    }
}

/// Clamps into `[low, high]`, leaving the value alone where no path was recorded.
fn clamp(v: f64, low: f64, high: f64) -> f64 {
    if low <= high { v.clamp(low, high) } else { v }
}

fn price_bin(lp: f64) -> usize {
    if lp < PRICE_LOW {
        let x = (lp - PRICE_DEEP) / (PRICE_LOW - PRICE_DEEP) * DEEP_BINS as f64;
        return (x.max(0.0) as usize).min(DEEP_BINS - 1);
    }
    let x = (lp - PRICE_LOW) / (PRICE_HIGH - PRICE_LOW) * FINE_BINS as f64;
    // Clamped as a float (a NaN stays NaN and casts to 0, as before): the cast then needs no
    // saturation, on every step of every path.
    DEEP_BINS + x.clamp(0.0, (FINE_BINS - 1) as f64) as u32 as usize
}

fn liq_bin(share: f64) -> usize {
    if share <= 0.0 {
        return 0;
    }
    let x = (share.log10() - LIQ_LOG_LOW) / (LIQ_LOG_HIGH - LIQ_LOG_LOW) * (LIQ_BINS - 1) as f64;
    1 + (x.max(0.0) as usize).min(LIQ_BINS - 2)
}

/// Log price of a fractional position in the price bins.
fn price_value((bin, within): (usize, f64)) -> f64 {
    match bin.checked_sub(DEEP_BINS) {
        Some(fine) => {
            PRICE_LOW + (fine as f64 + within) / FINE_BINS as f64 * (PRICE_HIGH - PRICE_LOW)
        }
        None => PRICE_DEEP + (bin as f64 + within) / DEEP_BINS as f64 * (PRICE_LOW - PRICE_DEEP),
    }
}

/// Share of open interest of a fractional position in the liquidation bins (bin 0 is zero).
fn liq_value((bin, within): (usize, f64)) -> f64 {
    if bin == 0 {
        return 0.0;
    }
    let x = (bin as f64 - 1.0 + within) / (LIQ_BINS - 1) as f64;
    10f64.powf(LIQ_LOG_LOW + x * (LIQ_LOG_HIGH - LIQ_LOG_LOW))
}

/// The bin holding the `q` quantile of a histogram, and the position within it (0 to 1),
/// interpolated as if the bin's values were spread evenly.
fn quantile(counts: impl Iterator<Item = u32> + Clone, q: f64) -> (usize, f64) {
    let total: u64 = counts.clone().map(u64::from).sum();
    let target = q * total as f64;
    let mut below = 0.0;
    for (bin, c) in counts.enumerate() {
        let c = f64::from(c);
        if c > 0.0 && below + c >= target {
            return (bin, ((target - below) / c).clamp(0.0, 1.0));
        }
        below += c;
    }
    (0, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wherever the prices of a step are, from a calm market to a near-total loss, each band is
    /// within one bin (plus the spacing of the sample) of the exact quantile.
    #[test]
    fn bands_are_within_a_bin_of_the_exact_quantiles_down_to_a_near_total_loss() {
        let n = 1000;
        for centre in [0.3, -0.05, -0.5, -1.55, -1.7, -2.5, -4.0, -6.5] {
            let mut timeline = Timeline::new(1, 1, 1.0);
            let mut prices: Vec<f64> = (0..n)
                .map(|i| centre + 0.3 * ((f64::from(i) + 0.5) / f64::from(n) - 0.5))
                .collect();
            for &lp in &prices {
                timeline.record(0, &[lp], &[0.0]);
            }
            let (bands, _) = timeline.bands(0, 1.0);
            prices.sort_by(f64::total_cmp);
            for (j, q) in QUANTILES.iter().enumerate() {
                let exact = prices[(q * f64::from(n)) as usize];
                let bin = if exact < PRICE_LOW {
                    (PRICE_LOW - PRICE_DEEP) / DEEP_BINS as f64
                } else {
                    (PRICE_HIGH - PRICE_LOW) / FINE_BINS as f64
                };
                let got = bands[[0, j]].ln();
                assert!(
                    (got - exact).abs() <= bin + 0.3 / f64::from(n),
                    "quantile {q} of prices around {centre}: {got} against {exact}"
                );
            }
        }
    }
}
