//! Per-step quantile bands from fixed-bin histograms.
//!
//! Bin edges depend only on the scenario, and counts are integers, so histograms from any
//! number of threads or shards add up to exactly the same counts in any order: the bands in
//! `timeline.csv` do not depend on how the paths were split.

use ndarray::{Array2, Array3, Axis};

/// Price bins: log of price over start price, in stretches of uniform bins, each `(lowest,
/// highest, bins)`, lowest first. From about -80% to +100%, where nearly every study's prices
/// are, bins are 0.5% of log price wide; 2.5% beyond, down to about -99.9% (a LUNA-like
/// collapse) and up to ten times the start price; 10% beyond those, down to a millionth and up
/// to a thousand times the start price. Without the outer stretches every price beyond them
/// fell into one bin, and the bands of a deep crash or a boom collapsed onto its edge.
const STRETCHES: [(f64, f64, usize); 5] = [
    (-13.8, -6.9, 69),
    (-6.9, -1.6, 212),
    (-1.6, 0.7, 460),
    (0.7, 2.3, 64),
    (2.3, 6.9, 46),
];
/// The first bin of each stretch, and (last) the number of price bins.
const FIRST_BIN: [usize; STRETCHES.len() + 1] = {
    let mut first = [0; STRETCHES.len() + 1];
    let mut i = 0;
    while i < STRETCHES.len() {
        first[i + 1] = first[i] + STRETCHES[i].2;
        i += 1;
    }
    first
};
/// Number of price bins.
pub const PRICE_BINS: usize = FIRST_BIN[STRETCHES.len()];

/// Liquidation bins: a zero bin, then log10 of the share of open interest from -7 to +1.
const LIQ_LOG_LOW: f64 = -7.0;
const LIQ_LOG_HIGH: f64 = 1.0;
/// Number of liquidation bins.
pub const LIQ_BINS: usize = 1 + 8 * 40; // 40 bins per decade

/// The quantiles reported per step.
pub const QUANTILES: [f64; 5] = [0.05, 0.25, 0.50, 0.75, 0.95];

/// Bytes one policy's histograms take per step: both sets of counts and both ranges (which a
/// [`Recorder`] keeps twice).
pub const BYTES_PER_STEP: f64 = ((PRICE_BINS + LIQ_BINS) * 4 + 2 * 2 * 2 * 8) as f64;

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

/// One worker's paths on their way into a [`Timeline`], recorded at a small cost per step.
///
/// A path stays in one bin for many steps (a price bin is 0.5% of log price wide, and
/// cumulative liquidations move only on cascade steps), so the counts are kept as differences
/// along the steps: a path in bin `b` from step `t0` until step `t1` adds one at `[b, t0]` and
/// takes one away at `[b, t1]`, and [`Recorder::finish`] sums each bin's row. Counting every
/// step instead scattered one increment per step over megabytes of counts. The differences
/// wrap (they may be negative), and the sums are the counts exactly. Ranges are kept as rows
/// of minima and maxima, which the compiler widens several steps at a time.
#[derive(Debug)]
pub struct Recorder {
    /// Differences of the counts, in a timeline's shape.
    differences: Timeline,
    steps: usize,
    /// `[policy, step]` ranges of the log price over start price.
    price_low: Vec<f64>,
    price_high: Vec<f64>,
    /// `[policy, step]` ranges of cumulative liquidated notional (USD).
    liquidated_low: Vec<f64>,
    liquidated_high: Vec<f64>,
    /// Each bin's interior (see [`add_runs`]), computed once: a path enters tens of bins.
    price_interiors: Vec<(f64, f64)>,
    liquidated_interiors: Vec<(f64, f64)>,
}

