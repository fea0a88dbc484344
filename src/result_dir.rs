//! Reading a result directory back: the files [`crate::results`] wrote, parsed into what
//! charts and the report need.
//!
//! Charts and `report.html` are built from these files alone, never from a run in memory, so
//! `cascade report DIR` rebuilds them years later without rerunning anything, and a chart
//! shows exactly what a notebook reading the same files would see. The types here mirror
//! only the fields the report uses and ignore the rest, so results written by a later
//! version with more fields still read.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};

use crate::csv_lines::ResultCsv;
use crate::error::{Error, Result};
use crate::scenario::Scenario;

/// A result directory, read.
#[derive(Debug, Clone)]
pub struct ResultDir {
    /// The directory.
    pub path: PathBuf,
    /// `scenario.toml`: the resolved scenario that was run.
    pub scenario: Scenario,
    /// `summary.json`.
    pub summary: SummaryFile,
    /// `manifest.json`.
    pub manifest: ManifestFile,
    /// `timeline.csv`, one entry per policy in file order.
    pub timeline: Vec<PolicyTimeline>,
}

/// The parts of `summary.json` the report shows.
#[derive(Debug, Clone, Deserialize)]
pub struct SummaryFile {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Paths summarised.
    pub paths: u64,
    /// One entry per policy, the baseline first.
    pub policies: Vec<PolicyFile>,
    /// Every policy after the baseline against the baseline.
    #[serde(default)]
    pub comparisons: Vec<ComparisonFile>,
}

/// One policy's statistics.
#[derive(Debug, Clone, Deserialize)]
pub struct PolicyFile {
    /// Policy name.
    pub name: String,
    /// Statistics of every metric, in file order.
    #[serde(deserialize_with = "ordered")]
    pub metrics: Vec<(String, StatsFile)>,
    /// Probabilities of events.
    pub probabilities: ProbabilitiesFile,
    /// Per-venue figures, in scenario order.
    pub venues: Vec<VenueFile>,
    /// The insurance funds as the run sized them (absent from results written before they
    /// were recorded).
    #[serde(default)]
    pub funds: Vec<FundFile>,
}

/// One insurance fund of a policy: a venue's own, or a pool.
#[derive(Debug, Clone, Deserialize)]
pub struct FundFile {
    /// Venues whose losses it absorbs.
    pub members: Vec<String>,
    /// Balance at the start (USD).
    pub start: f64,
    /// Mean over paths of what the fund paid out, net of the fees paid in (USD).
    pub drawn_mean: f64,
    /// 99% quantile of the same.
    pub drawn_p99: f64,
}

impl PolicyFile {
    /// Statistics of a metric, if the file has it.
    pub fn metric(&self, name: &str) -> Option<&StatsFile> {
        self.metrics.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

/// Statistics of one metric over paths.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct StatsFile {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95% quantile.
    pub p95: f64,
    /// 99% quantile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
    /// Expected shortfall at 99%.
    pub es99: f64,
}

/// Probabilities of events over paths.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ProbabilitiesFile {
    /// Share of paths with at least one insolvent venue.
    pub any_insolvency: f64,
    /// Share of paths with auto-deleveraging.
    pub adl: f64,
    /// Share of paths on which the round cap bound.
    pub round_cap_hit: f64,
}

/// One venue's figures under one policy.
#[derive(Debug, Clone, Deserialize)]
pub struct VenueFile {
    /// Venue name.
    pub name: String,
    /// Open interest at the start price under this policy (USD; the larger side's).
    #[serde(default)]
    pub open_interest: f64,
    /// Mean liquidated notional (USD).
    pub liquidated_notional_mean: f64,
    /// Mean bad debt (USD).
    #[serde(default)]
    pub bad_debt_mean: f64,
    /// Share of paths with unabsorbed loss.
    pub insolvency_probability: f64,
}

