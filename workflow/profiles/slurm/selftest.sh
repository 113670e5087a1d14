#!/usr/bin/env bash
# SLURM self-test: install and start a single-node SLURM cluster on this machine (Debian packages
# slurm-wlm and munge; no accounting database: the executor plugin is told to poll with squeue),
# run the smoke config through workflow/profiles/slurm with snakemake-executor-plugin-slurm, and
# check that every CSV it writes equals the local smoke run's (timing columns excepted).
#
#   bash workflow/profiles/slurm/selftest.sh            # as root, from anywhere in the repository
#
# The node gets this machine's CPUs and memory (`slurmd -C`) and two stand-in GPUs (GRES
# `gpu:2` on two character devices with /dev/null's numbers in the temporary folder), so the
# profile's `gpu: 1` for VMC jobs is submitted as a real `--gpus=1` request and scheduled; JAX
# still computes on the CPU. Partitions `cpu` and `gpu` are the profile's. Outputs go to a temporary folder (a copy of config/smoke.yaml with other
# results_dir/figures_dir), never into results/ or figures/. The reference is the local smoke run
# in results/smoke (made first with the default profile if it is missing or out of date; it must
# come from the same code). Every daemon this script starts is stopped on exit (trap), also on
# failure; services it did not start are left alone. Where SLURM cannot be installed or started
# it prints why in one line and exits 1.
#
# Environment: SELFTEST_KEEP=1 keeps the temporary folder; SELFTEST_CORES (default: all) for the
# local reference run.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$REPO" || exit 1
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"  # both runs use this checkout's nirbench
START=$(date +%s)
WORK=""
STARTED_PIDS=()   # "name:pid" of every daemon started here
POLICY_CREATED=0
ETC_LINKS=()      # /etc/slurm/*.conf links made here (job steps look for the config there)

say() { printf 'selftest [%3d s]: %s\n' "$(( $(date +%s) - START ))" "$*"; }
fail() {  # one line why, then exit 1 (the trap stops what was started)
    printf 'selftest: FAILED: %s\n' "$*" >&2
    exit 1
}

cleanup() {
    local rc=$?
    if command -v scancel >/dev/null 2>&1 && [ -n "$WORK" ] && [ -f "$WORK/slurm.conf" ]; then
        SLURM_CONF="$WORK/slurm.conf" timeout 10 scancel --user=root >/dev/null 2>&1 || true
    fi
    local entry name pid
    for entry in "${STARTED_PIDS[@]}"; do
        name=${entry%%:*}
        pid=${entry##*:}
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
            say "stopped $name (pid $pid)"
        fi
    done
    [ "$POLICY_CREATED" = 1 ] && rm -f /usr/sbin/policy-rc.d
    local link
    for link in "${ETC_LINKS[@]}"; do rm -f "$link"; done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "${SELFTEST_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
            say "kept $WORK (logs: $WORK/*.log)"
        else
            rm -rf "$WORK"
        fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------- preflight
[ "$(id -u)" = 0 ] || fail "needs root to install and start SLURM (running as uid $(id -u))"
command -v python >/dev/null 2>&1 || fail "no python on PATH (activate the project's virtual environment)"
python -c "import snakemake" 2>/dev/null || fail "snakemake is not importable (pip install -e . first)"
WORK=$(mktemp -d /tmp/nirbench-slurm-selftest.XXXXXX) || fail "cannot create a temporary folder"

# --------------------------------------------------------------------------- install
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
    || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null 2>&1 || fail "no apt-get: install slurm-wlm and munge by hand (not a Debian system?)"
    if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep the packages from starting their own services
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && POLICY_CREATED=1
    fi
    say "installing slurm-wlm and munge with apt-get (log: $WORK/apt.log)"
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge; } \
        > "$WORK/apt.log" 2>&1 || fail "apt-get could not install slurm-wlm and munge (see $WORK/apt.log)"
    [ "$POLICY_CREATED" = 1 ] && rm -f /usr/sbin/policy-rc.d && POLICY_CREATED=0
fi
if ! python -c "import snakemake_executor_plugin_slurm" 2>/dev/null; then
    say "installing snakemake-executor-plugin-slurm with pip"
    python -m pip install -q snakemake-executor-plugin-slurm > "$WORK/pip.log" 2>&1 \
        || fail "pip could not install snakemake-executor-plugin-slurm (see $WORK/pip.log)"
fi
say "$(slurmctld -V), $(munged --version 2>&1 | head -1), plugin $(python -c \
    'from importlib.metadata import version; print(version("snakemake-executor-plugin-slurm"))')"

# --------------------------------------------------------------------------- munge
if [ ! -S /run/munge/munge.socket.2 ] || ! munge -n >/dev/null 2>&1; then
    [ -s /etc/munge/munge.key ] || { mungekey --create --force >/dev/null 2>&1 \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
    chown munge:munge /etc/munge/munge.key 2>/dev/null; chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- munged --pid-file=/run/munge/selftest.pid >"$WORK/munged.log" 2>&1 \
        || fail "munged did not start ($(tail -1 "$WORK/munged.log"))"
    for _ in $(seq 50); do [ -s /run/munge/selftest.pid ] && break; sleep 0.1; done
    STARTED_PIDS+=("munged:$(cat /run/munge/selftest.pid)")
    munge -n >/dev/null 2>&1 || fail "munge does not answer after starting munged"
fi

# --------------------------------------------------------------------------- slurm.conf
HOST=$(hostname -s)
NODE=$(slurmd -C 2>/dev/null | head -1)
case "$NODE" in NodeName=*) ;; *) fail "slurmd -C did not describe this machine";; esac
CPUS=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<< "$NODE")
MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<< "$NODE")
mkdir -p "$WORK/state" "$WORK/spool"
cat > "$WORK/slurm.conf" <<EOF
ClusterName=selftest
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
GresTypes=gpu
$NODE Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
EOF
# slurmd counts a GPU only with a device file: two stand-ins with /dev/null's numbers (1, 3)
mknod "$WORK/gpu0" c 1 3 && mknod "$WORK/gpu1" c 1 3 || fail "cannot create the stand-in GPU devices in $WORK"
echo "NodeName=$HOST Name=gpu File=$WORK/gpu[0-1]" > "$WORK/gres.conf"
export SLURM_CONF="$WORK/slurm.conf"
# slurmd does not pass SLURM_CONF on to the jobs, and `srun` inside a job (the executor runs each
# job as a job step) then looks in /etc/slurm: link the files there, unless a config exists
mkdir -p /etc/slurm
for name in slurm.conf gres.conf; do
    if [ -e "/etc/slurm/$name" ] || [ -L "/etc/slurm/$name" ]; then
        fail "/etc/slurm/$name exists: this machine has a SLURM configuration; not touching it"
    fi
    ln -s "$WORK/$name" "/etc/slurm/$name" && ETC_LINKS+=("/etc/slurm/$name")
