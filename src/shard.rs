//! Shards: one contiguous block of paths of a study split across machines, and the exact
//! merge of shard results into the result an unsharded run would have written.
//!
//! Exactness rests on two facts: every path's numbers depend only on (seed, path index), and
//! everything a result holds is either a per-path row (concatenated in path order) or an
//! integer histogram count (added). A shard therefore writes its rows to `paths.csv` as usual
//! and its raw histogram counts to `histograms.bin`; merging reads both back and summarises
//! the whole, with the same code an unsharded run uses.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::Array3;
use serde::{Deserialize, Serialize};

use crate::csv_lines::ResultCsv;
use crate::error::{self, Error, Result};
use crate::memory_limit::MemoryLimit;
use crate::metrics::RowLayout;
use crate::result_dir::check_scenario_ran;
use crate::runner::{PathRange, RunOutput};
use crate::scenario::{self, Scenario};
use crate::sha256;
use crate::timeline::{LIQ_BINS, PRICE_BINS, Timeline};
use crate::units;

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawShard")]
pub struct Shard {
    /// Which shard, from 1 to `count`.
    pub index: u64,
    /// How many shards the study is split into.
    pub count: u64,
}

/// A shard as a manifest spells it, checked into a [`Shard`]: an edited manifest's `count`
/// of 0 would otherwise divide by zero.
#[derive(Deserialize)]
struct RawShard {
    index: u64,
    count: u64,
}

impl TryFrom<RawShard> for Shard {
    type Error = String;

    fn try_from(raw: RawShard) -> std::result::Result<Shard, String> {
        Shard::new(raw.index, raw.count).ok_or_else(|| {
            format!(
                "shard {}/{} is not a shard: expected 1 <= index <= count",
                raw.index, raw.count
            )
        })
    }
}

impl Shard {
    /// Shard `index` of `count`, if `1 <= index <= count`.
    fn new(index: u64, count: u64) -> Option<Shard> {
        (1..=count)
            .contains(&index)
            .then_some(Shard { index, count })
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        s.split_once('/')
            .and_then(|(k, n)| Shard::new(k.trim().parse().ok()?, n.trim().parse().ok()?))
            .ok_or_else(|| format!("`{s}` is not a shard: expected K/N with 1 <= K <= N, e.g. 2/8"))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The paths of this shard among `paths`: the K-th of N contiguous blocks, whose sizes
    /// differ by at most one (blocks are empty when N exceeds the number of paths).
    pub fn range(&self, paths: u64) -> PathRange {
        let at = |k: u64| (u128::from(paths) * u128::from(k) / u128::from(self.count)) as u64;
        PathRange {
            start: at(self.index - 1),
            end: at(self.index),
        }
    }
}

/// Name of the raw histogram file a shard result carries.
pub const HISTOGRAMS: &str = "histograms.bin";

/// The files of a shard result that a merge reads.
const MERGE_READS: [&str; 2] = ["paths.csv", HISTOGRAMS];

/// SHA-256 of each file of the shard result `dir` that a merge reads, by name, for its
/// manifest.
pub fn merged_files(dir: &Path) -> Result<BTreeMap<String, String>> {
    MERGE_READS
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let hash = sha256::of_file(&path)
                .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
            Ok((name.to_string(), hash))
        })
        .collect()
}

/// Refuses a shard whose files a merge reads no longer hash to what its manifest recorded
/// (`recorded`; absent from shards of builds before it was recorded, which are not checked).
fn check_files(dir: &Path, recorded: Option<&BTreeMap<String, String>>) -> Result<()> {
    let Some(recorded) = recorded else {
        return Ok(());
    };
    let now = merged_files(dir)?;
    for (name, hash) in &now {
        if recorded.get(name) != Some(hash) {
            return Err(Error::BadInput(format!(
                "{}: its SHA-256 differs from the one {} recorded when the shard was written; \
                 the file was damaged, edited or replaced since (rerun this shard)",
                dir.join(name).display(),
                dir.join("manifest.json").display()
            )));
        }
    }
    Ok(())
}
const MAGIC: &[u8; 8] = b"CASCHST1";