/// A policy against the baseline.
#[derive(Debug, Clone, Deserialize)]
pub struct ComparisonFile {
    /// The policy.
    pub policy: String,
    /// The baseline.
    pub baseline: String,
    /// Paired statistics per metric, in file order.
    #[serde(deserialize_with = "ordered")]
    pub metrics: Vec<(String, PairedFile)>,
}

/// Paired difference (policy minus baseline) of one metric.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct PairedFile {
    /// Mean of the per-path differences.
    pub mean_difference: f64,
    /// 95% confidence interval of the mean difference; `None` with fewer than two paths.
    pub ci95: Option<[f64; 2]>,
    /// Mean difference over the baseline mean; `None` where the baseline mean is zero.
    pub relative: Option<f64>,
    /// Share of paths where the policy is lower (better).
    #[serde(default)]
    pub share_better: f64,
    /// Share of paths where the policy is higher (worse).
    #[serde(default)]
    pub share_worse: f64,
}

/// The parts of `manifest.json` the report shows as provenance.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestFile {
    /// Version of `cascade` that ran.
    pub version: String,
    /// Its build (`git <commit>`, `-dirty` with uncommitted changes); empty in results
    /// written before it was recorded.
    #[serde(default)]
    pub build: String,
    /// Scenario file (absolute; as given on the command line in results written before).
    #[serde(default)]
    pub scenario_path: String,
    /// SHA-256 of the scenario file as read.
    #[serde(default)]
    pub scenario_file_sha256: String,
    /// SHA-256 of the resolved scenario.
    #[serde(default)]
    pub scenario_sha256: String,
    /// Seed.
    pub seed: u64,
    /// Paths in this result.
    pub paths: u64,
    /// First and one-past-last path index.
    #[serde(default)]
    pub path_range: Option<[u64; 2]>,
    /// Worker threads.
    #[serde(default)]
    pub threads: Option<u64>,
    /// `--set` overrides, as given.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// UTC start time.
    #[serde(default)]
    pub started_at: String,
    /// UTC end time.
    #[serde(default)]
    pub finished_at: String,
    /// Wall-clock seconds of the whole run (of the merge, for a merged result).
    #[serde(default)]
    pub wall_seconds: Option<f64>,
    /// Which shard of a study this result is, if it is one.
    #[serde(default)]
    pub shard: Option<ShardOf>,
    /// The shard directories a merged result was merged from.
    #[serde(default)]
    pub merged_from: Option<Vec<String>>,
}

/// Shard `index` (from 1) of `count`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ShardOf {
    /// This shard, from 1.
    pub index: u64,
    /// Shards the study was split into.
    pub count: u64,
}

/// Per-step quantile bands of one policy, from `timeline.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyTimeline {
    /// Policy name.
    pub policy: String,
    /// Step numbers (1-based: the state at the end of the step).
    pub steps: Vec<u32>,
    /// Price quantiles (USD) per step: 5, 25, 50, 75 and 95%.
    pub price: [Vec<f64>; 5],
    /// Cumulative liquidated notional quantiles (USD) per step: 5, 25, 50, 75 and 95%.
    pub liquidated: [Vec<f64>; 5],
}

/// The quantile suffixes of `timeline.csv` columns, in band order.
const BANDS: [&str; 5] = ["p5", "p25", "p50", "p75", "p95"];

/// Refuses the `scenario.toml` of the result directory `dir`, loaded as `scenario`, when it
/// is not what ran (`ran`: "was run", "the shard ran"): its SHA-256 is not `recorded`, the
/// `scenario_sha256` of the directory's `manifest.json`.
pub fn check_scenario_ran(
    dir: &Path,
    scenario: &Scenario,
    recorded: &str,
    ran: &str,
) -> Result<()> {
    if scenario.sha256() == recorded {
        return Ok(());
    }
    Err(Error::BadInput(format!(
        "{} (or a data file it reads) is not what {ran}: its SHA-256 differs from the \
         scenario_sha256 of {}; was it edited after the run?",
        dir.join("scenario.toml").display(),
        dir.join("manifest.json").display()
    )))
}

