//! How figures are shown to people: the unit of every metric, and number formatting.
//!
//! Charts and the HTML report both label values; keeping the units and the formatting in
//! one place means an axis tick, a table cell and a caption never disagree about whether
//! `0.12` is twelve percent, twelve cents or twelve positions.

/// What a metric's values measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// US dollars.
    Usd,
    /// A fraction, shown as a percentage (0.12 = 12%).
    Fraction,
    /// A ratio, shown with a multiplication sign (1.3x).
    Ratio,
    /// A count (positions, venues, rounds, steps).
    Count,
}

impl Unit {
    /// The unit as an axis label shows it, e.g. `USD` or `%`.
    pub fn axis(self) -> &'static str {
        match self {
            Unit::Usd => "USD",
            Unit::Fraction => "%",
            Unit::Ratio => "x",
            Unit::Count => "count",
        }
    }

    /// Formats a value for an axis tick: like [`Unit::format`] without trailing zeros
    /// (`$2M`, `$2.5B`, `10%`, `0.1%`).
    pub fn tick(self, v: f64) -> String {
        trim_zeros(&self.format(v))
    }

    /// Formats a value in this unit for a table cell or a label: three significant figures,
    /// trailing zeros kept so that a column reads alike (`$1.40B` beside `$1.42B`, `23.0%`
    /// beside `22.9%`, `1.30x`, `1,234`); zero is `$0` and `0%`.
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Usd => usd_figures(v),
            Unit::Fraction => percent_figures(v),
            Unit::Ratio => {
                if v.is_finite() {
                    format!("{v:.2}x")
                } else {
                    "n/a".to_string()
                }
            }
            Unit::Count => count(v),
        }
    }
}

/// A metric's display name and unit; unknown names get their own name and [`Unit::Count`].
pub fn metric(name: &str) -> (&str, Unit) {
    match name {
        "liquidated_notional" => ("liquidated notional", Unit::Usd),
        "liquidated_positions" => ("liquidated positions", Unit::Count),
        "max_drawdown" => ("max drawdown", Unit::Fraction),
        "exogenous_drawdown" => ("exogenous drawdown", Unit::Fraction),
        "amplification" => ("amplification", Unit::Ratio),
        "bad_debt" => ("bad debt", Unit::Usd),
        "insurance_fund_drawn" => ("insurance fund drawn", Unit::Usd),
        "adl_notional" => ("ADL notional", Unit::Usd),
        "unabsorbed_loss" => ("unabsorbed loss", Unit::Usd),
        "insolvent_venues" => ("insolvent venues", Unit::Count),
        "max_venue_gap" => ("max venue price gap", Unit::Fraction),
        "cascade_rounds" => ("cascade rounds", Unit::Count),
        "cascade_steps" => ("cascade steps", Unit::Count),
        "liquidated_long_notional" => ("liquidated longs", Unit::Usd),
        "liquidated_short_notional" => ("liquidated shorts", Unit::Usd),
        "round_cap_hits" => ("round cap hits", Unit::Count),
        "interventions" => ("supervisory interventions", Unit::Count),
        "open_interest_lost" => ("open interest lost", Unit::Fraction),
        "liquidated_value" => ("liquidated value at fill prices", Unit::Usd),
        "liquidated_long_value" => ("liquidated longs at fill prices", Unit::Usd),
        "liquidated_short_value" => ("liquidated shorts at fill prices", Unit::Usd),
        "adl_haircut" => ("loss covered by ADL", Unit::Usd),
        other => (other, Unit::Count),
    }
}

/// US dollars with a magnitude suffix, as prose writes them: `$950`, `$12.3k`, `$4.56M`,
/// `$1.2B`, `-$3M`.
pub fn usd(v: f64) -> String {
    trim_zeros(&usd_figures(v))
}

