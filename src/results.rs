//! The result directory: where it goes, what it holds, and that it appears whole or not at all.
//!
//! Files are written into a hidden temporary directory beside the target and renamed into
//! place when everything succeeded, so a failed run leaves nothing behind and a reader never
//! sees a half-written result. The target is checked before the simulation starts, so a bad
//! `--out` fails in the first second, not after an hour.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::runner::{INTERRUPT, RunOutput};
use crate::scenario::Scenario;
use crate::summary::Summary;
use crate::timeline::QUANTILES;

/// Temporary directories being filled, so that an exit that skips destructors (a second
/// interrupt) can still remove them: see [`remove_partial`].
static PARTIAL: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The folders made for results not yet written ([`MadeFolders`]), outermost first, for the
/// same exit: a run told to leave nothing behind must not leave them either.
static MADE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every result directory still being written, then the folders made for them. For a
/// process about to exit at once, without unwinding (the guards that remove them would not
/// run).
pub fn remove_partial() {
    for dir in taken(&PARTIAL) {
        let _ = fs::remove_dir_all(dir);
    }
    remove_empty(&taken(&MADE));
}

/// Empties `list`, returning what it held.
fn taken(list: &Mutex<Vec<PathBuf>>) -> Vec<PathBuf> {
    std::mem::take(&mut *list.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Removes the folders `dirs` (each after those holding it), innermost first, where empty.
fn remove_empty(dirs: &[PathBuf]) {
    // A folder something else has written into since is not empty, and stays, as do the
    // folders holding it.
    for dir in dirs.iter().rev() {
        let _ = fs::remove_dir(dir);
    }
}

/// A directory listed in `list` ([`PARTIAL`], [`MADE`]) while it lives.
#[derive(Debug)]
struct Listed {
    dir: PathBuf,
    list: &'static Mutex<Vec<PathBuf>>,
}

impl Listed {
    fn new(list: &'static Mutex<Vec<PathBuf>>, dir: &Path) -> Listed {
        let mut dirs = list.lock().unwrap_or_else(PoisonError::into_inner);
        dirs.push(dir.to_path_buf());
        Listed {
            dir: dir.to_path_buf(),
            list,
        }
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        let mut dirs = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = dirs.iter().rposition(|d| d == &self.dir) {
            dirs.remove(at);
        }
    }
}

/// A hidden directory that files are written into before they are moved into place: removed
/// when dropped (a failed or interrupted write), and by [`remove_partial`] on an exit that
/// skips destructors. Once its contents are moved away, dropping it removes nothing.
pub struct Staging {
    dir: tempfile::TempDir,
    /// The directory, held locked while this process writes it, where the file system can
    /// lock: see [`remove_abandoned`].
    _writing: Option<fs::File>,
    _listed: Listed,
}

impl Staging {
    /// A new staging directory in `parent`, named `prefix` and a random suffix.
    pub fn new_in(parent: &Path, prefix: &str) -> Result<Staging> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            // `parent` is a directory the user named (--out's, the result `cascade report`
            // rebuilds): one they cannot write in is bad input, as for `run`'s own check.
            .map_err(|e| {
                Error::at_path(
                    format!("cannot create a directory in {}", parent.display()),
                    e,
                )
            })?;
        let listed = Listed::new(&PARTIAL, dir.path());
        let writing = fs::File::open(dir.path())
            .ok()
            .filter(|d| d.try_lock().is_ok());
        Ok(Staging {
            dir,
            _writing: writing,
            _listed: listed,
        })
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What the directory an old result (or report) is moved aside to while its replacement moves
/// in starts with (then the process, the machine and a random suffix). Never removed by a
/// later run: a process killed between the two moves leaves the old result here, to be
/// recovered, rather than nowhere.
pub const REPLACED_PREFIX: &str = ".cascade-replaced-";

/// The folder `path` is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Moves the directory `new` to `target`. Whatever is already there is first moved aside
/// (to `old` in a new `.cascade-replaced-<pid>@<host>@<random>` beside it, a short name
/// whatever the target's length) and moved back if the move fails, so a failure leaves the
/// old one or the new one, never neither; deleting it first lost both where the deletion
/// failed halfway (a file the user may not remove, a file held open on NFS). Returns where the
/// old one went, for [`remove_aside`] once everything new is in place.
pub fn swap_in(new: &Path, target: &Path) -> Result<Option<PathBuf>> {
    let moved = |from: &Path, to: &Path| {
        fs::rename(from, to).map_err(|e| Error::io(format!("cannot write {}", to.display()), e))
    };
    if fs::symlink_metadata(target).is_err() {
        return moved(new, target).map(|()| None);
    }
    let aside = move_aside(target)?;
    if let Err(e) = moved(new, target) {
        // Another replacement of the same target may have moved in meanwhile: then the old
        // one stays aside, and the message says where.
        return Err(if put_back(&aside, target) {
            e
        } else {
            Error::BadInput(format!(
                "{e}; the result it would have replaced is in {}",
                aside.join("old").display()
            ))
        });
    }
    Ok(Some(aside))
}

/// Moves the directory `target` to `old` in a new `.cascade-replaced-<pid>@<host>@<random>`
/// beside it, and returns that directory, for [`put_back`] or [`remove_aside`].
pub fn move_aside(target: &Path) -> Result<PathBuf> {
    // A fresh directory, named by process, machine and a random suffix, that the old one is
    // moved into: no two replacements, even of processes with one pid on machines sharing the
    // file system, can pick the same place.
    let host = host().unwrap_or_else(|| "unknown".to_string());
    let aside = tempfile::Builder::new()
        .prefix(&format!("{REPLACED_PREFIX}{}@{host}@", std::process::id()))
        .tempdir_in(parent_of(target))
        .map_err(|e| Error::io(format!("cannot replace {}", target.display()), e))?
        .keep();
    if let Err(e) = fs::rename(target, aside.join("old")) {
        let _ = fs::remove_dir(&aside);
        return Err(Error::io(format!("cannot replace {}", target.display()), e));
    }
    Ok(aside)
}

/// Moves what [`swap_in`] or [`move_aside`] moved `aside` back to `target` (which must be
/// free again); whether it could.
pub fn put_back(aside: &Path, target: &Path) -> bool {
    let back = fs::rename(aside.join("old"), target).is_ok();
    if back {
        let _ = fs::remove_dir(aside);
    }
    back
}

/// Removes what [`swap_in`] moved aside; returns it if it could not be removed (the new
/// directory is in place all the same: worth a warning, not a failure).
pub fn remove_aside(aside: Option<PathBuf>) -> Option<PathBuf> {
    aside.filter(|dir| fs::remove_dir_all(dir).is_err())
}

/// A result moved into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Where it is.
    pub path: PathBuf,
    /// The old result it replaced, moved aside, where it could not be removed.
    pub leftover: Option<PathBuf>,
}

/// Where a run's results will go.
#[derive(Debug)]
pub struct Destination {
    target: PathBuf,
    /// `output/<name>/latest`, updated after a default-location run.
    latest: Option<PathBuf>,
    force: bool,
    /// The folders planning made for the result, removed again if it is never committed.
    made: MadeFolders,
}

impl Destination {
    /// Plans the destination: `out` if given (refused if it exists, unless `force`), else a
    /// new `root/<scenario>/<UTC timestamp>[-<tag>]/` that never collides with another run,
    /// even one finishing at the same second (shards started together, say).
    pub fn plan(
        out: Option<&Path>,
        root: &Path,
        scenario: &str,
        tag: Option<&str>,
        force: bool,
    ) -> Result<Destination> {
        if let Some(out) = out {
            let target = out_directory(out)?;
            if target.exists() && !force {
                return Err(already_exists(&target, ""));
            }
            if target.exists() && !is_result_dir(&target) {
                return Err(Error::BadInput(format!(
                    "{} exists and is not a cascade result directory (no manifest.json written by \
                     cascade); refusing to replace it",
                    target.display()
                )));
            }
            if target.exists() {
                refuse_foreign_in_result(&target)?;
                refuse_replacing_cwd(&target)?;
            }
            let made = ensure_parent(&target)?;
            // The name itself may be refused (too long, say): found now, not after the run.
            if !target.exists() {
                match fs::create_dir(&target).and_then(|()| fs::remove_dir(&target)) {
                    Ok(()) => {}
                    // Made meanwhile, by another run to the same --out: replaced at the end
                    // (as a result) with --force, else the same refusal as above.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        if !force {
                            return Err(already_exists(&target, ""));
                        }
                    }
                    Err(e) => {
                        return Err(Error::at_path(
                            format!("cannot create {}", target.display()),
                            e,
                        ));
                    }
                }
            }
            return Ok(Destination {
                target,
                latest: None,
                force,
                made,
            });
        }
        let dir = root.join(scenario);
        let made = ensure_parent(&dir.join("x"))?;
        let latest = dir.join("latest");
        // Only a link is replaced: a directory there (a result written with `--out
        // .../latest`) cannot be, and a file (someone's notes) would be lost. Found now, not
        // after the run. (Where there are no symbolic links, `latest` is a file naming the
        // newest result: see `point_latest`.)
        if let Ok(m) = fs::symlink_metadata(&latest)
            && !m.file_type().is_symlink()
            && (m.is_dir() || cfg!(unix))
        {
            let what = if m.is_dir() { "a directory" } else { "a file" };
            return Err(Error::BadInput(format!(
                "{} is {what}, not the link to the newest result; rename or remove it, or \
                 pass --out",
                latest.display()
            )));
        }
        let mut stamp = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ").to_string();
        if let Some(tag) = tag {
            stamp = format!("{stamp}-{tag}");
        }
        let target = unused_name(&dir, &stamp);
        Ok(Destination {
            target,
            latest: Some(latest),
            force: false,
            made,
        })
    }

    /// The final directory.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Writes the directory's files with `fill` into a temporary directory, then moves it into
    /// place (replacing an old result only with `force`) and updates `latest`. On failure
    /// the folders [`Destination::plan`] made are removed again, where still empty.
    pub fn commit(self, fill: impl FnOnce(&Path) -> Result<()>) -> Result<Committed> {
        let committed = self.place(fill)?;
        self.made.keep();
        Ok(committed)
    }

    fn place(&self, fill: impl FnOnce(&Path) -> Result<()>) -> Result<Committed> {
        let parent = parent_of(&self.target);
        fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
        remove_abandoned(parent);
        let stage = Staging::new_in(parent, &partial_prefix())?;
        fill(stage.path())?;
        sync_tree(stage.path())
            .map_err(|e| Error::io(format!("cannot write {}", stage.path().display()), e))?;
        // An interrupt (Ctrl-C, SIGTERM from a scheduler) that came while the files were being
        // written: drop them rather than leave a result the user asked not to have.
        if INTERRUPT.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        if self.force {
            // What the plan checked hours ago may have been replaced since: only a result is
            // ever replaced.
            if fs::symlink_metadata(&self.target).is_ok() && !is_result_dir(&self.target) {
                return Err(Error::BadInput(format!(
                    "{} was replaced during the run by something that is not a cascade result \
                     directory; refusing to replace it (the run's result is discarded)",
                    self.target.display()
                )));
            }
            if self.target.is_dir() {
                refuse_foreign_in_result(&self.target)?;
            }
            // Only an explicit --out is forced, and it has no `latest` link.
            let aside = swap_in(stage.path(), &self.target)?;
            sync_dir(parent);
            return Ok(Committed {
                path: self.target.clone(),
                leftover: remove_aside(aside),
            });
        }
        let mut target = self.target.clone();
        let mut n = 2;
        loop {
            match fs::rename(stage.path(), &target) {
                Ok(()) => break,
                // A default-named target taken meanwhile by a concurrent run: take the next name.
                Err(_) if self.latest.is_some() && target.exists() && n < 1000 => {
                    let name = self
                        .target
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy();
                    target = self.target.with_file_name(format!("{name}-{n}"));
                    n += 1;
                }
                // An explicit --out made meanwhile, by another run to it.
                Err(_) if self.latest.is_none() && fs::symlink_metadata(&target).is_ok() => {
                    return Err(already_exists(&target, " (made during the run)"));
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot move results to {}", target.display()),
                        e,
                    ));
                }
            }
        }
        if let Some(latest) = &self.latest {
            point_latest(latest, &target)?;
        }
        sync_dir(parent);
        Ok(Committed {
            path: target,
            leftover: None,
        })
    }
}

