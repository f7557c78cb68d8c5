#!/usr/bin/env bash
# A one-machine SLURM cluster on 127.0.0.1 for the tests (tests/test_slurm.py) and for trying the
# cluster recipes of the README: munge, slurmctld and two slurmd posing as two nodes (node1,
# node2; SEGLAB_SLURM_NODES), no systemd, no cgroups, no accounting.
#   scripts/slurm_cluster.sh start    install (Debian/Ubuntu slurm-wlm + munge) if missing, then start
#   scripts/slurm_cluster.sh stop     stop the daemons this script started
#   scripts/slurm_cluster.sh status   exit 0 when the partition answers
# Idempotent: `start` on a running cluster only checks it. `start` needs root (apt-get, slurmd). State lives in $SEGLAB_SLURM_DIR (default /tmp/seglab-slurm).
set -euo pipefail

DIR=${SEGLAB_SLURM_DIR:-/tmp/seglab-slurm}
PARTITION=${SEGLAB_SLURM_PARTITION:-debug}
CPUS=${SEGLAB_SLURM_CPUS:-2}  # per node
NODES=${SEGLAB_SLURM_NODES:-2}  # slurmd daemons on this machine, each posing as a node
HOST=$(hostname -s)
NODE_NAMES=$(seq -f "node%g" -s , 1 "$NODES")
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

have() { command -v "$1" >/dev/null 2>&1; }
die() { echo "slurm_cluster.sh: $*" >&2; exit 1; }
install() {
  have slurmctld && have slurmd && have munged && have sbatch && return 0
  have apt-get || die "no apt-get here; install slurm-wlm and munge yourself"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The packages' postinst scripts try to start services through systemd/invoke-rc.d, which a
  # container lacks: a policy-rc.d (unless one is there) tells them not to.
  local policy=/usr/sbin/policy-rc.d made=""
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && made=1
  fi
  local ok=1
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || ok=""
  [ -z "$made" ] || rm -f $policy
  [ -n "$ok" ] || die "apt-get install slurm-wlm munge failed"
}

write_conf() {
  mkdir -p "$DIR"/{ctld,d,log}
  # The memory slurmd sees on this node (MB), so jobs' --mem requests fit.
  local mem
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat >"$CONF" <<CONF
# Written by scripts/slurm_cluster.sh: $NODES nodes (slurmd daemons), one partition, on 127.0.0.1.
ClusterName=seglab
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=${SEGLAB_SLURM_CTLD_PORT:-6817}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=5
StateSaveLocation=$DIR/ctld
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
# Several slurmd on one host (%n: the node's name), each on its own port below.
SlurmdSpoolDir=$DIR/d/%n
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmdLogFile=$DIR/log/slurmd-%n.log
# No systemd or cgroups in a container: processes tracked by parent pid, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
LaunchParameters=use_interactive_step
SchedulerType=sched/builtin
# Pending jobs (a requeued one) looked at every second, not every minute.
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# Short times, so a time limit and a requeue take seconds, not minutes.
OverTimeLimit=0
KillWait=30  # SIGTERM → SIGKILL: time to save last.ckpt and close the MLflow run
MinJobAge=300
MessageTimeout=10
SlurmctldTimeout=10
SlurmdTimeout=30
InactiveLimit=0
JobRequeue=1
$(for i in $(seq 1 "$NODES"); do
    echo "NodeName=node$i NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((${SEGLAB_SLURM_D_PORT:-6818} + i - 1)) CPUs=$CPUS RealMemory=$mem State=UNKNOWN"
  done)
PartitionName=$PARTITION Nodes=$NODE_NAMES Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }

# Up: our slurmctld runs (sinfo alone waits a minute for a controller that is not there), the
# partition answers and all its nodes are usable.
up() {
  [ -f "$CONF" ] && pid_alive "$DIR/slurmctld.pid" \
    && [ "$(sinfo -h -p "$PARTITION" -t idle,mix,alloc -o '%D %a' 2>/dev/null)" = "$NODES up" ]
}

start() {
  # Installing packages and running slurmd (it starts jobs as their users) need root.
  [ "$(id -u)" -eq 0 ] || die "starting the cluster needs root (run it with sudo)"
  install
  if up; then exit 0; fi
  write_conf
  # munge: a key once, then the daemon (its socket is where slurm looks for it by default).
  if ! munge -n >/dev/null 2>&1; then
    [ -s /etc/munge/munge.key ] || mungekey -c -f -k /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    if id munge >/dev/null 2>&1; then
      su -s /bin/sh munge -c "munged" 2>/dev/null || munged --force
    else
      munged --force
    fi
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n >/dev/null 2>&1 || die "munged did not start"
  fi
  pid_alive "$DIR/slurmctld.pid" || slurmctld -f "$CONF" || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
  for name in ${NODE_NAMES//,/ }; do
    pid_alive "$DIR/slurmd-$name.pid" || slurmd -N "$name" -f "$CONF" \
      || die "slurmd $name did not start (see $DIR/log/slurmd-$name.log)"
  done
  for _ in $(seq 150); do
    if up; then
      echo "slurm_cluster.sh: partition $PARTITION up on 127.0.0.1 (conf $CONF)"
      exit 0
    fi
    sleep 0.2
  done
  scontrol update nodename="$NODE_NAMES" state=resume >/dev/null 2>&1 || true
  for _ in $(seq 50); do up && exit 0; sleep 0.2; done
  die "the partition $PARTITION did not come up (see $DIR/log/)"
}

stop() {
  [ -f "$CONF" ] || exit 0
  scancel --full --quiet -p "$PARTITION" 2>/dev/null || true
  local pids=("$DIR"/slurmd-*.pid "$DIR/slurmctld.pid")
  for pid in "${pids[@]}"; do
    pid_alive "$pid" && kill "$(cat "$pid" 2>/dev/null)" 2>/dev/null || true
  done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do pid_alive "$pid" && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) up ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
