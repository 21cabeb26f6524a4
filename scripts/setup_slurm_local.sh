#!/usr/bin/env bash
# A small SLURM cluster on this one machine, for trying scripts/slurm_train.sh (and for
# tests/test_slurm.py): munged, slurmctld and one slurmd per node, all as root, without systemd
# or cgroups.
#
#   scripts/setup_slurm_local.sh          # as root: install (apt) if needed, configure, start; idempotent
#   scripts/setup_slurm_local.sh --stop   # stop the daemons it started (packages and config stay)
#   scripts/setup_slurm_local.sh --install-only   # only the packages (make provision; the tests start it)
#   NPROC_PER_NODE=1 sbatch --nodes=2 --gpus-per-node=0 scripts/slurm_train.sh ... --gpu_ids -1
#
# SLURM_LOCAL_NODES (default 2) nodes, each with this machine's CPUs (nproc) and no GPUs: with 1,
# one node named after `hostname`; with more, <hostname>-1 .. <hostname>-N, one slurmd each on
# ports 17001.. of 127.0.0.1 (Debian's slurmd is built with multiple-slurmd support), so a job
# can span "nodes" that are all this machine. Everything it writes lives under $SLURM_LOCAL_DIR
# (default /var/lib/slurm-local): config, logs, spool, state and pid files; /etc/slurm/slurm.conf
# becomes a link to that config, unless a slurm.conf that this script did not write is there
# (then it stops with an error). Debian/Ubuntu. A failure is one line on stderr and exit status 1.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/var/lib/slurm-local}"
CONF="$DIR/slurm.conf"
SYSTEM_CONF=/etc/slurm/slurm.conf
MARKER="# written by scripts/setup_slurm_local.sh"
HOST="$(hostname -s)"
NODES="${SLURM_LOCAL_NODES:-2}"

die() {
    echo "setup_slurm_local.sh: error: $*" >&2
    exit 1
}

alive() { # alive PID: the process exists and is not a zombie (an exited daemon nobody reaped)
    kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]
}

running() { # running PIDFILE: the process it names is alive
    [[ -s "$1" ]] && alive "$(cat "$1")"
}

stop_pidfiles() { # stop_pidfiles PIDFILE...: stop each process, wait up to 10 s for it to end
    local pidfile pid
    for pidfile in "$@"; do
        if running "$pidfile"; then
            pid="$(cat "$pidfile")"
            kill "$pid"
            for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
            alive "$pid" && die "$(basename "$pidfile" .pid) (pid $pid) did not stop"
            echo "stopped $(basename "$pidfile" .pid) (pid $pid)"
        fi
        rm -f "$pidfile"
    done
}

if [[ "${1:-}" == "--stop" ]]; then
    shopt -s nullglob
    stop_pidfiles "$DIR"/run/slurmd-*.pid "$DIR/run/slurmctld.pid" "$DIR/run/munged.pid"
    exit 0
fi
INSTALL_ONLY=0
if [[ "${1:-}" == "--install-only" ]]; then
    INSTALL_ONLY=1
    shift
