//! The memory this process may use: the least of the machine's memory, its control group's
//! limit and the memory its SLURM job was given.
//!
//! A cluster's job gets a share of a node (`sbatch --mem=4G`), enforced by a control group or
//! by SLURM's own accounting, and a container gets the limit of its control group. Checked
//! against the node's whole memory, a study that fits the node but not the job passes the
//! check and is killed by the kernel or by SLURM minutes in, with nothing in its log but
//! "Killed"; checked against the job's share, it is refused at once with the figures. The
//! share belongs to the job (or its step), not to one process: several studies started in
//! one job each see all of it.

use std::path::{Path, PathBuf};

/// An amount of memory and what sets it, as an error names it ("more than the 4.0 GiB this
/// SLURM job was given (SLURM_MEM_PER_NODE)").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryLimit {
    /// Bytes.
    pub bytes: f64,
    /// What sets it, for a message: "this machine has", "this SLURM job was given", ...
    pub source: &'static str,
}

/// A mebibyte: what SLURM and the kernel call a megabyte of memory.
pub const MIB: f64 = 1024.0 * 1024.0;

impl MemoryLimit {
    /// The memory this process may use, where the system says: the least of the machine's
    /// (`MemTotal` of `/proc/meminfo`), its control groups' (cgroup v2 `memory.max` or v1
    /// `memory.limit_in_bytes`, of its own group and every group above it), its address
    /// space limit (`ulimit -v`, from `/proc/self/limits`) and, inside a SLURM job, the
    /// job's (`SLURM_MEM_PER_NODE`, or `SLURM_MEM_PER_CPU` times `SLURM_CPUS_ON_NODE`).
    /// `None` where none of them is known (not Linux).
    pub fn of_process() -> Option<MemoryLimit> {
        let read = |path: &Path| std::fs::read_to_string(path).ok();
        let machine = read(Path::new("/proc/meminfo"))
            .as_deref()
            .and_then(machine_memory)
            .map(|bytes| MemoryLimit {
                bytes,
                source: "this machine has",
            });
        let group = read(Path::new("/proc/self/cgroup"))
            .and_then(|groups| control_group_memory(&groups, read))
            .map(|bytes| MemoryLimit {
                bytes,
                source: "this control group allows",
            });
        let job = slurm_memory(|name| std::env::var(name).ok());
        // Address space is more than memory (code, thread stacks, the allocator's reserves),
        // so a study just under it may still fail; far over it, it failed with an abort
        // after validate had passed it.
        let address = read(Path::new("/proc/self/limits"))
            .as_deref()
            .and_then(address_space_limit)
            .map(|bytes| MemoryLimit {
                bytes,
                source: "this process may address (ulimit -v)",
            });
        // On a tie the job names the limit: with SLURM's cgroups the group's limit is the
        // job's --mem, and the job is what its user can change.
        [job, group, address, machine]
            .into_iter()
            .flatten()
            .min_by(|a, b| a.bytes.total_cmp(&b.bytes))
    }
}

/// The soft limit on the process's address space (`ulimit -v`) in bytes, from the text of
/// `/proc/self/limits`; `None` where it is unlimited.
fn address_space_limit(limits: &str) -> Option<f64> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    let soft = line["Max address space".len()..]
        .split_whitespace()
        .next()?;
    soft.parse::<u64>().ok().map(|bytes| bytes as f64)
}

