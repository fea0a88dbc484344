//! The short table of headline figures printed after a run.

use cascade::metrics::Metric;
use cascade::summary::Summary;

/// USD amounts in a compact form: 1.23B, 456M, 7.8k.
pub fn usd(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a >= 1e9 {
        (v / 1e9, "B")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("${x:.3}{unit}")
}

fn pct(v: f64) -> String {
    format!("{:.2}%", 100.0 * v)
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
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c == 0 {
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
