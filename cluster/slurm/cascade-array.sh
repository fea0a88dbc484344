#!/usr/bin/env bash
# One shard of a cascade study, run as one task of a SLURM job array.
#
#   sbatch --array=0-<N-1> cascade-array.sh --shards N --out DIR [--bin PATH] -- SCENARIO [run flags]
#
# Task i runs `cascade run SCENARIO [run flags] --shard (i+1)/N --out DIR/shards/i`. When every
# task has succeeded, cascade-merge.sh (same --shards, --out, --bin) combines DIR/shards/* into
# DIR/result. submit.sh submits both with the right dependency; see README.md next to this file.
# The options can also come from the environment: CASCADE_SHARDS, CASCADE_OUT, CASCADE_BIN.
#
#SBATCH --job-name=cascade-shard
#SBATCH --output=cascade-shard-%A_%a.out
set -euo pipefail
# ${a[@]+"${a[@]}"} for an array that may be empty: see submit.sh.

die() {
    echo "cascade-array.sh: $*" >&2
    exit 2
}
# Refuses an option given last without its value (exit 2, as for all bad input).
needs_value() {
    (($# >= 2)) || die "$1 needs a value"
}

shards=${CASCADE_SHARDS:-}
out=${CASCADE_OUT:-}
bin=${CASCADE_BIN:-cascade}
while [[ $# -gt 0 ]]; do
    case $1 in
        --shards) needs_value "$@"; shards=$2; shift 2 ;;
        --out) needs_value "$@"; out=$2; shift 2 ;;
        --bin) needs_value "$@"; bin=$2; shift 2 ;;
        --) shift; break ;;
        *) die "unknown option $1 (cascade run flags go after --)" ;;
    esac
done
[[ $# -ge 1 ]] || die "missing SCENARIO after --"
[[ $shards =~ ^[1-9][0-9]*$ ]] || die "--shards must be a positive integer, got '$shards'"
[[ -n $out ]] || die "missing --out"
[[ -n ${SLURM_ARRAY_TASK_ID:-} ]] || die "not a job-array task (submit with sbatch --array=0-$((shards - 1)))"
task=$SLURM_ARRAY_TASK_ID
((task < shards)) || die "array task $task is outside 0..$((shards - 1)) for --shards $shards"

threads=()
if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
    threads=(--threads "$SLURM_CPUS_PER_TASK")
fi
mkdir -p "$out/shards"
echo "cascade shard $((task + 1))/$shards on $(hostname) (job ${SLURM_ARRAY_JOB_ID:-?}_$task)"
# --force: a requeued task replaces what an earlier attempt left behind.
# No report per shard: the merge draws the study's (a shard's charts of its own paths cost
# every task time and nobody reads them).
exec "$bin" run "$@" --shard "$((task + 1))/$shards" --out "$out/shards/$task" --force --quiet \
    --no-report ${threads[@]+"${threads[@]}"}