impl Recorder {
    /// Nothing recorded yet, for `policies` policies over `steps` steps (see [`Timeline::new`]).
    pub fn new(policies: usize, steps: usize, scale: f64) -> Recorder {
        let n = policies * steps;
        Recorder {
            differences: Timeline::new(policies, steps, scale),
            steps,
            price_low: vec![f64::INFINITY; n],
            price_high: vec![f64::NEG_INFINITY; n],
            liquidated_low: vec![f64::INFINITY; n],
            liquidated_high: vec![f64::NEG_INFINITY; n],
            price_interiors: (0..PRICE_BINS).map(price_interior).collect(),
            liquidated_interiors: (0..LIQ_BINS)
                .map(|b| liquidated_interior(b, scale))
                .collect(),
        }
    }

    /// Adds one path of one policy: its log price over start price and its cumulative
    /// liquidated notional (USD), each one value per step.
    pub fn record(&mut self, policy: usize, log_price: &[f64], liquidated: &[f64]) {
        let steps = self.steps;
        let rows = policy * steps..(policy + 1) * steps;
        widen(
            &mut self.price_low[rows.clone()],
            &mut self.price_high[rows.clone()],
            log_price,
        );
        widen(
            &mut self.liquidated_low[rows.clone()],
            &mut self.liquidated_high[rows],
            liquidated,
        );
        let t = &mut self.differences;
        add_runs(
            policy_block(&mut t.price, policy),
            log_price,
            price_bin,
            &self.price_interiors,
        );
        let scale = t.scale;
        add_runs(
            policy_block(&mut t.liquidated, policy),
            liquidated,
            |l| liq_bin(l / scale),
            &self.liquidated_interiors,
        );
    }

    /// The timeline of every path recorded.
    pub fn finish(self) -> Timeline {
        let mut t = self.differences;
        for counts in [&mut t.price, &mut t.liquidated] {
            let counts = counts
                .as_slice_mut()
                .expect("timelines are in standard layout");
            for row in counts.chunks_exact_mut(self.steps) {
                let mut sum = 0u32;
                for c in row {
                    sum = sum.wrapping_add(*c);
                    *c = sum;
                }
            }
        }
        for (range, (low, high)) in [
            (&mut t.price_range, (&self.price_low, &self.price_high)),
            (
                &mut t.liquidated_range,
                (&self.liquidated_low, &self.liquidated_high),
            ),
        ] {
            let range = range
                .as_slice_mut()
                .expect("timelines are in standard layout");
            for (pair, (&lo, &hi)) in range.chunks_exact_mut(2).zip(low.iter().zip(high)) {
                pair[0] = lo;
                pair[1] = hi;
            }
        }
        t
    }
}

/// Adds a path's values, one per step, to the `[bin, step]` differences `block` (as many
/// columns as values): one where each run of steps in one bin starts, minus one where it ends.
/// The last run ends after the last step, which no count includes. `interiors[b]` is a
/// closed range of values certainly in bin `b`: a step inside the current bin's costs two
/// comparisons, and only the others compute a bin. `bin` must be monotone in the value.
fn add_runs(
    block: &mut [u32],
    values: &[f64],
    bin: impl Fn(f64) -> usize,
    interiors: &[(f64, f64)],
) {
    let steps = values.len();
    let Some(&first) = values.first() else {
        return;
    };
    let mut current = bin(first);
    let (mut low, mut high) = interiors[current];
    block[current * steps] = block[current * steps].wrapping_add(1);
    for (t, &v) in values.iter().enumerate().skip(1) {
        if v >= low && v <= high {
            continue;
        }
        let b = bin(v);
        if b != current {
            let (end, start) = (current * steps + t, b * steps + t);
            block[end] = block[end].wrapping_sub(1);
            block[start] = block[start].wrapping_add(1);
            current = b;
            (low, high) = interiors[b];
        } else if v < low {
            // A bin is a range of values (bins are monotone in the value), so the interior
            // may take in a value found in it: a path that stays on an edge (a price that does
            // not move, in a deterministic scenario) computes its bin once, not every step.
            low = v;
        } else if v > high {
            high = v;
        }
    }
}

/// How far inside a bin's edges (in log price, or relative for liquidations) a value must be
/// to be in the bin whatever the rounding of [`price_bin`] and [`liq_bin`]: far more than
/// their arithmetic's error (about 1e-15), far less than a bin (5e-3 and 6e-2).
const EDGE_SLACK: f64 = 1e-9;

