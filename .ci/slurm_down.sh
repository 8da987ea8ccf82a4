#!/usr/bin/env bash
# Stop the daemons .ci/slurm_up.sh FOLDER started, by their pid files, and wait for
# each to go (the next one may need it to flush: slurmdbd writes to MariaDB).
#   .ci/slurm_down.sh FOLDER
dir=$(realpath -m "${1:?usage: slurm_down.sh FOLDER}")
export SLURM_CONF=$dir/slurm.conf
scancel --user="$(id -un)" >/dev/null 2>&1 || true
for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/slurmdbd.pid" \
               /run/mysqld/mariadb.pid /run/munge/munged.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
done
exit 0