/// The refusal of an `--out` that exists, without `--force`; `when` says when it appeared.
/// `--force` is offered only where it would replace what is there: a result.
fn already_exists(target: &Path, when: &str) -> Error {
    let instead = if is_result_dir(target) {
        "pass --force to replace it, or choose another --out"
    } else {
        "it is not a cascade result directory, which --force never replaces: choose another \
         --out"
    };
    Error::BadInput(format!(
        "{} already exists{when}; {instead}",
        target.display()
    ))
}

/// `dir/stem`, or the first of `dir/stem-2`, `dir/stem-3`, ... that does not exist: a default
/// name that never collides with another result, even one started in the same second.
pub fn unused_name(dir: &Path, stem: &str) -> PathBuf {
    (1..)
        .map(|n| numbered(dir, stem, n))
        .find(|target| !target.exists())
        .expect("some name is free")
}

/// The `n`th name [`unused_name`] and [`claim_unused`] try: `dir/stem`, then `dir/stem-n`.
fn numbered(dir: &Path, stem: &str, n: u32) -> PathBuf {
    if n == 1 {
        dir.join(stem)
    } else {
        dir.join(format!("{stem}-{n}"))
    }
}

/// Creates and returns `dir/stem`, or the first of `dir/stem-2`, `dir/stem-3`, ... that no one
/// has created: unlike [`unused_name`], taken at once, so that two processes started in the
/// same second (sweeps replicated once per seed, say) never share one.
pub fn claim_unused(dir: &Path, stem: &str) -> Result<PathBuf> {
    fs::create_dir_all(dir)
        .map_err(|e| Error::at_path(format!("cannot create {}", dir.display()), e))?;
    let mut n = 1;
    loop {
        let target = numbered(dir, stem, n);
        match fs::create_dir(&target) {
            Ok(()) => return Ok(target),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => {
                return Err(Error::at_path(
                    format!("cannot create {}", target.display()),
                    e,
                ));
            }
        }
    }
}