/// Log prices certainly in price bin `bin`: its edges moved inward by [`EDGE_SLACK`], and
/// unbounded beyond the outermost bins (which take every price beyond them).
fn price_interior(bin: usize) -> (f64, f64) {
    let edge = |b: usize| price_value((b, 0.0));
    let low = if bin == 0 {
        f64::NEG_INFINITY
    } else {
        edge(bin) + EDGE_SLACK
    };
    let high = if bin == PRICE_BINS - 1 {
        f64::INFINITY
    } else {
        edge(bin + 1) - EDGE_SLACK
    };
    (low, high)
}

/// Cumulative liquidations (USD, bins relative to `scale`) certainly in liquidation bin
/// `bin`: nothing above zero in the zero bin, any positive amount up to the second edge in
/// the first (which takes every share below its edge), and unbounded in the last.
fn liquidated_interior(bin: usize, scale: f64) -> (f64, f64) {
    let edge = |b: usize| scale * liq_value((b, 0.0));
    match bin {
        0 => (f64::NEG_INFINITY, 0.0),
        _ => {
            let low = if bin == 1 {
                scale * f64::MIN_POSITIVE
            } else {
                edge(bin) * (1.0 + EDGE_SLACK)
            };
            let high = if bin == LIQ_BINS - 1 {
                f64::INFINITY
            } else {
                edge(bin + 1) * (1.0 - EDGE_SLACK)
            };
            (low, high)
        }
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

/// Widens each step's range `[low, high]` to take in its value in `values`.
#[inline]
fn widen(low: &mut [f64], high: &mut [f64], values: &[f64]) {
    // Selects rather than f64::min and max: both skip a NaN, but the selects compile to the
    // processor's own minimum and maximum, several steps per instruction.
    for ((lo, hi), &v) in low.iter_mut().zip(high.iter_mut()).zip(values) {
        *lo = if v < *lo { v } else { *lo };
        *hi = if v > *hi { v } else { *hi };
    }
}

/// Clamps into `[low, high]`, leaving the value alone where no path was recorded.
fn clamp(v: f64, low: f64, high: f64) -> f64 {
    if low <= high { v.clamp(low, high) } else { v }
}

fn price_bin(lp: f64) -> usize {
    // The first stretch whose top is above `lp`; prices beyond the outermost edges go to the
    // outermost bins (and a NaN, below no top, to the first).
    let k = STRETCHES[..STRETCHES.len() - 1]
        .iter()
        .take_while(|&&(_, high, _)| lp >= high)
        .count();
    let (low, high, bins) = STRETCHES[k];
    let x = (lp - low) / (high - low) * bins as f64;
    // Clamped as a float (a NaN stays NaN and casts to 0): the cast then needs no saturation.
    FIRST_BIN[k] + x.clamp(0.0, (bins - 1) as f64) as u32 as usize
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
    // The last stretch whose first bin is at or below `bin`.
    let k = FIRST_BIN[1..STRETCHES.len()]
        .iter()
        .take_while(|&&first| bin >= first)
        .count();
    let (low, high, bins) = STRETCHES[k];
    low + ((bin - FIRST_BIN[k]) as f64 + within) / bins as f64 * (high - low)
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
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Uniform};

    /// How many special values [`awkward`] lists before the edges.
    const SPECIAL: usize = 7;

    /// Special values (zeros of both signs, NaN, beyond the outermost bins), then values on
    /// every bin edge and just either side of it (inside the interiors' slack and beyond it),
    /// ten an edge, lowest edge first.
    fn awkward(edges: impl Iterator<Item = f64>, relative: bool) -> Vec<f64> {
        let mut v = vec![
            0.0,
            -0.0,
            f64::NAN,
            -1e300,
            1e300,
            f64::MIN_POSITIVE,
            1e-300,
        ];
        assert_eq!(v.len(), SPECIAL);
        for e in edges {
            for d in [0.0, 1e-15, 1e-12, 1e-9, 2e-9] {
                let d = if relative { d * e } else { d };
                v.extend([e - d, e + d]);
            }
        }
        v
    }

    /// The memory estimate's figure per policy and step is what a recorder holds: its counts
    /// and ranges, and the ranges it keeps aside while recording.
    #[test]
    fn bytes_per_step_are_those_a_recorder_holds() {
        let (policies, steps) = (3, 7);
        let r = Recorder::new(policies, steps, 1e9);
        let t = &r.differences;
        let counts = (t.price.len() + t.liquidated.len()) * size_of::<u32>();
        let ranges = (t.price_range.len() + t.liquidated_range.len()) * size_of::<f64>();
        let aside = [
            &r.price_low,
            &r.price_high,
            &r.liquidated_low,
            &r.liquidated_high,
        ]
        .iter()
        .map(|v| v.len() * size_of::<f64>())
        .sum::<usize>();
        assert_eq!(
            (counts + ranges + aside) as f64,
            (policies * steps) as f64 * BYTES_PER_STEP
        );
    }

    /// The differences, runs and interiors of [`Recorder`] give exactly the counts and ranges
    /// of binning every step, even for paths that sit on bin edges.
    #[test]
    fn recorded_counts_are_those_of_binning_every_step() {
        let (policies, steps, scale) = (2, 40, 3.0e9);
        let prices = awkward((0..PRICE_BINS).map(|b| price_value((b, 0.0))), false);
        let liquidations = awkward((1..LIQ_BINS).map(|b| scale * liq_value((b, 0.0))), true);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // Among thousands of values a path would seldom step between two of the few at one
        // end (zero, then a share below the first edge): a third of the paths take only the
        // special values and the two lowest edges, a third the special values and the two
        // highest.
        let ends = |n: usize| -> [Vec<usize>; 3] {
            [
                (0..n).collect(),
                (0..SPECIAL + 20).collect(),
                (0..SPECIAL).chain(n - 20..n).collect(),
            ]
        };
        let (price_picks, liq_picks) = (ends(prices.len()), ends(liquidations.len()));
        let coin = Uniform::new(0.0, 1.0).unwrap();
        let mut recorder = Recorder::new(policies, steps, scale);
        let mut price = Array3::<u32>::zeros((policies, PRICE_BINS, steps));
        let mut liq = Array3::<u32>::zeros((policies, LIQ_BINS, steps));
        let mut ranges = empty_ranges(policies, steps);
        let mut liq_ranges = empty_ranges(policies, steps);
        for path in 0..600 {
            let policy = path % policies;
            let (price_pick, liq_pick) = (&price_picks[path % 3], &liq_picks[path % 3]);
            // Runs of repeated values, as on real paths, broken at random.
            let (mut lp, mut l) = (Vec::new(), Vec::new());
            for t in 0..steps {
                let new = t == 0 || coin.sample(&mut rng) < 0.3;
                let mut pick = |n: usize| (coin.sample(&mut rng) * n as f64) as usize;
                lp.push(if new {
                    prices[price_pick[pick(price_pick.len())]]
                } else {
                    lp[t - 1]
                });
                l.push(if new {
                    liquidations[liq_pick[pick(liq_pick.len())]]
                } else {
                    l[t - 1]
                });
            }
            recorder.record(policy, &lp, &l);
            for t in 0..steps {
                price[[policy, price_bin(lp[t]), t]] += 1;
                liq[[policy, liq_bin(l[t] / scale), t]] += 1;
                for (r, v) in [(&mut ranges, lp[t]), (&mut liq_ranges, l[t])] {
                    r[[policy, t, 0]] = r[[policy, t, 0]].min(v);
                    r[[policy, t, 1]] = r[[policy, t, 1]].max(v);
                }
            }
        }
        let timeline = recorder.finish();
        assert_eq!(timeline.price, price);
        assert_eq!(timeline.liquidated, liq);
        assert_eq!(timeline.price_range, ranges);
        assert_eq!(timeline.liquidated_range, liq_ranges);
    }

    /// Timelines of any split of the paths merge, in any order, into exactly the timeline of
    /// all of them: counts and ranges.
    #[test]
    fn timelines_of_split_paths_merge_into_the_whole() {
        let (policies, steps, scale) = (2, 30, 1.0e9);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let step = Uniform::new(-0.02, 0.015).unwrap();
        let paths: Vec<(Vec<f64>, Vec<f64>)> = (0..90)
            .map(|_| {
                let (mut lp, mut l) = (0.0f64, 0.0f64);
                (0..steps)
                    .map(|_| {
                        lp += step.sample(&mut rng);
                        l += scale * (-lp).max(0.0) * 0.01;
                        (lp, l)
                    })
                    .unzip()
            })
            .collect();
        let record = |which: &dyn Fn(usize) -> bool| {
            let mut recorder = Recorder::new(policies, steps, scale);
            for (k, (lp, l)) in paths.iter().enumerate().filter(|(k, _)| which(*k)) {
                recorder.record(k % policies, lp, l);
            }
            recorder.finish()
        };
        let whole = record(&|_| true);
        let parts = [
            record(&|k| k < 7),
            record(&|k| (7..50).contains(&k)),
            record(&|k| k >= 50),
            record(&|_| false),
        ];
        for order in [[0, 1, 2, 3], [3, 2, 0, 1]] {
            let mut merged = parts[order[0]].clone();
            for &i in &order[1..] {
                merged.merge(&parts[i]);
            }
            assert_eq!(merged, whole);
        }
    }

    /// Wherever the prices of a step are, from a near-total loss through a calm market to a
    /// boom, each band is within one bin (plus the spacing of the sample) of the exact quantile.
    #[test]
    fn bands_are_within_a_bin_of_the_exact_quantiles_from_a_near_total_loss_to_a_boom() {
        let n = 1000;
        let centres = [
            0.3, -0.05, -0.5, -1.55, -1.7, -2.5, -4.0, -6.5, -6.9, -9.0, -13.0, 0.7, 1.5, 2.3, 4.0,
            6.5,
        ];
        for centre in centres {
            let mut recorder = Recorder::new(1, 1, 1.0);
            let mut prices: Vec<f64> = (0..n)
                .map(|i| centre + 0.3 * ((f64::from(i) + 0.5) / f64::from(n) - 0.5))
                .collect();
            for &lp in &prices {
                recorder.record(0, &[lp], &[0.0]);
            }
            let start = 25_000.0;
            let (bands, _) = recorder.finish().bands(0, start);
            prices.sort_by(f64::total_cmp);
            for (j, q) in QUANTILES.iter().enumerate() {
                let exact = prices[(q * f64::from(n)) as usize];
                let b = price_bin(exact);
                let bin = price_value((b, 1.0)) - price_value((b, 0.0));
                assert!(bin <= 0.1 + 1e-12, "bin {b} is {bin} wide");
                let got = (bands[[0, j]] / start).ln();
                assert!(
                    (got - exact).abs() <= bin + 0.3 / f64::from(n),
                    "quantile {q} of prices around {centre}: {got} against {exact}"
                );
            }
        }
    }

    /// Cumulative liquidations: a band is exactly zero where at least the quantile's share of
    /// paths liquidated nothing. Else, for amounts spread evenly in log over whole bins (a
    /// fortieth of a decade), the interpolation within a bin is exact and the band is within the
    /// sample's spacing of the exact quantile. A figure every path shares, even beyond the
    /// outermost bin, is reported exactly.
    #[test]
    fn liquidation_bands_are_zero_or_the_exact_quantiles_to_the_sample_spacing() {
        let (n, scale) = (1000, 2.0e9);
        // Share of paths that liquidate nothing, and log10 of the lowest and highest share of
        // open interest the others liquidate (bin edges).
        for (none, low, high) in [(0.0, -6.5, 0.5), (0.3, -3.0, 0.5), (0.6, -1.0, -0.9)] {
            let zeros = (none * f64::from(n)) as u32;
            let spacing = (high - low) / f64::from(n - zeros);
            let mut liquidated: Vec<f64> = (0..n)
                .map(|i| {
                    if i < zeros {
                        return 0.0;
                    }
                    let u = (f64::from(i - zeros) + 0.5) / f64::from(n - zeros);
                    scale * 10f64.powf(low + u * (high - low))
                })
                .collect();
            let mut recorder = Recorder::new(1, 1, scale);
            for &l in &liquidated {
                recorder.record(0, &[0.0], &[l]);
            }
            let (_, bands) = recorder.finish().bands(0, 1.0);
            liquidated.sort_by(f64::total_cmp);
            for (j, q) in QUANTILES.iter().enumerate() {
                let exact = liquidated[(q * f64::from(n)) as usize];
                let got = bands[[0, j]];
                if exact == 0.0 {
                    assert_eq!(got, 0.0, "quantile {q} with {none} of paths at zero");
                } else {
                    assert!(
                        (got / exact).log10().abs() <= spacing,
                        "quantile {q} of 10^{low}..10^{high}: {got} against {exact}"
                    );
                }
            }
        }
        let mut recorder = Recorder::new(1, 2, scale);
        for _ in 0..10 {
            recorder.record(0, &[0.0, 0.0], &[0.0, 25.0 * scale]);
        }
        let (_, bands) = recorder.finish().bands(0, 1.0);
        for j in 0..QUANTILES.len() {
            assert_eq!([bands[[0, j]], bands[[1, j]]], [0.0, 25.0 * scale]);
        }
    }

    /// With exactly a quantile's share of paths at zero, its band is zero (the smallest value
    /// with at least that share at or below it), not the next bin's edge.
    #[test]
    fn a_band_with_exactly_its_share_of_paths_at_zero_is_zero() {
        let scale = 2.0e9;
        let mut recorder = Recorder::new(1, 1, scale);
        for i in 0..20 {
            let liquidated = if i < 10 { 0.0 } else { 0.01 * scale };
            recorder.record(0, &[0.0], &[liquidated]);
        }
        let (_, bands) = recorder.finish().bands(0, 1.0);
        let median = QUANTILES.iter().position(|&q| q == 0.5).unwrap();
        assert_eq!(bands[[0, median]], 0.0, "{bands:?}");
        assert!(bands[[0, median + 1]] > 0.0, "{bands:?}");
    }

    /// Bands never leave the range the paths' figures span: within one bin, the interpolated
    /// quantiles are held to the lowest and highest figure recorded, and a figure every path
    /// shares is reported exactly.
    #[test]
    fn bands_are_held_to_the_range_of_the_recorded_figures() {
        // Ten paths at log prices 0.1021 and 0.1022, both in the bin from 0.100 to 0.105.
        let mut recorder = Recorder::new(1, 2, 1.0);
        for i in 0..10 {
            let lp = if i < 5 { 0.1021 } else { 0.1022 };
            recorder.record(0, &[lp, 0.0], &[0.0, 0.0]);
        }
        let (price, _) = recorder.finish().bands(0, 100.0);
        let want = [0.1021, 0.1021, 0.1022, 0.1022, 0.1022].map(|lp: f64| 100.0 * lp.exp());
        for (j, w) in want.iter().enumerate() {
            assert!((price[[0, j]] - w).abs() < 1e-12 * w, "{price:?}");
            assert_eq!(price[[1, j]], 100.0, "{price:?}");
        }
    }

    /// The stretches of price bins meet edge to edge, and binning inverts [`price_value`].
    #[test]
    fn price_bins_tile_the_log_price_line() {
        for pair in STRETCHES.windows(2) {
            assert_eq!(pair[0].1, pair[1].0);
        }
        for b in 0..PRICE_BINS {
            assert_eq!(price_bin(price_value((b, 0.5))), b);
        }
        // A price on a stretch's edge is binned in the stretch above it.
        for pair in STRETCHES.windows(2) {
            let edge = pair[0].1;
            assert_eq!(price_bin(edge), price_bin(edge + 1e-9), "edge {edge}");
        }
        assert_eq!(price_bin(-1e300), 0);
        assert_eq!(price_bin(1e300), PRICE_BINS - 1);
    }
}