done

# --------------------------------------------------------------------------- start SLURM
slurmctld -f "$SLURM_CONF" -i >"$WORK/slurmctld.out" 2>&1 || fail "slurmctld did not start (see $WORK/slurmctld.log)"
for _ in $(seq 50); do [ -s "$WORK/slurmctld.pid" ] && break; sleep 0.1; done
[ -s "$WORK/slurmctld.pid" ] || fail "slurmctld did not start (see $WORK/slurmctld.log)"
STARTED_PIDS+=("slurmctld:$(cat "$WORK/slurmctld.pid")")
slurmd -f "$SLURM_CONF" >"$WORK/slurmd.out" 2>&1 || fail "slurmd did not start (see $WORK/slurmd.log)"
for _ in $(seq 50); do [ -s "$WORK/slurmd.pid" ] && break; sleep 0.1; done
[ -s "$WORK/slurmd.pid" ] || fail "slurmd did not start (see $WORK/slurmd.log)"
STARTED_PIDS+=("slurmd:$(cat "$WORK/slurmd.pid")")
for _ in $(seq 60); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1)
    [ "$state" = idle ] && break
    sleep 0.5
done
[ "$state" = idle ] || fail "node $HOST did not become idle (state '${state:-none}'; see $WORK/slurmctld.log)"
say "SLURM up: node $HOST, $CPUS CPUs, $MEM MB, gres gpu:2, partitions cpu and gpu"

# --------------------------------------------------------------------------- local reference
say "local reference: results/smoke (snakemake --profile workflow/profiles/default --configfile config/smoke.yaml)"
snakemake --profile workflow/profiles/default --cores "${SELFTEST_CORES:-all}" --configfile config/smoke.yaml \
    >"$WORK/local.log" 2>&1 || fail "the local smoke run failed (see $WORK/local.log)"

# --------------------------------------------------------------------------- the SLURM run
OUT="$WORK/out"
sed -e "s#^results_dir: .*#results_dir: $OUT/results#" -e "s#^figures_dir: .*#figures_dir: $OUT/figures#" \
    config/smoke.yaml > "$WORK/smoke-slurm.yaml"
grep -q "^results_dir: $OUT/results" "$WORK/smoke-slurm.yaml" || fail "could not redirect results_dir"
say "SLURM run: snakemake --profile workflow/profiles/slurm --configfile $WORK/smoke-slurm.yaml (log: $WORK/slurm-run.log)"
T0=$(date +%s)
snakemake --profile workflow/profiles/slurm --configfile "$WORK/smoke-slurm.yaml" \
    --slurm-status-command squeue --slurm-init-seconds-before-status-checks 5 --slurm-no-account \
    --slurm-logdir "$WORK/slurm-logs" --verbose >"$WORK/slurm-run.log" 2>&1 \
    || fail "the SLURM run failed (see $WORK/slurm-run.log and $WORK/slurm-logs)"
T1=$(date +%s)
grep -o 'sbatch call: .*' "$WORK/slurm-run.log" | sed -e 's/ --wrap=.*//' -e 's/--job-name [^ ]*/--job-name <run-uuid>/' \
    -e 's/--output [^ ]*/--output <log>/' > "$WORK/sbatch.txt"
N_SUBMITTED=$(wc -l < "$WORK/sbatch.txt")
[ "$N_SUBMITTED" -gt 0 ] || fail "no sbatch call in the SLURM run's log"
grep -q -- "--gpus=1" "$WORK/sbatch.txt" || fail "no VMC job asked for a GPU (--gpus=1)"
say "$N_SUBMITTED jobs submitted with sbatch in $((T1 - T0)) s; the distinct option sets:"
sed -e 's/--comment [^ ]*/--comment <rule_wildcards>/' -e "s# -D $REPO# -D <repo>#" "$WORK/sbatch.txt" \
    | sort | uniq -c | sed 's/^/    /'
say "jobs known to slurmctld by state: $(squeue -h --states=all -o '%T' | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"

# --------------------------------------------------------------------------- compare
python workflow/scripts/compare_runs.py results/smoke "$OUT/results" --ref-figures figures/smoke \
    --new-figures "$OUT/figures" | sed 's/^/selftest:         /' || fail "outputs differ from the local smoke run (above)"

say "PASSED in $(( $(date +%s) - START )) s (SLURM run $((T1 - T0)) s)"