/// `--out` as the directory a run or sweep writes (and with `--force` replaces): `d/.` is `d`
/// (the `.` would make a replacement remove `d`'s files, then fail to remove `d` itself);
/// `.`, `..` and the root name no directory that can be replaced, and a symbolic link would be
/// replaced by a directory (a `latest` that no later run can update) while what it points at
/// stays: all refused.
pub fn out_directory(out: &Path) -> Result<PathBuf> {
    let normal: PathBuf = out.components().collect();
    if !matches!(normal.components().next_back(), Some(Component::Normal(_))) {
        return Err(Error::BadInput(format!(
            "--out {} must name the result directory itself (not `.`, `..` or the root), \
             e.g. --out results/run-1",
            out.display()
        )));
    }
    refuse_link(&format!("--out {}", out.display()), &normal, "directory")?;
    Ok(normal)
}

/// Refuses to write `path` (given as `named`: `--out res`, say) when it is a symbolic link,
/// dangling or not: writing renames the new `what` over the link, which would leave what it
/// points at as it was, and a dangling one would be replaced although something of that name
/// exists.
pub fn refuse_link(named: &str, path: &Path, what: &str) -> Result<()> {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        let to = fs::read_link(path).unwrap_or_default();
        return Err(Error::BadInput(format!(
            "{named} is a symbolic link (to {}); give the {what} it points to",
            to.display()
        )));
    }
    Ok(())
}

/// Refuses to replace `target` when the command runs inside it: moved aside, it would take
/// the working directory along, and every relative path (`--out ../d` itself) would then name
/// something else, so the new result landed beside the old one, not in its place.
pub fn refuse_replacing_cwd(target: &Path) -> Result<()> {
    let here = std::env::current_dir().and_then(fs::canonicalize);
    if let (Ok(here), Ok(there)) = (here, fs::canonicalize(target))
        && here.starts_with(&there)
    {
        return Err(Error::BadInput(format!(
            "{} holds the current directory; to replace it, run from outside it",
            target.display()
        )));
    }
    Ok(())
}

/// Whether `dir` holds a result `cascade` wrote: its `manifest.json` is JSON whose `tool` is
/// `cascade`. A directory that merely holds some other program's `manifest.json` (a web app, a
/// browser extension) is not one, so `--force` never deletes it.
pub fn is_result_dir(dir: &Path) -> bool {
    fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|m| m["tool"] == "cascade")
}

