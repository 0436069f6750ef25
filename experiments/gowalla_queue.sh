#!/usr/bin/env bash
# Gowalla (issue #15): the tuned iALS cell at size 256 (20 trials on the holdout, NDCG@20,
# early stopping 2), retrained with 3 seeds and tested by full ranking; then a small end-to-end
# study of mf and ials at sizes 64 and 256. Resumable: every step reuses what is stored under
# experiments/study-gowalla*/. Run from the repository root at low priority:
#   nice -n 15 bash experiments/gowalla_queue.sh
set -euo pipefail
export DOTREC_DATA_DIR="${DOTREC_DATA_DIR:-../shared/data}"
DOTREC=".venv/bin/dotrec"
while pgrep -f "dotrec tune ials --dataset gowalla" > /dev/null; do sleep 20; done  # a tuning worker
$DOTREC study --dataset gowalla --models ials --dims 256 -k 20 --metric ndcg --trials 20 \
  --seeds 3 --early-stopping 2 --out experiments/study-gowalla
$DOTREC study --dataset gowalla --models mf,ials --dims 64,256 -k 20 --metric ndcg --trials 2 \
  --seeds 1 --epoch-scale 0.1 --early-stopping 2 --out experiments/study-gowalla-smoke