impl ResultDir {
    /// Reads every file of a result directory the report needs (all but `paths.csv`, which
    /// can be large and is read per column with [`ResultDir::path_columns`]).
    pub fn read(dir: &Path) -> Result<ResultDir> {
        if !dir.exists() {
            return Err(Error::BadInput(format!(
                "{} does not exist; pass the directory `cascade run` printed",
                dir.display()
            )));
        }
        if dir.join("grid.json").is_file() && !dir.join("summary.json").is_file() {
            return Err(Error::BadInput(format!(
                "{} is a sweep directory; pass one of its cells (a subdirectory) to `cascade \
                 report`; for its heatmaps (two swept keys), run the same `cascade sweep` \
                 command again with --resume",
                dir.display()
            )));
        }
        if !dir.join("summary.json").is_file() {
            return Err(Error::BadInput(format!(
                "{} is not a cascade result directory (no summary.json); pass the directory `cascade run` printed",
                dir.display()
            )));
        }
        #[derive(Deserialize)]
        struct Count {
            paths: u64,
        }
        if json::<Count>(dir, "summary.json")?.paths == 0 {
            return Err(Error::BadInput(format!(
                "{} holds no paths (a shard of a study split into more shards than it has \
                 paths), so there is nothing to chart; merge the shards and report on that",
                dir.display()
            )));
        }
        let scenario = Scenario::load(&dir.join("scenario.toml"), &[])?;
        let manifest: ManifestFile = json(dir, "manifest.json")?;
        // The report's venue table and parameters come from this file: the figures beside
        // them are of the scenario that was run. (Results older than the hash have none.)
        if !manifest.scenario_sha256.is_empty() {
            check_scenario_ran(dir, &scenario, &manifest.scenario_sha256, "was run")?;
        }
        let summary: SummaryFile = json(dir, "summary.json")?;
        summary.of_policies(dir, &scenario)?;
        let timeline = timeline(dir)?;
        let steps = u64::from(scenario.file().simulation.steps);
        let counts = timeline
            .iter()
            .map(|t| (t.policy.as_str(), t.steps.len() as u64));
        summary.agrees(&dir.join("timeline.csv"), counts, steps, "steps")?;
        Ok(ResultDir {
            path: dir.to_path_buf(),
            scenario,
            summary,
            manifest,
            timeline,
        })
    }

    /// Columns of `paths.csv` for every policy: `(policy, [values of columns[0], ...])`, in
    /// file order.
    pub fn path_columns(&self, columns: &[&str]) -> Result<Vec<(String, Vec<Vec<f64>>)>> {
        let mut csv = ResultCsv::open(self.path.join("paths.csv"), "policy,path,...")?;
        let policy_col = csv.column("policy")?;
        let cols = columns
            .iter()
            .map(|c| csv.column(c))
            .collect::<Result<Vec<_>>>()?;
        let mut out: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
        let mut rows: Vec<u64> = Vec::new();
        let mut record = csv::ByteRecord::new();
        while csv.next(&mut record)? {
            let policy = record.get(policy_col).unwrap_or_default();
            if out.last().is_none_or(|(p, _)| p.as_bytes() != policy) {
                out.push((
                    String::from_utf8_lossy(policy).into_owned(),
                    vec![Vec::new(); cols.len()],
                ));
                rows.push(0);
            }
            *rows.last_mut().expect("pushed with its policy") += 1;
            let values = &mut out.last_mut().expect("pushed above").1;
            for (v, &c) in values.iter_mut().zip(&cols) {
                v.push(csv.number(&record, c)?);
            }
        }
        let counts = out.iter().zip(&rows).map(|((p, _), &n)| (p.as_str(), n));
        self.summary
            .agrees(&csv.file, counts, self.summary.paths, "paths")?;
        Ok(out)
    }
}

