#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the cluster tests (`make test-cluster`) and for
# trying the README's sbatch / srun / scontrol requeue lines without a real cluster.
#
#   scripts/slurm_cluster.sh          start it (idempotent: what already runs is left as it is)
#   scripts/slurm_cluster.sh status   say what runs and where
#   scripts/slurm_cluster.sh stop     stop the daemons this script started (state and logs are kept)
#   scripts/slurm_cluster.sh env      print the export line for a shell: eval "$(scripts/slurm_cluster.sh env)"
#
# Everything lives under $GROK_SLURM_DIR (default /tmp/grok-slurm): slurm.conf, a private munge key
# and socket, the daemons' logs, pid files, state and spool. Nothing in /etc is read or changed, so
# the commands must be pointed at the config: export SLURM_CONF=$GROK_SLURM_DIR/slurm.conf.
# It installs nothing: without slurmctld / slurmd / munged it says what to install and exits 1.
# Ports: $GROK_SLURM_PORT (slurmctld, default 16817) and the next one (slurmd).
# The node has this machine's cores (nproc) and memory; no cgroups (proctrack/linuxproc,
# task/none), job accounting to a text file that `sacct -c` reads (no slurmdbd), JobRequeue=1.
set -euo pipefail

DIR=${GROK_SLURM_DIR:-/tmp/grok-slurm}
PORT=${GROK_SLURM_PORT:-16817}
CONF=$DIR/slurm.conf
SOCKET=$DIR/munge/munge.socket
NODE=$(hostname -s 2>/dev/null || cat /proc/sys/kernel/hostname)
CLUSTER=grok

need_binaries() {
    local missing=()
    for b in slurmctld slurmd munged sinfo sbatch; do
        command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "slurm_cluster: not installed: ${missing[*]}" >&2
        echo "  install them (Debian/Ubuntu): apt-get install -y slurm-wlm munge" >&2
        exit 1
    fi
}

pid_alive() {  # pid_alive <pidfile> <name>: the pid file names a live process of that name
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q "$2" "/proc/$pid/comm" 2>/dev/null
}

write_config() {
    local cpus mem
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$DIR"/{log,state,spool,run,munge}
    chmod 755 "$DIR/munge"  # the socket is for every user; the key itself is 0400
    local tmp=$CONF.tmp
    cat >"$tmp" <<EOF
# written by scripts/slurm_cluster.sh: one node ($NODE, $cpus CPUs) on this machine
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$SOCKET,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups in a container: processes are tracked through /proc, tasks are not bound
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
LaunchParameters=use_interactive_step
SchedulerType=sched/backfill
# a requeued job becomes eligible cred_expire seconds after it ended: look for it every 5 s, not 60
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# requeue: jobs may be requeued (scontrol requeue, or after a node failure)
JobRequeue=1
# no slurmdbd: sacct -c reads the job completion log (one line per finished or requeued job)
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
JobAcctGatherType=jobacct_gather/none
# a small cluster answers quickly: short timeouts, jobs kept in memory long enough to inspect
KillWait=10
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=60
ReturnToService=2
InactiveLimit=0
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    if ! cmp -s "$tmp" "$CONF" 2>/dev/null; then
        mv "$tmp" "$CONF"
        CONF_CHANGED=1
    else
        rm -f "$tmp"
    fi
}

start_munge() {
    local key=$DIR/munge/munge.key
    if [ ! -f "$key" ]; then
        dd if=/dev/urandom bs=1 count=1024 of="$key" status=none
        chmod 400 "$key"
        echo "  munge key: generated $key"
    fi
    if pid_alive "$DIR/run/munged.pid" munged; then
        echo "  munged: already running (pid $(cat "$DIR/run/munged.pid"))"
        return
    fi
    rm -f "$SOCKET" "$SOCKET.lock"
    # --force: runs as root, and /tmp is writable by all (munged refuses both by default)
    munged --force --socket="$SOCKET" --key-file="$key" --pid-file="$DIR/run/munged.pid" \
        --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    for _ in $(seq 50); do [ -S "$SOCKET" ] && break; sleep 0.1; done
    echo "  munged: started (pid $(cat "$DIR/run/munged.pid"), socket $SOCKET)"
}

