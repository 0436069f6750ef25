#!/usr/bin/env bash
# Background queue of this session's long runs (one at a time; each writes its log and JSON
# under experiments/). Resumable by hand: rerun the steps whose outputs are missing.
set -u
cd "$(dirname "$0")/.."
export DOTREC_DATA_DIR=${DOTREC_DATA_DIR:-/work/shared/data}
PY=.venv/bin/python
D=.venv/bin/dotrec
while kill -0 "${WAIT_PID:-0}" 2>/dev/null; do sleep 10; done
step() { echo "== $(date -u +%H:%M:%S) $*" >> experiments/queue_session.log; }
if [ ! -s experiments/fold_in/gmf.json ]; then
  step fold-in gmf
  $PY benchmarks/fold_in.py --models gmf --json experiments/fold_in/gmf.json > experiments/fold_in/gmf.log 2>&1
fi
if [ ! -s experiments/mf_ml1m/accounting.json ]; then
  step mf 3 seeds
  mkdir -p experiments/mf_ml1m
  $PY benchmarks/mf.py --json experiments/mf_ml1m/accounting.json > experiments/mf_ml1m/accounting.log 2>&1
fi
R=experiments/cli_neumf
if [ ! -s $R/neumf.json ]; then
  step cli neumf path
  for m in gmf mlp; do
    [ -f runs/cli/$m/model.json ] || $D train $m --dataset ml-1m --factor 64 --epochs 20 --early-stopping 4 \
      --threads 2 --seed 0 --protocol none --out runs/cli/$m > $R/$m.log 2>&1
    $D evaluate runs/cli/$m --json > $R/$m.json 2>> $R/$m.log
  done
  $D train neumf --dataset ml-1m --factor 64 --epochs 8 --early-stopping 4 --threads 2 --seed 0 \
    --pretrain-from runs/cli/gmf,runs/cli/mlp --protocol none --out runs/cli/neumf > $R/neumf.log 2>&1
  $D evaluate runs/cli/neumf --json > $R/neumf.json 2>> $R/neumf.log
fi
if [ ! -s experiments/fold_in/mlp.json ]; then
  step fold-in mlp
  $PY benchmarks/fold_in.py --models mlp --json experiments/fold_in/mlp.json > experiments/fold_in/mlp.log 2>&1
fi
step done
