#!/usr/bin/env bash
# Gowalla (issue #15), resumable: every step reuses what is stored under experiments/study-gowalla*/
# (Optuna storage and finished cells), so a stopped run continues where it stopped.
#   1. the tuned iALS cell at size 256 (20 trials, done 2026-12-01);
#   2. a small end-to-end study of mf and ials at sizes 64 and 256 (the command);
#   3. every model at size 64 (paper accounting: GMF k=64, MLP k=32, NeuMF k=21) with one tuning
#      budget: 10 finished trials each, the holdout scored for the same seeded 3,000 users, then
#      3 seeds of the best configuration tested by full ranking. No early stopping: SGD MF sits
#      at the popularity ranking for its first 10 (learning rate 0.01) to 40+ (0.002) epochs on
#      Gowalla's holdout, so a patience of 2 ended every MF trial there; each trial trains its
#      sampled epoch count (itself tuned) and is scored at its last epoch.
#   4. iALS at more sizes, same budget and holdout sample as step 3: 256 and 1024;
#   5. MF at 256, the same again (the record's "several sizes"; SGD MF costs about 4x per epoch
#      at 256 what it costs at 64, so MF at 1024 is left out: about 13 hours of tuning here).
# Run from the repository root at low priority:  nice -n 15 bash experiments/gowalla_queue.sh [STEP...]
set -euo pipefail
export DOTREC_DATA_DIR="${DOTREC_DATA_DIR:-../shared/data}"
# OMP_WAIT_POLICY stays unset: with PASSIVE, torch's two OpenMP threads sleep after every
# operation and an MLP epoch takes 2-2.5x as long (ml-1m-u3k, k = 32, lazy Adam: 27-30 s against
# 9-15 s unset). Unset, they spin-wait, which collapses beside another busy process: pause the
# study (pkill -STOP -f 'dotrec study'; -CONT after) while running anything heavy beside it.
unset OMP_WAIT_POLICY
DOTREC=".venv/bin/dotrec"
steps=("${@:-1 2 3}")
for step in ${steps[*]}; do
  echo "== step $step: $(date -u +%FT%TZ)"
  case $step in
    1) $DOTREC study --dataset gowalla --models ials --dims 256 -k 20 --metric ndcg --trials 20 \
         --seeds 3 --early-stopping 2 --out experiments/study-gowalla ;;
    2) $DOTREC study --dataset gowalla --models mf,ials --dims 64,256 -k 20 --metric ndcg \
         --trials 2 --seeds 1 --epoch-scale 0.1 --early-stopping 2 \
         --out experiments/study-gowalla-smoke ;;
    3) $DOTREC study --dataset gowalla --models mf,ials,gmf,mlp,neumf --dims 64 -k 20 \
         --metric ndcg --trials 10 --seeds 3 --holdout-users 3000 \
         --optimizer lazy_adam --threads 2 --out experiments/study-gowalla-d64 ;;
    4) $DOTREC study --dataset gowalla --models ials --dims 256,1024 -k 20 --metric ndcg \
         --trials 10 --seeds 3 --holdout-users 3000 --threads 2 \
         --out experiments/study-gowalla-ials ;;
    5) $DOTREC study --dataset gowalla --models mf --dims 256 -k 20 --metric ndcg \
         --trials 10 --seeds 3 --holdout-users 3000 --threads 2 \
         --out experiments/study-gowalla-mf256 ;;
  esac
  echo "== step $step done: $(date -u +%FT%TZ)"
done