/// Writes a timeline's raw counts (little-endian, with a header of its shape).
pub fn write_histograms(dir: &Path, t: &Timeline) -> Result<()> {
    let path = dir.join(HISTOGRAMS);
    let err = |e| Error::io(format!("cannot write {}", path.display()), e);
    let mut w = std::io::BufWriter::new(fs::File::create(&path).map_err(err)?);
    let (p, pb, steps) = t.price.dim();
    let lb = t.liquidated.dim().1;
    w.write_all(MAGIC).map_err(err)?;
    for n in [p, pb, lb, steps] {
        w.write_all(&(n as u64).to_le_bytes()).map_err(err)?;
    }
    w.write_all(&t.scale.to_le_bytes()).map_err(err)?;
    for c in t.price.iter().chain(t.liquidated.iter()) {
        w.write_all(&c.to_le_bytes()).map_err(err)?;
    }
    for v in t.price_range.iter().chain(t.liquidated_range.iter()) {
        w.write_all(&v.to_le_bytes()).map_err(err)?;
    }
    w.flush().map_err(err)
}

/// The refusal of a file of a shard result that cannot be read (`e`): most often a directory
/// that is not one.
fn unreadable(path: &Path, e: std::io::Error) -> Error {
    Error::BadInput(format!(
        "{}: cannot read ({e}); is this a shard result?",
        path.display()
    ))
}

/// Reads counts written by [`write_histograms`] for a scenario of `policies` policies and
/// `steps` steps.
///
/// The values are decoded from the file a buffer at a time straight into the timeline's
/// arrays: holding the file's bytes, then its decoded counts, then the arrays at once took
/// three times the histograms, and a merge that `footprint::check_merge` had let through
/// (it counts the timeline being merged and the one merged into) peaked at 1.6 times its
/// estimate.
pub fn read_histograms(dir: &Path, policies: usize, steps: usize) -> Result<Timeline> {
    let path = dir.join(HISTOGRAMS);
    let bad = |what: &str| Error::BadInput(format!("{}: {what}", path.display()));
    let cannot_read = |e: std::io::Error| unreadable(&path, e);
    let file = fs::File::open(&path).map_err(cannot_read)?;
    let length = file.metadata().map_err(cannot_read)?.len();
    let mut r = std::io::BufReader::new(file);
    let mut header = [0u8; 48];
    if length < 48 || r.read_exact(&mut header).is_err() || &header[..8] != MAGIC {
        return Err(bad("not a cascade histogram file"));
    }
    let word = |i: usize| u64::from_le_bytes(header[8 + 8 * i..16 + 8 * i].try_into().unwrap());
    let (p, pb, lb, steps_read) = (
        word(0) as usize,
        word(1) as usize,
        word(2) as usize,
        word(3) as usize,
    );
    let scale = f64::from_le_bytes(header[40..48].try_into().unwrap());
    let want = (policies, PRICE_BINS, LIQ_BINS, steps);
    if (p, pb, lb, steps_read) != want {
        return Err(bad(&format!(
            "histograms of {p} policies, {steps_read} steps and {pb} + {lb} bins, where the \
             scenario has {policies} policies and {steps} steps and this cascade bins in \
             {PRICE_BINS} + {LIQ_BINS}; the file belongs to another result"
        )));
    }
    // The scenario's sizes (the header matches them), checked: they can exceed the address
    // space of a 32-bit machine, where no run could have written them.
    let sizes = (|| {
        let n_price = p.checked_mul(pb)?.checked_mul(steps)?;
        let n_liq = p.checked_mul(lb)?.checked_mul(steps)?;
        let n_range = p.checked_mul(steps)?.checked_mul(2)?;
        let expected = n_price
            .checked_add(n_liq)?
            .checked_mul(4)?
            .checked_add(48)?
            .checked_add(n_range.checked_mul(16)?)?;
        Some((n_price, n_liq, n_range, u64::try_from(expected).ok()?))
    })();
    let Some((n_price, n_liq, n_range, expected)) = sizes else {
        return Err(bad("histograms larger than this machine can address"));
    };
    if length != expected {
        let what = if length < expected {
            "truncated"
        } else {
            "longer than its header says"
        };
        return Err(bad(&format!(
            "{what} ({length} bytes; its header describes {expected})"
        )));
    }
    let mut counts = |n: usize, shape: (usize, usize, usize)| -> Result<Array3<u32>> {
        let v = read_values(&mut r, n, u32::from_le_bytes).map_err(cannot_read)?;
        Array3::from_shape_vec(shape, v).map_err(|e| bad(&format!("bad shape: {e}")))
    };
    let price = counts(n_price, (p, pb, steps))?;
    let liquidated = counts(n_liq, (p, lb, steps))?;
    let mut ranges = |shape: (usize, usize, usize)| -> Result<Array3<f64>> {
        let v = read_values(&mut r, n_range, f64::from_le_bytes).map_err(cannot_read)?;
        Array3::from_shape_vec(shape, v).map_err(|e| bad(&format!("bad shape: {e}")))
    };
    let price_range = ranges((p, steps, 2))?;
    let liquidated_range = ranges((p, steps, 2))?;
    Ok(Timeline {
        price,
        liquidated,
        price_range,
        liquidated_range,
        scale,
    })
}