impl SummaryFile {
    /// Checks that this summary is of the policies of `scenario` (the `scenario.toml` of the
    /// result directory `dir`), in its order: the report pairs each of the scenario's policies
    /// with the summary's entry at the same place, so a summary of other or fewer policies
    /// would describe one policy with another's figures, or have none to show.
    fn of_policies(&self, dir: &Path, scenario: &Scenario) -> Result<()> {
        let ran: Vec<&str> = scenario
            .file()
            .policies
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let summarised: Vec<&str> = self.policies.iter().map(|p| p.name.as_str()).collect();
        if ran == summarised {
            return Ok(());
        }
        let listed = |names: &[&str]| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        Err(Error::BadInput(format!(
            "{} does not match {}: it summarises the policies {} where the scenario has {} (in \
             this order); the files are not one result (filtered or copied from another run)",
            dir.join("summary.json").display(),
            dir.join("scenario.toml").display(),
            listed(&summarised),
            listed(&ran),
        )))
    }

    /// Checks that `file` holds `rows` rows of every policy of this summary, in its order,
    /// given `(policy, rows)` in file order: a file cut short, or filtered to some policies,
    /// would otherwise be drawn as if it were the whole result.
    fn agrees<'a>(
        &self,
        file: &Path,
        counts: impl Iterator<Item = (&'a str, u64)>,
        rows: u64,
        what: &str,
    ) -> Result<()> {
        let found: Vec<(&str, u64)> = counts.collect();
        let expected: Vec<(&str, u64)> = self
            .policies
            .iter()
            .map(|p| (p.name.as_str(), rows))
            .collect();
        if found == expected {
            return Ok(());
        }
        let listed = |pairs: &[(&str, u64)]| {
            if pairs.is_empty() {
                return "no rows".to_string();
            }
            pairs
                .iter()
                .map(|(p, n)| format!("{p} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(Error::BadInput(format!(
            "{} does not match summary.json: it has {} where summary.json has {} ({what} per \
             policy); the files are not one result (cut short, filtered or copied from another \
             run)",
            file.display(),
            listed(&found),
            listed(&expected),
        )))
    }
}

fn json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<T> {
    let path = dir.join(name);
    let text = fs::read_to_string(&path)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))
}

fn timeline(dir: &Path) -> Result<Vec<PolicyTimeline>> {
    let mut csv = ResultCsv::open(dir.join("timeline.csv"), "policy,step,...")?;
    let policy_col = csv.column("policy")?;
    let step_col = csv.column("step")?;
    let price: Vec<usize> = BANDS
        .iter()
        .map(|b| csv.column(&format!("price_{b}")))
        .collect::<Result<_>>()?;
    let liq: Vec<usize> = BANDS
        .iter()
        .map(|b| csv.column(&format!("liquidated_{b}")))
        .collect::<Result<_>>()?;
    let mut out: Vec<PolicyTimeline> = Vec::new();
    let mut record = csv::ByteRecord::new();
    while csv.next(&mut record)? {
        let policy = record.get(policy_col).unwrap_or_default();
        if out.last().is_none_or(|t| t.policy.as_bytes() != policy) {
            out.push(PolicyTimeline {
                policy: String::from_utf8_lossy(policy).into_owned(),
                steps: Vec::new(),
                price: Default::default(),
                liquidated: Default::default(),
            });
        }
        let t = out.last_mut().expect("pushed above");
        t.steps.push(csv.step(&record, step_col)?);
        for (j, (&pc, &lc)) in price.iter().zip(&liq).enumerate() {
            t.price[j].push(csv.number(&record, pc)?);
            t.liquidated[j].push(csv.number(&record, lc)?);
        }
    }
    Ok(out)
}

/// Deserializes a JSON object into `(key, value)` pairs in file order.
fn ordered<'de, D, V>(d: D) -> std::result::Result<Vec<(String, V)>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Pairs<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Pairs<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(pair) = map.next_entry()? {
                out.push(pair);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Pairs(std::marker::PhantomData))
}
