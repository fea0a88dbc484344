//! The short tables of headline figures printed after a run or a sweep.

use cascade::metrics::Metric;
use cascade::report::HEADLINE;
use cascade::summary::Summary;
use cascade::sweep::{Axis, GridRow};
use cascade::units::{self, Unit, counted, signed_percent, usd_column as usd};

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}%", 100.0 * v)
    } else {
        "n/a".to_string()
    }
}

/// One line per policy: liquidations, bad debt, drawdown and insolvency.
pub fn headline(s: &Summary) -> String {
    let header = [
        "policy",
        "liquidated mean",
        "liquidated p99",
        "bad debt mean",
        "bad debt p99",
        "drawdown p50",
        "drawdown p99",
        "P(insolvency)",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for p in &s.policies {
        let get = |m: Metric| {
            p.metrics
                .0
                .iter()
                .find(|(k, _)| k == m.name())
                .map(|(_, d)| *d)
                .expect("every metric is summarised")
        };
        let liq = get(Metric::LiquidatedNotional);
        let bad = get(Metric::BadDebt);
        let dd = get(Metric::MaxDrawdown);
        rows.push(vec![
            p.name.clone(),
            usd(liq.mean),
            usd(liq.p99),
            usd(bad.mean),
            usd(bad.p99),
            pct(dd.p50),
            pct(dd.p99),
            pct(p.probabilities.any_insolvency),
        ]);
    }
    render(&rows, 1)
}

/// Rows of cells as an aligned table: the first row a header underlined, the first `left`
/// columns (names) left-aligned and the others (figures) right-aligned.
fn render(rows: &[Vec<String>], left: usize) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c < left {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    out
}

/// Grid rows a sweep prints at most; `grid.csv` holds them all.
const GRID_ROWS_SHOWN: usize = 40;

/// A sweep's headline figures, one line per cell and policy: the swept values, the policy,
/// then mean liquidations and bad debt, median drawdown and the probability of insolvency.
pub fn grid(axes: &[Axis], rows: &[GridRow]) -> String {
    let mut header: Vec<String> = axes.iter().map(|a| a.key.clone()).collect();
    header.extend(
        [
            "policy",
            "liquidated mean",
            "bad debt mean",
            "drawdown p50",
            "P(insolvency)",
        ]
        .map(String::from),
    );
    let mut table = vec![header];
    for r in rows.iter().take(GRID_ROWS_SHOWN) {
        let figure = |name: &str| {
            r.figures
                .iter()
                .find(|(k, _)| k == name)
                .map_or(f64::NAN, |(_, v)| *v)
        };
        let mut line = r.values.clone();
        line.extend([
            r.policy.clone(),
            usd(figure("liquidated_notional_mean")),
            usd(figure("bad_debt_mean")),
            pct(figure("max_drawdown_p50")),
            pct(figure("p_any_insolvency")),
        ]);
        table.push(line);
    }
    let mut out = render(&table, axes.len() + 1);
    if rows.len() > GRID_ROWS_SHOWN {
        out.push_str(&format!(
            "... and {} in grid.csv\n",
            counted(rows.len() - GRID_ROWS_SHOWN, "more row", "more rows")
        ));
    }
    out
}

/// For each policy against the baseline: the paired mean difference of the headline metrics
/// with its 95% interval, the relative change, and how often the policy did better.
pub fn comparisons(s: &Summary) -> String {
    let mut out = String::new();
    for c in &s.comparisons {
        out.push_str(&format!(
            "\n{} vs {} (paired over {}; change relative to the baseline mean, mean \
             difference, shares of paths lower and higher):\n",
            c.policy,
            c.baseline,
            counted(s.paths as usize, "path", "paths")
        ));
        // The report's findings' metrics, labels and formats, so that they read alike.
        for metric in HEADLINE {
            let Some((_, d)) = c.metrics.0.iter().find(|(k, _)| k == metric) else {
                continue;
            };
            let relative = d.relative.map_or_else(|| "n/a".to_string(), signed_percent);
            let (label, unit) = units::metric(metric);
            let (mean, ci) = units::paired(unit, d.mean_difference, d.ci95);
            out.push_str(&format!(
                "  {label:<20}{relative:>8}  mean {mean:>9}  95% CI {ci}  lower on {} of paths, \
                 higher on {}\n",
                Unit::Fraction.format(d.share_better),
                Unit::Fraction.format(d.share_worse),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_grid_prints_its_first_rows_and_counts_the_rest() {
        let axes = [Axis {
            key: "liquidity.routing".into(),
            values: Vec::new(),
        }];
        let rows: Vec<GridRow> = (0..GRID_ROWS_SHOWN + 5)
            .map(|i| GridRow {
                cell: format!("c{i}"),
                values: vec![format!("0.{i}")],
                policy: "fragmented".into(),
                scenario_sha256: String::new(),
                figures: vec![("liquidated_notional_mean".into(), 1e9)],
            })
            .collect();
        let text = grid(&axes, &rows);
        let lines: Vec<&str> = text.lines().collect();
        // Header, rule, the rows shown, and the count of the others.
        assert_eq!(lines.len(), 2 + GRID_ROWS_SHOWN + 1, "{text}");
        assert!(lines[2].starts_with("0.0  "), "{text}");
        assert!(lines[2].contains("$1.000B"), "{text}");
        assert!(lines[2].ends_with("n/a"), "a figure the row lacks: {text}");
        assert_eq!(
            lines[2 + GRID_ROWS_SHOWN],
            "... and 5 more rows in grid.csv"
        );
    }
}
