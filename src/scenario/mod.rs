//! Scenarios: the file format ([`file`](mod@file)), loading with overrides ([`load`]), checks
//! ([`validate`]), and the validated [`Scenario`] the rest of the program runs on.
//!
//! A [`Scenario`] cannot hold an invalid value: the only way to get one is through
//! [`Scenario::load`] or [`Scenario::from_toml`], which run every check and return all problems.

pub mod file;
pub mod load;
pub mod validate;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::book::{self, BookSpec, Position, Side};
use crate::error::{Error, Problem, Result};
use crate::sha256;
use crate::units;
use file::ScenarioFile;
pub use load::Override;

/// A validated scenario with its seed fixed and its position snapshots loaded.
#[derive(Debug, Clone)]
pub struct Scenario {
    file: ScenarioFile,
    source: PathBuf,
    source_sha256: String,
    /// Neither the file nor an override fixed the seed: it was drawn at load.
    seed_drawn: bool,
    snapshots: Vec<Option<Vec<Position>>>,
    /// The data files the scenario read, as read: venue snapshots in venue order, then the
    /// historical returns, if any.
    inputs: Vec<Input>,
    /// Keys the file gives that its settings do not use, taken out of it
    /// ([`validate::clear_unused`]).
    ignored: Vec<Problem>,
}

/// A data file a scenario reads (a positions snapshot, historical returns), kept as it was
/// read: results copy these very bytes and hash them into [`Scenario::sha256`], so a file
/// edited between two shards of one study cannot slip into a merge unnoticed.
#[derive(Debug, Clone)]
pub struct Input {
    /// Where it was read from (resolved against the scenario's folder).
    pub source: PathBuf,
    /// Where a result directory keeps its copy.
    pub copy: PathBuf,
    /// Its content.
    pub bytes: Vec<u8>,
}

/// The longest scenario file read: hundreds of venues take a few hundred kilobytes.
const MAX_SCENARIO_BYTES: u64 = 64 << 20;

/// Reads a data file, or says why not. Only a regular file: a FIFO would block the run
/// until something writes it, and a device such as `/dev/zero` never ends.
fn read_input(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    if !std::fs::metadata(path).map_err(cannot)?.is_file() {
        return Err(format!(
            "{} is not a file (a directory, device, FIFO or socket)",
            path.display()
        ));
    }
    std::fs::read(path).map_err(cannot)
}