start_daemon() {  # start_daemon slurmctld|slurmd
    local name=$1 pidfile=$DIR/run/$1.pid
    if pid_alive "$pidfile" "$name"; then
        if [ "${CONF_CHANGED:-0}" = 1 ]; then
            echo "  $name: running (pid $(cat "$pidfile")) with an older slurm.conf: run '$0 stop' then '$0'" >&2
        else
            echo "  $name: already running (pid $(cat "$pidfile"))"
        fi
        return
    fi
    rm -f "$pidfile"
    # -c on the first start: no saved jobs or node states from an earlier cluster in this directory
    local clean=()
    [ "$name" = slurmctld ] && [ ! -f "$DIR/state/node_state" ] && clean=(-c)
    SLURM_CONF=$CONF "$(command -v "$name" || echo "/usr/sbin/$name")" -f "$CONF" "${clean[@]}"
    for _ in $(seq 50); do pid_alive "$pidfile" "$name" && break; sleep 0.1; done
    if ! pid_alive "$pidfile" "$name"; then
        echo "slurm_cluster: $name did not start; see $DIR/log/$name.log:" >&2
        tail -n 20 "$DIR/log/$name.log" >&2 || true
        exit 1
    fi
    echo "  $name: started (pid $(cat "$pidfile"))"
}

wait_idle() {
    local state=""
    for _ in $(seq 60); do
        state=$(SLURM_CONF=$CONF sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
        case $state in idle | mixed | allocated | completing) break ;; esac
        # a node left DOWN by an earlier run of this directory
        case $state in down* | drain*) SLURM_CONF=$CONF scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;; esac
        sleep 1
    done
    echo "  node $NODE: ${state:-no answer from slurmctld}"
    case $state in idle | mixed | allocated | completing) ;; *) exit 1 ;; esac
}

stop_cluster() {
    local any=0
    for name in slurmd slurmctld munged; do
        local pidfile=$DIR/run/$name.pid
        if pid_alive "$pidfile" "$name"; then
            local pid
            pid=$(cat "$pidfile")
            kill "$pid"
            for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
            echo "  $name: stopped (pid $pid)"
            any=1
        fi
    done
    [ $any = 1 ] || echo "  nothing was running under $DIR"
    echo "  state and logs kept in $DIR (rm -rf $DIR for a fresh cluster)"
}

status() {
    for name in munged slurmctld slurmd; do
        if pid_alive "$DIR/run/$name.pid" "$name"; then
            echo "  $name: running (pid $(cat "$DIR/run/$name.pid"))"
        else
            echo "  $name: not running"
        fi
    done
    if [ -f "$CONF" ]; then SLURM_CONF=$CONF sinfo 2>/dev/null || true; fi
}

case ${1:-start} in
start)
    need_binaries
    echo "slurm_cluster: one-node cluster '$CLUSTER' in $DIR"
    CONF_CHANGED=0
    write_config
    start_munge
    start_daemon slurmctld
    start_daemon slurmd
    wait_idle
    cat <<EOF
  config:  $CONF
  logs:    $DIR/log/{slurmctld,slurmd,munged}.log, finished jobs: $DIR/log/jobcomp.log (sacct -c)
  state:   $DIR/state (slurmctld), $DIR/spool (slurmd)
  use it:  export SLURM_CONF=$CONF   (then sinfo, srun, sbatch, squeue, scontrol, sacct -c)
  stop it: $0 stop
EOF
    ;;
stop) stop_cluster ;;
status) status ;;
env) echo "export SLURM_CONF=$CONF" ;;
*)
    echo "usage: $0 [start|stop|status|env]" >&2
    exit 2
    ;;
esac