/// `n` little-endian values of `N` bytes each from `r`, decoded by `decode`.
fn read_values<T, const N: usize>(
    r: &mut impl Read,
    n: usize,
    decode: fn([u8; N]) -> T,
) -> std::io::Result<Vec<T>> {
    let mut values = Vec::with_capacity(n);
    let mut buffer = vec![0u8; N * 8192];
    while values.len() < n {
        let chunk = &mut buffer[..N * (n - values.len()).min(8192)];
        r.read_exact(chunk)?;
        values.extend(
            chunk
                .chunks_exact(N)
                .map(|c| decode(c.try_into().expect("chunks of N bytes"))),
        );
    }
    Ok(values)
}

/// Where a shard's histograms do not count each of its `paths` paths once at every step,
/// for both figures: a file whose counts were damaged would merge into wrong bands.
fn miscounted(t: &Timeline, paths: u64) -> Option<String> {
    for (figure, counts) in [("price", &t.price), ("liquidation", &t.liquidated)] {
        for (policy, bins) in counts.outer_iter().enumerate() {
            for (step, column) in bins.columns().into_iter().enumerate() {
                let n: u64 = column.iter().map(|&c| u64::from(c)).sum();
                if n != paths {
                    return Some(format!(
                        "the {figure} histogram of policy {policy} counts {n} paths at step {}",
                        step + 1
                    ));
                }
            }
        }
    }
    None
}

/// What merge needs to know of each shard, read from its `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
struct ShardManifest {
    version: String,
    /// Absent from results of builds before it was recorded.
    #[serde(default)]
    build: String,
    scenario_sha256: String,
    seed: u64,
    path_range: [u64; 2],
    shard: Option<Shard>,
    /// Absent from results of builds before it was recorded.
    #[serde(default)]
    shard_files: Option<BTreeMap<String, String>>,
    scenario_path: String,
    scenario_file_sha256: String,
    overrides: Vec<String>,
    threads: usize,
    simulation_seconds: f64,
}

/// Where a merged study came from, for its manifest: the scenario file, its hash and the
/// overrides as shard 1 recorded them, the most threads a shard used and the
/// simulation time of all shards together.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The scenario file as shard 1's manifest recorded it.
    pub scenario_path: String,
    /// SHA-256 of that file as read.
    pub scenario_file_sha256: String,
    /// Shard 1's `--set` overrides, as given.
    pub overrides: Vec<String>,
    /// The most worker threads any shard used.
    pub threads: usize,
    /// Simulation seconds summed over the shards (the compute the study took).
    pub simulation_seconds: f64,
}

/// Shard results checked to form one whole study, in path order.
#[derive(Debug)]
pub struct Merged {
    /// The scenario (from shard 1's `scenario.toml`).
    pub scenario: Scenario,
    /// Rows and histograms of all paths, as one run would have produced them.
    pub out: RunOutput,
    /// The shard directories, in path order.
    pub shards: Vec<PathBuf>,
    /// Where the shards came from.
    pub origin: Origin,
}

/// How the scenarios two results were run from differ, for a refusal to merge them: the first
/// keys of their resolved `scenario.toml` that differ (a `--paths` or `--set` given to one
/// shard only), or else the data file copied into `books/` that does (a snapshot refreshed
/// between two shards).
fn scenario_difference(a: &Path, b: &Path) -> String {
    let read = |dir: &Path| fs::read_to_string(dir.join("scenario.toml")).ok();
    if let (Some(x), Some(y)) = (read(a), read(b))
        && let Some(keys) = scenario::differences(&x, &y)
    {
        return keys;
    }
    let files = |dir: &Path| -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = fs::read_dir(dir.join("books"))
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    for path in files(a) {
        let name = path.file_name().unwrap_or_default();
        if fs::read(&path).ok() != fs::read(b.join("books").join(name)).ok() {
            return format!("the data file books/{} differs", name.to_string_lossy());
        }
    }
    "their data files differ".to_string()
}