impl Scenario {
    /// Reads, overrides and validates a scenario file.
    pub fn load(path: &Path, overrides: &[Override]) -> Result<Scenario> {
        let invalid = |message: String| Error::InvalidScenario {
            file: path.to_path_buf(),
            problems: vec![Problem {
                path: String::new(),
                message,
            }],
        };
        // Read to a bound, so that a device that never ends (`/dev/zero`) is refused rather
        // than read until memory runs out.
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_SCENARIO_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| invalid(format!("cannot be read: {e}")))?;
        if text.len() as u64 > MAX_SCENARIO_BYTES {
            return Err(invalid(format!(
                "is longer than {} MiB; a scenario is a short text (a book of positions goes in \
                 a positions_csv file)",
                MAX_SCENARIO_BYTES >> 20
            )));
        }
        Scenario::from_toml(&text, path, overrides)
    }

    /// Validates scenario text; `source` names it in errors and resolves relative CSV paths.
    pub fn from_toml(text: &str, source: &Path, overrides: &[Override]) -> Result<Scenario> {
        let invalid = |mut problems: Vec<Problem>| {
            load::attribute(&mut problems, overrides, text);
            Error::InvalidScenario {
                file: source.to_path_buf(),
                problems,
            }
        };
        let parsed = load::parse_scenario(text, overrides);
        let mut problems = parsed.problems;
        let Some(mut file) = parsed.file else {
            return Err(invalid(problems));
        };
        // Values left out for their type, or missing, are reported already; a check of their
        // default or stand-in (or what a stand-in table holds), or of another key against it,
        // would only confuse. (A list element compared with the one before it, as `levels`
        // are, names that one by its whole path, so the check after a stand-in drops too.)
        let ignored = validate::clear_unused(&mut file);
        let removed = parsed.removed;
        problems.extend(
            validate::check(&file)
                .into_iter()
                .filter(|p| !removed.iter().any(|r| load::concerns(p, r))),
        );
        let base = source.parent().unwrap_or(Path::new("."));
        let mut snapshots = Vec::with_capacity(file.venues.len());
        let mut inputs = Vec::new();
        for (i, venue) in file.venues.iter().enumerate() {
            let given = venue.book.positions_csv.as_deref();
            let Some(rel) = given.filter(|p| !validate::is_empty_path(p)) else {
                snapshots.push(None);
                continue;
            };
            let path = base.join(rel);
            let read = read_input(&path).map_err(|m| vec![m]).and_then(|bytes| {
                book::read_csv(&path, &bytes).map(|positions| (positions, bytes))
            });
            match read {
                Ok((positions, bytes)) => {
                    // Each row is bounded; so is the venue, like a generated book's open interest.
                    let start = file.price.start;
                    let oi = crate::market::open_interest(&positions, start);
                    if start.is_finite() && start > 0.0 && oi > book::MAX_USD {
                        problems.push(Problem {
                            path: format!("venues[{i}].book.positions_csv"),
                            message: format!(
                                "{}: the snapshot's open interest at price.start is {}; it must \
                                 be at most {:e} USD",
                                path.display(),
                                crate::units::usd(oi),
                                book::MAX_USD
                            ),
                        });
                    }
                    snapshots.push(Some(positions));
                    inputs.push(Input {
                        source: path,
                        copy: copy_path(&positions_copy(i)),
                        bytes,
                    });
                }
                Err(messages) => {
                    snapshots.push(None);
                    problems.extend(messages.into_iter().map(|message| Problem {
                        path: format!("venues[{i}].book.positions_csv"),
                        message,
                    }));
                }
            }
        }
        let returns_path = (file.price.model == file::PriceModel::Historical)
            .then(|| {
                let given = file.price.returns_csv.as_deref();
                let given = given.filter(|p| !validate::is_empty_path(p));
                given.map(|rel| base.join(rel))
            })
            .flatten();
        if let Some(path) = returns_path {
            let read = read_input(&path).map_err(|m| vec![m]).and_then(|bytes| {
                crate::shocks::read_returns_csv(&path, &bytes).map(|returns| (returns, bytes))
            });
            match read {
                Ok((returns, bytes)) => {
                    problems.extend(check_returns_length(&file, &path, returns.len()));
                    file.price.returns = returns;
                    inputs.push(Input {
                        source: path,
                        copy: copy_path(RETURNS_COPY),
                        bytes,
                    });
                }
                Err(messages) => problems.extend(messages.into_iter().map(|message| Problem {
                    path: "price.returns_csv".to_string(),
                    message,
                })),
            }
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let seed_drawn = file.simulation.seed.is_none();
        if seed_drawn {
            // Below 2^53, so that every JSON reader (JavaScript, R's jsonlite, jq) reads the
            // recorded seed exactly: one rounded to a double reruns another study.
            file.simulation.seed = Some(rand::random::<u64>() >> (64 - f64::MANTISSA_DIGITS));
        }
        for venue in &mut file.venues {
            if venue.book.positions_csv.is_none() {
                let spec = BookSpec::from_book(&venue.book);
                venue.book.positions = Some(spec.positions);
                venue.book.long_leverage = Some(spec.long_leverage);
                venue.book.short_leverage = Some(spec.short_leverage);
                venue.book.entry_dispersion = Some(spec.entry_dispersion);
                venue.book.size_tail = Some(spec.size_tail);
            }
            if let Some(opening) = &mut venue.opening {
                let spec = BookSpec::from_opening(opening);
                opening.positions = Some(spec.positions);
                opening.size_tail = Some(spec.size_tail);
            }
        }
        Ok(Scenario {
            file,
            source: source.to_path_buf(),
            source_sha256: sha256::of_bytes(text.as_bytes()),
            seed_drawn,
            snapshots,
            inputs,
            ignored,
        })
    }

    /// The resolved scenario: defaults, overrides and the seed filled in.
    pub fn file(&self) -> &ScenarioFile {
        &self.file
    }

    /// The seed every random number derives from.
    pub fn seed(&self) -> u64 {
        self.file.simulation.seed.expect("filled in by from_toml")
    }

    /// Whether the seed was drawn at load because neither the file nor an override fixed it;
    /// loading the scenario again then gives other random numbers.
    pub fn seed_drawn(&self) -> bool {
        self.seed_drawn
    }

    /// Where the scenario was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// SHA-256 of the scenario file as read (before overrides).
    pub fn source_sha256(&self) -> &str {
        &self.source_sha256
    }

    /// The resolved scenario as TOML; running this text again gives the same results.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.file).expect("a scenario always serializes")
    }

    /// The data files the scenario read, as read: venue snapshots in venue order, then the
    /// historical returns, if any.
    pub fn inputs(&self) -> &[Input] {
        &self.inputs
    }

    /// The resolved scenario as written into a result directory: snapshot paths point at the
    /// copies [`Scenario::inputs`] names, so the result runs again wherever it is.
    pub fn to_toml_for_results(&self) -> String {
        let mut file = self.file.clone();
        let mut copies = self.inputs.iter().map(|input| input.copy.clone());
        for venue in &mut file.venues {
            if venue.book.positions_csv.is_some() {
                venue.book.positions_csv = copies.next();
            }
        }
        // Only the historical model keeps returns_csv (`clear_unused`), and it reads it.
        if file.price.returns_csv.is_some() {
            file.price.returns_csv = copies.next();
        }
        toml::to_string_pretty(&file).expect("a scenario always serializes")
    }

    /// SHA-256 of what was run: the resolved scenario as written into results (overrides and
    /// seed included, independently of where the files lie) and the content of every data
    /// file it read.
    pub fn sha256(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.to_toml_for_results().as_bytes());
        for input in &self.inputs {
            hash.update(format!("\n{}\n", input.copy.display()).as_bytes());
            hash.update(Sha256::digest(&input.bytes));
        }
        sha256::hex(&hash.finalize())
    }

    /// Keys ignored, and values valid but most likely not meant (a unit, a date): keys its
    /// settings do not use ([`validate::clear_unused`]), the file's
    /// ([`validate::warnings`]) and its position snapshots' ([`validate::snapshot_warnings`]).
    pub fn warnings(&self) -> Vec<Problem> {
        let f = &self.file;
        let mut out = self.ignored.clone();
        out.extend(validate::warnings(f));
        for (i, (venue, snapshot)) in f.venues.iter().zip(&self.snapshots).enumerate() {
            if let Some(positions) = snapshot {
                out.extend(validate::snapshot_warnings(
                    i,
                    venue,
                    positions,
                    f.price.start,
                ));
            }
        }
        out
    }

    /// How many longs and shorts venue `venue`'s book starts with.
    pub fn book_sides(&self, venue: usize) -> (usize, usize) {
        match &self.snapshots[venue] {
            Some(positions) => {
                let longs = positions.iter().filter(|p| p.side == Side::Long).count();
                (longs, positions.len() - longs)
            }
            None => {
                let n = BookSpec::from_book(&self.file.venues[venue].book).positions as usize;
                (n, n)
            }
        }
    }

    /// Whether venue `venue`'s book is a snapshot read from CSV (held in memory as read).
    pub fn has_snapshot(&self, venue: usize) -> bool {
        self.snapshots[venue].is_some()
    }

    /// How many positions venue `venue`'s book starts with: its snapshot's rows, or the
    /// generated book's longs and shorts.
    pub fn book_len(&self, venue: usize) -> usize {
        match &self.snapshots[venue] {
            Some(positions) => positions.len(),
            None => 2 * BookSpec::from_book(&self.file.venues[venue].book).positions as usize,
        }
    }

    /// The positions of every venue, in venue order: the snapshot, or a book drawn from the seed.
    pub fn books(&self) -> Vec<Vec<Position>> {
        let f = &self.file;
        f.venues
            .iter()
            .zip(&self.snapshots)
            .enumerate()
            .map(|(i, (v, snapshot))| match snapshot {
                Some(positions) => positions.clone(),
                None => book::generate(
                    &BookSpec::from_book(&v.book),
                    f.price.start,
                    v.open_interest
                        .expect("validated: generated books have open interest"),
                    &v.margin(),
                    self.seed(),
                    book::Stream::Start { venue: i },
                ),
            })
            .collect()
    }
}