/// The entries `cascade` writes in a result directory (files, and the `charts` and `books`
/// folders), a shard's raw histograms among them: anything else there was put by someone
/// else.
const RESULT_ENTRIES: &[&str] = &[
    "manifest.json",
    "scenario.toml",
    "summary.json",
    "paths.csv",
    crate::columnar::FILE,
    "timeline.csv",
    crate::shard::HISTOGRAMS,
    "report.html",
    CHARTS,
    crate::scenario::COPIES,
];

/// The folder of a result directory (or a sweep's) that holds its charts.
pub const CHARTS: &str = "charts";

/// Whether `name` is a chart's file, `stem.png` or `stem.svg`, of a stem `is_stem` accepts.
pub fn is_chart_file(name: &str, is_stem: impl Fn(&str) -> bool) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(stem, ext)| matches!(ext, "png" | "svg") && is_stem(stem))
}

/// What a kind of directory makes of one of its entries, for [`refuse_foreign_entries`].
pub enum Entry {
    /// Not written by cascade.
    Foreign,
    /// Written by cascade, whatever it holds.
    Ours,
    /// A folder cascade writes, holding its files of the names the function accepts: a
    /// folder's contents go with it, so someone's own plot put among the charts would too.
    Folder(fn(&str) -> bool),
}

/// Refuses to let `deleter` (`--force`, say) delete `dir` or some of its folders while they
/// hold entries `cascade` did not write (a notebook beside the results, say): naming them, so
/// the user can move them out. `ours` tells this kind of directory's own entries by name and
/// path; a temporary file or folder of cascade (`.cascade-...`, left by an interrupted write)
/// is always ours.
pub fn refuse_foreign_entries(
    dir: &Path,
    ours: impl Fn(&str, &Path) -> Entry,
    deleter: &str,
) -> Result<()> {
    let mut foreign = Vec::new();
    for (name, path) in listed(dir)? {
        match ours(&name, &path) {
            Entry::Ours => {}
            Entry::Foreign => foreign.push(name),
            // A link or a file where cascade writes a folder is not the folder.
            Entry::Folder(_) if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) => {
                foreign.push(name);
            }
            Entry::Folder(is_ours) => {
                for (inner, inner_path) in listed(&path)? {
                    let file = fs::symlink_metadata(&inner_path).is_ok_and(|m| m.is_file());
                    if !(file && is_ours(&inner)) {
                        foreign.push(format!("{name}/{inner}"));
                    }
                }
            }
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    let shown = foreign.len().min(5);
    let more = match foreign.len() - shown {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    Err(Error::BadInput(format!(
        "{} holds what cascade did not write ({}{more}), which {deleter} would delete; move it \
         out first, or remove the directory yourself",
        dir.display(),
        foreign[..shown].join(", ")
    )))
}

/// The entries of `dir` but cascade's temporary ones, by name and path.
fn listed(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?;
    Ok(entries
        .flatten()
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().to_string(),
                entry.path(),
            )
        })
        .filter(|(name, _)| !name.starts_with(".cascade-"))
        .collect())
}

/// What a result directory `run` or `merge` writes makes of its entry `name`.
fn result_entry(name: &str) -> Entry {
    match name {
        CHARTS => Entry::Folder(|name| is_chart_file(name, crate::report::is_chart_stem)),
        crate::scenario::COPIES => Entry::Folder(crate::scenario::is_copy_name),
        _ if RESULT_ENTRIES.contains(&name) => Entry::Ours,
        _ => Entry::Foreign,
    }
}

/// [`refuse_foreign_entries`] for a result directory `run` or `merge` writes, which `--force`
/// replaces whole.
pub fn refuse_foreign_in_result(dir: &Path) -> Result<()> {
    refuse_foreign_entries(dir, |name, _| result_entry(name), "--force")
}

/// [`refuse_foreign_entries`] for a result directory whose charts `cascade report` replaces.
pub fn refuse_foreign_charts(dir: &Path) -> Result<()> {
    let charts_only = |name: &str, _: &Path| match name {
        CHARTS => result_entry(name),
        _ => Entry::Ours,
    };
    refuse_foreign_entries(dir, charts_only, "`cascade report`")
}

/// What every temporary result directory's name starts with.
pub const PARTIAL_PREFIX: &str = ".cascade-partial-";

/// This machine's name, where the system tells it (Linux), to tell this machine's abandoned
/// temporary directories from those of runs on other nodes sharing the file system.
fn host() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    // The name is a field of the directory name, between `@`s.
    (!name.is_empty() && !name.contains(['@', '/'])).then(|| name.to_string())
}

/// `.cascade-partial-<pid>@<host>@`: who is writing the directory, so that a later run can
/// tell one abandoned by a killed process from one still being written.
fn partial_prefix() -> String {
    let host = host().unwrap_or_else(|| "unknown".to_string());
    format!("{PARTIAL_PREFIX}{}@{host}@", std::process::id())
}

