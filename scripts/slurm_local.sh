#!/usr/bin/env bash
# A real single-node SLURM (slurmctld, slurmd, munge) on this machine, for trying and testing
# fitlab's cluster path. Every file it makes lives in one private folder, never /etc/slurm or
# the system's munge:
#
#   scripts/slurm_local.sh up       # start it (installs Debian's packages as root if missing)
#   eval "$(scripts/slurm_local.sh up | grep ^export)"   # then sbatch, srun, squeue work
#   scripts/slurm_local.sh status
#   scripts/slurm_local.sh down     # cancel its jobs, stop exactly the daemons it started
#
# FITLAB_SLURM_DIR: the folder (default /tmp/fitlab-slurm); FITLAB_SLURM_PORT: slurmctld's port
# (default 6817), slurmd takes the next one.
set -euo pipefail

DIR=${FITLAB_SLURM_DIR:-/tmp/fitlab-slurm}
PORT=${FITLAB_SLURM_PORT:-6817}
CONF=$DIR/slurm.conf
NODE=$(hostname -s)
DAEMONS=(munged slurmctld slurmd)
UP_TIMEOUT_S=${FITLAB_SLURM_UP_TIMEOUT_S:-60}

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: error: $*" >&2; exit 1; }

# A process that has exited but is not reaped yet (a zombie) counts as gone.
alive() { [[ -r /proc/$1/stat && $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

pid_file() { echo "$DIR/run/$1.pid"; }

# The pid in $1's pid file if that process is still $1 started for this folder, else nothing.
our_pid() {
    local name=$1 file pid
    file=$(pid_file "$name")
    [[ -f $file ]] || return 0
    pid=$(tr -dc 0-9 <"$file")
    [[ -n $pid ]] && alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] ||
        return 0
    # munged names its socket on the command line, the slurm daemons carry our SLURM_CONF.
    if tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "--socket=$DIR/run/munge.socket" ||
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$CONF"; then
        echo "$pid"
    fi
}

install_packages() {
    local missing=0 cmd
    for cmd in slurmctld slurmd sbatch munged; do
        command -v "$cmd" >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null ||
            missing=1
    done
    ((missing)) || return 0
    if ((EUID != 0)); then
        echo "slurm_local: SLURM or munge is missing; as root: apt-get install slurmctld slurmd slurm-client munge" >&2
        exit 2
    fi
    say "installing slurmctld slurmd slurm-client munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge
}

write_config() {
    local mem_mb
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    # munged wants its key in a private folder and its socket in one everybody may enter.
    mkdir -p "$DIR"/{run,log,state} "$DIR/spool/$NODE"
    chmod 0755 "$DIR" "$DIR/run"
    if [[ ! -d $DIR/munge ]]; then
        mkdir -m 0700 "$DIR/munge"
    fi
    if [[ ! -s $DIR/munge/munge.key ]]; then
        (umask 077 && head -c 1024 /dev/urandom >"$DIR/munge/munge.key")
    fi
    cat >"$CONF" <<EOF
# Written by scripts/slurm_local.sh; rewritten by every "up".
ClusterName=fitlab
SlurmctldHost=$NODE
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/run/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$(pid_file slurmd)
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups: a laptop or a container may have none to give.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
# Several jobs share the one node, one CPU each by default.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobRequeue=1
ReturnToService=2
SlurmdParameters=config_overrides
# Finished jobs stay visible to scontrol show job for 10 minutes.
MinJobAge=600
MailProg=/bin/true
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$NODE CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

show_logs() {
    local log
    for log in "$DIR"/log/*.log "$DIR"/log/*.out; do
        [[ -s $log ]] || continue
        echo "---- $log" >&2
        tail -n 20 "$log" >&2
    done
}

start_daemon() {
    local name=$1
    rm -f "$(pid_file "$name")"
    case $name in
        munged)
            munged --socket="$DIR/run/munge.socket" --key-file="$DIR/munge/munge.key" \
                --pid-file="$(pid_file munged)" --log-file="$DIR/log/munged.log" \
                --seed-file="$DIR/munge/munged.seed" ;;
        slurmctld) slurmctld ;;
        slurmd) slurmd ;;
    esac </dev/null >>"$DIR/log/$name.out" 2>&1 || { show_logs; die "$name did not start"; }
    # Daemon mode returns before the pid file is written.
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -n $(our_pid "$name") ]] && return 0
        sleep 0.1
    done
    show_logs
    die "$name did not start"
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1; }

up() {
    install_packages
    if ((EUID != 0)); then
        echo "slurm_local: run up as root: its daemons and their jobs run as root" >&2
        exit 2
    fi
    PATH=$PATH:/usr/sbin:/sbin
    export SLURM_CONF=$CONF
    write_config
    local name port started=()
    # A port held by anything but our own daemon (another cluster): fail before starting any.
    for name in slurmctld slurmd; do
        port=$PORT
        [[ $name == slurmd ]] && port=$((PORT + 1))
        if [[ -z $(our_pid "$name") ]] && port_taken "$port"; then
            die "port $port for $name is taken (another SLURM?); set FITLAB_SLURM_PORT"
        fi
    done
    # On failure, stop what this call started: no half cluster is left behind.
    trap 'stop_daemons "${started[@]}"' ERR EXIT
    for name in "${DAEMONS[@]}"; do
        [[ -n $(our_pid "$name") ]] && continue
        started+=("$name")
        start_daemon "$name"
    done
    local deadline=$((SECONDS + UP_TIMEOUT_S)) state
    while true; do
        state=$(node_state)
        [[ $state == idle || $state == mixed || $state == allocated ]] && break
        if ((SECONDS >= deadline)); then
            show_logs
            die "node $NODE is '${state:-unknown}' after ${UP_TIMEOUT_S}s, not idle"
        fi
        sleep 0.5
    done
    trap - ERR EXIT
    if ((${#started[@]})); then
        say "started ${started[*]} in $DIR; node $NODE is $state"
    else
        say "already running in $DIR; node $NODE is $state"
    fi
    echo "export SLURM_CONF=$CONF"
}

down() {
    export SLURM_CONF=$CONF PATH=$PATH:/usr/sbin:/sbin
    local jobs i
    if [[ -n $(our_pid slurmctld) ]]; then
        jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
        if [[ -n ${jobs// /} ]]; then
            say "cancelling jobs $jobs"
            # shellcheck disable=SC2086
            scancel $jobs || true
            for ((i = 0; i < 60; i++)); do
                [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
                sleep 0.5
            done
        fi
    fi
    # The reverse of the start order: slurmd, slurmctld, then munged that both talk to.
    stop_daemons slurmd slurmctld munged
}

# Stop those of the named daemons that run from this folder, each waited for.
stop_daemons() {
    local name pid i
    for name in slurmd slurmctld munged; do
        [[ " $* " == *" $name "* ]] || continue
        pid=$(our_pid "$name")
        if [[ -n $pid ]]; then
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 300; i++)); do
                alive "$pid" || break
                sleep 0.1
            done
            alive "$pid" && die "$name (pid $pid) did not exit after 30 s"
            say "stopped $name (pid $pid)"
        fi
        rm -f "$(pid_file "$name")"
    done
}

status() {
    local name pid running=0
    for name in "${DAEMONS[@]}"; do
        pid=$(our_pid "$name")
        if [[ -n $pid ]]; then
            echo "$name: running (pid $pid)"
            running=$((running + 1))
        else
            echo "$name: not running"
        fi
    done
    if ((running == ${#DAEMONS[@]})); then
        say "running in $DIR; export SLURM_CONF=$CONF"
    else
        say "not running ($DIR)"
        return 3
    fi
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
