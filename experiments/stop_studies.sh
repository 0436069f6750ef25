#!/usr/bin/env bash
# End of a session: stop the background queues and studies, then leave every Optuna storage
# under experiments/study-*/ whole in its .db file (the WAL checkpointed into it and truncated,
# an integrity check on a copy), ready to commit. The next run marks the trial that was
# running as failed (stale) and continues; only that trial's work is lost.
# First the ml-1m study's part is recorded in experiments/study-ml1m/parts.md (its hours, cells
# and trials; experiments/record_part.py with the settings of experiments/study_ml1m_queue.sh),
# then the report of its cells done so far, with the parts, written to
# experiments/study-ml1m/interim/ (both before the checkpoint, so that whatever they open in the
# storage is checkpointed too). Last, every
# seed trained on this machine is checked against `dotrec evaluate` on its saved model
# (experiments/verify_cells.py; the outcome beside the seed's record, committed).
# Arguments go to record_part.py (--extra-hours H --note TEXT: work the part did that the study's
# accounting no longer holds, such as final fits run again).
# Run from the repository root:  bash experiments/stop_studies.sh && git add -A experiments
set -euo pipefail
pkill -f 'experiments/(queue|gowalla_queue|study_ml1m_queue).sh' || true
pkill -f 'dotrec study' || true
for _ in $(seq 60); do pgrep -f 'dotrec study' >/dev/null || break; sleep 1; done
if pgrep -f 'dotrec study' >/dev/null; then echo "a dotrec study is still running" >&2; exit 1; fi
if [ -f experiments/study-ml1m/optuna.db ]; then
  .venv/bin/python experiments/record_part.py --out experiments/study-ml1m \
    --models mf,ials,gmf,mlp,neumf --dims 16,32,64,128,192 --trials 20 --seeds 3 "$@"
fi
if [ -f experiments/study-ml1m/optuna.db ]; then
  DOTREC_DATA_DIR="${DOTREC_DATA_DIR:-../shared/data}" .venv/bin/dotrec study --dataset ml-1m \
    --models mf,ials,gmf,mlp,neumf --dims 16,32,64,128,192 --trials 20 --seeds 3 \
    --optimizer lazy_adam --precision fp32 --threads 2 --out experiments/study-ml1m --interim \
    > /dev/null || echo "no interim report (see the error above); the storage is kept" >&2
fi
for db in experiments/study-*/optuna.db; do
  .venv/bin/python - "$db" <<'PY'
import shutil, sqlite3, sys, tempfile
db = sys.argv[1]
con = sqlite3.connect(db)
busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
con.close()
with tempfile.TemporaryDirectory() as tmp:
    copy = shutil.copy(db, tmp)
    check = sqlite3.connect(copy).execute("PRAGMA integrity_check").fetchone()[0]
trials = sqlite3.connect(db).execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall()
print(f"{db}: checkpoint {'busy' if busy else 'done'}, integrity {check}, trials {dict(trials)}")
if busy or check != "ok":
    sys.exit(1)
PY
done
if [ -d experiments/study-ml1m/cells ]; then
  DOTREC_DATA_DIR="${DOTREC_DATA_DIR:-../shared/data}" .venv/bin/python experiments/verify_cells.py \
    --out experiments/study-ml1m --dataset ml-1m || echo "a seed was not reproduced (above)" >&2
fi
