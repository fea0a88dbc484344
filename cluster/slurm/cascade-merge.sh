#!/usr/bin/env bash
# Merge the shards of a cascade job array into the result an unsharded run would have written.
#
#   sbatch --dependency=afterok:<array job id> --kill-on-invalid-dep=yes \
#       cascade-merge.sh --shards N --out DIR [--bin PATH] [--remove-shards]
#
# Runs `cascade merge DIR/shards/0 ... DIR/shards/N-1 --out DIR/result`; cascade refuses missing,
# overlapping or mismatched shards. --remove-shards deletes DIR/shards after a successful merge.
# The options can also come from the environment: CASCADE_SHARDS, CASCADE_OUT, CASCADE_BIN.
#
#SBATCH --job-name=cascade-merge
#SBATCH --output=cascade-merge-%j.out
set -euo pipefail

die() {
    echo "cascade-merge.sh: $*" >&2
    exit 2
}
# Refuses an option given last without its value (exit 2, as for all bad input).
needs_value() {
    (($# >= 2)) || die "$1 needs a value"
}

shards=${CASCADE_SHARDS:-}
out=${CASCADE_OUT:-}
bin=${CASCADE_BIN:-cascade}
remove=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --shards) needs_value "$@"; shards=$2; shift 2 ;;
        --out) needs_value "$@"; out=$2; shift 2 ;;
        --bin) needs_value "$@"; bin=$2; shift 2 ;;
        --remove-shards) remove=1; shift ;;
        *) die "unknown option $1" ;;
    esac
done
[[ $shards =~ ^[1-9][0-9]*$ ]] || die "--shards must be a positive integer, got '$shards'"
[[ -n $out ]] || die "missing --out"

dirs=()
for ((i = 0; i < shards; i++)); do
    dirs+=("$out/shards/$i")
done
echo "cascade merge of $shards shards on $(hostname) (job ${SLURM_JOB_ID:-?})"
"$bin" merge "${dirs[@]}" --out "$out/result" --force
if ((remove)); then
    rm -rf -- "$out/shards"
fi
