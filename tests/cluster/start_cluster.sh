#!/usr/bin/env bash
# A one-node Slurm for paperkb's cluster tests (and for trying `paperkb run --on slurm` here).
#
#   tests/cluster/start_cluster.sh start [DIR]   install what is missing (Debian: slurm-wlm, munge),
#                                                write DIR/slurm.conf, start munged, slurmctld and slurmd,
#                                                wait until the node is idle; print `export SLURM_CONF=...`
#   tests/cluster/start_cluster.sh stop DIR      stop exactly the daemons that `start DIR` started (by pid)
#
# Everything lives under DIR (default: a new folder under /tmp): configuration, munge key and socket,
# state, spool, logs and DIR/pids. The node offers this machine's real CPU count and memory.
# In a container there are no cgroups to use: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none.
# Needs root (munged --force and slurmd run as root). Use it as:
#   eval "$(tests/cluster/start_cluster.sh start /tmp/paperkb-slurm)"
set -euo pipefail

die() { echo "start_cluster: $*" >&2; exit 1; }

install_missing() {
    local need=()
    command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
    command -v slurmd >/dev/null 2>&1 || need+=(slurmd slurm-client)
    command -v munged >/dev/null 2>&1 || need+=(munge)
    ((${#need[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || die "missing ${need[*]} and not root to install them"
    echo "start_cluster: installing ${need[*]}" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) ||
        die "could not install ${need[*]}"
}

stop_cluster() {
    local dir=$1
    [[ -f $dir/pids ]] || return 0
    # only the pids this script wrote (munged, slurmctld, slurmd), all at once; SIGKILL after 5 s
    local pids=() pid
    for pid in $(awk '{print $2}' "$dir/pids"); do
        kill "$pid" 2>/dev/null && pids+=("$pid")
    done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -f "$dir/pids"
}

wait_for() {  # wait_for SECONDS what command...
    local limit=$1 what=$2; shift 2
    local t0=$SECONDS
    until "$@" >/dev/null 2>&1; do
        ((SECONDS - t0 < limit)) || return 1
        sleep 0.2
    done
}

start_cluster() {
    local dir=$1
    install_missing
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 700 "$dir"
    [[ -f $dir/pids ]] && stop_cluster "$dir"
    mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/munge"
    chmod 700 "$dir/munge"
    [[ -f $dir/munge/munge.key ]] || { head -c 1024 /dev/urandom >"$dir/munge/munge.key"; chmod 400 "$dir/munge/munge.key"; }

    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    # Ports of our own, so that a system Slurm (or another test cluster) does not answer.
    local ctld_port=${PAPERKB_SLURMCTLD_PORT:-16817} slurmd_port=${PAPERKB_SLURMD_PORT:-16818}
    cat >"$dir/slurm.conf" <<EOF
# written by paperkb's tests/cluster/start_cluster.sh
ClusterName=paperkb-test
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long before it may start again (Slurm's default: 120 s)
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
# a fast test cluster: schedule at once, keep finished jobs visible to scontrol for 10 minutes
SchedulerParameters=defer_batch=0,sched_interval=1
MinJobAge=600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    export SLURM_CONF=$dir/slurm.conf
    local t0
    t0=$(date +%s.%N)
    : >"$dir/pids"
    munged --force --foreground --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
        </dev/null >/dev/null 2>>"$dir/log/munged.err" &
    echo "munged $!" >>"$dir/pids"
    wait_for 10 munge test -S "$dir/munge/munge.socket" || die "munged did not start (see $dir/log/munged.log)"
    slurmctld -D -i -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
    echo "slurmctld $!" >>"$dir/pids"
    wait_for 20 slurmctld scontrol ping || die "slurmctld did not answer (see $dir/log/slurmctld.log)"
    slurmd -D -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
    echo "slurmd $!" >>"$dir/pids"
    idle() { sinfo -h -N -o %t | grep -qx idle; }
    wait_for 30 slurmd idle || die "the node did not become idle (see $dir/log/slurmd.log): $(sinfo -h -N -o '%t %E')"
    local t1
    t1=$(date +%s.%N)
    echo "start_cluster: one-node Slurm up in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s ($cpus CPUs, $mem_mb MB) under $dir" >&2
    echo "export SLURM_CONF=$dir/slurm.conf"
}

cmd=${1:-start}
case $cmd in
start) start_cluster "${2:-$(mktemp -d /tmp/paperkb-slurm.XXXXXX)}" ;;
stop) [[ -n ${2:-} ]] || die "usage: $0 stop DIR"; stop_cluster "$2" ;;
*) die "usage: $0 start [DIR] | stop DIR" ;;
esac