/// The folder of a result directory that keeps its copies of the scenario's data files.
pub const COPIES: &str = "books";

/// Where a result directory keeps the copy named `name`: written with `/` on every system,
/// since the path is hashed into [`Scenario::sha256`].
fn copy_path(name: &str) -> PathBuf {
    PathBuf::from(format!("{COPIES}/{name}"))
}

/// The name, in [`COPIES`], of the copy of venue `i`'s positions.
fn positions_copy(i: usize) -> String {
    format!("venue-{i}.csv")
}

/// The name, in [`COPIES`], of the copy of the historical returns.
const RETURNS_COPY: &str = "price-returns.csv";

/// Whether `name` is one a run gives a copy in [`COPIES`]: anything else there was put by
/// someone else.
pub fn is_copy_name(name: &str) -> bool {
    let venue = name
        .strip_prefix("venue-")
        .and_then(|n| n.strip_suffix(".csv"));
    // Through the one format, so that `venue-01.csv` (never written) is not taken for `venue-1.csv`.
    name == RETURNS_COPY
        || venue
            .and_then(|i| i.parse().ok())
            .is_some_and(|i| positions_copy(i) == name)
}

/// A replay without bootstrap needs a return per step; a bootstrap block must fit the series.
fn check_returns_length(file: &ScenarioFile, path: &Path, rows: usize) -> Option<Problem> {
    let steps = file.simulation.steps as usize;
    match file.price.block_bootstrap {
        None if rows < steps => Some(Problem {
            path: "price.returns_csv".to_string(),
            message: format!(
                "{} has {rows} returns but simulation.steps is {steps}: a replay without \
                 price.block_bootstrap needs at least one return per step",
                path.display()
            ),
        }),
        Some(block) if block as usize > rows => Some(Problem {
            path: "price.block_bootstrap".to_string(),
            message: format!(
                "{block} is longer than the {rows} returns in {}",
                path.display()
            ),
        }),
        _ => None,
    }
}

