#!/bin/sh
# Nightly re-scan of an archive (crontab: 15 2 * * * /path/to/cron.sh).
# --lock: a second run while one is going exits 75 at once; --changed-only:
# today's output holds only what is new or changed; plain timestamped lines
# go to the log because stderr is not a terminal.
set -u
ARCHIVE=/srv/recordings
OUT=/var/lib/harken/$(date +%F).jsonl
harken scan "$ARCHIVE" --lock --changed-only --timeout 120 --max-memory 1G \
    -o "$OUT" >> /var/log/harken.log 2>&1
status=$?
case $status in
    0|3) ;;                                   # 3: some files could not be analyzed (in $OUT)
    75) echo "harken: previous run still going" >> /var/log/harken.log ;;
    *) echo "harken: exit $status" >> /var/log/harken.log ;;
esac
exit $status
