//! `cascade sweep`: run a grid of overrides, one result directory per cell, and a grid summary.

use std::fs;
use std::path::{Path, PathBuf};

use cascade::error::{Error, Result};
use cascade::results::{self, Destination};
use cascade::runner::RunOptions;
use cascade::scenario::{Override, Scenario};
use cascade::shard::Shard;
use cascade::study::{self, Provenance};
use cascade::sweep::{self, Axis, GridRow};
use cascade::units::counted;

use super::{StudyArgs, seeded_for_shards};

/// `cascade sweep`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    study: StudyArgs,
    /// Sweep directory (default: a new output/<scenario>/sweep-<UTC timestamp>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue an interrupted sweep in --out: finished cells are kept, the rest rerun.
    #[arg(long, requires = "out", conflicts_with = "force")]
    resume: bool,
    /// Run only cells K, K+N, K+2N, ... (1-based) into the shared --out, for a job array;
    /// then `--resume` without --shard writes the grid.
    #[arg(
        long,
        value_name = "K/N",
        requires = "out",
        conflicts_with = "force",
        allow_hyphen_values = true
    )]
    shard: Option<Shard>,
}

/// Runs every cell of the grid given by `common.set` (axes) under `out`, or with `shard` only
/// that shard's cells (several shards share one directory; a final `--resume` writes the grid).
pub fn run(args: &SweepArgs) -> Result<()> {
    let StudyArgs {
        scenario: scenario_path,
        common,
        ..
    } = &args.study;
    let (out, resume, shard) = (&args.out, args.resume, args.shard);
    let axes: Vec<Axis> = common
        .set
        .iter()
        .map(|s| Axis::parse(s).map_err(Error::BadInput))
        .collect::<Result<_>>()?;
    super::unique_keys(axes.iter().map(|a| a.key.as_str()))?;
    let count = axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.values.len()))
        .unwrap_or(usize::MAX);
    if count > sweep::MAX_CELLS {
        return Err(Error::BadInput(format!(
            "this grid has {count} cells; a sweep has at most {}: split it into several sweeps",
            sweep::MAX_CELLS
        )));
    }
    let cells = sweep::cells(&axes);
    distinct_cell_names(&cells, &axes)?;
    // The first cell names the study and says whether the scenario fixes a seed.
    let mut base = common.overrides_without_set()?;
    let first = match Scenario::load(
        scenario_path,
        &[cells[0].overrides(), base.clone()].concat(),
    ) {
        Ok(first) => first,
        // Refused with the other cells that are, each named.
        Err(e @ (Error::InvalidScenario { .. } | Error::BadInput(_))) => {
            load_cells(scenario_path, &cells, &axes, &base, &common.options())?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let name = first.file().name.clone();
    // A default directory is claimed (created) only once every cell has been validated, under
    // a name no concurrent sweep took meanwhile: this one is where it will most likely be.
    let stem = format!("sweep-{}", chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ"));
    let parent = PathBuf::from("output").join(&name);
    let mut root = match out {
        Some(o) => results::out_directory(o)?,
        None => results::unused_name(&parent, &stem),
    };
    // Shards of one sweep start together into one directory: each joins what the first made.
    let joining = resume || shard.is_some();
    if root.exists() && !joining && !common.force {
        return Err(Error::BadInput(if is_sweep(&root) {
            format!(
                "{} already exists; pass --resume to finish it, or --force to start again",
                root.display()
            )
        } else {
            format!(
                "{} already exists and is not a sweep directory (no sweep.json); choose \
                 another --out",
                root.display()
            )
        }));
    }
    // How refusals name the flag that joined an existing directory, and what else to do.
    let (flag, instead) = if shard.is_some() {
        ("--shard", "or give another --out")
    } else {
        (
            "--resume",
            "or start again without --resume, with --force or another --out",
        )
    };
    seeded_for_shards(shard, &first, scenario_path)?;
    let plan_path = root.join("sweep.json");
    let recorded = if joining {
        recorded_plan(&root, flag, resume, shard.is_some())?
    } else {
        None
    };
    // Every cell draws from one seed, so the grid compares its cells on common random
    // numbers: the scenario's, else the one the sweep being resumed drew, else a new one.
    if first.seed_drawn() {
        let seed = recorded
            .as_ref()
            .and_then(|plan| plan["seed"].as_u64())
            .unwrap_or(first.seed());
        base.push(Override::parse(&format!("simulation.seed={seed}")).map_err(Error::BadInput)?);
    }
    // Validate every cell before running any, so a bad value fails in the first second, and
    // before anything is created or (with --force) moved aside: its memory too, as `run`
    // checks it.
    let scenarios = load_cells(scenario_path, &cells, &axes, &base, &common.options())?;
    if !common.quiet {
        let named: Vec<(String, &Scenario)> = cells
            .iter()
            .map(|c| c.name(&axes))
            .zip(&scenarios)
            .collect();
        super::warn_cells(&named, scenario_path);
    }
    let s = &scenarios[0];
    let paths = s.file().simulation.paths;
    // Null where the cells' paths differ, however an axis sets them.
    let same_paths = scenarios
        .iter()
        .all(|c| c.file().simulation.paths == paths)
        .then_some(paths);
    let plan = sweep::plan_json(&name, &axes, s.seed(), same_paths);
    if let Some(recorded) = recorded
        && recorded != plan
    {
        // Name what differs (the plan's fields are few), not the two whole plans.
        let keys: Vec<&String> = recorded
            .as_object()
            .into_iter()
            .chain(plan.as_object())
            .flat_map(|o| o.keys())
            .collect();
        let mut differs: Vec<String> = Vec::new();
        for key in keys {
            let (was, now) = (&recorded[key.as_str()], &plan[key.as_str()]);
            let line = format!("{key}: {was} recorded, {now} now");
            if was != now && !differs.contains(&line) {
                differs.push(line);
            }
        }
        return Err(Error::BadInput(format!(
            "{flag}: {} holds another sweep ({}; see {}); finish it with the flags it was \
             started with, {instead}",
            root.display(),
            differs.join("; "),
            plan_path.display()
        )));
    }
    // --force keeps the old sweep whole until the new one is complete: moved aside now, put
    // back if the new one fails, removed once its grid is written.
    let aside = if root.exists() && common.force && !joining {
        if !is_sweep_written_by_cascade(&root) {
            return Err(Error::BadInput(format!(
                "{} exists and is not a sweep directory (no sweep.json written by cascade); \
                 refusing to replace it",
                root.display()
            )));
        }
        refuse_foreign_in_sweep(&root)?;
        results::refuse_replacing_cwd(&root)?;
        Some(results::move_aside(&root)?)
    } else {
        None
    };
    // From here on a failure puts the old sweep back.
    let created = match out {
        Some(_) => fs::create_dir_all(&root)
            .map_err(|e| Error::BadInput(format!("cannot create {}: {e}", root.display()))),
        None => results::claim_unused(&parent, &stem).map(|claimed| root = claimed),
    };
    let filled = created.and_then(|()| {
        let grid = Grid {
            root: &root,
            axes: &axes,
            cells: &cells,
            name: &name,
            flag,
            instead,
            shard,
        };
        grid.fill(&plan, scenarios, args)
    });
    let Some(aside) = aside else {
        return filled;
    };
    match filled {
        Ok(()) => {
            if let Some(left) = results::remove_aside(Some(aside)) {
                noteln!(
                    "warning: the old sweep {} replaced, moved to {}, could not be removed",
                    root.display(),
                    left.display()
                );
            }
            Ok(())
        }
        Err(e) => Err(restore(e, &aside, &root)),
    }
}

/// The error of a forced sweep that failed, once the old sweep it was replacing is back in
/// `root` (or, where that failed, saying where the old sweep is).
fn restore(e: Error, aside: &Path, root: &Path) -> Error {
    let _ = fs::remove_dir_all(root);
    if !results::put_back(aside, root) {
        return Error::BadInput(format!(
            "{e}; the sweep it was replacing is in {}",
            aside.join("old").display()
        ));
    }
    match e {
        // Its finished cells went with it: nothing to resume.
        Error::SweepInterrupted(_) => Error::Interrupted,
        Error::BadInput(why) => Error::BadInput(format!(
            "{why}; {} holds the sweep it was replacing, unchanged",
            root.display()
        )),
        e => e,
    }
}

/// A validated grid and the directory it is written into.
struct Grid<'a> {
    root: &'a Path,
    axes: &'a [Axis],
    cells: &'a [sweep::Cell],
    name: &'a str,
    flag: &'a str,
    instead: &'a str,
    shard: Option<Shard>,
}

impl Grid<'_> {
    /// Writes the plan, runs every cell not yet done (this shard's only, with `--shard`) and
    /// then, without `--shard`, the grid summary and heatmaps.
    fn fill(
        &self,
        plan: &serde_json::Value,
        scenarios: Vec<Scenario>,
        args: &SweepArgs,
    ) -> Result<()> {
        let Grid {
            root,
            axes,
            cells,
            name,
            flag,
            instead,
            shard,
        } = *self;
        let StudyArgs {
            scenario: scenario_path,
            common,
            outputs,
        } = &args.study;
        // Mark the directory as a sweep at once, so --force can recognise it even if
        // interrupted.
        let json = serde_json::to_string_pretty(plan).expect("json");
        results::write_file_atomic(&root.join("sweep.json"), format!("{json}\n").as_bytes())?;
        // Another shard may be writing a cell right now: only a whole sweep clears partial ones.
        if shard.is_none() {
            remove_partials(root)?;
        }
        let mine = |i: usize| shard.is_none_or(|s| i as u64 % s.count == s.index - 1);

        // Every kept cell is checked before any runs: a refused resume changes nothing.
        for (i, (cell, scenario)) in cells.iter().zip(&scenarios).enumerate() {
            let dir = root.join(cell.name(axes));
            if !mine(i) || !dir.exists() {
                continue;
            }
            // A cell is renamed into place whole, so a cell directory without a manifest or
            // a readable summary is damaged or not the sweep's: named, and left to the user.
            if !dir.join("manifest.json").exists() {
                return Err(Error::BadInput(format!(
                    "{flag}: {} is not a finished cell (no manifest.json); remove it and \
                     resume again to run it anew",
                    dir.display()
                )));
            }
            same_study(&dir, scenario, flag, instead)?;
            // Read here to be checked, and again for the grid below: holding them between
            // the two would keep up to 10,000 summaries (100 KB each, five policies) at once.
            cell_summary(&dir).map_err(|e| {
                Error::BadInput(format!(
                    "{flag}: {e}; remove {} and resume again to run it anew",
                    dir.display()
                ))
            })?;
        }
        let mut rows: Vec<GridRow> = Vec::new();
        let total = cells.len();
        for (i, (cell, scenario)) in cells.iter().zip(scenarios).enumerate() {
            if !mine(i) {
                continue;
            }
            let cell_name = cell.name(axes);
            let dir = root.join(&cell_name);
            let values: Vec<String> = cell.values.iter().map(|(_, v)| v.clone()).collect();
            // What the cell runs, or ran (`same_study` checked a kept cell's manifest).
            let sha256 = scenario.sha256();
            if dir.join("manifest.json").exists() {
                if !common.quiet {
                    noteln!("cell {}/{total} {cell_name}: done earlier, skipped", i + 1);
                }
            } else {
                if !common.quiet {
                    noteln!(
                        "cell {}/{total} {cell_name}: {} paths",
                        i + 1,
                        scenario.file().simulation.paths
                    );
                }
                // The cell's own values, as a run of this one cell would record its --set.
                let set: Vec<String> = cell
                    .values
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let provenance = Provenance::now(scenario_path, &set);
                let destination = Destination::plan(Some(&dir), root, name, None, true)?;
                // An interrupt loses this cell only: the finished ones stay for --resume.
                let kept = |e: Error| match e {
                    Error::Interrupted => Error::SweepInterrupted(root.to_path_buf()),
                    e => e,
                };
                let study = study::simulate(scenario, None, common.options()).map_err(kept)?;
                let manifest = study.manifest(&provenance);
                super::placed(
                    destination
                        .commit(|d| {
                            study.write(d, &manifest, &provenance, outputs.parquet)?;
                            if !outputs.no_report {
                                cascade::report::build(d)?;
                            }
                            Ok(())
                        })
                        .map_err(kept)?,
                );
            }
            let summary = cell_summary(&dir).map_err(Error::BadInput)?;
            rows.extend(sweep::rows_of(&cell_name, &values, &sha256, &summary));
        }
        if let Some(s) = shard {
            // The grid needs every shard's cells: the final --resume writes it.
            sayln!(
                "shard {s}: {} of {total} cells in {}; when every shard has finished, `cascade \
                 sweep` with the same flags, --resume and no --shard writes grid.csv",
                (0..total).filter(|&i| mine(i)).count(),
                root.display()
            );
            return Ok(());
        }
        if !outputs.no_report {
            heatmaps(root, axes, &rows, plan)?;
        }
        results::write_file_atomic(
            &root.join("grid.csv"),
            sweep::grid_csv(axes, &rows).as_bytes(),
        )?;
        let json =
            serde_json::to_string_pretty(&sweep::grid_json(plan, axes, &rows)).expect("json");
        results::write_file_atomic(&root.join("grid.json"), format!("{json}\n").as_bytes())?;
        say!("{}", super::table::grid(axes, &rows));
        sayln!(
            "{} x {}: {}",
            counted(total, "cell", "cells"),
            counted(rows.len() / total.max(1), "policy", "policies"),
            root.join("grid.csv").display()
        );
        Ok(())
    }
}

