//! The price models: the i.i.d. ones (each step's variance in closed form, martingale
//! drifts), GARCH(1,1) (stationarity, variance targeting, volatility clustering, martingale
//! drift), historical replay (exact without bootstrap, moving blocks of the series with it,
//! the file copied into results so they run again) and the stress recovery.

use std::path::Path;

use cascade::error::{Error, Problem};
use cascade::scenario::Scenario;
use cascade::shocks::ShockModel;
use tempfile::TempDir;

/// A small valid scenario with the given `[price]` body.
fn scenario_text(steps: u32, price: &str) -> String {
    format!(
        r#"
name = "shocks"
[simulation]
paths = 16
steps = {steps}
seed = 7
[price]
start = 50000.0
{price}
[[venues]]
name = "a"
jurisdiction = "x"
initial_margin = 0.1
maintenance_margin = 0.05
depth_1pct = 1.0e6
open_interest = 1.0e7
[venues.book]
positions = 50
"#
    )
}

/// Loads scenario text as if it lay at `source` (CSV paths resolve against its folder).
fn try_load(text: &str, source: &Path) -> Result<Scenario, Vec<Problem>> {
    Scenario::from_toml(text, source, &[]).map_err(|e| match e {
        Error::InvalidScenario { problems, .. } => problems,
        other => panic!("expected an invalid scenario, got {other}"),
    })
}

fn load(text: &str, source: &Path) -> Scenario {
    try_load(text, source).unwrap_or_else(|p| panic!("scenario refused: {p:?}"))
}

/// The problems of an invalid scenario, as `path: message` lines.
fn problems(text: &str, source: &Path) -> Vec<String> {
    match try_load(text, source) {
        Ok(_) => panic!("scenario accepted:\n{text}"),
        Err(problems) => problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect(),
    }
}

/// Loads scenario text that gives keys its settings do not use, and checks that they are
/// ignored: it loads as `without` them does (the same resolved scenario, so the same hash
/// and results, with the keys left out), and warns about each of `keys`.
fn ignores(text: &str, without: &str, source: &Path, keys: &[&str]) {
    let (with, plain) = (load(text, source), load(without, source));
    assert_eq!(with.to_toml(), plain.to_toml());
    assert_eq!(with.sha256(), plain.sha256());
    let warnings: Vec<String> = with.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), keys.len(), "{warnings:?}");
    for key in keys {
        assert!(
            has(&warnings, key, "is only used with"),
            "{key}: {warnings:?}"
        );
    }
}

fn has(problems: &[String], path: &str, words: &str) -> bool {
    problems
        .iter()
        .any(|p| p.starts_with(&format!("{path}: ")) && p.contains(words))
}

/// Returns of path `path` of the scenario's shock model, as the runner draws them.
fn returns(s: &Scenario, path: u64) -> Vec<f64> {
    let f = s.file();
    let model = ShockModel::new(&f.price, f.simulation.step_seconds);
    let mut out = vec![0.0; f.simulation.steps as usize];
    model.fill_path(s.seed(), path, &mut out);
    out
}

fn here() -> &'static Path {
    Path::new("test.toml")
}

