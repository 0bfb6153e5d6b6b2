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
echo "=== attempt started $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)${SLURM_JOB_ID:+, SLURM job $SLURM_JOB_ID}${SLURM_RESTART_COUNT:+, restart $SLURM_RESTART_COUNT}" >> "$log"