/// Reads and checks shard results: same version, scenario and seed; every shard of one split
/// present exactly once; together covering every path. Refuses, before reading any rows, a
/// merge that would hold more than `memory` (`None`: what this process may use).
pub fn merge(dirs: &[PathBuf], memory: Option<MemoryLimit>) -> Result<Merged> {
    if dirs.is_empty() {
        return Err(Error::BadInput(
            "merge needs at least one shard directory".into(),
        ));
    }
    // `output/x/*` also matches the `latest` link: name the same directory given twice.
    error::named_once(dirs, "the same directory", "give each shard once")?;
    let mut shards = Vec::new();
    for dir in dirs {
        let path = dir.join("manifest.json");
        let text = fs::read_to_string(&path).map_err(|e| {
            Error::BadInput(format!(
                "{}: cannot read ({e}); is {} a result directory?",
                path.display(),
                dir.display()
            ))
        })?;
        let m: ShardManifest = serde_json::from_str(&text).map_err(|e| {
            Error::BadInput(format!("{}: not a cascade manifest: {e}", path.display()))
        })?;
        let shard = m.shard.ok_or_else(|| {
            Error::BadInput(format!(
                "{} is not a shard result: it was run without --shard (a sweep's cells are \
                 whole runs even under `sweep --shard`, which splits a sweep by cells; finish \
                 a sharded sweep with `sweep --resume`, not `merge`)",
                dir.display()
            ))
        })?;
        shards.push((dir.clone(), m, shard));
    }
    let (first_dir, first, first_shard) = shards[0].clone();
    for (dir, m, sh) in &shards[1..] {
        let differs = |what: &str, a: &dyn fmt::Display, b: &dyn fmt::Display| {
            Error::BadInput(format!(
                "{} and {} have different {what} ({a} vs {b}); they are not shards of one study",
                first_dir.display(),
                dir.display()
            ))
        };
        if m.version != first.version {
            return Err(differs("cascade versions", &first.version, &m.version));
        }
        if m.build != first.build {
            return Err(differs("cascade builds", &first.build, &m.build));
        }
        // The seed is part of the resolved scenario: check it first for the clearer message.
        if m.seed != first.seed {
            return Err(differs("seeds", &first.seed, &m.seed));
        }
        if m.scenario_sha256 != first.scenario_sha256 {
            return Err(Error::BadInput(format!(
                "{} and {} were run from different scenarios ({}); they are not shards of one \
                 study",
                first_dir.display(),
                dir.display(),
                scenario_difference(&first_dir, dir)
            )));
        }
        if sh.count != first_shard.count {
            return Err(differs("shard counts", &first_shard.count, &sh.count));
        }
    }
    shards.sort_by_key(|(_, _, sh)| sh.index);
    for pair in shards.windows(2) {
        if pair[0].2.index == pair[1].2.index {
            return Err(Error::BadInput(format!(
                "{} and {} are both shard {}: overlapping shards",
                pair[0].0.display(),
                pair[1].0.display(),
                pair[0].2
            )));
        }
    }
    // Indices are distinct and within the count, so as many as the count means all.
    let count = first_shard.count;
    let absent = count - shards.len() as u64;
    if absent > 0 {
        let present: Vec<u64> = shards.iter().map(|s| s.2.index).collect();
        let named: Vec<String> = (1..=count)
            .filter(|k| present.binary_search(k).is_err())
            .take(5)
            .map(|k| format!("{k}/{count}"))
            .collect();
        return Err(Error::BadInput(format!(
            "missing {absent} of {count} shards: {}",
            units::listed(&named, absent, ", ")
        )));
    }

    // Shard 1's, by index, as the origin below: the order the shards were given in must not
    // decide which copy is used, and so whether the merge is accepted.
    let (one_dir, one, _) = &shards[0];
    let scenario = Scenario::load(&one_dir.join("scenario.toml"), &[])?;
    // The merge is summarised, and its scenario.toml written, from this file: it must be
    // what the shards ran, not an edited copy.
    check_scenario_ran(one_dir, &scenario, &one.scenario_sha256, "the shard ran")?;
    let paths = scenario.file().simulation.paths;
    for (dir, m, sh) in &shards {
        let want = sh.range(paths);
        if m.path_range != [want.start, want.end] {
            return Err(Error::BadInput(format!(
                "{}: shard {sh} holds paths {:?}, expected {}..{}",
                dir.display(),
                m.path_range,
                want.start,
                want.end
            )));
        }
    }
    // Before the rows are reserved: shards too large together fail as bad input, not abort.
    crate::footprint::check_merge(&scenario, paths, memory)?;
    let layout = RowLayout {
        venues: scenario.file().venues.len(),
    };
    let policies = scenario.file().policies.len();
    let mut rows = crate::runner::reserve_rows(paths, policies, layout.len())?;
    let mut timeline: Option<Timeline> = None;
    for (dir, m, _) in &shards {
        read_rows(
            dir,
            &scenario,
            layout,
            [m.path_range[0], m.path_range[1]],
            &mut rows,
        )?;
        let t = read_histograms(dir, policies, scenario.file().simulation.steps as usize)?;
        let paths = m.path_range[1] - m.path_range[0];
        if let Some(what) = miscounted(&t, paths) {
            return Err(Error::BadInput(format!(
                "{}: {what}, where the shard has {paths} paths; the file is damaged or \
                 belongs to another result",
                dir.join(HISTOGRAMS).display()
            )));
        }
        match &mut timeline {
            None => timeline = Some(t),
            Some(acc) => {
                // Liquidation bins are shares of the open interest the first shard recorded.
                if acc.scale != t.scale {
                    return Err(Error::BadInput(format!(
                        "{}: histograms of open interest {} where {} has {}; the file belongs \
                         to another result",
                        dir.join(HISTOGRAMS).display(),
                        t.scale,
                        shards[0].0.join(HISTOGRAMS).display(),
                        acc.scale
                    )));
                }
                acc.merge(&t);
            }
        }
        // After the checks of what the files hold, whose messages say what is wrong: this
        // one finds what reads as valid, a figure edited or another seed's rows copied in.
        check_files(dir, m.shard_files.as_ref())?;
    }
    let out = RunOutput {
        range: PathRange {
            start: 0,
            end: paths,
        },
        layout,
        rows,
        policies,
        timeline: timeline.expect("at least one shard"),
        seconds: 0.0,
        threads: 0,
    };
    let origin = Origin {
        scenario_path: one.scenario_path.clone(),
        scenario_file_sha256: one.scenario_file_sha256.clone(),
        overrides: one.overrides.clone(),
        threads: shards.iter().map(|s| s.1.threads).max().unwrap_or(0),
        simulation_seconds: shards.iter().map(|s| s.1.simulation_seconds).sum(),
    };
    Ok(Merged {
        scenario,
        out,
        shards: shards.into_iter().map(|s| s.0).collect(),
        origin,
    })
}

