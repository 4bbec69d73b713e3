#!/bin/sh
# Nightly re-scan of an archive, e.g. from crontab:
#   15 2 * * *  ARCHIVE=/srv/recordings /opt/harken/examples/cron.sh
# --lock: a second run while one is going exits 75 at once; --changed-only:
# a run's output holds only what is new, changed, copied or renamed (and what
# a stopped run or another scan analyzed but never wrote out, so nothing is
# lost; the first run writes everything), so each
# run writes a file of its own, named by its start; stderr is not a
# terminal, so the log gets timestamped progress lines and one summary line.
set -u
ARCHIVE=${ARCHIVE:-/srv/recordings}
OUT_DIR=${OUT_DIR:-/var/lib/harken}
LOG=${LOG:-/var/log/harken.log}
mkdir -p "$OUT_DIR"
harken scan "$ARCHIVE" --lock --changed-only --timeout 120 --max-memory 1G \
    -o "$OUT_DIR/$(date +%F-%H%M%S).jsonl" >> "$LOG" 2>&1
status=$?
case $status in
    0|3) status=0 ;;  # 3: some files could not be analyzed; their rows say why
    75) echo "$(date '+%F %T') harken: previous run still going" >> "$LOG" ;;
    *) echo "$(date '+%F %T') harken: exit $status" >> "$LOG" ;;
esac
exit $status