fi
[[ $# -eq 0 ]] || die "unknown argument '$1' (usage: setup_slurm_local.sh [--stop | --install-only])"
[[ "$(id -u)" -eq 0 ]] || die "run it as root (it starts munged, slurmctld and slurmd as root)"
[[ "$NODES" =~ ^[1-9][0-9]?$ ]] || die "SLURM_LOCAL_NODES=$NODES is not a number of nodes (1-99)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "slurmctld/slurmd/munged not found, and no apt-get to install them"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 ||
        die "apt-get install -y slurm-wlm munge failed (try apt-get update first)"
fi
[[ "$INSTALL_ONLY" -eq 0 ]] || exit 0

mkdir -p "$DIR"/{log,run,spool,state,munge}
if [[ -e "$SYSTEM_CONF" || -L "$SYSTEM_CONF" ]] && ! grep -qF "$MARKER" "$SYSTEM_CONF" 2>/dev/null; then
    die "$SYSTEM_CONF exists and was not written by this script; leaving it alone"
fi

NAMES=()
if [[ "$NODES" -eq 1 ]]; then
    NAMES=("$HOST")
    NODE_LINES="NodeName=$HOST CPUs=$(nproc) State=UNKNOWN"
else
    NODE_LINES=""
    for i in $(seq "$NODES"); do
        NAMES+=("$HOST-$i")
        NODE_LINES+="NodeName=$HOST-$i NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((17000 + i)) CPUs=$(nproc) State=UNKNOWN"$'\n'
    done
fi
cat >"$CONF.new" <<EOF
$MARKER: $NODES node(s) on $HOST
ClusterName=local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmctldPort=6817
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
MinJobAge=300
${NODE_LINES%$'\n'}
PartitionName=debug Nodes=$(IFS=,; echo "${NAMES[*]}") Default=YES MaxTime=INFINITE State=UP
EOF
CHANGED=0
if cmp -s "$CONF.new" "$CONF"; then rm "$CONF.new"; else mv "$CONF.new" "$CONF" && CHANGED=1; fi
mkdir -p "$(dirname "$SYSTEM_CONF")"
ln -sfn "$CONF" "$SYSTEM_CONF"
export SLURM_CONF="$CONF"

# munged, with Debian's key (/etc/munge/munge.key, made by the package), unless one answers already.
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    [[ -s /etc/munge/munge.key ]] || mungekey --create >/dev/null 2>&1 || die "no /etc/munge/munge.key and mungekey --create failed"
    chown -R munge:munge /etc/munge "$DIR/munge"
    mkdir -p /run/munge && chown munge:munge /run/munge
    rm -f "$DIR/run/munged.pid"
    runuser -u munge -- munged --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
        --seed-file="$DIR/munge/munged.seed" >/dev/null 2>&1 || die "munged did not start (see $DIR/munge/munged.log)"
    ln -sfn "$DIR/munge/munged.pid" "$DIR/run/munged.pid"
    for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
    munge_ok || die "munged is not answering (see $DIR/munge/munged.log)"
fi

# Daemons already running keep running, unless the config changed (another number of nodes, say):
# then they are restarted on the new one.
shopt -s nullglob
if [[ "$CHANGED" -eq 1 ]]; then
    stop_pidfiles "$DIR"/run/slurmd-*.pid "$DIR/run/slurmctld.pid" >/dev/null
fi
shopt -u nullglob
running "$DIR/run/slurmctld.pid" || slurmctld -f "$CONF" || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
scontrol ping 2>/dev/null | grep -q UP || die "slurmctld is not answering (see $DIR/log/slurmctld.log)"
for name in "${NAMES[@]}"; do
    running "$DIR/run/slurmd-$name.pid" || slurmd -f "$CONF" -N "$name" ||
        die "slurmd for node $name did not start (see $DIR/log/slurmd-$name.log)"
done

# The nodes are usable once idle (or busy with jobs); one left down or drained is resumed.
state=""
for _ in $(seq 200); do
    ready=0
    for name in "${NAMES[@]}"; do
        state="$(sinfo -h -n "$name" -o %t 2>/dev/null || true)"
        case "$state" in
            idle* | mix* | alloc* | comp*) ready=$((ready + 1)) ;;
            down* | drain* | drng* | fail*) scontrol update NodeName="$name" State=RESUME >/dev/null 2>&1 || true ;;
        esac
    done
    if [[ "$ready" -eq "$NODES" ]]; then
        echo "slurm: $NODES node(s) up on $HOST: $(sinfo -h -o '%N %t' | tr '\n' ' ')(config $CONF)"
        exit 0
    fi
    sleep 0.1
done
die "the nodes are not all up after 20 s ($(sinfo -h -N -o '%N:%t' 2>/dev/null | tr '\n' ' '); see $DIR/log/)"