/// Appends a shard's `paths.csv` rows to `rows` in the run's order (path, then policy).
fn read_rows(
    dir: &Path,
    scenario: &Scenario,
    layout: RowLayout,
    range: [u64; 2],
    rows: &mut Vec<f64>,
) -> Result<()> {
    let path = dir.join("paths.csv");
    let opened = fs::File::open(&path).map_err(|e| unreadable(&path, e))?;
    let mut csv = ResultCsv::read(path, opened, "policy,path,...")?;
    let policies = &scenario.file().policies;
    let n = (range[1] - range[0]) as usize;
    let width = layout.len();
    if csv.headers().len() != width + 2 {
        return Err(csv.bad(format!(
            "{} columns, expected {}",
            csv.headers().len(),
            width + 2
        )));
    }
    let base = rows.len();
    rows.resize(base + n * policies.len() * width, 0.0);
    let mut seen = vec![false; n * policies.len()];
    let mut record = csv::ByteRecord::new();
    while csv.next(&mut record)? {
        let field = |c: usize| String::from_utf8_lossy(record.get(c).unwrap_or_default());
        let policy = field(0);
        let p = policies
            .iter()
            .position(|pol| pol.name == policy)
            .ok_or_else(|| csv.bad_row(&record, format!("unknown policy `{policy}`")))?;
        let path_index: u64 = field(1)
            .parse()
            .map_err(|_| csv.bad_row(&record, format!("bad path index `{}`", field(1))))?;
        if !(range[0]..range[1]).contains(&path_index) {
            return Err(csv.bad_row(&record, format!("path {path_index} outside the shard")));
        }
        let row = (path_index - range[0]) as usize * policies.len() + p;
        if std::mem::replace(&mut seen[row], true) {
            return Err(csv.bad_row(
                &record,
                format!("path {path_index} of policy `{policy}` appears twice"),
            ));
        }
        let at = base + row * width;
        for (k, value) in rows[at..at + width].iter_mut().enumerate() {
            *value = csv.number(&record, k + 2)?;
        }
    }
    let seen = seen.iter().filter(|&&s| s).count();
    if seen != n * policies.len() {
        return Err(csv.bad(format!("{seen} rows, expected {}", n * policies.len())));
    }
    Ok(())
}
