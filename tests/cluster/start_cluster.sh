#!/usr/bin/env bash
# A one-node Slurm for paperkb's cluster tests (and for trying `paperkb run --on slurm` here).
#
#   tests/cluster/start_cluster.sh start [DIR]   install what is missing (Debian: slurm-wlm, munge; slurmdbd
#                                                and mariadb-server for sacct), write DIR/slurm.conf, start
#                                                munged, MariaDB, slurmdbd, slurmctld and slurmd, wait until
#                                                the node is idle; print `export SLURM_CONF=...`
#   tests/cluster/start_cluster.sh stop DIR      stop exactly the daemons that `start DIR` started (by pid)
#
# Everything lives under DIR (default: a new folder under /tmp): configuration, munge key and socket,
# database, state, spool, logs and DIR/pids. The node offers this machine's real CPU count and memory.
# In a container there are no cgroups to use: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none.
# Accounting is optional (PAPERKB_SLURM_ACCOUNTING=0 leaves it out; without slurmdbd or MariaDB the
# cluster starts without it, with a warning). Ports: PAPERKB_SLURMCTLD_PORT, PAPERKB_SLURMD_PORT,
# PAPERKB_SLURMDBD_PORT, PAPERKB_MARIADB_PORT (defaults 16817-16820).
# Needs root (munged --force and slurmd run as root). Use it as:
#   eval "$(tests/cluster/start_cluster.sh start /tmp/paperkb-slurm)"
set -euo pipefail

die() { echo "start_cluster: $*" >&2; exit 1; }

apt_install() {
    [[ $(id -u) == 0 ]] || return 1
    echo "start_cluster: installing $*" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

install_missing() {
    local need=() extra=()
    command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
    command -v slurmd >/dev/null 2>&1 || need+=(slurmd slurm-client)
    command -v munged >/dev/null 2>&1 || need+=(munge)
    if ((${#need[@]})); then
        [[ $(id -u) == 0 ]] || die "missing ${need[*]} and not root to install them"
        apt_install "${need[@]}" || die "could not install ${need[*]}"
    fi
    # accounting (sacct) is optional: without it the cluster runs on squeue and scontrol alone
    if [[ ${PAPERKB_SLURM_ACCOUNTING:-1} == 1 ]]; then
        command -v slurmdbd >/dev/null 2>&1 || extra+=(slurmdbd)
        command -v mariadbd >/dev/null 2>&1 || extra+=(mariadb-server)
        if ((${#extra[@]})); then
            apt_install "${extra[@]}" || echo "start_cluster: warning: could not install ${extra[*]}" >&2
        fi
    fi
    return 0
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

start_accounting() {  # start_accounting DIR DB_PORT DBD_PORT: MariaDB + slurmdbd, so that sacct answers
    local dir=$1 db_port=$2 dbd_port=$3
    command -v slurmdbd >/dev/null 2>&1 && command -v mariadbd >/dev/null 2>&1 || return 1
    mkdir -p "$dir/db"
    if [[ ! -d $dir/db/data/mysql ]]; then
        mariadb-install-db --no-defaults --datadir="$dir/db/data" --user=root --skip-test-db \
            >"$dir/log/mariadb-install.log" 2>&1 || return 1
    fi
    mariadbd --no-defaults --datadir="$dir/db/data" --socket="$dir/db/mariadb.sock" --port="$db_port" \
        --bind-address=127.0.0.1 --user=root --pid-file="$dir/db/mariadb.pid" --log-error="$dir/log/mariadb.log" \
        --skip-log-bin --innodb-buffer-pool-size=32M --innodb-log-file-size=8M </dev/null >/dev/null 2>&1 &
    echo "mariadbd $!" >>"$dir/pids"
    wait_for 60 mariadb mariadb --no-defaults --socket="$dir/db/mariadb.sock" -e "SELECT 1" || return 1
    local password
    password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    mariadb --no-defaults --socket="$dir/db/mariadb.sock" -e "
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
        ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || return 1
    (
        umask 077
        cat >"$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
PidFile=$dir/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$password
StorageLoc=slurm_acct_db
EOF
    )
    slurmdbd -D </dev/null >>"$dir/log/slurmdbd.out" 2>&1 &
    echo "slurmdbd $!" >>"$dir/pids"
    wait_for 30 slurmdbd sacctmgr -i list cluster || return 1  # sacctmgr talks to slurmdbd alone
    sacctmgr -i add cluster paperkb-test >/dev/null 2>&1 || true
    return 0
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
    local dbd_port=${PAPERKB_SLURMDBD_PORT:-16819} db_port=${PAPERKB_MARIADB_PORT:-16820}
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
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
# for the slurmdbd plugin this "password" is the munge socket to use
AccountingStoragePass=$dir/munge/munge.socket
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
    # Accounting (sacct) where slurmdbd and MariaDB are installed; without them, squeue and scontrol only.
    local accounting="sacct through slurmdbd and MariaDB"
    if [[ ${PAPERKB_SLURM_ACCOUNTING:-1} != 1 ]] || ! start_accounting "$dir" "$db_port" "$dbd_port"; then
        accounting="no accounting"
        [[ ${PAPERKB_SLURM_ACCOUNTING:-1} == 1 ]] && echo "start_cluster: warning: no accounting (see $dir/log)" >&2
        sed -i -e 's|^AccountingStorageType=.*|AccountingStorageType=accounting_storage/none|' \
            -e '/^AccountingStorage\(Host\|Port\|Pass\)=/d' "$dir/slurm.conf"
    fi
    slurmctld -D -i -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
    echo "slurmctld $!" >>"$dir/pids"
    wait_for 20 slurmctld scontrol ping || die "slurmctld did not answer (see $dir/log/slurmctld.log)"
    slurmd -D -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
    echo "slurmd $!" >>"$dir/pids"
    idle() { sinfo -h -N -o %t | grep -qx idle; }
    wait_for 30 slurmd idle || die "the node did not become idle (see $dir/log/slurmd.log): $(sinfo -h -N -o '%t %E')"
    local t1
    t1=$(date +%s.%N)
    echo "start_cluster: one-node Slurm up in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s ($cpus CPUs, $mem_mb MB) under $dir, $accounting" >&2
    echo "export SLURM_CONF=$dir/slurm.conf"
}

cmd=${1:-start}
case $cmd in
start) start_cluster "${2:-$(mktemp -d /tmp/paperkb-slurm.XXXXXX)}" ;;
stop) [[ -n ${2:-} ]] || die "usage: $0 stop DIR"; stop_cluster "$2" ;;
*) die "usage: $0 start [DIR] | stop DIR" ;;
esac
