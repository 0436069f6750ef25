#!/usr/bin/env bash
# The ml-1m comparison (issue #17), resumable, run in parts: every part continues from the Optuna
# storage and finished cells under experiments/study-ml1m/ (committed after each part).
# Budget, one for every cell (experiments/study_ml1m.md, "The budget of the full run"):
#   models mf, ials, gmf, mlp, neumf; sizes 16, 32, 64, 128, 192 (paper accounting); 20 finished
#   trials per cell (TPE seed 0, median pruning, trial 0 the published configuration); 3 seeds
#   of each cell's best configuration, tested under both protocols; GMF, MLP and NeuMF with lazy
#   Adam in float32. Cells run size by size, so each part leaves whole sizes behind it.
# Run from the repository root at low priority:  nice -n 15 bash experiments/study_ml1m_queue.sh
set -euo pipefail
export DOTREC_DATA_DIR="${DOTREC_DATA_DIR:-../shared/data}"
# OMP_WAIT_POLICY stays unset: with PASSIVE, torch's two OpenMP threads sleep after every
# operation and an MLP epoch takes 2-2.5x as long (ml-1m-u3k, k = 32, lazy Adam: 27-30 s against
# 9-15 s unset). Unset, they spin-wait, which collapses beside another busy process: pause the
# study (pkill -STOP -f 'dotrec study'; -CONT after) while running anything heavy beside it.
unset OMP_WAIT_POLICY
echo "== part start: $(date -u +%FT%TZ)"
.venv/bin/dotrec study --dataset ml-1m --models mf,ials,gmf,mlp,neumf --dims 16,32,64,128,192 \
  --trials 20 --seeds 3 --optimizer lazy_adam --precision fp32 --threads 2 \
  --out experiments/study-ml1m
echo "== study complete: $(date -u +%FT%TZ)"