/// Whether `--force` may delete `root`: its `sweep.json` is the plan a sweep writes first,
/// not merely some other program's file of that name.
fn is_sweep_written_by_cascade(root: &Path) -> bool {
    fs::read(root.join("sweep.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|plan| plan["axes"].is_array() && plan["scenario"].is_string())
}

/// Refuses to let `--force` delete the sweep `root` while it, or one of its cells, holds
/// what the sweep did not write (see [`results::refuse_foreign_entries`]).
fn refuse_foreign_in_sweep(root: &Path) -> Result<()> {
    const SWEEP_ENTRIES: &[&str] = &["sweep.json", "grid.csv", "grid.json"];
    results::refuse_foreign_entries(
        root,
        |name, path| {
            if name == results::CHARTS {
                // Every heatmap's name starts so (what follows is a policy's name, which may
                // hold anything a file name may).
                results::Entry::Folder(|name| {
                    results::is_chart_file(name, |stem| stem.starts_with(HEATMAP))
                })
            } else if SWEEP_ENTRIES.contains(&name) || results::is_result_dir(path) {
                results::Entry::Ours
            } else {
                results::Entry::Foreign
            }
        },
        "--force",
    )?;
    let entries =
        fs::read_dir(root).map_err(|e| Error::io(format!("cannot read {}", root.display()), e))?;
    for cell in entries.flatten().map(|e| e.path()) {
        if cell.is_dir() && results::is_result_dir(&cell) {
            results::refuse_foreign_in_result(&cell)?;
        }
    }
    Ok(())
}

fn is_sweep(root: &Path) -> bool {
    root.join("grid.json").exists() || root.join("sweep.json").exists()
}

/// The plan of the sweep in the directory `--resume` or `--shard` names (its `sweep.json`).
/// A shard without `--resume` may find no directory, or one another shard has only just
/// created: it starts the sweep (none yet). `--resume` needs a sweep to finish: starting a new
/// one in a mistyped or wrong `--out` would silently rerun every cell.
fn recorded_plan(
    root: &Path,
    flag: &str,
    resume: bool,
    shard: bool,
) -> Result<Option<serde_json::Value>> {
    if !is_sweep(root) && shard && !resume && being_started(root) {
        return Ok(None);
    }
    // Another shard may have written the plan since the first look.
    if !is_sweep(root) {
        if !resume {
            return Err(Error::BadInput(format!(
                "{flag}: {} is not a sweep directory (no sweep.json) and is not empty; give \
                 another --out",
                root.display()
            )));
        }
        let why = if root.exists() {
            "it is not a sweep directory (no sweep.json)"
        } else {
            "it does not exist; leave out --resume to start a new sweep there"
        };
        return Err(Error::BadInput(format!(
            "--resume: nothing to resume in {}: {why}",
            root.display()
        )));
    }
    let path = root.join("sweep.json");
    let text = fs::read_to_string(&path)
        .map_err(|e| Error::BadInput(format!("{flag}: cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::BadInput(format!("{flag}: {}: {e}", path.display())))
}

/// Every cell's scenario (the file under the cell's values and `base`), each checked as
/// `run` checks one, memory included. Every refused cell is counted and the first few named,
/// as validation names every problem of one file: a grid with two bad values was refused
/// for the first alone.
fn load_cells(
    scenario_path: &Path,
    cells: &[sweep::Cell],
    axes: &[Axis],
    base: &[Override],
    options: &RunOptions,
) -> Result<Vec<Scenario>> {
    const CELLS_SHOWN: usize = 3;
    let (mut refused, mut refused_count) = (Vec::new(), 0usize);
    let mut scenarios: Vec<Scenario> = Vec::with_capacity(cells.len());
    for (i, cell) in cells.iter().enumerate() {
        let which = || format!("cell {}/{} {}", i + 1, cells.len(), cell.name(axes));
        let checked = Scenario::load(scenario_path, &[cell.overrides(), base.to_vec()].concat())
            .and_then(|scenario| {
                study::check_memory(&scenario, None, options)?;
                Ok(scenario)
            });
        let scenario = match checked {
            Ok(scenario) => scenario,
            Err(e @ (Error::InvalidScenario { .. } | Error::BadInput(_))) => {
                refused_count += 1;
                if refused.len() < CELLS_SHOWN {
                    let why = match e {
                        Error::BadInput(why) => why,
                        e => e.to_string(),
                    };
                    refused.push(format!("{}: {why}", which()));
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        // However an axis reaches the seed (`simulation.seed`, or the whole `simulation`
        // table), the cells must share it. (Compared while every cell so far loaded, so that
        // the first one kept is cell 1.)
        if let Some(one) = scenarios.first().filter(|_| refused_count == 0)
            && scenario.seed() != one.seed()
        {
            return Err(Error::BadInput(format!(
                "{} would draw from seed {} and cell 1 from seed {}: {}",
                which(),
                scenario.seed(),
                one.seed(),
                sweep::ONE_SEED
            )));
        }
        scenarios.push(scenario);
    }
    if refused_count == 0 {
        return Ok(scenarios);
    }
    let more = refused_count - refused.len();
    let rest = if more > 0 {
        format!("\n(and {})", counted(more, "more cell", "more cells"))
    } else {
        String::new()
    };
    Err(Error::BadInput(format!("{}{rest}", refused.join("\n"))))
}

/// Whether `root` is a sweep no shard has got further with than writing its plan: absent,
/// empty, or holding only the temporary files plans are written through (shards started
/// together each write the plan, and each sees the others' files in flight).
fn being_started(root: &Path) -> bool {
    match fs::read_dir(root) {
        Err(_) => !root.exists(),
        Ok(entries) => entries.flatten().all(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(results::WRITE_PREFIX)
        }),
    }
}

/// Checks that a cell finished by an earlier sweep is the cell this sweep would run: same
/// resolved scenario (file, overrides, paths, seed) and same version. Resuming with other
/// flags would otherwise mix cells of two different studies in one grid.
fn same_study(dir: &Path, scenario: &Scenario, flag: &str, instead: &str) -> Result<()> {
    let path = dir.join("manifest.json");
    let text = fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::BadInput(format!("{}: {e}", path.display())))?;
    let recorded = |key: &str| manifest[key].as_str().unwrap_or_default().to_string();
    let why = if recorded("scenario_sha256") != scenario.sha256() {
        // Name what differs where the keys say it; else a data file it read differs.
        let ran = fs::read_to_string(dir.join("scenario.toml")).unwrap_or_default();
        let what = cascade::scenario::differences(&ran, &scenario.to_toml_for_results())
            .map_or_else(
                || "a data file it reads differs".to_string(),
                |keys| format!("{keys}, as run vs now"),
            );
        format!("another resolved scenario ({what}: other --set, --paths, --seed or scenario file)")
    } else if recorded("version") != cascade::VERSION || recorded("build") != cascade::BUILD {
        "another version or build of cascade".to_string()
    } else {
        return Ok(());
    };
    Err(Error::BadInput(format!(
        "{flag}: {} was run with {why}; finish it with the flags it was started with, \
         {instead}",
        dir.display()
    )))
}

/// The `summary.json` of the finished cell `dir`, or what is wrong with it.
fn cell_summary(dir: &Path) -> std::result::Result<serde_json::Value, String> {
    let path = dir.join("summary.json");
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Removes directories a run interrupted before it could move its result into place, but
/// none a live process is still writing (a shard's, run against the advice beside a whole
/// sweep).
fn remove_partials(root: &Path) -> Result<()> {
    let entries =
        fs::read_dir(root).map_err(|e| Error::io(format!("cannot list {}", root.display()), e))?;
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(cascade::results::PARTIAL_PREFIX)
            && !results::held(&entry.path())
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// What the name of every heatmap file starts with.
const HEATMAP: &str = "heatmap-";

/// With exactly two swept keys, a heatmap per policy of the headline figures over the grid,
/// in `charts/` of the sweep directory.
fn heatmaps(root: &Path, axes: &[Axis], rows: &[GridRow], plan: &serde_json::Value) -> Result<()> {
    let swept: Vec<usize> = (0..axes.len())
        .filter(|&i| axes[i].values.len() > 1)
        .collect();
    let [x, y] = swept[..] else {
        return Ok(());
    };
    let charts = root.join(results::CHARTS);
    fs::create_dir_all(&charts)
        .map_err(|e| Error::io(format!("cannot create {}", charts.display()), e))?;
    let mut policies: Vec<&str> = Vec::new();
    for r in rows {
        if !policies.contains(&r.policy.as_str()) {
            policies.push(&r.policy);
        }
    }
    let stems = chart_stems(&policies);
    // What a chart taken out of the sweep directory would need to say where it came from.
    let paths = plan["paths"]
        .as_u64()
        .map_or("paths as each cell sets them".to_string(), |p| {
            format!("{p} paths a cell")
        });
    let from = format!(
        "{} sweep, {paths}, seed {}",
        plan["scenario"].as_str().unwrap_or_default(),
        plan["seed"]
    );
    for (figure, metric, stat) in [
        ("liquidated_notional_mean", "liquidated_notional", "mean"),
        ("bad_debt_mean", "bad_debt", "mean"),
        ("max_drawdown_p50", "max_drawdown", "median"),
    ] {
        let grid_of = |policy: &str| -> Vec<Vec<f64>> {
            axes[y]
                .values
                .iter()
                .map(|yv| {
                    axes[x]
                        .values
                        .iter()
                        .map(|xv| {
                            rows.iter()
                                .find(|r| {
                                    r.policy == policy && r.values[x] == *xv && r.values[y] == *yv
                                })
                                .and_then(|r| r.figures.iter().find(|(k, _)| k == figure))
                                .map_or(f64::NAN, |(_, v)| *v)
                        })
                        .collect()
                })
                .collect()
        };
        let grids: Vec<Vec<Vec<f64>>> = policies.iter().map(|p| grid_of(p)).collect();
        let (label, unit) = cascade::units::metric(metric);
        // One scale for every policy's heatmap of the metric: side by side, one colour is
        // one value (each drawn on its own range, a policy that liquidated nothing was
        // coloured like another's billions).
        let scale =
            cascade::charts::ColourScale::spanning(grids.iter().flatten().flatten().copied(), unit);
        let cells = format!("{stat} {label}");
        for ((policy, stem), values) in policies.iter().zip(&stems).zip(&grids) {
            let grid = cascade::charts::Grid {
                x_key: &axes[x].key,
                x_values: &axes[x].values,
                y_key: &axes[y].key,
                y_values: &axes[y].values,
                values,
                metric: &cells,
                unit,
                caption: &from,
                scale,
            };
            let stem = charts.join(format!("{HEATMAP}{stem}-{figure}"));
            cascade::charts::heatmap(&stem, &format!("{policy}: {cells}"), &grid)?;
        }
    }
    Ok(())
}

/// The part of each policy's chart file names that names it: the name with the characters
/// other systems' file names may not hold replaced, or, if that would give two policies one
/// file, its number before it as well (`1-a_b`, `2-a_b`).
fn chart_stems(policies: &[&str]) -> Vec<String> {
    let safe: Vec<String> = policies.iter().map(|p| sweep::file_safe(p)).collect();
    let clash = safe.iter().enumerate().any(|(i, s)| safe[..i].contains(s));
    if clash {
        safe.iter()
            .enumerate()
            .map(|(i, s)| format!("{}-{s}", i + 1))
            .collect()
    } else {
        safe
    }
}

/// Refuses a grid whose cells would share a directory (values that differ only in characters
/// a directory name cannot hold, such as `a/b` and `a_b`) or whose directory name is too long
/// for the file system, before anything runs: a shared directory would make the second cell
/// silently reuse the first one's results.
fn distinct_cell_names(cells: &[sweep::Cell], axes: &[Axis]) -> Result<()> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, cell) in cells.iter().enumerate() {
        let name = cell.name(axes);
        if name.len() > 255 {
            return Err(Error::BadInput(format!(
                "cell {} of the sweep would be a directory named `{name}`, longer than the \
                 255 bytes a file system allows; use shorter values",
                i + 1
            )));
        }
        if let Some(j) = seen.insert(name.clone(), i) {
            return Err(Error::BadInput(format!(
                "cells {} and {} of the sweep would both be written to the directory `{name}` \
                 (their values differ only in characters a directory name cannot hold); \
                 give values that differ in letters, digits, `.`, `_`, `-` or `+`",
                j + 1,
                i + 1
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::chart_stems;

    #[test]
    fn chart_file_names_hold_only_portable_characters_and_never_clash() {
        // `:`, `&`, spaces and accents do not belong in a file copied to another system.
        assert_eq!(
            chart_stems(&["fragmented", "cap 5x: EU&US (50%) ü"]),
            ["fragmented", "cap_5x__EU_US__50____"]
        );
        // Two names that become one: each numbered, so neither chart replaces the other.
        assert_eq!(chart_stems(&["a b", "a_b", "c"]), ["1-a_b", "2-a_b", "3-c"]);
    }
}