/// What differs between two resolved scenarios (the text of results' `scenario.toml`
/// files): the first three key paths with both values and how many more there are
/// (`liquidity.routing: 0.7 vs 0.2 and 2 more`); `None` where the texts are not TOML or
/// differ in no key (in formatting or comments alone).
pub fn differences(a: &str, b: &str) -> Option<String> {
    let (x, y) = (
        a.parse::<toml::Table>().ok()?,
        b.parse::<toml::Table>().ok()?,
    );
    let mut keys = Vec::new();
    differing_keys(
        "",
        &toml::Value::Table(x),
        &toml::Value::Table(y),
        &mut keys,
    );
    (!keys.is_empty()).then(|| units::listed(&keys[..keys.len().min(3)], keys.len() as u64, "; "))
}

/// Appends `key: a vs b` for every leaf where `a` and `b` differ, key paths under `prefix`.
fn differing_keys(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            for (key, va) in x {
                match y.get(key) {
                    Some(vb) => differing_keys(&join(key), va, vb, out),
                    None => out.push(format!("{}: {va} vs absent", join(key))),
                }
            }
            for (key, vb) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                out.push(format!("{}: absent vs {vb}", join(key)));
            }
        }
        (toml::Value::Array(x), toml::Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                differing_keys(&format!("{prefix}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!("{prefix}: {a} vs {b}")),
        _ => {}
    }
}