/// Per-path mean of `f(r)` over all steps, for `paths` paths: the values are independent
/// across paths, so their spread gives an honest standard error even though GARCH returns
/// are dependent within a path.
fn path_means(s: &Scenario, paths: u64, f: impl Fn(f64) -> f64) -> (f64, f64) {
    let means: Vec<f64> = (0..paths)
        .map(|p| {
            let r = returns(s, p);
            r.iter().map(|&x| f(x)).sum::<f64>() / r.len() as f64
        })
        .collect();
    let n = means.len() as f64;
    let mean = means.iter().sum::<f64>() / n;
    let var = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Checks that the model `price` gives a per-step E[r^2] of `target` over 2000 paths of 500
/// one-minute steps: within 5 standard errors of the per-path means, with that standard error
/// below 3% of the target so a wrong variance cannot hide in it.
fn assert_mean_square(price: &str, target: f64) {
    let s = load(&scenario_text(500, price), here());
    let (mean, se) = path_means(&s, 2_000, |r| r * r);
    assert!(se < 0.03 * target, "{price}: standard error {se} too large");
    assert!(
        (mean - target).abs() < 5.0 * se,
        "{price}: per-step E[r^2] {mean:e}, expected {target:e} (se {se:e})"
    );
}

/// Checks that the model `price` has E[exp(r)] = 1 on 2000 paths of 500 daily steps: within 5
/// standard errors, with that standard error below `max_se` so a missing drift shows.
fn assert_martingale(price: &str, max_se: f64) {
    let text = scenario_text(500, price).replace("seed = 7", "seed = 7\nstep_seconds = 86400.0");
    let (mean, se) = path_means(&load(&text, here()), 2_000, |r| r.exp() - 1.0);
    assert!(
        mean.abs() < 5.0 * se,
        "{price}: E[exp(r)] - 1 = {mean:e} (se {se:e})"
    );
    assert!(
        se < max_se,
        "{price}: standard error {se:e} too large to see a missing drift"
    );
}

// ---------------------------------------------------------------------------------------
// Gaussian, Student-t and Merton steps

#[test]
fn each_iid_model_has_its_closed_form_step_variance() {
    // 2000 paths x 500 one-minute steps = 1e6 returns each. With per-step variance s2 and
    // drift mu, E[r^2] = s2 + mu^2. Student-t innovations are scaled to unit variance (so
    // 5 degrees of freedom, whose fourth moment is finite, gives the Gaussian's s2); Merton
    // adds compound-Poisson jumps, lambda (m^2 + d^2) of variance and lambda m of mean, here
    // 14 times the diffusion's variance, so a step that never jumps cannot pass. 5 standard
    // errors from the independent per-path means, each below 3% of the target.
    let vol: f64 = 0.8;
    let s2 = vol * vol * 60.0 / (365.0 * 86_400.0);
    let (per_day, m, d): (f64, f64, f64) = (50.0, -0.01, 0.02);
    let lambda = per_day * 60.0 / 86_400.0;
    let merton_mean = -0.5 * s2 - lambda * ((m + 0.5 * d * d).exp() - 1.0) + lambda * m;
    let cases = [
        (format!("annual_volatility = {vol}"), s2 + 0.25 * s2 * s2),
        (
            format!("model = \"student_t\"\nannual_volatility = {vol}\ndegrees_of_freedom = 5.0"),
            s2 + 0.25 * s2 * s2,
        ),
        (
            format!(
                "model = \"merton\"\nannual_volatility = {vol}\njump_intensity_per_day = {per_day}\njump_mean = {m}\njump_stdev = {d}"
            ),
            s2 + lambda * (m * m + d * d) + merton_mean * merton_mean,
        ),
    ];
    for (price, target) in &cases {
        assert_mean_square(price, *target);
    }
}

#[test]
fn student_t_steps_have_the_fat_tails_of_their_degrees_of_freedom() {
    // The variance test above cannot tell Student-t steps from Gaussian ones (both have the
    // same variance); their tails can. With 4 degrees of freedom, scaled to unit variance, a
    // step beyond 4 standard deviations is one beyond t = 4 sqrt(2) of the t distribution,
    // whose CDF for 4 degrees has a closed form: F(t) = 1/2 + (3/4) u (1 - u^2 / 3) with
    // u = t / sqrt(4 + t^2), so the share is 2 (1 - F) = 0.0048, against 6.3e-5 for Gaussian
    // steps. Checked on 1e6 steps within 5 standard errors of the per-path shares.
    let vol: f64 = 0.8;
    let sd = (vol * vol * 60.0 / (365.0 * 86_400.0)).sqrt();
    let t = 4.0 * 2f64.sqrt();
    let u = t / (4.0 + t * t).sqrt();
    let share = 2.0 * (0.5 - 0.75 * u * (1.0 - u * u / 3.0));
    assert!((share - 0.004_812_678).abs() < 1e-9, "{share}");
    let beyond = |price: &str| {
        let s = load(&scenario_text(500, price), here());
        path_means(&s, 2_000, |r| f64::from(u8::from(r.abs() > 4.0 * sd)))
    };
    let (got, se) = beyond(&format!(
        "model = \"student_t\"\nannual_volatility = {vol}\ndegrees_of_freedom = 4.0"
    ));
    assert!(se < 0.03 * share, "standard error {se}");
    assert!(
        (got - share).abs() < 5.0 * se,
        "a share {got} of steps beyond 4 sd, expected {share} (se {se})"
    );
    let (gaussian, _) = beyond(&format!("annual_volatility = {vol}"));
    assert!(gaussian < 2e-4, "{gaussian}");
}

#[test]
fn gaussian_and_merton_prices_are_martingales() {
    // E[exp(r)] = 1 each step: the drift takes off s2/2 and, for Merton, the jumps' expected
    // relative move lambda (exp(m + d^2/2) - 1). With daily steps at 80% volatility s2/2 is
    // 8.8e-4, 20 standard errors of the mean of 1e6 Gaussian draws and 8 with these jumps,
    // whose -9.5% a day is 900. (Student-t steps have no finite E[exp(r)]: their drift is the
    // Gaussian's, an approximation.)
    for price in [
        "annual_volatility = 0.8",
        "model = \"merton\"\nannual_volatility = 0.8\njump_intensity_per_day = 2.0\njump_mean = -0.05\njump_stdev = 0.05",
    ] {
        assert_martingale(price, 1.5e-4);
    }
}

#[test]
fn a_fixed_seed_gives_each_models_pinned_returns() {
    // A seed names the same paths in every version: a changed order of draws, a changed
    // constant, or a sampling algorithm changed by an upgrade of rand_distr shows here, bit for
    // bit, and must be a deliberate change of the numbers users have published. Path 3's
    // first three steps, and the sum of its 200 (Merton at 500 jumps a day: a jump most steps).
    let pinned: [(&str, [f64; 3], f64); 4] = [
        (
            "annual_volatility = 0.8",
            [
                -0.0011522554713721226,
                -0.0017103560375024702,
                0.0007533560918488901,
            ],
            0.027348347414869842,
        ),
        (
            "model = \"student_t\"\nannual_volatility = 0.8\ndegrees_of_freedom = 4.0",
            [
                -0.001057093293155441,
                -8.799947249991361e-5,
                -0.0007415850833119872,
            ],
            0.00400803644334603,
        ),
        (
            "model = \"merton\"\nannual_volatility = 0.8\njump_intensity_per_day = 500.0\njump_mean = -0.01\njump_stdev = 0.02",
            [
                0.00589919221286871,
                0.013530630782756643,
                0.002481020008768456,
            ],
            -0.028992128488334126,
        ),
        (
            "model = \"garch\"\nannual_volatility = 0.8\nalpha = 0.1\nbeta = 0.85",
            [
                -0.0011522554713721226,
                -0.0017179713447696941,
                0.0008077655039454867,
            ],
            0.027554441024148092,
        ),
    ];
    for (price, first, sum) in pinned {
        let r = returns(&load(&scenario_text(200, price), here()), 3);
        assert_eq!(
            (&r[..3], r.iter().sum::<f64>()),
            (&first[..], sum),
            "{price}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// GARCH(1,1)

#[test]
fn garch_validation_refuses_non_stationary_and_incomplete_parameters() {
    for (a, b) in [(0.2, 0.8), (0.5, 0.7), (0.0, 1.0)] {
        let text = scenario_text(
            100,
            &format!("model = \"garch\"\nannual_volatility = 0.5\nalpha = {a}\nbeta = {b}"),
        );
        let p = problems(&text, here());
        assert!(
            has(&p, "price.alpha", "must be below 1"),
            "alpha {a} + beta {b}: {p:?}"
        );
    }
    let p = problems(
        &scenario_text(100, "model = \"garch\"\nannual_volatility = 0.5"),
        here(),
    );
    assert!(has(&p, "price.alpha", "is required"), "{p:?}");
    assert!(has(&p, "price.beta", "is required"), "{p:?}");
    let p = problems(
        &scenario_text(
            100,
            "model = \"garch\"\nalpha = -0.1\nbeta = 0.9\nomega = 0.0\nannual_volatility = 0.5",
        ),
        here(),
    );
    assert!(has(&p, "price.alpha", "zero or more"), "{p:?}");
    assert!(has(&p, "price.omega", "positive"), "{p:?}");
    assert!(
        has(&p, "price.annual_volatility", "not used when price.omega"),
        "{p:?}"
    );
    // GARCH's keys under another model are ignored, so a sweep may switch the model alone.
    ignores(
        &scenario_text(100, "annual_volatility = 0.5\nalpha = 0.1\nbeta = 0.8"),
        &scenario_text(100, "annual_volatility = 0.5"),
        here(),
        &["price.alpha", "price.beta"],
    );
    // Just below the boundary is fine.
    load(
        &scenario_text(
            100,
            "model = \"garch\"\nannual_volatility = 0.5\nalpha = 0.1\nbeta = 0.899",
        ),
        here(),
    );
}

#[test]
fn garch_variance_targeting_gives_the_annual_volatility() {
    // 2000 paths x 500 steps = 1e6 returns. The conditional variance starts at its
    // unconditional level and E[sigma2_t] stays there at every step, so E[r^2] equals the
    // target (plus sigma2^2/4 from the drift, ~1e-7 relative, negligible). We allow 5
    // standard errors, estimated from the independent per-path means, and require that
    // standard error to be below 3% of the target so a wrong omega cannot hide in it.
    let step_seconds = 60.0;
    let vol: f64 = 0.8;
    let target = vol * vol * step_seconds / (365.0 * 86_400.0);
    let cases = [
        // Variance targeting: omega absent.
        format!("model = \"garch\"\nannual_volatility = {vol}\nalpha = 0.1\nbeta = 0.85"),
        // Explicit omega in per-step variance units with the same unconditional variance.
        format!(
            "model = \"garch\"\nomega = {}\nalpha = 0.1\nbeta = 0.85",
            0.05 * target
        ),
    ];
    for price in &cases {
        assert_mean_square(price, target);
    }
}

#[test]
fn garch_price_is_a_martingale() {
    // E[exp(r_t)] = 1 at every step thanks to the -sigma2_t/2 drift. Daily steps at 80%
    // volatility make sigma2/2 = 8.8e-4 per step, while exp(r) - 1 has a standard deviation
    // of about sigma = 0.042, so 2000 x 500 draws pin its mean to ~4e-5: a missing or doubled
    // compensation would be 20 standard errors away.
    assert_martingale(
        "model = \"garch\"\nannual_volatility = 0.8\nalpha = 0.1\nbeta = 0.85",
        1e-4,
    );
}

/// Lag-1 autocorrelation of squared returns, pooled over `paths` paths.
fn squared_autocorrelation(s: &Scenario, paths: u64) -> (f64, usize) {
    let squares: Vec<Vec<f64>> = (0..paths)
        .map(|p| returns(s, p).iter().map(|r| r * r).collect())
        .collect();
    let n: usize = squares.iter().map(Vec::len).sum();
    let m = squares.iter().flatten().sum::<f64>() / n as f64;
    let (mut num, mut den) = (0.0, 0.0);
    for x in &squares {
        num += x.windows(2).map(|w| (w[0] - m) * (w[1] - m)).sum::<f64>();
        den += x.iter().map(|v| (v - m).powi(2)).sum::<f64>();
    }
    (num / den, n)
}

#[test]
fn garch_clusters_volatility_only_when_alpha_is_positive() {
    // alpha = 0.1, beta = 0.85 has a finite fourth moment (3a^2 + 2ab + b^2 = 0.92 < 1) and a
    // theoretical lag-1 autocorrelation of squared returns of
    // a (1 - ab - b^2) / (1 - 2ab - b^2) = 0.18. With alpha = 0 the variance stays at its
    // unconditional level, returns are i.i.d. and the sample autocorrelation of 1e6 draws has
    // a standard error of 1/sqrt(1e6) = 0.001; we allow 5 of them.
    let clustered = load(
        &scenario_text(
            500,
            "model = \"garch\"\nannual_volatility = 0.8\nalpha = 0.1\nbeta = 0.85",
        ),
        here(),
    );
    let (rho, _) = squared_autocorrelation(&clustered, 2_000);
    assert!(rho > 0.1, "autocorrelation of squared returns {rho}");
    let flat = load(
        &scenario_text(
            500,
            "model = \"garch\"\nannual_volatility = 0.8\nalpha = 0.0\nbeta = 0.9",
        ),
        here(),
    );
    let (rho, n) = squared_autocorrelation(&flat, 2_000);
    assert!(
        rho.abs() < 5.0 / (n as f64).sqrt(),
        "autocorrelation {rho} with alpha = 0"
    );
}

// ---------------------------------------------------------------------------------------
// Historical replay

/// Distinct, awkward returns (not round in binary) written with the shortest exact decimal.
fn series(rows: usize) -> Vec<f64> {
    (0..rows)
        .map(|i| ((i as f64 + 1.0) * 0.7310585786300049).sin() * 0.01 / 3.0)
        .collect()
}

/// A folder with `returns.csv` (a timestamp column too) and a scenario beside it.
fn replay_dir(returns: &[f64]) -> (TempDir, std::path::PathBuf) {
    let tmp = TempDir::new().unwrap();
    let mut csv = String::from("timestamp,log_return\n");
    for (i, r) in returns.iter().enumerate() {
        csv.push_str(&format!("{},{r}\n", 1_600_000_000 + 60 * i));
    }
    std::fs::write(tmp.path().join("returns.csv"), csv).unwrap();
    let source = tmp.path().join("replay.toml");
    (tmp, source)
}

#[test]
fn replay_without_bootstrap_reproduces_the_csv_exactly_on_every_path() {
    let data = series(250);
    let (_tmp, source) = replay_dir(&data);
    let s = load(
        &scenario_text(200, "model = \"historical\"\nreturns_csv = \"returns.csv\""),
        &source,
    );
    for path in 0..16 {
        let r = returns(&s, path);
        assert_eq!(r.len(), 200);
        for (step, (got, want)) in r.iter().zip(&data).enumerate() {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "path {path} step {step}: {got} != {want}"
            );
        }
    }
}

#[test]
fn bootstrap_draws_moving_blocks_of_the_csv() {
    let block = 7;
    let data = series(120);
    let (_tmp, source) = replay_dir(&data);
    let s = load(
        &scenario_text(
            100,
            &format!(
                "model = \"historical\"\nreturns_csv = \"returns.csv\"\nblock_bootstrap = {block}"
            ),
        ),
        &source,
    );
    let index = |r: f64| data.iter().position(|d| d.to_bits() == r.to_bits());
    let mut starts = std::collections::BTreeSet::new();
    for path in 0..32 {
        let r = returns(&s, path);
        assert_eq!(r.len(), 100);
        // 100 steps = 14 whole blocks of 7 and a last block of 2.
        for chunk in r.chunks(block) {
            let first = index(chunk[0]).expect("every return drawn belongs to the CSV");
            assert!(
                first + block <= data.len(),
                "block starting at row {first} overflows"
            );
            for (k, v) in chunk.iter().enumerate() {
                assert_eq!(
                    index(*v),
                    Some(first + k),
                    "path {path}: a block is not {block} consecutive CSV returns"
                );
            }
            starts.insert(first);
        }
    }
    // 480 blocks over 114 possible starts: a uniform draw reaches most of them.
    assert!(
        starts.len() > 80,
        "only {} distinct block starts",
        starts.len()
    );
    assert_ne!(
        returns(&s, 0),
        returns(&s, 1),
        "paths draw their own blocks"
    );
}

#[test]
fn same_seed_same_returns() {
    let data = series(60);
    let (_tmp, source) = replay_dir(&data);
    for price in [
        "model = \"garch\"\nannual_volatility = 0.6\nalpha = 0.08\nbeta = 0.9",
        "model = \"historical\"\nreturns_csv = \"returns.csv\"\nblock_bootstrap = 5",
    ] {
        let text = scenario_text(100, price);
        let (a, b) = (load(&text, &source), load(&text, &source));
        for path in [0, 3, 15] {
            let (x, y) = (returns(&a, path), returns(&b, path));
            assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
        assert_ne!(returns(&a, 0), returns(&a, 1), "{price}: paths differ");
    }
}

#[test]
fn replay_file_problems_name_the_key_the_file_and_the_line() {
    let (tmp, source) = replay_dir(&series(10));
    let dir = tmp.path();
    let text = |price: &str| scenario_text(50, price);

    let p = problems(&text("model = \"historical\""), &source);
    assert!(has(&p, "price.returns_csv", "is required"), "{p:?}");

    let p = problems(
        &text("model = \"historical\"\nreturns_csv = \"returns.csv\""),
        &source,
    );
    assert!(
        has(
            &p,
            "price.returns_csv",
            "has 10 returns but simulation.steps is 50"
        ),
        "{p:?}"
    );
    // With a bootstrap a short series is fine, as long as a block fits.
    load(
        &text("model = \"historical\"\nreturns_csv = \"returns.csv\"\nblock_bootstrap = 10"),
        &source,
    );
    let p = problems(
        &text("model = \"historical\"\nreturns_csv = \"returns.csv\"\nblock_bootstrap = 11"),
        &source,
    );
    assert!(
        has(&p, "price.block_bootstrap", "longer than the 10"),
        "{p:?}"
    );
    let p = problems(
        &text("model = \"historical\"\nreturns_csv = \"returns.csv\"\nblock_bootstrap = 0"),
        &source,
    );
    assert!(has(&p, "price.block_bootstrap", "at least 1"), "{p:?}");

    std::fs::write(dir.join("bad.csv"), "log_return\n0.01\n0.02\nabc\n").unwrap();
    let p = problems(
        &text("model = \"historical\"\nreturns_csv = \"bad.csv\"\nblock_bootstrap = 1"),
        &source,
    );
    assert!(has(&p, "price.returns_csv", "bad.csv line 4"), "{p:?}");
    // A column of prices instead of log returns: too large a step, or only rises.
    std::fs::write(dir.join("prices.csv"), "log_return\n0.01\n55000\n55001\n").unwrap();
    let p = problems(
        &text("model = \"historical\"\nreturns_csv = \"prices.csv\"\nblock_bootstrap = 1"),
        &source,
    );
    assert!(
        has(
            &p,
            "price.returns_csv",
            "prices.csv line 3: log_return `55000` is not"
        ),
        "{p:?}"
    );
    let cheap: String = (0..12)
        .map(|i| format!("{}\n", 0.5 + f64::from(i) * 0.01))
        .collect();
    std::fs::write(dir.join("cheap.csv"), format!("log_return\n{cheap}")).unwrap();
    let p = problems(
        &text("model = \"historical\"\nreturns_csv = \"cheap.csv\"\nblock_bootstrap = 1"),
        &source,
    );
    assert!(
        has(&p, "price.returns_csv", "every log_return is positive"),
        "{p:?}"
    );
    // A short run of small rises is a series, not prices.
    let rally: String = (0..12)
        .map(|i| format!("{}\n", 0.001 + f64::from(i) * 1e-4))
        .collect();
    std::fs::write(dir.join("rally.csv"), format!("log_return\n{rally}")).unwrap();
    let rally = text("model = \"historical\"\nreturns_csv = \"rally.csv\"\nblock_bootstrap = 1");
    assert!(try_load(&rally, &source).is_ok());
    std::fs::write(dir.join("nocol.csv"), "ret\n0.01\n").unwrap();
    let p = problems(
        &text("model = \"historical\"\nreturns_csv = \"nocol.csv\"\nblock_bootstrap = 1"),
        &source,
    );
    assert!(
        has(&p, "price.returns_csv", "missing column `log_return`"),
        "{p:?}"
    );

    // A volatility under the historical model, and the series under another model, are
    // ignored (and the series not read).
    let replay = "model = \"historical\"\nreturns_csv = \"returns.csv\"\nblock_bootstrap = 2";
    ignores(
        &text(&format!("{replay}\nannual_volatility = 0.5")),
        &text(replay),
        &source,
        &["price.annual_volatility"],
    );
    ignores(
        &text("annual_volatility = 0.5\nreturns_csv = \"missing.csv\"\nblock_bootstrap = 2"),
        &text("annual_volatility = 0.5"),
        &source,
        &["price.returns_csv", "price.block_bootstrap"],
    );
}

#[test]
fn a_result_directory_keeps_the_returns_and_runs_again() {
    let data = series(40);
    let (tmp, source) = replay_dir(&data);
    let s = load(
        &scenario_text(40, "model = \"historical\"\nreturns_csv = \"returns.csv\""),
        &source,
    );
    let result = tmp.path().join("result");
    std::fs::create_dir_all(&result).unwrap();
    cascade::results::write_scenario(&result, &s).unwrap();
    // The original file may go away: the result has its own copy.
    std::fs::remove_file(tmp.path().join("returns.csv")).unwrap();
    let again = Scenario::load(&result.join("scenario.toml"), &[]).unwrap();
    assert_eq!(again.sha256(), s.sha256());
    for path in [0, 5] {
        assert_eq!(returns(&again, path), returns(&s, path));
    }
    assert_eq!(returns(&again, 0), data);
}

// ---------------------------------------------------------------------------------------
// Stress recovery

#[test]
fn a_stress_recovers_its_share_of_the_drop_after_it_ends() {
    let text = scenario_text(
        60,
        "annual_volatility = 0.0\n[price.stress]\ndrop = 0.2\nstart_step = 5\nduration_steps = 10\nrecovery = 0.5\nrecovery_steps = 20",
    );
    let s = load(&text, here());
    let r = returns(&s, 0);
    let level = |t: usize| r[..t].iter().sum::<f64>().exp();
    // Untouched before, down 20% at the drop's end, half the log drop back 20 steps later.
    assert_eq!(level(5), 1.0);
    assert!((level(15) - 0.8).abs() < 1e-12, "{}", level(15));
    assert!((level(35) - 0.8f64.sqrt()).abs() < 1e-12, "{}", level(35));
    // The trough is at the drop's end and the rebound is monotone, then flat.
    assert!((16..=35).all(|t| level(t) > level(t - 1)));
    assert!((level(60) - level(35)).abs() < 1e-12);

    let bad = scenario_text(
        60,
        "annual_volatility = 0.0\n[price.stress]\ndrop = 0.2\nrecovery = 1.5",
    );
    let p = problems(&bad, here());
    assert!(has(&p, "price.stress.recovery", "between 0 and 1"), "{p:?}");
    assert!(
        has(&p, "price.stress.recovery_steps", "is required"),
        "{p:?}"
    );
}
