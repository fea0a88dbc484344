#!/usr/bin/env bash
# Submit a sharded cascade study to SLURM: a job array with one task per shard, then a merge job
# that runs only if every shard succeeded. Prints the job ids (array_job_id=, merge_job_id=) and
# where the result will be. See README.md next to this file.
#
#   cluster/slurm/submit.sh [options] SCENARIO
set -euo pipefail
# An array that may be empty is expanded as ${a[@]+"${a[@]}"}: under set -u, bash before 4.4
# (RHEL 7's login nodes have 4.2) takes "${a[@]}" of an empty array for an unbound variable.

usage() {
    cat <<'USAGE'
Usage: submit.sh [options] SCENARIO

Submits a SLURM job array (one task per shard: cascade run --shard K/N) and a merge job
(cascade merge) that depends on it. Every option has an environment-variable default.

  --shards N        number of shards = array tasks                  CASCADE_SHARDS    (8)
  --paths N         paths of the whole study (default: scenario)    CASCADE_PATHS
  --seed S          seed (default: the scenario's, or one drawn now  CASCADE_SEED
                    for every shard when the scenario sets none)
  --set KEY=VALUE   scenario override, repeatable                    CASCADE_SET (space-separated)
  --time T          time limit per shard task (sbatch --time)        CASCADE_TIME      (01:00:00)
  --mem M           memory per shard task (sbatch --mem)             CASCADE_MEM       (4G)
  --cpus C          CPUs (= cascade threads) per shard task          CASCADE_CPUS      (4)
  --merge-time T    time limit of the merge job                      CASCADE_MERGE_TIME (00:30:00)
  --merge-mem M     memory of the merge job                          CASCADE_MERGE_MEM (= --mem)
  --max-running K   at most K shard tasks at once (--array=...%K)    CASCADE_MAX_RUNNING
  --out DIR         output directory: DIR/shards/<i>, DIR/result, DIR/logs
                    (default: ./cascade-runs/<scenario>-<UTC time>)  CASCADE_OUT
  --bin PATH        cascade binary, visible from the compute nodes   CASCADE_BIN (cascade on PATH)
  --sbatch ARG      extra sbatch option for both jobs, repeatable,   CASCADE_SBATCH_ARGS
                    e.g. --sbatch --partition=short --sbatch --account=proj42
  --remove-shards   delete DIR/shards after a successful merge
  --force           reuse an --out directory that already has shards or a result
                    (they are removed when the jobs are submitted)
  --dry-run         print the sbatch commands instead of submitting them
  -h, --help        this help
USAGE
}

die() {
    echo "submit.sh: $*" >&2
    exit 2
}
# Refuses an option given last without its value (exit 2, as for all bad input).
needs_value() {
    (($# >= 2)) || die "$1 needs a value"
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
shards=${CASCADE_SHARDS:-8}
paths=${CASCADE_PATHS:-}
seed=${CASCADE_SEED:-}
read -r -a sets <<<"${CASCADE_SET:-}"
time_limit=${CASCADE_TIME:-01:00:00}
mem=${CASCADE_MEM:-4G}
cpus=${CASCADE_CPUS:-4}
merge_time=${CASCADE_MERGE_TIME:-00:30:00}
merge_mem=${CASCADE_MERGE_MEM:-}
max_running=${CASCADE_MAX_RUNNING:-}
out=${CASCADE_OUT:-}
bin=${CASCADE_BIN:-}
read -r -a sbatch_extra <<<"${CASCADE_SBATCH_ARGS:-}"
remove_shards=()
force=0
dry_run=0
scenario=${CASCADE_SCENARIO:-}

while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --shards) needs_value "$@"; shards=$2; shift 2 ;;
        --paths) needs_value "$@"; paths=$2; shift 2 ;;
        --seed) needs_value "$@"; seed=$2; shift 2 ;;
        --set) needs_value "$@"; sets+=("$2"); shift 2 ;;
        --time) needs_value "$@"; time_limit=$2; shift 2 ;;
        --mem) needs_value "$@"; mem=$2; shift 2 ;;
        --cpus) needs_value "$@"; cpus=$2; shift 2 ;;
        --merge-time) needs_value "$@"; merge_time=$2; shift 2 ;;
        --merge-mem) needs_value "$@"; merge_mem=$2; shift 2 ;;
        --max-running) needs_value "$@"; max_running=$2; shift 2 ;;
        --out) needs_value "$@"; out=$2; shift 2 ;;
        --bin) needs_value "$@"; bin=$2; shift 2 ;;
        --sbatch) needs_value "$@"; sbatch_extra+=("$2"); shift 2 ;;
        --remove-shards) remove_shards=(--remove-shards); shift ;;
        --force) force=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        -*) die "unknown option $1 (see --help)" ;;
        *)
            [[ -z $scenario ]] || die "more than one SCENARIO: '$scenario' and '$1'"
            scenario=$1
            shift
            ;;
    esac
