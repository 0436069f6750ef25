#!/usr/bin/env bash
# Commit the ml-1m study's resumable state while it runs, without stopping it: a session may end
# without warning, and whatever the study did since the last commit would be lost with it.
# The Optuna storage is copied through SQLite's backup API (a consistent snapshot that includes
# the WAL, whatever the study is writing at the time), checked, and committed as the blob of
# experiments/study-ml1m/optuna.db; the live file is left alone. Finished seeds and tuning
# records (written atomically) and the queue's log are committed as they are. A fresh clone
# resumes from the snapshot as from a stopped part: the trial that was running is marked stale
# and tried again. The part is recorded in parts.md at the real stop (stop_studies.sh), which
# counts the hours since the previous record, so nothing is counted twice.
# Each snapshot first checks the seeds finished since the last one against `dotrec evaluate` on
# their saved models (experiments/verify_cells.py, a few seconds a seed): the models are not
# committed, and a session cut off before stop_studies.sh would otherwise lose them unchecked.
# Run from the repository root with nothing else staged:  bash experiments/snapshot_study.sh
# or every N seconds in the background:  bash experiments/snapshot_study.sh --every 1800
set -euo pipefail
study=experiments/study-ml1m
snapshot() {
  if [ -n "$(git diff --cached --name-only)" ]; then
    echo "snapshot skipped: other changes are staged" >&2
    return 0
  fi
  local snap blob
  DOTREC_DATA_DIR="${DOTREC_DATA_DIR:-../shared/data}" nice -n 15 .venv/bin/python \
    experiments/verify_cells.py --out "$study" --dataset ml-1m || echo "a seed was not reproduced" >&2
  snap=$(mktemp)
  .venv/bin/python - "$study/optuna.db" "$snap" <<'PY'
import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
src.backup(dst)
check = dst.execute("PRAGMA integrity_check").fetchone()[0]
dst.execute("PRAGMA journal_mode=DELETE")  # a plain file: no WAL beside it in git
dst.close()
if check != "ok":
    sys.exit(f"snapshot of {sys.argv[1]}: integrity {check}")
PY
  blob=$(git hash-object -w "$snap")
  rm -f "$snap"
  git update-index --cacheinfo "100644,$blob,$study/optuna.db"
  git add "$study/cells" experiments/queue.log
  if git diff --cached --quiet; then
    echo "snapshot: nothing new"
    return 0
  fi
  git commit -q -m "ml-1m study snapshot $(date -u +%FT%H:%MZ) (running; storage copied by the backup API)"
  echo "snapshot committed: $(git log -1 --format=%h)"
}
if [ "${1:-}" = --every ]; then
  while sleep "$2"; do snapshot || true; done
else
  snapshot
fi
