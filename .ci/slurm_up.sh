#!/usr/bin/env bash
# Start a single-node Slurm on loopback for the tests, with accounting (slurmdbd on
# MariaDB) so that sacct can say why a job ended.
#   .ci/slurm_up.sh FOLDER     installs the Debian packages if missing (needs root),
#                              writes slurm.conf and slurmdbd.conf into FOLDER, starts
#                              munged, mariadbd, slurmdbd, slurmctld and slurmd, and waits
#                              for the node to be idle. Stop them with .ci/slurm_down.sh.
# Everything Slurm keeps (state, spool, logs, pid files) is in FOLDER; munge's and
# MariaDB's pid files are in /run, where their own users may write.
set -euo pipefail

dir=$(realpath -m "${1:?usage: slurm_up.sh FOLDER}")
host=$(hostname -s)
mkdir -p "$dir/state" "$dir/spool" "$dir/log"

packages="slurmctld slurmd slurm-client slurmdbd munge mariadb-server"
if ! dpkg -s $packages >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    # On a fresh machine the package lists may be empty.
    apt-get install -y -q --no-install-recommends $packages >"$dir/log/apt.log" 2>&1 || {
        apt-get update -q >>"$dir/log/apt.log" 2>&1
        apt-get install -y -q --no-install-recommends $packages >>"$dir/log/apt.log" 2>&1
    }
fi

cat >"$dir/slurm.conf" <<CONF
ClusterName=superparams
SlurmctldHost=$host(127.0.0.1)
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/none
MinJobAge=30
# A job past its time limit (or requeued) gets SIGTERM, and SIGKILL this many seconds
# later: short, so the time-limit test ends soon after its one minute.
KillWait=5
CONF
cat >"$dir/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm-ci
StorageLoc=slurm_acct_db
PidFile=$dir/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
CONF
chmod 600 "$dir/slurmdbd.conf"  # slurmdbd refuses a config others can read
export SLURM_CONF=$dir/slurm.conf  # slurmdbd finds slurmdbd.conf beside it

wait_until() {  # wait_until WHAT COMMAND...: up to 30 s
    local what=$1; shift
    for _ in $(seq 120); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    echo "slurm_up.sh: $what did not come up; logs in $dir/log" >&2
    return 1
}

mkdir -p /run/munge /run/mysqld
chown munge:munge /run/munge
chown mysql:mysql /run/mysqld
runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
runuser -u mysql -- /usr/sbin/mariadbd --bind-address=127.0.0.1 \
    --pid-file=/run/mysqld/mariadb.pid >"$dir/log/mariadb.log" 2>&1 &
wait_until MariaDB mysqladmin ping
mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
          CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-ci';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
/usr/sbin/slurmdbd
wait_until slurmdbd sacctmgr -n list cluster
/usr/sbin/slurmctld
/usr/sbin/slurmd
idle() { sinfo -h -o %T | grep -q idle; }
wait_until "the Slurm node" idle
echo "export SLURM_CONF=$SLURM_CONF"
