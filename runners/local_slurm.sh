#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for CI and for trying `memorybench run --runner slurm`.
#
#   sudo bash runners/local_slurm.sh start    # install-free start (needs Debian's slurmctld slurmd munge slurm-client)
#   sudo bash runners/local_slurm.sh status   # sinfo + squeue
#   sudo bash runners/local_slurm.sh stop
#
# `start` is idempotent: it writes a munge key (if none), /etc/slurm/slurm.conf (marked as ours; a
# slurm.conf written by anyone else is never touched), the state directories, and starts munged,
# slurmctld and slurmd unless they already run; it returns once `sinfo` shows the node idle.
# The node gets this machine's real CPU count (nproc) and memory (/proc/meminfo). Process tracking
# is proctrack/linuxproc and task/none, so no cgroups are needed (containers, CI runners).
# Accounting is off (no slurmdbd), so `sacct` does not work: memorybench treats it as a hint only.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MARK="# written by memorybench runners/local_slurm.sh"
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
RUN=/run/slurm
HOST=$(hostname -s)
TIMEOUT_S=${LOCAL_SLURM_TIMEOUT_S:-60}

say() { echo "local_slurm: $*"; }
die() { echo "local_slurm: error: $*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

require_tools() {
  local missing=()
  for tool in munged mungekey munge unmunge runuser slurmctld slurmd sinfo sbatch scontrol; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    die "missing ${missing[*]}; install them with: apt-get install -y slurmctld slurmd munge slurm-client"
  fi
  [ "$(id -u)" -eq 0 ] || die "run as root (slurmd starts jobs as their users)"
}

write_munge_key() {
  if [ ! -s /etc/munge/munge.key ]; then
    say "creating a munge key"
    mkdir -p /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 0755 /run/munge
}

write_config() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; refusing to overwrite it"
  fi
  local cpus mem_mb mem_per_cpu
  cpus=$(nproc)
  mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  mem_mb=$((mem_mb - mem_mb / 20)) # leave 5% to the OS so slurmd never sees less than configured
  mem_per_cpu=$((mem_mb / cpus))
  mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS" "$RUN"
  local text
  text=$(cat <<EOF
$MARK
ClusterName=memorybench
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$mem_per_cpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
KillWait=10
MinJobAge=300
SchedulerParameters=sched_interval=2
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
  if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$text" ]; then
    say "writing $CONF ($cpus CPUs, $mem_mb MB)"
    printf '%s\n' "$text" >"$CONF"
    CONFIG_CHANGED=1
  fi
}

start_daemons() {
  if ! alive /run/munge/munged.pid; then
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged
  fi
  munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
  if [ "${CONFIG_CHANGED:-0}" = 1 ] && { alive "$RUN/slurmctld.pid" || alive "$RUN/slurmd.pid"; }; then
    say "configuration changed: restarting slurmctld and slurmd"
    stop_daemons
  fi
  if ! alive "$RUN/slurmctld.pid"; then
    say "starting slurmctld"
    slurmctld
  fi
  if ! alive "$RUN/slurmd.pid"; then
    say "starting slurmd"
    slurmd
  fi
}

wait_idle() {
  local waited=0 state=""
  while [ "$waited" -lt "$TIMEOUT_S" ]; do
    state=$(sinfo -h -n "$HOST" -o '%t' 2>/dev/null | head -n1 || true)
    case "$state" in
      idle | mix | alloc) say "node $HOST is $state; try: sinfo; memorybench run configs/quick.yaml --runner slurm --wait"; return 0 ;;
      drain* | down*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
    waited=$((waited + 1))
  done
  die "node $HOST not idle after ${TIMEOUT_S}s (state: ${state:-none}); see $LOGS/slurmctld.log and $LOGS/slurmd.log"
}

stop_daemons() {
  local pidfile
  for pidfile in "$RUN/slurmd.pid" "$RUN/slurmctld.pid"; do
    if alive "$pidfile"; then
      kill "$(cat "$pidfile")"
      for _ in $(seq 1 20); do alive "$pidfile" || break; sleep 0.5; done
    fi
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  start)
    require_tools
    write_munge_key
    write_config
    start_daemons
    wait_idle
    ;;
  stop)
    stop_daemons
    say "slurmctld and slurmd stopped (munged left running)"
    ;;
  status)
    sinfo
    squeue
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