/// A size written as SLURM's `--mem` writes it, in bytes: a whole number of megabytes, or
/// with a suffix K, M, G or T and an optional B, in either case (binary multiples: `4G` and
/// `4GB` are 4,096 MiB). For clap's `value_parser`; 0 (SLURM's "all of the node") is refused,
/// as it says nothing of how much that is.
pub fn parse_size(text: &str) -> std::result::Result<f64, String> {
    let expected = || {
        "expected a size as SLURM's --mem writes it: a whole number of megabytes above 0, or \
         one with a suffix K, M, G or T (as 4G or 500M)"
            .to_string()
    };
    let upper = text.to_ascii_uppercase();
    let sized = upper
        .strip_suffix('B')
        .filter(|t| t.ends_with(['K', 'M', 'G', 'T']))
        .unwrap_or(&upper);
    let unit = |scale: f64| (&sized[..sized.len() - 1], scale);
    let (digits, scale) = match sized.as_bytes().last() {
        Some(b'K') => unit(MIB / 1024.0),
        Some(b'M') => unit(MIB),
        Some(b'G') => unit(MIB * 1024.0),
        Some(b'T') => unit(MIB * 1024.0 * 1024.0),
        _ => (sized, MIB),
    };
    match digits.parse::<u64>() {
        Ok(n) if n > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(n as f64 * scale),
        _ => Err(expected()),
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn machine_memory(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// The least memory limit of the control groups this process is in (`/proc/self/cgroup`) and
/// of every group above them, read through `read`: a group's limit binds all below it, and a
/// job's step or a container's process usually sits below the group that carries the limit.
/// "max" (v2) is no limit; v1 writes no limit as a number near 2^63, which the machine's
/// memory undercuts.
fn control_group_memory(groups: &str, read: impl Fn(&Path) -> Option<String>) -> Option<f64> {
    groups
        .lines()
        .filter_map(|line| {
            // `hierarchy-id:controllers:path`; v2's unified hierarchy is `0::path`.
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            if controllers.is_empty() {
                Some((PathBuf::from("/sys/fs/cgroup"), "memory.max", path))
            } else if controllers.split(',').any(|c| c == "memory") {
                let root = PathBuf::from("/sys/fs/cgroup/memory");
                Some((root, "memory.limit_in_bytes", path))
            } else {
                None
            }
        })
        // A group outside this process's cgroup namespace shows as `/..`: not a path under
        // the mount, and its limits are not this mount's to read.
        .filter(|(_, _, path)| !path.split('/').any(|part| part == ".."))
        .flat_map(|(root, file, path)| {
            let group = root.join(path.trim_start_matches('/'));
            group
                .ancestors()
                .take_while(|dir| dir.starts_with(&root))
                .map(|dir| dir.join(file))
                .collect::<Vec<_>>()
        })
        .filter_map(|file| read(&file)?.trim().parse::<f64>().ok())
        .min_by(f64::total_cmp)
}

/// The memory a SLURM job was given on this node, from the variables `slurmd` sets for a
/// batch script and for a step's tasks: `SLURM_MEM_PER_NODE` (`--mem`), or
/// `SLURM_MEM_PER_CPU` (`--mem-per-cpu`) times the CPUs allocated on the node, all in
/// megabytes. Only where `SLURMD_NODENAME` says a job runs here: `salloc` sets the memory
/// variables in a shell on the login node, which (with whatever it starts, a `tmux` outliving
/// the job) does not run in the allocation. A job submitted from inside another inherits the
/// outer job's variable of the kind it does not set itself, so where both are set the less
/// is taken.
fn slurm_memory(var: impl Fn(&str) -> Option<String>) -> Option<MemoryLimit> {
    var("SLURMD_NODENAME")?;
    let number = |name: &str| var(name)?.trim().parse::<f64>().ok().filter(|n| *n > 0.0);
    let per_node = number("SLURM_MEM_PER_NODE").map(|mb| MemoryLimit {
        bytes: mb * MIB,
        source: "this SLURM job was given (SLURM_MEM_PER_NODE)",
    });
    let per_cpu = number("SLURM_MEM_PER_CPU")
        .zip(number("SLURM_CPUS_ON_NODE"))
        .map(|(mb, cpus)| MemoryLimit {
            bytes: mb * cpus * MIB,
            source: "this SLURM job was given (SLURM_MEM_PER_CPU x SLURM_CPUS_ON_NODE)",
        });
    [per_node, per_cpu]
        .into_iter()
        .flatten()
        .min_by(|a, b| a.bytes.total_cmp(&b.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn files(entries: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let map: HashMap<PathBuf, String> = entries
            .iter()
            .map(|(p, v)| (PathBuf::from(p), v.to_string()))
            .collect();
        move |path| map.get(path).cloned()
    }

    #[test]
    fn the_address_space_limit_is_the_soft_one_and_none_when_unlimited() {
        let limits = |soft: &str| {
            format!(
                "Limit                     Soft Limit           Hard Limit           Units     \n\
                 Max stack size            8388608              unlimited            bytes     \n\
                 Max address space         {soft:<20} unlimited            bytes     \n"
            )
        };
        assert_eq!(
            address_space_limit(&limits("1024000000")),
            Some(1024000000.0)
        );
        assert_eq!(address_space_limit(&limits("unlimited")), None);
        assert_eq!(address_space_limit("no such line"), None);
    }

    #[test]
    fn a_limit_set_above_the_process_group_binds_it() {
        // SLURM's cgroup v2 layout: the limit on the job, the process in its step.
        let groups = "0::/system.slice/slurmstepd.scope/job_7/step_0/user/task_0\n";
        let read = files(&[
            (
                "/sys/fs/cgroup/system.slice/slurmstepd.scope/job_7/step_0/user/task_0/memory.max",
                "max\n",
            ),
            (
                "/sys/fs/cgroup/system.slice/slurmstepd.scope/job_7/memory.max",
                "4294967296\n",
            ),
            ("/sys/fs/cgroup/system.slice/memory.max", "max\n"),
        ]);
        assert_eq!(control_group_memory(groups, read), Some(4294967296.0));
    }

    #[test]
    fn cgroup_v1_reads_the_memory_hierarchy_and_the_tightest_limit() {
        let groups = "5:cpu,cpuacct:/other\n4:memory:/docker/abc\n0::/\n";
        let read = files(&[
            (
                "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
                "2147483648",
            ),
            (
                "/sys/fs/cgroup/memory/docker/memory.limit_in_bytes",
                "8589934592",
            ),
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712",
            ),
            // A cpu group's files are not memory limits, and v2 at the root says "max".
            ("/sys/fs/cgroup/cpu/other/memory.limit_in_bytes", "1"),
            ("/sys/fs/cgroup/memory.max", "max"),
        ]);
        assert_eq!(control_group_memory(groups, read), Some(2147483648.0));
    }

    #[test]
    fn a_group_outside_the_namespace_is_not_read() {
        let read = files(&[
            ("/sys/fs/memory.max", "1048576"),
            ("/sys/fs/cgroup/memory.max", "2"),
        ]);
        assert_eq!(control_group_memory("0::/../../other\n", read), None);
    }

    #[test]
    fn no_limit_anywhere_is_no_limit() {
        let read = files(&[("/sys/fs/cgroup/user.slice/memory.max", "max")]);
        assert_eq!(control_group_memory("0::/user.slice\n", read), None);
        assert_eq!(control_group_memory("", files(&[])), None);
    }

    #[test]
    fn a_slurm_job_has_the_memory_it_asked_for() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                [("SLURMD_NODENAME", "node1")]
                    .iter()
                    .chain(vars)
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let bytes = |m: Option<MemoryLimit>| m.map(|m| m.bytes);
        let per_node = slurm_memory(env(&[("SLURM_MEM_PER_NODE", "4096")]));
        assert_eq!(bytes(per_node), Some(4096.0 * MIB));
        assert!(per_node.unwrap().source.contains("SLURM_MEM_PER_NODE"));
        let per_cpu = env(&[("SLURM_MEM_PER_CPU", "1000"), ("SLURM_CPUS_ON_NODE", "3")]);
        assert_eq!(bytes(slurm_memory(per_cpu)), Some(3000.0 * MIB));
        // A --mem-per-cpu job submitted from a --mem job keeps the outer SLURM_MEM_PER_NODE.
        let nested = env(&[
            ("SLURM_MEM_PER_NODE", "102400"),
            ("SLURM_MEM_PER_CPU", "100"),
            ("SLURM_CPUS_ON_NODE", "1"),
        ]);
        assert_eq!(bytes(slurm_memory(nested)), Some(100.0 * MIB));
        // SLURM_MEM_PER_CPU without the CPUs is not a job's total; `--mem=0` is "all of it".
        assert_eq!(slurm_memory(env(&[("SLURM_MEM_PER_CPU", "1000")])), None);
        assert_eq!(slurm_memory(env(&[("SLURM_MEM_PER_NODE", "0")])), None);
        assert_eq!(slurm_memory(env(&[])), None);
        // salloc's shell on the login node: the variables, but no job running here.
        let salloc = |name: &str| (name == "SLURM_MEM_PER_NODE").then(|| "100".to_string());
        assert_eq!(slurm_memory(salloc), None);
    }

    #[test]
    fn sizes_read_as_slurm_writes_them() {
        let bytes = |t| parse_size(t).ok();
        assert_eq!(bytes("4G"), Some(4.0 * 1024.0 * MIB));
        assert_eq!(bytes("4g"), Some(4.0 * 1024.0 * MIB));
        assert_eq!(bytes("500"), Some(500.0 * MIB));
        assert_eq!(bytes("500M"), Some(500.0 * MIB));
        assert_eq!(bytes("2048K"), Some(2.0 * MIB));
        assert_eq!(bytes("1T"), Some(1024.0 * 1024.0 * MIB));
        // sbatch takes a B after the unit too, in either case.
        assert_eq!(bytes("4GB"), Some(4.0 * 1024.0 * MIB));
        assert_eq!(bytes("500mb"), Some(500.0 * MIB));
        for bad in [
            "", "G", "0", "0G", "-4G", "4B", "4GBB", "4.5G", "4 G", "+4G", "4X",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("as 4G or 500M"), "{bad}: {e}");
        }
    }

    #[test]
    fn machine_memory_is_memtotal() {
        let meminfo = "MemFree: 10 kB\nMemTotal:       24683792 kB\n";
        assert_eq!(machine_memory(meminfo), Some(24683792.0 * 1024.0));
        assert_eq!(machine_memory("MemFree: 10 kB\n"), None);
    }
}
