//! The SLURM scripts of `cluster/slurm/`, run for real.
//!
//! The test starts a private single-node SLURM cluster (munged, slurmctld, slurmd, as
//! `../shared/design/CLUSTER.md` describes), submits a study with the same `submit.sh` users run
//! on their cluster, waits for the merge job and checks that the merged result is byte-identical
//! to an unsharded run. A second study, whose binary fails on one shard, checks that the merge
//! job is cancelled rather than left pending forever.
//!
//! It needs root and SLURM (packages `slurmctld slurmd slurm-client munge`). Without SLURM it
//! says SKIPPED and passes, except when `CI` is set: there SLURM is mandatory and `.ci/run`
//! installs it. The cluster is private (its own munge key and socket, its own ports, its state
//! in a temporary directory), so it never meets a SLURM or munge already running on the machine,
//! and its daemons are stopped by their own PIDs when the guard drops, on failure too.

use std::fs::{self, File, Permissions};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The script users submit.
const SUBMIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cluster/slurm/submit.sh");
/// A small, stable scenario with two policies.
const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny.toml");
/// The binary of the current test profile.
const CASCADE: &str = env!("CARGO_BIN_EXE_cascade");
/// The study: paths, shards, seed and an extra override, as a user would pass them.
const PATHS: &str = "400";
const SHARDS: usize = 4;
const SEED: &str = "4242";
const SET: &str = "liquidity.routing=0.5";
/// The files a merge must reproduce byte for byte.
const DETERMINISTIC_FILES: [&str; 3] = ["summary.json", "paths.csv", "timeline.csv"];
/// The only partition of the private cluster.
const PARTITION: &str = "cascade";

/// Daemons up and the node idle (under a second when all is well).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// A submitted study finished (about two seconds when all is well).
const JOB_TIMEOUT: Duration = Duration::from_secs(120);
/// Daemons gone after `scontrol shutdown`, before they are killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

#[test]
fn job_array_script_on_a_real_slurm_cluster() {
    let Some(programs) = Programs::find_or_skip() else {
        return;
    };
    let cluster = Cluster::start(programs);
    let work = cluster.dir().join("work");
    fs::create_dir(&work).unwrap();

    // The study as users submit it; the unsharded reference runs meanwhile.
    let study = work.join("study");
    let jobs = cluster.submit(&study, Path::new(CASCADE));
    let unsharded = work.join("unsharded");
    let reference = Command::new(CASCADE)
        .arg("run")
        .arg(SCENARIO)
        .args([
            "--paths", PATHS, "--seed", SEED, "--set", SET, "--quiet", "--out",
        ])
        .arg(&unsharded)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {CASCADE}: {e}"));
    assert!(
        reference.status.success(),
        "the unsharded run failed ({}):\n{}",
        reference.status,
        String::from_utf8_lossy(&reference.stderr)
    );

    let state = cluster.wait_for(&jobs, &study);
    assert_eq!(
        state,
        "COMPLETED",
        "merge job {} ended {state}\n{}",
        jobs.merge,
        cluster.diagnostics(&study, &jobs)
    );
    for i in 0..SHARDS {
        let shard = study.join("shards").join(i.to_string());
        assert!(shard.is_dir(), "array task {i} left no {}", shard.display());
    }
    for file in DETERMINISTIC_FILES {
        let merged = study.join("result").join(file);
        let merged = fs::read(&merged)
            .unwrap_or_else(|e| panic!("cannot read the merged {}: {e}", merged.display()));
        let expected = fs::read(unsharded.join(file)).unwrap();
        assert!(
            merged == expected,
            "{file}: the merge of {SHARDS} SLURM shards differs from the unsharded run: {}",
            first_difference(&merged, &expected)
        );
    }

    // A study whose shard 2 fails: the merge must be cancelled, not left pending forever.
    // Shard 2 checks a study of 300,000 paths (about 200 MB) instead of running its own: it
    // fits this machine but not the task's --mem of 100M, which the task must read from
    // SLURM and refuse with exit code 2.
    let failing = work.join("failing");
    let wrapper = work.join("cascade-failing-shard-2");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             # cascade, except that shard 2 fails, as a task too large for its memory would.\n\
             case \" $* \" in *' --shard 2/'*) exec '{CASCADE}' validate '{SCENARIO}' \
             --set simulation.paths=300000 --threads 1 ;; esac\n\
             exec '{CASCADE}' \"$@\"\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, Permissions::from_mode(0o755)).unwrap();
    let jobs = cluster.submit(&failing, &wrapper);
    let state = cluster.wait_for(&jobs, &failing);
    assert_eq!(
        state,
        "CANCELLED",
        "with shard 2 failing, merge job {} should be cancelled (--kill-on-invalid-dep) but \
         ended {state}\n{}",
        jobs.merge,
        cluster.diagnostics(&failing, &jobs)
    );
    assert!(
        !failing.join("result").exists(),
        "a result was written although shard 2 failed"
    );
    let logs: String = fs::read_dir(failing.join("logs"))
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        logs.contains("100 MiB this SLURM job was given"),
        "no task was refused for its SLURM memory:\n{logs}"
    );
}