done

[[ -n $scenario ]] || { usage >&2; die "missing SCENARIO"; }
[[ -f $scenario ]] || die "scenario file '$scenario' not found"
[[ $shards =~ ^[1-9][0-9]*$ ]] || die "--shards must be a positive integer, got '$shards'"
# Written as in a scenario file, as cascade run takes them: 10000 or 10_000 (an underscore only
# between two digits). Passed on without the underscores, and the seed without leading zeros,
# which a TOML integer may not have (cascade run reads 007 as 7).
[[ -z $paths || $paths =~ ^[1-9][0-9]*(_[0-9]+)*$ ]] ||
    die "--paths must be a positive integer (as 10000 or 10_000), got '$paths'"
[[ -z $seed || $seed =~ ^[0-9]+(_[0-9]+)*$ ]] ||
    die "--seed must be a non-negative integer (as 42 or 10_000), got '$seed'"
paths=${paths//_/}
seed=${seed//_/}
[[ $seed =~ ^0*([0-9]+)$ ]] && seed=${BASH_REMATCH[1]}
[[ $cpus =~ ^[1-9][0-9]*$ ]] || die "--cpus must be a positive integer, got '$cpus'"
[[ -z $max_running || $max_running =~ ^[1-9][0-9]*$ ]] ||
    die "--max-running must be a positive integer, got '$max_running'"
merge_mem=${merge_mem:-$mem}
# As sbatch takes a size: megabytes, or a unit K, M, G or T (and an optional B).
for m in "--mem $mem" "--merge-mem $merge_mem"; do
    [[ ${m#* } =~ ^[0-9]+([KkMmGgTt][Bb]?)?$ ]] ||
        die "${m%% *} must be a size as sbatch takes it (4G, 500M), got '${m#* }'"
done

if [[ -z $bin ]]; then
    bin=$(command -v cascade) || die "no cascade on PATH; pass --bin /path/to/cascade (or set CASCADE_BIN)"
fi
[[ -x $bin ]] || die "cascade binary '$bin' is not executable"
command -v sbatch >/dev/null || ((dry_run)) || die "sbatch not found: run this on a SLURM login node"

# Jobs may start in another directory: make every path absolute.
abs() { [[ $1 == /* ]] && printf '%s\n' "$1" || printf '%s\n' "$PWD/$1"; }
scenario=$(abs "$scenario")
bin=$(abs "$bin")
name=$(basename "$scenario" .toml)
out=$(abs "${out:-cascade-runs/$name-$(date -u +%Y%m%dT%H%M%SZ)}")

# --paths and --seed are overrides of the scenario too: one of each.
paths_set=0
seed_set=0
for s in ${sets[@]+"${sets[@]}"}; do
    case ${s%%=*} in
        simulation.paths) paths_set=1 ;;
        simulation.seed) seed_set=1 ;;
        # The whole table, as `--set 'simulation={seed=5}'`, sets the keys it names.
        simulation)
            if [[ ${s#*=} == *paths* ]]; then paths_set=1; fi
            if [[ ${s#*=} == *seed* ]]; then seed_set=1; fi
            ;;
    esac
done
((paths_set)) && [[ -n $paths ]] &&
    die "--paths and --set simulation.paths both set the paths; give one of them"
((seed_set)) && [[ -n $seed ]] &&
    die "--seed and --set simulation.seed both set the seed; give one of them"

# Catch a bad scenario, override, path count or seed now rather than after waiting in the
# queue: validate what every shard will run. Its memory is checked for the largest shard (the
# last: the blocks differ by one path at most) at the threads and memory a task gets, and the
# merge's (every path's results) against --merge-mem. (A size of 0 asks SLURM for all of a
# node's memory, which only the node knows.)
validate=("$bin" validate "$scenario")
for s in ${sets[@]+"${sets[@]}"}; do
    validate+=(--set "$s")
done
[[ -z $paths ]] || validate+=(--set "simulation.paths=$paths")
[[ -z $seed ]] || validate+=(--set "simulation.seed=$seed")
shard_check=(--shard "$shards/$shards" --threads "$cpus")
# One check of the scenario and of a task's memory: the refusal says which, the prefix both.
checked="cascade validate of shard $shards/$shards, on --cpus $cpus threads"
if [[ ! $mem =~ ^0+[^0-9]*$ ]]; then
    shard_check+=(--memory "$mem")
    checked+=" within --mem $mem"
fi
errors=$(mktemp)
if ! resolved=$("${validate[@]}" "${shard_check[@]}" 2>"$errors"); then
    die "the shard tasks would be refused ($checked):"$'\n'"$(cat "$errors"; rm -f "$errors")"
fi
if [[ ! $merge_mem =~ ^0+[^0-9]*$ ]] &&
    ! "${validate[@]}" --merge --memory "$merge_mem" >/dev/null 2>"$errors"; then
    die "the merge job would not fit in --merge-mem $merge_mem:"$'\n'"$(cat "$errors"; rm -f "$errors")"
fi
rm -f "$errors"
# Every shard must draw from the same seed: without --seed (or a --set of it), pin the
# scenario's (validate prints the resolved scenario, with a drawn seed when the file sets none).
if ((!seed_set)) && [[ -z $seed ]]; then
    seed=$(sed -n '/^\[simulation\]/,/^\[/s/^seed = \([0-9]*\)$/\1/p' <<<"$resolved" | head -n 1)
    [[ -n $seed ]] || die "could not read the seed from 'cascade validate $scenario'"
fi

# The run flags every shard gets (the shard scripts add --shard, --out, --threads).
run_args=("$scenario")
[[ -z $paths ]] || run_args+=(--paths "$paths")
[[ -z $seed ]] || run_args+=(--seed "$seed")
for s in ${sets[@]+"${sets[@]}"}; do
    run_args+=(--set "$s")
done

if ((!force)) && [[ -e $out/shards || -e $out/result ]]; then
    die "$out already holds shards or a result; choose another --out or pass --force"
fi
((dry_run)) || mkdir -p "$out/logs"

common=(${sbatch_extra[@]+"${sbatch_extra[@]}"})
array_cmd=(sbatch --parsable --job-name="cascade-$name" ${common[@]+"${common[@]}"}
    --array="0-$((shards - 1))${max_running:+%$max_running}"
    --time="$time_limit" --mem="$mem" --cpus-per-task="$cpus" --ntasks=1
    --output="$out/logs/shard-%a.out"
    "$here/cascade-array.sh" --shards "$shards" --out "$out" --bin "$bin" -- "${run_args[@]}")
# The merge command, given the array it waits for.
merge_cmd() {
    merge=(sbatch --parsable --job-name="cascade-$name-merge" ${common[@]+"${common[@]}"}
        --dependency="afterok:$1" --kill-on-invalid-dep=yes
        --time="$merge_time" --mem="$merge_mem" --cpus-per-task=1 --ntasks=1
        --output="$out/logs/merge.out"
        "$here/cascade-merge.sh" --shards "$shards" --out "$out" --bin "$bin"
        ${remove_shards[@]+"${remove_shards[@]}"})
}

if ((dry_run)); then
    merge_cmd ARRAY_JOB_ID
    printf '%q ' "${array_cmd[@]}"
    echo
    printf '%q ' "${merge[@]}"
    echo
    exit 0
fi

# A resubmission replaces the study: its old shards and result go now, so that a shard that
# fails this time leaves no earlier result at the path printed below.
if ((force)); then
    rm -rf "$out/shards" "$out/result"
fi
array_id=$("${array_cmd[@]}") || die "sbatch refused the shard array"
array_id=${array_id%%;*}
merge_cmd "$array_id"
merge_id=$("${merge[@]}") || {
    echo "submit.sh: sbatch refused the merge job; cancelling array $array_id" >&2
    scancel "$array_id" || true
    exit 1
}
merge_id=${merge_id%%;*}

echo "array_job_id=$array_id"
echo "merge_job_id=$merge_id"
echo "result=$out/result"
cat >&2 <<MSG
submitted $shards shard tasks as job array $array_id and the merge as job $merge_id
(the merge runs once every shard has succeeded; if one fails, SLURM cancels it).
  watch:  squeue -j $array_id,$merge_id
  logs:   $out/logs/
  result: $out/result
MSG
