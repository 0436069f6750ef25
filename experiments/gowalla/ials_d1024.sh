#!/usr/bin/env bash
# iALS at size 1024 on Gowalla with the configuration tuned at size 256 (20 trials on the
# holdout) and the epoch count read off the size-1024 holdout curve (ials_d1024_holdout.log):
# 3 seeds on the full training data, tested by full ranking. Run from the repository root.
set -euo pipefail
export DOTREC_DATA_DIR="${DOTREC_DATA_DIR:-../shared/data}"
for seed in 0 1 2; do
  out="runs/gowalla-ials-d1024-seed$seed"
  [ -f "experiments/gowalla/ials_d1024_seed$seed.txt" ] && continue
  .venv/bin/dotrec train ials --dataset gowalla \
    --config experiments/study-gowalla/gowalla_ials_d256.json \
    --embedding-dim 1024 --epochs 5 --seed "$seed" -k 20 --out "$out" \
    > "experiments/gowalla/ials_d1024_seed$seed.txt.tmp"
  mv "experiments/gowalla/ials_d1024_seed$seed.txt.tmp" "experiments/gowalla/ials_d1024_seed$seed.txt"
done