/// `submit.sh --dry-run` of three shards into `out`, with `extra` flags: it prints the sbatch
/// commands without submitting, so no SLURM is needed.
fn submit_dry_run(out: &Path, extra: &[&str], scenario: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(SUBMIT)
        .args(["--dry-run", "--shards", "3", "--bin", CASCADE, "--out"])
        .arg(out)
        .args(extra)
        .arg(scenario)
        .output()
        .unwrap()
}

/// Every shard of one study gets the same seed: the one given, the scenario's, or (for a
/// scenario without one) a single seed drawn at submission, never one drawn per shard.
/// A dry run prints the sbatch commands without submitting, so no SLURM is needed.
#[test]
fn submit_pins_one_seed_for_every_shard() {
    let tmp = TempDir::new().unwrap();
    let unseeded = crate::support::without_seed(&fs::read_to_string(SCENARIO).unwrap());
    let unseeded_path = tmp.path().join("unseeded.toml");
    fs::write(&unseeded_path, unseeded).unwrap();
    let seed_of = |scenario: &Path, extra: &[&str]| {
        let out = submit_dry_run(&tmp.path().join("study"), extra, scenario);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let array = stdout.lines().next().unwrap_or_default().to_string();
        let args: Vec<&str> = array.split_whitespace().collect();
        let at = args.iter().position(|a| *a == "--seed");
        at.map(|i| args[i + 1].to_string())
            .unwrap_or_else(|| panic!("no --seed for the shards: {array}"))
    };
    assert_eq!(
        seed_of(Path::new(SCENARIO), &[]),
        "11",
        "the scenario's seed"
    );
    assert_eq!(seed_of(Path::new(SCENARIO), &["--seed", "5"]), "5");
    // As `cascade run --seed 007` reads it; a TOML integer may not have leading zeros.
    assert_eq!(seed_of(Path::new(SCENARIO), &["--seed", "007"]), "7");
    // A --set of the seed fixes it already: no --seed beside it, which run would refuse.
    let out = submit_dry_run(
        &tmp.path().join("study"),
        &["--set", "simulation.seed=7"],
        Path::new(SCENARIO),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let array = stdout.lines().next().unwrap_or_default();
    assert!(array.contains("--set simulation.seed=7"), "{array}");
    assert!(!array.contains("--seed"), "{array}");
    // ... and so does a --set of the whole table that names it (every task failed with
    // "--seed and --set simulation both set simulation.seed").
    let out = submit_dry_run(
        &tmp.path().join("study"),
        &["--set", "simulation={seed=7,paths=30}"],
        Path::new(SCENARIO),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("--seed"), "{stdout}");
    let drawn = seed_of(&unseeded_path, &[]);
    assert!(drawn.parse::<u64>().is_ok(), "{drawn}");
    assert!(
        !tmp.path().join("study").exists(),
        "a dry run creates nothing"
    );
}

/// A resubmission with `--force` removes the study's old shards and result as it submits:
/// kept, an old result stood at the path printed while the new shards failed. A stand-in
/// `sbatch` that prints a job id is enough, so no SLURM is needed.
#[test]
fn a_forced_resubmission_leaves_no_old_result_behind() {
    let tmp = TempDir::new().unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let sbatch = bin.join("sbatch");
    fs::write(&sbatch, "#!/bin/sh\necho 4242\n").unwrap();
    fs::set_permissions(&sbatch, Permissions::from_mode(0o755)).unwrap();
    let study = tmp.path().join("study");
    for old in ["result", "shards/0"] {
        fs::create_dir_all(study.join(old)).unwrap();
        fs::write(study.join(old).join("summary.json"), "{}").unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let submit = |extra: &[&str]| {
        Command::new("bash")
            .arg(SUBMIT)
            .args(["--shards", "2", "--bin", CASCADE, "--out"])
            .arg(&study)
            .args(extra)
            .arg(SCENARIO)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let refused = submit(&[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(study.join("result/summary.json").exists());
    let out = submit(&["--force"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("result={}/result", study.display())),
        "{stdout}"
    );
    assert!(!study.join("result").exists() && !study.join("shards").exists());
    assert!(study.join("logs").is_dir());
}

/// What `cascade run` would refuse in every array task is refused at submission, before the
/// queue: a path count or seed given twice, or one out of range.
#[test]
fn submit_refuses_what_every_shard_would_refuse() {
    let tmp = TempDir::new().unwrap();
    for (extra, expect) in [
        (
            &["--paths", "100", "--set", "simulation.paths=50"][..],
            "--paths and --set simulation.paths both set the paths",
        ),
        (
            &["--seed", "3", "--set", "simulation.seed=4"][..],
            "--seed and --set simulation.seed both set the seed",
        ),
        (
            &["--seed", "3", "--set", "simulation={seed=4}"][..],
            "--seed and --set simulation.seed both set the seed",
        ),
        (
            &["--paths", "100", "--set", "simulation={paths=50}"][..],
            "--paths and --set simulation.paths both set the paths",
        ),
        // A task that would hold more than its --mem is refused now, not killed in the queue.
        (
            &["--paths", "3000000", "--mem", "100M"][..],
            "100 MiB given by --memory",
        ),
        (
            &["--mem", "4XB"][..],
            "--mem must be a size as sbatch takes it",
        ),
        (
            &["--merge-mem", "1.5G"][..],
            "--merge-mem must be a size as sbatch takes it",
        ),
        // The merge holds every path's results: 3M paths fit a task's 1G in three shards, but
        // not a merge given the same (--merge-mem defaults to --mem).
        (
            &["--paths", "3000000", "--mem", "1G"][..],
            "the merge job would not fit in --merge-mem 1G",
        ),
        (
            &["--paths", "3000000", "--mem", "4G", "--merge-mem", "1GB"][..],
            "Merge with more memory",
        ),
        (
            &["--seed", "99999999999999999999"][..],
            "outside the integers a scenario can hold",
        ),
        (&["--paths", "0"][..], "--paths must be a positive integer"),
        (
            &["--paths", "99999999999999999999"][..],
            "outside the integers a scenario can hold",
        ),
    ] {
        let out = submit_dry_run(&tmp.path().join("study"), extra, Path::new(SCENARIO));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(expect), "{extra:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{extra:?}: nothing submitted");
    }
    // A task's memory is not the scenario's fault: the refusal said "the scenario does not
    // validate" of a valid one.
    let out = submit_dry_run(
        &tmp.path().join("study"),
        &["--mem", "10M"],
        Path::new(SCENARIO),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(
            "submit.sh: the shard tasks would be refused (cascade validate of shard 3/3, on \
             --cpus 4 threads within --mem 10M):\nerror: "
        ) && stderr.contains("tiny.toml: this would hold about"),
        "{stderr}"
    );
    let enough = ["--paths", "3000000", "--mem", "1G", "--merge-mem", "4G"];
    let out = submit_dry_run(&tmp.path().join("study"), &enough, Path::new(SCENARIO));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{enough:?}: {stderr}");
}

/// `--paths` and `--seed` are written as in a scenario file, as `cascade run` takes them:
/// `1_000` was refused as not a positive integer.
#[test]
fn submit_reads_paths_and_seed_as_a_scenario_file_writes_them() {
    let tmp = TempDir::new().unwrap();
    let given = ["--paths", "1_000", "--seed", "0_1_007"];
    let out = submit_dry_run(&tmp.path().join("study"), &given, Path::new(SCENARIO));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let array = stdout.lines().next().unwrap_or_default();
    assert!(array.contains(" --paths 1000 --seed 1007"), "{array}");
    for (flag, refused) in [("--paths", "1__000"), ("--paths", "_1"), ("--seed", "7_")] {
        let out = submit_dry_run(
            &tmp.path().join("study"),
            &[flag, refused],
            Path::new(SCENARIO),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {refused}: {stderr}");
        assert!(stderr.contains("(as "), "{flag} {refused}: {stderr}");
    }
}

/// An option given last without its value is bad input (exit 2) in every script, as
/// everything else they refuse.
#[test]
fn the_scripts_refuse_an_option_without_its_value() {
    let dir = Path::new(SUBMIT).parent().unwrap();
    for (script, option) in [
        ("submit.sh", "--shards"),
        ("submit.sh", "--set"),
        ("cascade-array.sh", "--out"),
        ("cascade-merge.sh", "--bin"),
    ] {
        let out = Command::new("bash")
            .arg(dir.join(script))
            .arg(option)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{script} {option}: {stderr}");
        assert!(
            stderr.contains(&format!("{option} needs a value")),
            "{script} {option}: {stderr}"
        );
    }
}

/// Where the first difference between two files is, for the failure message.
fn first_difference(actual: &[u8], expected: &[u8]) -> String {
    let (actual, expected) = (
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(expected),
    );
    for (n, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
        if a != e {
            return format!("line {}:\n  merged:    {a}\n  unsharded: {e}", n + 1);
        }
    }
    format!(
        "{} lines merged, {} unsharded",
        actual.lines().count(),
        expected.lines().count()
    )
}

// ---------------------------------------------------------------------------------------------
// The programs
// ---------------------------------------------------------------------------------------------

/// SLURM's and munge's programs, found on PATH or in the sbin directories a user's PATH lacks.
struct Programs {
    slurmctld: PathBuf,
    slurmd: PathBuf,
    munged: PathBuf,
    mungekey: PathBuf,
    setpriv: PathBuf,
    /// Where sbatch, scontrol, sinfo and scancel are (submit.sh finds them on PATH).
    client_dir: PathBuf,
}

impl Programs {
    /// The programs, or `None` (after saying SKIPPED) where SLURM is not installed and CI is
    /// not set.
    fn find_or_skip() -> Option<Programs> {
        let Some(slurmctld) = find("slurmctld") else {
            skip_or_fail("SLURM not installed (slurmctld not found)");
            return None;
        };
        if !is_root() {
            skip_or_fail("the SLURM test needs root (slurmd and munged run as root and munge)");
            return None;
        }
        let need = |program: &str| {
            find(program).unwrap_or_else(|| {
                panic!(
                    "slurmctld is installed but {program} is not: install slurmctld slurmd \
                     slurm-client munge (see .ci/run)"
                )
            })
        };
        let sbatch = need("sbatch");
        Some(Programs {
            slurmctld,
            slurmd: need("slurmd"),
            munged: need("munged"),
            mungekey: need("mungekey"),
            setpriv: need("setpriv"),
            client_dir: sbatch.parent().unwrap().to_path_buf(),
        })
    }
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Says the test is skipped, or fails it under CI, where SLURM is mandatory.
fn skip_or_fail(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{reason}; CI is set, and there the SLURM test is mandatory (.ci/run installs SLURM)"
    );
    // Straight to the handle: libtest captures print! and eprintln!, so this shows in a plain
    // `cargo test` too.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uid = status.lines().find(|l| l.starts_with("Uid:"))?;
            Some(uid.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

/// The job ids `submit.sh` printed.
struct Jobs {
    array: u64,
    merge: u64,
}

/// A private single-node SLURM cluster. Dropping it cancels its jobs, shuts it down and stops
/// any daemon left by its PID.
struct Cluster {
    programs: Programs,
    /// Config, munge key and socket, state, spool, logs. `None` once kept for inspection.
    dir: Option<TempDir>,
    conf: PathBuf,
    node: String,
    munged: Option<Child>,
    slurmctld: Option<Child>,
    slurmd: Option<Child>,
}

impl Cluster {
    /// Starts munged, slurmctld and slurmd and waits for the node to be idle.
    fn start(programs: Programs) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("cascade-slurm-")
            .tempdir()
            .unwrap();
        // munged (user munge) must reach its socket below it.
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        let conf = dir.path().join("slurm.conf");
        // The guard exists before the first daemon, so a failure from here on stops them all.
        let mut cluster = Cluster {
            programs,
            dir: Some(dir),
            conf,
            node: String::new(),
            munged: None,
            slurmctld: None,
            slurmd: None,
        };
        cluster.start_munge();
        cluster.write_conf();
        cluster.start_slurm();
        cluster
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the cluster directory").path()
    }

    /// A daemon's log file: SLURM's own (with timestamps), or its output until it has one.
    fn log(&self, daemon: &str) -> PathBuf {
        let log = self.dir().join(format!("{daemon}.log"));
        if log.exists() {
            log
        } else {
            self.output(daemon)
        }
    }

    /// Where a daemon's stdout and stderr go.
    fn output(&self, daemon: &str) -> PathBuf {
        self.dir().join(format!("{daemon}.out"))
    }

    fn socket(&self) -> PathBuf {
        self.dir().join("munge").join("munge.socket")
    }

    /// A command with the cluster's config and none of the caller's SLURM settings (the test
    /// may itself run inside a SLURM job).
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if [
                "SLURM", "SBATCH", "SQUEUE", "SINFO", "SCANCEL", "SALLOC", "SRUN",
            ]
            .iter()
            .any(|prefix| key.starts_with(prefix))
            {
                cmd.env_remove(&*key);
            }
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::iter::once(self.programs.client_dir.clone())
            .chain(std::env::split_paths(&path))
            .collect::<Vec<_>>();
        cmd.env("PATH", std::env::join_paths(path).unwrap())
            .env("SLURM_CONF", &self.conf);
        cmd
    }

    /// A SLURM client (sbatch, scontrol, ...).
    fn client(&self, name: &str) -> Command {
        self.command(&self.programs.client_dir.join(name))
    }

    /// A daemon in the foreground, its output in `<name>.out`.
    fn daemon(&self, mut cmd: Command, name: &str) -> Child {
        let log = File::create(self.output(name)).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
    }

    /// setpriv, to run a program as user munge and to have it sent SIGTERM should the test
    /// thread die without dropping the guard.
    fn setpriv(&self, as_munge: bool) -> Command {
        let mut cmd = self.command(&self.programs.setpriv);
        if as_munge {
            cmd.args(["--reuid=munge", "--regid=munge", "--clear-groups"]);
        }
        cmd.arg("--pdeathsig=TERM");
        cmd
    }

    /// munged as user munge, with its own key and socket in the cluster directory.
    fn start_munge(&mut self) {
        let munge = self.dir().join("munge");
        fs::create_dir(&munge).unwrap();
        fs::set_permissions(&munge, Permissions::from_mode(0o755)).unwrap();
        check(Command::new("chown").arg("munge:munge").arg(&munge));
        let key = munge.join("munge.key");
        check(
            self.setpriv(true)
                .arg(&self.programs.mungekey)
                .arg("--create")
                .arg(format!("--keyfile={}", key.display())),
        );
        let mut cmd = self.setpriv(true);
        cmd.arg(&self.programs.munged)
            .arg("--foreground")
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
            .arg(format!(
                "--seed-file={}",
                munge.join("munged.seed").display()
            ))
            .arg(format!(
                "--log-file={}",
                munge.join("munged.file.log").display()
            ));
        self.munged = Some(self.daemon(cmd, "munged"));
        self.wait_until("munged to create its socket", |c| c.socket().exists());
    }

    fn write_conf(&mut self) {
        // The node line exactly as slurmd detects it (CPU layout, RealMemory).
        let detected = check(Command::new(&self.programs.slurmd).arg("-C"));
        let node_line = detected
            .lines()
            .find(|l| l.starts_with("NodeName="))
            .unwrap_or_else(|| panic!("slurmd -C printed no NodeName line:\n{detected}"))
            .to_string();
        self.node = node_line["NodeName=".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let host = host.trim().split('.').next().unwrap().to_string();
        let d = self.dir().to_path_buf();
        for sub in ["state", "spool"] {
            fs::create_dir(d.join(sub)).unwrap();
        }
        // No kill_invalid_depend: cancelling the merge when a shard fails is submit.sh's job
        // (--kill-on-invalid-dep=yes), and the failing study checks it does.
        let (ctld_port, slurmd_port) = free_ports();
        let conf = format!(
            "ClusterName=cascadetest\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={slurmd_port}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={socket}\n\
             StateSaveLocation={state}\n\
             SlurmdSpoolDir={spool}\n\
             SlurmctldPidFile={dir}/slurmctld.pid\n\
             SlurmdPidFile={dir}/slurmd.pid\n\
             SlurmctldLogFile={dir}/slurmctld.log\n\
             SlurmdLogFile={dir}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             MpiDefault=none\n\
             SchedulerType=sched/backfill\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\n\
             SchedulerParameters=batch_sched_delay=0\n\
             MinJobAge=600\n\
             ReturnToService=2\n\
             MessageTimeout=10\n\
             {node_line} NodeAddr=127.0.0.1 State=UNKNOWN\n\
             PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP\n",
            socket = self.socket().display(),
            state = d.join("state").display(),
            spool = d.join("spool").display(),
            dir = d.display(),
            node = self.node,
        );
        fs::write(&self.conf, conf).unwrap();
    }

    /// slurmctld and slurmd in the foreground, then the node idle.
    fn start_slurm(&mut self) {
        let mut cmd = self.setpriv(false);
        cmd.arg(&self.programs.slurmctld).arg("-D");
        self.slurmctld = Some(self.daemon(cmd, "slurmctld"));
        let mut cmd = self.setpriv(false);
        cmd.arg(&self.programs.slurmd)
            .args(["-D", "-N", &self.node]);
        self.slurmd = Some(self.daemon(cmd, "slurmd"));
        self.wait_until("the node to be idle in sinfo", |c| {
            let out = c
                .client("sinfo")
                .args(["-h", "-N", "-n", &c.node, "-o", "%T"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim() == "idle"
        });
    }

    /// Polls `ready` until it holds; fails at once if a daemon died, or after the timeout.
    fn wait_until(&mut self, what: &str, ready: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        loop {
            if ready(self) {
                return;
            }
            if let Some(dead) = self.dead_daemon() {
                panic!("{dead} while waiting for {what}\n{}", self.daemon_logs());
            }
            assert!(
                start.elapsed() < STARTUP_TIMEOUT,
                "timed out after {STARTUP_TIMEOUT:?} waiting for {what}\n{}",
                self.daemon_logs()
            );
            sleep(POLL);
        }
    }

    /// Which daemon has exited, if one has.
    fn dead_daemon(&mut self) -> Option<String> {
        for (name, child) in [
            ("munged", &mut self.munged),
            ("slurmctld", &mut self.slurmctld),
            ("slurmd", &mut self.slurmd),
        ] {
            if let Some(child) = child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Some(format!("{name} exited ({status})"));
            }
        }
        None
    }

    /// Submits the study with `submit.sh`, as a user would.
    fn submit(&self, out: &Path, bin: &Path) -> Jobs {
        let shards = SHARDS.to_string();
        let output = self
            .command(Path::new(SUBMIT))
            .args(["--shards", &shards, "--paths", PATHS, "--seed", SEED])
            .args(["--set", SET, "--cpus", "1", "--mem", "100M", "--time", "5"])
            .args(["--merge-time", "5", "--out"])
            .arg(out)
            .arg("--bin")
            .arg(bin)
            .arg(SCENARIO)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {SUBMIT}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "submit.sh failed ({}):\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}\n{}",
            output.status,
            self.daemon_logs()
        );
        let id = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key)?.parse().ok())
                .unwrap_or_else(|| panic!("submit.sh printed no {key}<id>:\n{stdout}\n{stderr}"))
        };
        Jobs {
            array: id("array_job_id="),
            merge: id("merge_job_id="),
        }
    }

    /// Polls `scontrol show job` until the merge job has ended; its final state.
    fn wait_for(&self, jobs: &Jobs, study: &Path) -> String {
        let job = jobs.merge;
        let start = Instant::now();
        let mut state = String::from("(not yet seen)");
        while start.elapsed() < JOB_TIMEOUT {
            let out = self
                .client("scontrol")
                .args(["show", "job", "-o", &job.to_string()])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(s) = text
                .split_whitespace()
                .find_map(|field| field.strip_prefix("JobState="))
            {
                state = s.to_string();
            }
            if [
                "COMPLETED",
                "FAILED",
                "CANCELLED",
                "TIMEOUT",
                "NODE_FAIL",
                "PREEMPTED",
                "BOOT_FAIL",
                "DEADLINE",
                "OUT_OF_MEMORY",
            ]
            .contains(&state.as_str())
            {
                return state;
            }
            sleep(POLL);
        }
        panic!(
            "timed out after {JOB_TIMEOUT:?} waiting for job {job}, last state {state}\n{}",
            self.diagnostics(study, jobs)
        );
    }

    /// Everything useful when a study went wrong: jobs, job logs, daemon logs.
    fn diagnostics(&self, study: &Path, jobs: &Jobs) -> String {
        let mut text = String::new();
        for job in [jobs.array, jobs.merge] {
            let out = self
                .client("scontrol")
                .args(["show", "job", &job.to_string()])
                .output();
            if let Ok(out) = out {
                text += &format!(
                    "--- scontrol show job {job}:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let mut logs: Vec<PathBuf> = fs::read_dir(study.join("logs"))
            .map(|dir| dir.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        logs.sort();
        for log in logs {
            text += &format!("--- {}:\n{}\n", log.display(), tail(&log, 20));
        }
        text + &self.daemon_logs()
    }

    /// The last lines of each daemon's log.
    fn daemon_logs(&self) -> String {
        ["slurmctld", "slurmd", "munged"]
            .iter()
            .map(|d| format!("--- {d} log (last lines):\n{}\n", tail(&self.log(d), 30)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.slurmctld.is_some() {
            // Jobs first, so no job step outlives the cluster; then the daemons.
            run_briefly(
                self.client("scancel")
                    .arg(format!("--partition={PARTITION}")),
            );
            run_briefly(self.client("scontrol").arg("shutdown"));
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        for child in [&mut self.slurmd, &mut self.slurmctld]
            .into_iter()
            .flatten()
        {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                sleep(POLL);
            }
        }
        // Whatever is left, by its own PID: SIGTERM (munged's clean stop), then SIGKILL.
        for child in [&mut self.slurmd, &mut self.slurmctld, &mut self.munged]
            .into_iter()
            .flatten()
        {
            if matches!(child.try_wait(), Ok(None)) {
                run_briefly(Command::new("kill").arg(child.id().to_string()));
                let deadline = Instant::now() + Duration::from_secs(2);
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    sleep(POLL);
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            let _ = writeln!(
                std::io::stderr(),
                "slurm test failed: cluster config, state and logs kept in {}",
                kept.display()
            );
        }
    }
}

/// Runs a command to completion, stdout as text; panics with its output if it fails.
fn check(cmd: &mut Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr),
    );
    assert!(
        status.success(),
        "{cmd:?} failed ({status}):\n{stdout}{stderr}"
    );
    stdout.into_owned()
}

/// Runs a command for at most a few seconds, ignoring how it ends (for the guard).
fn run_briefly(cmd: &mut Command) {
    let Ok(mut child) = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Two distinct TCP ports nobody listens on now: the cluster's own, so it never meets another.
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    (port(&a), port(&b))
}

/// The last `n` lines of a file, or why there are none.
fn tail(path: &Path, n: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
