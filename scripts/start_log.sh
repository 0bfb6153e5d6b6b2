#!/bin/sh
# start_log.sh LOG: begin one attempt of a job whose command appends its stderr to LOG
# (sdclr/joblog.py): bring back the earlier attempts that Snakemake deleted (LOG.attempts is a
# hard link to the same file, a copy where links fail), then append the attempt's line.
log="$1"
if [ -e "$log.attempts" ]; then
  ln -f "$log.attempts" "$log" 2>/dev/null || cp "$log.attempts" "$log"
else
  : >> "$log"
  ln -f "$log" "$log.attempts" 2>/dev/null || true
fi
# A job step (srun, as the executor runs a job) does not see SLURM_RESTART_COUNT: ask SLURM.
restarts="${SLURM_RESTART_COUNT:-}"
if [ -z "$restarts" ] && [ -n "${SLURM_JOB_ID:-}" ] && command -v scontrol >/dev/null; then
  restarts=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
fi
echo "=== attempt started $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)${SLURM_JOB_ID:+, SLURM job $SLURM_JOB_ID}${restarts:+, restart $restarts}" >> "$log"