/// Removes the temporary result directories in `parent` that a process of this machine left
/// when it was killed outright (SIGKILL, the OOM killer), which no handler can clean up.
/// Directories of live processes, of other machines or of unknown writers are left alone.
///
/// A process is live if its pid is, or if it holds its directory locked: a job in another PID
/// namespace of the same machine (a container) has a pid this one cannot see, and its
/// directory would otherwise be removed while it writes it. The kernel drops a killed
/// process's lock. Where the file system cannot lock a directory (some NFS mounts), the pid
/// decides alone.
fn remove_abandoned(parent: &Path) {
    let (Some(host), true) = (host(), Path::new("/proc/self").exists()) else {
        return;
    };
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let mut fields = name
            .strip_prefix(PARTIAL_PREFIX)
            .unwrap_or_default()
            .split('@');
        let (Some(pid), Some(writer)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if writer == host && !Path::new(&format!("/proc/{pid}")).exists() && !held(&entry.path()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether a process holds the directory `dir` locked ([`Staging`]): it is being written.
pub fn held(dir: &Path) -> bool {
    fs::File::open(dir).is_ok_and(|d| matches!(d.try_lock(), Err(fs::TryLockError::WouldBlock)))
}

/// Folders made for a result not yet written: dropped before [`MadeFolders::keep`], it
/// removes them again, innermost first, as far as they are empty, so that a run that fails
/// or is interrupted after planning leaves no empty folders behind.
#[derive(Debug)]
#[must_use = "dropping it removes the folders"]
pub struct MadeFolders(Vec<Listed>);

impl MadeFolders {
    /// `dirs`, outermost first, listed for [`remove_partial`] until kept or removed.
    fn new(dirs: Vec<PathBuf>) -> MadeFolders {
        MadeFolders(dirs.iter().map(|d| Listed::new(&MADE, d)).collect())
    }

    /// The result is written: the folders stay.
    pub fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for MadeFolders {
    fn drop(&mut self) {
        let dirs: Vec<PathBuf> = self.0.iter().map(|l| l.dir.clone()).collect();
        remove_empty(&dirs);
    }
}

/// Creates the directory a result will be moved into and checks that it can be written in,
/// so an unusable path fails as bad input before the simulation rather than after it.
fn ensure_parent(target: &Path) -> Result<MadeFolders> {
    let parent = parent_of(target);
    let mut missing: Vec<PathBuf> = parent
        .ancestors()
        .take_while(|dir| !dir.as_os_str().is_empty() && fs::symlink_metadata(dir).is_err())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    // Made before the folders, so that a failure part way removes those made so far.
    let made = MadeFolders::new(missing);
    if let Some(file) = parent.ancestors().find(|d| d.is_file()) {
        return Err(Error::BadInput(format!(
            "cannot create {} for the results: {} is a file, not a directory",
            parent.display(),
            file.display()
        )));
    }
    fs::create_dir_all(parent).map_err(|e| {
        Error::BadInput(format!(
            "cannot create {} for the results: {e}",
            parent.display()
        ))
    })?;
    tempfile::Builder::new()
        .prefix(".cascade-probe-")
        .tempfile_in(parent)
        .map_err(|e| Error::BadInput(format!("cannot write in {}: {e}", parent.display())))?;
    Ok(made)
}

/// Checks, before any simulation, that the file `path` (a calibrated scenario, a validation
/// table) can be written: not a directory or a symbolic link, in a folder that exists or can
/// be created and can be written in. Keep the folders made for it once the file is written.
pub fn check_file_target(path: &Path) -> Result<MadeFolders> {
    if path.is_dir() {
        return Err(Error::BadInput(format!(
            "--out {} is a directory; give the name of the file to write",
            path.display()
        )));
    }
    refuse_link(&format!("--out {}", path.display()), path, "file")?;
    refuse_special_file(path)?;
    ensure_parent(path)
}

/// Refuses to write over `path` when it is a device, a FIFO or a socket: the file written
/// beside it and renamed over it replaced `/dev/null` itself for root, and writing into a
/// FIFO blocks until something reads it.
pub fn refuse_special_file(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() && !m.file_type().is_symlink() => {
            Err(Error::BadInput(format!(
                "{} is a device, FIFO or socket, not a file; give the name of a file to write",
                path.display()
            )))
        }
        _ => Ok(()),
    }
}

/// Whether `a` and `b` name one existing file (through links or `..`, say).
pub fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Points `latest` at `target` (a sibling), replacing the old link atomically.
fn point_latest(latest: &Path, target: &Path) -> Result<()> {
    let name = target.file_name().expect("timestamped targets have a name");
    let dir = latest.parent().unwrap_or(Path::new("."));
    // A fresh name each time: runs that finish together (shards of one study, on one node
    // or several sharing the file system) each rename their own new link over `latest`.
    let tmp = tempfile::Builder::new()
        .prefix(".latest-")
        .make_in(dir, |tmp| {
            #[cfg(unix)]
            return std::os::unix::fs::symlink(name, tmp);
            #[cfg(not(unix))]
            fs::write(tmp, name.to_string_lossy().as_bytes())
        })
        .map_err(|e| Error::io(format!("cannot create a link in {}", dir.display()), e))?;
    tmp.persist(latest)
        .map(drop)
        .map_err(|e| Error::io(format!("cannot update {}", latest.display()), e.error))
}

/// What the name of every temporary file [`write_file_atomic`] writes through starts with.
pub const WRITE_PREFIX: &str = ".cascade-write-";

/// Writes the file `path` whole or not at all: into a temporary file of a fresh name beside
/// it, renamed over it once written. A reader never sees half a file, an interruption leaves
/// the old one, and processes writing the same file at once (shards of a sweep writing its
/// plan) do not write into each other's temporary file.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let err = |e| Error::io(format!("cannot write {}", path.display()), e);
    let mut builder = tempfile::Builder::new();
    builder.prefix(WRITE_PREFIX);
    // Readable as `fs::write` would leave it (0666 less the umask), not private like a
    // temporary file: grids and calibrated scenarios on a shared cluster file system.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    // On disk before the rename makes it the file: after a crash of the machine, not only of
    // the process, the name holds the old file or the new one, never an empty one.
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map(drop).map_err(|e| err(e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Flushes every file under `dir`, and the directories themselves, to disk: a result is
/// durable before the rename that publishes it.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        } else {
            fs::File::open(entry.path())?.sync_all()?;
        }
    }
    fs::File::open(dir)?.sync_all()
}

/// Flushes a directory's entries (a rename into it) to disk, where the system allows it: a
/// failure here loses durability across a crash of the machine, not the result.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// What `manifest.json` records: what was run, by which version, where and how long.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// Always `cascade`.
    pub tool: &'static str,
    /// Version of `cascade`.
    pub version: &'static str,
    /// The code it was built from ([`crate::BUILD`]).
    pub build: &'static str,
    /// Scenario file, as an absolute path ([`crate::study::absolute`]).
    pub scenario_path: String,
    /// SHA-256 of the scenario file as read.
    pub scenario_file_sha256: String,
    /// SHA-256 of the resolved `scenario.toml` (overrides and seed included).
    pub scenario_sha256: String,
    /// Seed.
    pub seed: u64,
    /// Paths in this result.
    pub paths: u64,
    /// First and one-past-last path index.
    pub path_range: [u64; 2],
    /// The shard this result is (`{ index, count }`), or null for a whole study.
    pub shard: Option<crate::shard::Shard>,
    /// SHA-256 of each file a merge reads from this shard (`paths.csv`, `histograms.bin`),
    /// by name, so that a merge refuses a file damaged or swapped since; null for a whole
    /// study.
    pub shard_files: Option<BTreeMap<String, String>>,
    /// The shard directories a merge combined, in path order, as absolute paths
    /// ([`crate::study::absolute`]); null for a result a single run wrote.
    pub merged_from: Option<Vec<String>>,
    /// Worker threads.
    pub threads: usize,
    /// `--set` overrides applied, as given.
    pub overrides: Vec<String>,
    /// UTC start time (RFC 3339).
    pub started_at: String,
    /// UTC end time (RFC 3339).
    pub finished_at: String,
    /// Wall-clock seconds of the whole run, to the microsecond.
    #[serde(serialize_with = "microseconds")]
    pub wall_seconds: f64,
    /// Wall-clock seconds of the simulation alone, to the microsecond.
    #[serde(serialize_with = "microseconds")]
    pub simulation_seconds: f64,
}

/// Seconds rounded to the microsecond: a clock's nanoseconds (and a float's last bits, as in
/// `0.09030588800000001`) are noise in a record read by people.
fn microseconds<S: serde::Serializer>(seconds: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64((seconds * 1e6).round() / 1e6)
}

fn create(dir: &Path, name: &str) -> Result<BufWriter<fs::File>> {
    let path = dir.join(name);
    fs::File::create(&path)
        .map(BufWriter::new)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

fn io_at(dir: &Path, name: &str) -> impl Fn(std::io::Error) -> Error {
    let path = dir.join(name);
    move |e| Error::io(format!("cannot write {}", path.display()), e)
}

/// Writes a value as pretty JSON with a trailing newline.
pub fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<()> {
    let mut w = create(dir, name)?;
    serde_json::to_writer_pretty(&mut w, value).map_err(|e| {
        Error::io(
            format!("cannot write {}", dir.join(name).display()),
            e.into(),
        )
    })?;
    writeln!(w)
        .and_then(|_| w.flush())
        .map_err(io_at(dir, name))
}

/// Writes the resolved scenario, with copies of its position snapshots in `books/` so the
/// result directory runs again on its own, wherever it is moved.
pub fn write_scenario(dir: &Path, scenario: &Scenario) -> Result<()> {
    let inputs = scenario.inputs();
    if !inputs.is_empty() {
        fs::create_dir_all(dir.join(crate::scenario::COPIES))
            .map_err(io_at(dir, crate::scenario::COPIES))?;
    }
    // The bytes the run read, not the file as it is now: it may have changed since.
    for input in inputs {
        fs::write(dir.join(&input.copy), &input.bytes).map_err(|e| {
            Error::io(
                format!("cannot copy {} into the results", input.source.display()),
                e,
            )
        })?;
    }
    fs::write(dir.join("scenario.toml"), scenario.to_toml_for_results())
        .map_err(io_at(dir, "scenario.toml"))
}

/// A double as the result CSVs write it: always with a decimal point (`0.0`, `5.0`), so that
/// pandas and polars, which type a CSV column by its values, read a column of USD or fractions
/// as floating point whatever its values. Written as `0`, a column that was zero on every
/// path (no ADL, no bad debt at one venue) was an integer column in one run and a float in
/// the next, and polars refused a file whose first hundred rows were whole numbers.
#[derive(Debug, Clone, Copy)]
pub struct CsvDouble(pub f64);

impl std::fmt::Display for CsvDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `{}` writes a finite double without an exponent, and with a decimal point exactly
        // when it has a fractional part.
        if self.0.is_finite() && self.0.fract() == 0.0 {
            write!(f, "{:.1}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Writes `paths.csv`: one row per policy and path, counts as integers and every other
/// figure as a [`CsvDouble`].
pub fn write_paths(dir: &Path, scenario: &Scenario, out: &RunOutput) -> Result<()> {
    let f = scenario.file();
    let names: Vec<String> = f.venues.iter().map(|v| v.name.clone()).collect();
    let counts = out.layout.counts();
    let mut w = create(dir, "paths.csv")?;
    let err = io_at(dir, "paths.csv");
    write!(w, "policy,path").map_err(&err)?;
    for c in out.layout.columns(&names) {
        write!(w, ",{c}").map_err(&err)?;
    }
    writeln!(w).map_err(&err)?;
    for (p, policy) in f.policies.iter().enumerate() {
        for path in out.range.start..out.range.end {
            write!(w, "{},{path}", policy.name).map_err(&err)?;
            for (&v, &count) in out.row(path, p).iter().zip(&counts) {
                if count {
                    write!(w, ",{v}").map_err(&err)?;
                } else {
                    write!(w, ",{}", CsvDouble(v)).map_err(&err)?;
                }
            }
            writeln!(w).map_err(&err)?;
        }
    }
    w.flush().map_err(&err)
}

/// Writes `timeline.csv`: per policy and step, quantile bands of price and of cumulative
/// liquidated notional (empty cells when the result holds no paths).
pub fn write_timeline(dir: &Path, scenario: &Scenario, out: &RunOutput) -> Result<()> {
    let f = scenario.file();
    let mut w = create(dir, "timeline.csv")?;
    let err = io_at(dir, "timeline.csv");
    let pct = |q: f64| format!("p{}", (q * 100.0).round());
    write!(w, "policy,step").map_err(&err)?;
    for prefix in ["price", "liquidated"] {
        for q in QUANTILES {
            write!(w, ",{prefix}_{}", pct(q)).map_err(&err)?;
        }
    }
    writeln!(w).map_err(&err)?;
    // With no paths (an empty shard) the bands are undefined: empty cells.
    let empty = out.range.is_empty();
    for (p, policy) in f.policies.iter().enumerate() {
        let (price, liq) = out.timeline.bands(p, f.price.start);
        for t in 0..price.nrows() {
            write!(w, "{},{}", policy.name, t + 1).map_err(&err)?;
            for v in price.row(t).iter().chain(liq.row(t).iter()) {
                if empty {
                    write!(w, ",").map_err(&err)?;
                } else {
                    write!(w, ",{}", CsvDouble(*v)).map_err(&err)?;
                }
            }
            writeln!(w).map_err(&err)?;
        }
    }
    w.flush().map_err(&err)
}

/// Writes the result files of a finished run into `dir`, all but `manifest.json`, which is
/// written last so that its end time covers the others.
pub fn write_all(
    dir: &Path,
    scenario: &Scenario,
    out: &RunOutput,
    summary: &Summary,
) -> Result<()> {
    write_scenario(dir, scenario)?;
    write_json(dir, "summary.json", summary)?;
    write_paths(dir, scenario, out)?;
    write_timeline(dir, scenario, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(parent: &Path, name: &str, file: &str) -> PathBuf {
        let dir = parent.join(name);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(file), name).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_csv_double_always_has_its_decimal_point_and_reads_back_exactly() {
        for (v, text) in [
            (0.0, "0.0"),
            (5.0, "5.0"),
            (-3.0, "-3.0"),
            (1e20, "100000000000000000000.0"),
            (0.25, "0.25"),
            (1322485212.3320394, "1322485212.3320394"),
            (1e-7, "0.0000001"),
        ] {
            let written = CsvDouble(v).to_string();
            assert_eq!(written, text);
            assert_eq!(written.parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn a_replaced_directory_gives_way_to_the_new_one_and_leaves_nothing_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let old = dir_with(tmp.path(), "res", "old.txt");
        let new = dir_with(tmp.path(), "new", "new.txt");
        let aside = swap_in(&new, &old).unwrap();
        assert!(aside.is_some());
        assert_eq!(remove_aside(aside), None);
        assert_eq!(names(tmp.path()), ["res"]);
        assert_eq!(names(&old), ["new.txt"]);
        // Nothing there yet: a plain move.
        let fresh = dir_with(tmp.path(), "fresh", "f.txt");
        assert_eq!(swap_in(&fresh, &tmp.path().join("other")).unwrap(), None);
        assert_eq!(names(tmp.path()), ["other", "res"]);
    }

    #[test]
    fn a_replacement_that_cannot_move_in_keeps_the_old_directory() {
        // The old result is moved aside before the new one moves in: when that move fails, the
        // old one goes back, whole. (Deleting it first lost both where the move, or the
        // deletion halfway, failed.)
        let tmp = tempfile::tempdir().unwrap();
        let old = dir_with(tmp.path(), "res", "old.txt");
        let missing = tmp.path().join("never-written");
        assert!(swap_in(&missing, &old).is_err());
        assert_eq!(names(tmp.path()), ["res"]);
        assert_eq!(fs::read_to_string(old.join("old.txt")).unwrap(), "res");
    }

    #[test]
    fn force_replaces_only_a_result_even_one_swapped_in_during_the_run() {
        let tmp = tempfile::tempdir().unwrap();
        let target = dir_with(tmp.path(), "res", "paths.csv");
        fs::write(target.join("manifest.json"), r#"{"tool": "cascade"}"#).unwrap();
        let destination = Destination::plan(Some(&target), tmp.path(), "s", None, true).unwrap();
        // During the run, another program puts its own directory there.
        fs::remove_dir_all(&target).unwrap();
        dir_with(tmp.path(), "res", "theirs.txt");
        let e = destination
            .commit(|d| fs::write(d.join("manifest.json"), "{}").map_err(|e| Error::io("w", e)))
            .unwrap_err();
        assert!(e.to_string().contains("refusing to replace it"), "{e}");
        assert_eq!(names(&target), ["theirs.txt"]);
        assert_eq!(names(tmp.path()), ["res"], "no staging directory left");
        // Nor a result that something else was put into during the run.
        fs::write(target.join("manifest.json"), r#"{"tool": "cascade"}"#).unwrap();
        let e = Destination::plan(Some(&target), tmp.path(), "s", None, true).unwrap_err();
        assert!(e.to_string().contains("(theirs.txt)"), "{e}");
        fs::remove_file(target.join("theirs.txt")).unwrap();
        let destination = Destination::plan(Some(&target), tmp.path(), "s", None, true).unwrap();
        fs::write(target.join("notes.ipynb"), "").unwrap();
        let e = destination
            .commit(|d| fs::write(d.join("new.txt"), "").map_err(|e| Error::io("w", e)))
            .unwrap_err();
        assert!(e.to_string().contains("(notes.ipynb)"), "{e}");
        assert_eq!(names(&target), ["manifest.json", "notes.ipynb"]);
        // A result there is replaced, with the temporary files an interrupted write left.
        fs::remove_file(target.join("notes.ipynb")).unwrap();
        fs::write(target.join(".cascade-write-x"), "").unwrap();
        Destination::plan(Some(&target), tmp.path(), "s", None, true)
            .unwrap()
            .commit(|d| fs::write(d.join("new.txt"), "").map_err(|e| Error::io("w", e)))
            .unwrap();
        assert_eq!(names(&target), ["new.txt"]);
    }

    #[test]
    fn an_out_made_during_the_run_is_refused_as_bad_input_and_kept() {
        // Another run to the same --out finished first: the raw "Directory not empty" was an
        // I/O failure (exit code 1), where it is the same refusal as before the run.
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("res");
        let destination = Destination::plan(Some(&target), tmp.path(), "s", None, false).unwrap();
        dir_with(tmp.path(), "res", "theirs.txt");
        let e = destination
            .commit(|d| fs::write(d.join("mine.txt"), "").map_err(|e| Error::io("w", e)))
            .unwrap_err();
        assert!(matches!(e, Error::BadInput(_)), "{e:?}");
        assert!(
            e.to_string()
                .contains("already exists (made during the run)"),
            "{e}"
        );
        assert_eq!(names(&target), ["theirs.txt"]);
        assert_eq!(names(tmp.path()), ["res"], "no staging directory left");
    }

    #[test]
    fn folders_made_for_a_result_go_again_unless_it_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("a/b/c/res");
        drop(Destination::plan(Some(&target), tmp.path(), "s", None, false).unwrap());
        assert!(names(tmp.path()).is_empty(), "{:?}", names(tmp.path()));
        // A folder something else wrote into meanwhile stays, and so do those holding it.
        let destination = Destination::plan(Some(&target), tmp.path(), "s", None, false).unwrap();
        fs::write(tmp.path().join("a/b/theirs.txt"), "").unwrap();
        drop(destination);
        assert_eq!(names(&tmp.path().join("a/b")), ["theirs.txt"]);
        // A failed commit removes them; a committed result keeps them.
        let fill_fails = |_: &Path| Err(Error::BadInput("no".into()));
        let other = tmp.path().join("x/y/res");
        let planned = Destination::plan(Some(&other), tmp.path(), "s", None, false).unwrap();
        assert!(planned.commit(fill_fails).is_err());
        assert!(!tmp.path().join("x").exists());
        Destination::plan(Some(&other), tmp.path(), "s", None, false)
            .unwrap()
            .commit(|d| fs::write(d.join("r.txt"), "").map_err(|e| Error::io("w", e)))
            .unwrap();
        assert_eq!(names(&other), ["r.txt"]);
        // At the default location too: `output/<scenario>/` goes with a run that failed.
        let root = tmp.path().join("output");
        drop(Destination::plan(None, &root, "s", None, false).unwrap());
        assert!(!root.exists());
    }

    #[test]
    fn a_claimed_name_is_never_handed_out_twice() {
        // Two sweeps started in the same second each get a directory of their own: the name
        // is taken by creating it, not chosen by looking and created later.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("output/x");
        let first = claim_unused(&dir, "sweep-t").unwrap();
        let second = claim_unused(&dir, "sweep-t").unwrap();
        fs::write(dir.join("sweep-t-3"), "a file takes the name too").unwrap();
        let third = claim_unused(&dir, "sweep-t").unwrap();
        assert_eq!(first, dir.join("sweep-t"));
        assert_eq!(second, dir.join("sweep-t-2"));
        assert_eq!(third, dir.join("sweep-t-4"));
        assert!(third.is_dir());
    }

    #[test]
    fn a_directory_moved_aside_goes_back_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let old = dir_with(tmp.path(), "sweep", "grid.csv");
        let aside = move_aside(&old).unwrap();
        assert!(!old.exists());
        assert!(
            aside
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(REPLACED_PREFIX)
        );
        // The new one, half written, is in the way: the caller removes it first.
        dir_with(tmp.path(), "sweep", "half.csv");
        assert!(!put_back(&aside, &old), "a directory is in the way");
        fs::remove_dir_all(&old).unwrap();
        assert!(put_back(&aside, &old));
        assert_eq!(names(tmp.path()), ["sweep"]);
        assert_eq!(fs::read_to_string(old.join("grid.csv")).unwrap(), "sweep");
    }

    #[test]
    fn a_staging_directory_is_held_while_it_is_written_and_no_longer() {
        let tmp = tempfile::tempdir().unwrap();
        let stage = Staging::new_in(tmp.path(), ".cascade-partial-").unwrap();
        let dir = stage.path().to_path_buf();
        let kept = tmp.path().join("kept");
        // Moved into place, it is still being written until the run lets it go.
        fs::rename(&dir, &kept).unwrap();
        assert!(held(&kept));
        drop(stage);
        assert!(!held(&kept));
    }
}