/// US dollars to three significant figures with a magnitude suffix, trailing zeros kept:
/// `$1.20B`, `$870M`, `-$3.00M`, `$0`.
fn usd_figures(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    if v == 0.0 {
        return "$0".to_string();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    format!("{sign}${}", magnitude(v.abs()))
}

/// US dollars with three decimals in the value's own magnitude, so that a column of them lines
/// up: `$1.230B`, `$456.000M`, `-$7.800k`; below a thousand in dollars and cents (`$12.50`:
/// `$12.500` read as twelve thousand), and zero as `$0`.
pub fn usd_column(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    if v == 0.0 {
        return "$0".to_string();
    }
    let (magnitude, decimals) = rounded_magnitude(v.abs(), |_| 3);
    let decimals = if magnitude.0 == 1.0 { 2 } else { decimals };
    usd_scaled(v, magnitude, decimals)
}

/// The magnitude suffix of `a` and the decimals `decimals` asks there, picked after rounding:
/// 999,999,999 to three decimals reads 1.000B, not 1000.000M.
fn rounded_magnitude(a: f64, decimals: impl Fn(f64) -> usize) -> ((f64, &'static str), usize) {
    let mut magnitude = magnitude_of(a);
    let mut d = decimals(a / magnitude.0);
    if format!("{:.d$}", a / magnitude.0)
        .parse::<f64>()
        .is_ok_and(|r| r >= 1000.0)
        && let Some(&larger) = SUFFIXES.iter().rev().find(|&&(k, _)| k > magnitude.0)
    {
        magnitude = larger;
        d = decimals(a / magnitude.0);
    }
    (magnitude, d)
}

/// A number as an error message quotes it: as written for everyday magnitudes, in scientific
/// notation for huge and tiny ones (Rust prints 1e300 as 301 digits and 5e-13 as
/// `0.0000000000005`).
pub fn quoted(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-6..1e15).contains(&magnitude) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

/// Magnitude suffixes, largest first.
const SUFFIXES: [(f64, &str); 5] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"), (1.0, "")];

/// The largest magnitude suffix not above `a` (none below a thousand).
fn magnitude_of(a: f64) -> (f64, &'static str) {
    SUFFIXES
        .iter()
        .copied()
        .find(|&(scale, _)| a >= scale)
        .unwrap_or((1.0, ""))
}

/// US dollars in the magnitude `(scale, suffix)` with a fixed number of decimals.
fn usd_scaled(v: f64, (scale, suffix): (f64, &str), decimals: usize) -> String {
    let sign = if v < 0.0 { "-" } else { "" };
    format!("{sign}${:.decimals$}{suffix}", v.abs() / scale)
}

/// Dollar labels for the ticks of an axis from `low` to `high` about `step` apart: those of
/// [`Unit::tick`] where they tell such ticks apart, else every tick in the magnitude of the
/// larger end with the decimals the step needs (`$99.95k`, `$100.00k`, where three
/// significant figures read `$100k` five times on a narrow price axis).
pub fn usd_ticks(low: f64, high: f64, step: f64) -> impl Fn(f64) -> String {
    // Axes put ticks at 1, 2 or 5 times a power of ten.
    let step = if step > 0.0 {
        let power = 10f64.powf(step.log10().floor());
        [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * power)
            .find(|&nice| nice >= step)
            .unwrap_or(step)
    } else {
        step
    };
    let ticks = if step > 0.0 && high > low {
        ((high - low) / step).ceil().min(1000.0) as usize
    } else {
        0
    };
    let labels: Vec<String> = (0..=ticks)
        .map(|k| Unit::Usd.tick(low + k as f64 * step))
        .collect();
    let fixed = if labels.windows(2).all(|w| w[0] != w[1]) {
        None
    } else {
        let magnitude = magnitude_of(low.abs().max(high.abs()));
        let decimals = (magnitude.0 / step).log10().ceil().clamp(0.0, 12.0) as usize;
        Some((magnitude, decimals))
    };
    move |v| match fixed {
        None => Unit::Usd.tick(v),
        Some((magnitude, decimals)) => usd_scaled(v, magnitude, decimals),
    }
}

/// A non-negative number with a magnitude suffix and three significant figures (`950`,
/// `12.3k`, `4.50M`, `1.00B`).
fn magnitude(a: f64) -> String {
    // Pick the suffix after rounding, so 999,999,999.9 reads 1B, not 1000M.
    for (k, &(scale, suffix)) in SUFFIXES.iter().enumerate() {
        let scaled = a / scale;
        let digits = if scaled >= 100.0 {
            0
        } else if scaled >= 10.0 {
            1
        } else {
            2
        };
        let text = format!("{scaled:.digits$}");
        let rounded: f64 = text.parse().unwrap_or(scaled);
        if rounded >= 1.0 || k == SUFFIXES.len() - 1 {
            if rounded >= 1000.0 && k > 0 {
                return format!("{:.2}{}", rounded / 1000.0, SUFFIXES[k - 1].1);
            }
            return format!("{text}{suffix}");
        }
    }
    unreachable!("the last suffix always matches")
}

/// Drops trailing zeros of the decimal part of the number in `s` (`$2.50M` -> `$2.5M`).
pub fn trim_zeros(s: &str) -> String {
    let Some(dot) = s.find('.') else {
        return s.to_string();
    };
    let digits_end = s[dot + 1..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(s.len(), |i| dot + 1 + i);
    let decimals = s[dot + 1..digits_end].trim_end_matches('0');
    let mut out = s[..dot].to_string();
    if !decimals.is_empty() {
        out.push('.');
        out.push_str(decimals);
    }
    out.push_str(&s[digits_end..]);
    out
}

/// A fraction as a percentage, as prose writes it: more decimals for small values and no
/// trailing zeros (`12.3%`, `0.42%`, `50%`, `0%`).
pub fn percent(v: f64) -> String {
    trim_zeros(&percent_figures(v))
}

/// A fraction as a percentage to three significant figures (two below 1%), trailing zeros
/// kept: `12.3%`, `23.0%`, `0.50%`, `100%`, `0%`.
fn percent_figures(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    if v.abs() < 1e-14 {
        return "0%".to_string();
    }
    let p = 100.0 * v;
    format!("{p:.*}%", decimals(p.abs()))
}

/// A signed percentage for relative changes, trailing zeros kept: `+12.3%`, `-4.50%`, `0%`.
pub fn signed_percent(v: f64) -> String {
    // Ticks computed as sums can land a hair off zero: never show `-0%`.
    let v = if v.abs() < 1e-12 { 0.0 } else { v };
    signed(percent_figures(v))
}

/// Decimals that show `a` (not negative) to three significant figures, two below 1 and at most
/// three: `123`, `12.3`, `1.23`, `0.12`, `0.012`.
fn decimals(a: f64) -> usize {
    const LEVELS: [(f64, usize); 4] = [(100.0, 0), (10.0, 1), (0.1, 2), (0.0, 3)];
    let k = LEVELS
        .iter()
        .position(|&(floor, _)| a >= floor)
        .unwrap_or(LEVELS.len() - 1);
    let d = LEVELS[k].1;
    // Rounding can carry into the level above: 99.96 reads 100, not 100.0.
    match k.checked_sub(1).map(|up| LEVELS[up]) {
        Some((floor, up)) if format!("{a:.d$}").parse::<f64>().is_ok_and(|r| r >= floor) => up,
        _ => d,
    }
}

/// Whether a formatted number shows zero (`0.00`, `-$0.0k`): no digit but zeros.
fn shows_zero(text: &str) -> bool {
    !text.chars().any(|c| ('1'..='9').contains(&c))
}

/// `text` with a `+` in front if it is positive, and without a `-` if it rounded to zero.
fn signed(text: String) -> String {
    let rounded_to_zero = shows_zero(&text);
    match text.strip_prefix('-') {
        Some(rest) if rounded_to_zero => rest.to_string(),
        Some(_) => text,
        None if rounded_to_zero => text,
        None => format!("+{text}"),
    }
}

/// Signed differences in `unit` that are read together, such as a mean difference and the
/// ends of its interval, all to the precision the largest needs, so that they line up and
/// compare at a glance: dollars in one magnitude (`+$27.8k`, `-$1.4k`, `+$57.1k`), fractions
/// in percentage points (`-0.13 pp`, `-0.17 pp`, `-0.09 pp`), ratios to three decimals,
/// counts with thousands separators (`+1,447`). A value that rounds to zero has no sign.
pub fn differences<const N: usize>(unit: Unit, values: [f64; N]) -> [String; N] {
    let largest = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    values.map(|v| {
        if !v.is_finite() {
            return "n/a".to_string();
        }
        signed(match unit {
            // Nothing changed: zero in the unit, without decimals that measure nothing.
            Unit::Usd if largest == 0.0 => "$0".to_string(),
            Unit::Fraction | Unit::Ratio | Unit::Count if largest == 0.0 => {
                format!("0{}", if unit == Unit::Fraction { " pp" } else { "" })
            }
            Unit::Usd => {
                let (magnitude, d) = rounded_magnitude(largest, decimals);
                usd_scaled(v, magnitude, d)
            }
            Unit::Fraction => format!("{:.*} pp", decimals(100.0 * largest), 100.0 * v),
            Unit::Ratio => format!("{v:.3}"),
            Unit::Count => {
                let whole = values.iter().all(|v| *v == v.round());
                grouped(
                    v,
                    if whole || largest >= 100.0 {
                        0
                    } else {
                        mean_decimals(largest)
                    },
                )
            }
        })
    })
}

/// A paired comparison's mean difference and its 95% interval as the report and the terminal
/// print them, in one precision ([`differences`]): `-$64.9M` and `[-$70.3M, -$59.5M]`. A study
/// of one path has no interval.
pub fn paired(unit: Unit, mean: f64, ci95: Option<[f64; 2]>) -> (String, String) {
    let [low, high] = ci95.unwrap_or([f64::NAN; 2]);
    let [mean, low, high] = differences(unit, [mean, low, high]);
    let interval = if ci95.is_some() {
        format!("[{low}, {high}]")
    } else {
        "n/a (one path)".to_string()
    };
    (mean, interval)
}

/// The first few of `total` items, joined by `separator`, then how many more there are
/// (`a; b; c and 4 more`): a refusal names a few, however many there are.
pub fn listed(shown: &[impl AsRef<str>], total: u64, separator: &str) -> String {
    let joined: Vec<&str> = shown.iter().map(AsRef::as_ref).collect();
    let more = total.saturating_sub(shown.len() as u64);
    if more > 0 {
        format!("{} and {more} more", joined.join(separator))
    } else {
        joined.join(separator)
    }
}

/// `n` things, in the singular or the plural as `n` asks, with thousands separators:
/// `1 policy`, `3 policies`, `2,000 paths`.
pub fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{} {}", count(n as f64), if n == 1 { one } else { many })
}

/// A count, with thousands separators, as a whole number where it is one or is at least a
/// hundred, else as a mean, to its first digit that is not zero: `1,234,567`, `1,447`,
/// `2.50`, `0.001`.
pub fn count(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    grouped(
        v,
        if v == v.round() || v.abs() >= 100.0 {
            0
        } else {
            mean_decimals(v.abs())
        },
    )
}

/// Decimals for a mean count `a` (below a hundred): two, or more where `a` is small enough to
/// need them for a digit that is not zero (`0.001` insolvent venues per path, which two
/// decimals showed as `0.00`, as if none), up to six.
fn mean_decimals(a: f64) -> usize {
    let leading_zeros = if a > 0.0 { -a.log10() } else { 0.0 };
    decimals(a).max(leading_zeros.ceil().clamp(2.0, 6.0) as usize)
}

/// `v` to `decimals` decimals with thousands separators in its whole part: `-12,345.68`.
fn grouped(v: f64, decimals: usize) -> String {
    let text = format!("{:.decimals$}", v.abs());
    let (whole, fraction) = text.split_at(text.find('.').unwrap_or(text.len()));
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    let sign = if v < 0.0 && !shows_zero(&text) {
        "-"
    } else {
        ""
    };
    format!("{sign}{out}{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thing_is_singular_and_none_or_many_are_plural() {
        assert_eq!(counted(1, "policy", "policies"), "1 policy");
        assert_eq!(counted(0, "policy", "policies"), "0 policies");
        assert_eq!(counted(3, "row", "rows"), "3 rows");
        assert_eq!(counted(2000, "path", "paths"), "2,000 paths");
    }

    #[test]
    fn dollar_ticks_on_a_narrow_axis_are_told_apart() {
        // A price within 0.1% of 100,000: three significant figures would read $100k.
        let label = usd_ticks(99_930.0, 100_070.0, 20.0);
        let ticks: Vec<String> = (0..8)
            .map(|k| label(99_930.0 + 20.0 * f64::from(k)))
            .collect();
        assert!(ticks.windows(2).all(|w| w[0] != w[1]), "{ticks:?}");
        // Ticks 20 apart need two decimals of thousands.
        assert_eq!(label(100_000.0), "$100.00k");
        assert_eq!(label(99_960.0), "$99.96k");
        // A wide axis keeps the usual labels.
        let wide = usd_ticks(0.0, 2e9, 5e8);
        assert_eq!(wide(1.5e9), "$1.5B");
    }

    #[test]
    fn formats_read_as_people_write_them() {
        assert_eq!(usd(950.0), "$950");
        assert_eq!(usd(12_345.0), "$12.3k");
        assert_eq!(usd(4_560_000.0), "$4.56M");
        assert_eq!(usd(1.2e9), "$1.2B");
        assert_eq!(usd(-3.0e6), "-$3M");
        assert_eq!(usd(999_999_999.9), "$1B");
        assert_eq!(usd(999_600.0), "$1M");
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd(0.25), "$0.25");
        assert_eq!(usd_column(1.23e9), "$1.230B");
        assert_eq!(usd_column(456e6), "$456.000M");
        assert_eq!(usd_column(-7_800.0), "-$7.800k");
        assert_eq!(usd_column(12.5), "$12.50");
        assert_eq!(usd_column(87.379), "$87.38");
        assert_eq!(usd_column(0.0), "$0");
        assert_eq!(usd_column(f64::NAN), "n/a");
        assert_eq!(usd_column(999_999_999.0), "$1.000B");
        assert_eq!(usd_column(-999_999.999_6), "-$1.000M");
        assert_eq!(usd_column(999_999.4), "$999.999k");
        assert_eq!(usd_column(999.9996), "$1.000k");
        assert_eq!(usd_column(2e15), "$2000.000T");
        assert_eq!(quoted(5e-13), "5e-13");
        assert_eq!(quoted(1e300), "1e300");
        assert_eq!(quoted(-0.25), "-0.25");
        assert_eq!(quoted(0.0), "0");
        assert_eq!(percent(0.5), "50%");
        assert_eq!(percent(0.123), "12.3%");
        assert_eq!(percent(0.0042), "0.42%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(signed_percent(0.05), "+5.00%");
        assert_eq!(signed_percent(-1e-17), "0%");
        assert_eq!(signed_percent(-1.0), "-100%");
        assert_eq!(count(1234567.0), "1,234,567");
        assert_eq!(count(2.5), "2.50");
        assert_eq!(count(-1447.3), "-1,447");
        assert_eq!(count(-0.001), "-0.001");
        assert_eq!(count(0.000_123), "0.0001");
        assert_eq!(count(1e-9), "0.000000");
        assert_eq!(Unit::Ratio.format(1.3), "1.30x");
        assert_eq!(Unit::Usd.tick(2.0e6), "$2M");
        assert_eq!(Unit::Usd.tick(2.5e9), "$2.5B");
        assert_eq!(Unit::Fraction.tick(1.0), "100%");
        assert_eq!(Unit::Fraction.tick(0.001), "0.1%");
        assert_eq!(Unit::Usd.tick(0.0), "$0");
    }

    #[test]
    fn a_column_of_figures_keeps_its_trailing_zeros() {
        // One row of a table: each figure to three significant figures, zeros kept, so that
        // $1.4B does not stand beside $1.42B as if it were less precise.
        assert_eq!(Unit::Usd.format(1.4e9), "$1.40B");
        assert_eq!(Unit::Usd.format(1.42e9), "$1.42B");
        assert_eq!(Unit::Usd.format(-3e6), "-$3.00M");
        assert_eq!(Unit::Usd.format(999_999_999.9), "$1.00B");
        assert_eq!(Unit::Usd.format(0.0), "$0");
        assert_eq!(Unit::Fraction.format(0.23), "23.0%");
        assert_eq!(Unit::Fraction.format(0.229), "22.9%");
        assert_eq!(Unit::Fraction.format(0.005), "0.50%");
        assert_eq!(Unit::Fraction.format(1.0), "100%");
        // Rounded before its decimals are chosen: not 10.00%, and 99.8% stays 99.8%.
        assert_eq!(Unit::Fraction.format(0.099_999), "10.0%");
        assert_eq!(Unit::Fraction.format(0.998), "99.8%");
        assert_eq!(Unit::Fraction.format(0.999_6), "100%");
        assert_eq!(Unit::Fraction.format(0.000_999_9), "0.10%");
        assert_eq!(Unit::Fraction.format(0.0), "0%");
        // Ticks and prose drop them.
        assert_eq!(Unit::Usd.tick(1.4e9), "$1.4B");
        assert_eq!(usd(1.4e9), "$1.4B");
        assert_eq!(percent(0.23), "23%");
    }

    #[test]
    fn differences_read_together_share_one_precision() {
        // A mean difference and its interval: one magnitude and the decimals the largest needs.
        assert_eq!(
            differences(Unit::Usd, [27_833.0, -1_442.0, 57_108.0]),
            ["+$27.8k", "-$1.4k", "+$57.1k"]
        );
        assert_eq!(
            differences(Unit::Usd, [-20.272e6, -26.522e6, -14.023e6]),
            ["-$20.3M", "-$26.5M", "-$14.0M"]
        );
        // $999.96k would read $1000.0k in thousands.
        assert_eq!(
            differences(Unit::Usd, [999_960.0, 500.0]),
            ["+$1.00M", "$0.00M"]
        );
        assert_eq!(
            differences(Unit::Fraction, [-0.0013, -0.0017, -0.000_87]),
            ["-0.13 pp", "-0.17 pp", "-0.09 pp"]
        );
        assert_eq!(differences(Unit::Fraction, [-0.0253]), ["-2.53 pp"]);
        assert_eq!(
            differences(Unit::Ratio, [-0.0071, -0.01, 0.0]),
            ["-0.007", "-0.010", "0.000"]
        );
        // Counts: whole numbers with separators; means to two decimals below a hundred, and
        // as whole numbers where the largest is a hundred or more.
        assert_eq!(
            differences(Unit::Count, [1447.0, 1413.0, 1481.0]),
            ["+1,447", "+1,413", "+1,481"]
        );
        assert_eq!(
            differences(Unit::Count, [-92.8, -120.01, -65.94]),
            ["-93", "-120", "-66"]
        );
        assert_eq!(
            differences(Unit::Count, [-0.89, -0.98, -0.8]),
            ["-0.89", "-0.98", "-0.80"]
        );
        // A small mean to its first digit that is not zero: not `0.00 [0.00, 0.00]`.
        assert_eq!(
            differences(Unit::Count, [-0.001, -0.0032, 0.0011]),
            ["-0.001", "-0.003", "+0.001"]
        );
        // Nothing changed, or a change that rounds away: no sign.
        assert_eq!(differences(Unit::Usd, [0.0, 0.0]), ["$0", "$0"]);
        assert_eq!(differences(Unit::Fraction, [0.0, 0.0]), ["0 pp", "0 pp"]);
        assert_eq!(differences(Unit::Ratio, [0.0]), ["0"]);
        assert_eq!(differences(Unit::Count, [0.0]), ["0"]);
        assert_eq!(
            differences(Unit::Fraction, [-1e-9, 0.02]),
            ["0.00 pp", "+2.00 pp"]
        );
        assert_eq!(differences(Unit::Usd, [1e6, f64::NAN]), ["+$1.00M", "n/a"]);
    }
}
