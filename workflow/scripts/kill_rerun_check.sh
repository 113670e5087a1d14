#!/usr/bin/env bash
# The README's pipeline command survives a kill -9: start the smoke pipeline in a scratch results
# folder, kill -9 Snakemake part way (its running VMC jobs are left orphaned, as after a crash), then
# run exactly what the README says (`snakemake --unlock`, then the same command again) and check
# that it completes and that no job of the killed run kept running. Takes about the smoke run's time
# plus the time before the kill (a few minutes on 2 cores); not part of CI (docs/pipeline.md).
#   bash workflow/scripts/kill_rerun_check.sh [SECONDS_BEFORE_KILL]
set -euo pipefail
cd "$(dirname "$0")/../.."
wait_s=${1:-60}
scratch=$(mktemp -d /tmp/nirbench-kill.XXXXXX)
trap 'status=$?; [ $status -eq 0 ] && rm -rf "$scratch" || echo "logs kept in $scratch"' EXIT
args=(--configfile config/smoke.yaml --config "results_dir=$scratch/results" "figures_dir=$scratch/figures")
start=$(date +%s)

snakemake --cores 2 "${args[@]}" > "$scratch/first.log" 2>&1 &
pid=$!
sleep "$wait_s"
kill -0 "$pid" 2>/dev/null || { tail -20 "$scratch/first.log"; echo "FAILED: Snakemake ended before the kill"; exit 1; }
running=$(pgrep -f "nirbench vmc --config $scratch" || true)
echo "kill -9 Snakemake (pid $pid) after ${wait_s} s; running VMC jobs: ${running:-none}"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true

# the README's recovery: unlock, then the same command
snakemake --unlock "${args[@]}" > "$scratch/unlock.log" 2>&1
snakemake --cores 2 "${args[@]}" > "$scratch/second.log" 2>&1 || { tail -30 "$scratch/second.log"; echo "FAILED: the rerun did not complete"; exit 1; }
grep -q "steps (100%) done\|Nothing to be done" "$scratch/second.log" || { echo "FAILED: no completion line"; exit 1; }
left=$(pgrep -f "nirbench vmc --config $scratch" || true)
[ -z "$left" ] || { echo "FAILED: jobs of the killed run still running: $left"; exit 1; }
for orphan in $running; do  # the orphaned jobs of the killed Snakemake stopped by themselves
    if kill -0 "$orphan" 2>/dev/null; then echo "FAILED: orphaned job $orphan still running"; exit 1; fi
done
grep -h "has gone" "$scratch"/results/logs/vmc/**/*.log "$scratch"/results/logs/vmc/*/*/*/*/*/*/*/*.log 2>/dev/null | head -3 || true
echo "OK: killed, unlocked and rerun to completion in $(( $(date +%s) - start )) s"
