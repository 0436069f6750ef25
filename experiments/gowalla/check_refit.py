"""Does the iALS 1024 cell's best configuration, fitted again through the study's own code,
score its trial's holdout value? (It does, to every digit: the cell's test figure is not a
refit problem.) Run from the repository root (about 2 minutes on 2 cores):

    python experiments/gowalla/check_refit.py > experiments/gowalla/check_refit.log
"""

import json
import warnings

import optuna

from dotrec.data.registry import load_file_split
from dotrec.eval.holdout import holdout_score, tuning_holdout
from dotrec.tune.spaces import fit_config

warnings.simplefilter("ignore")
optuna.logging.set_verbosity(optuna.logging.WARNING)
STUDY = "experiments/study-gowalla-ials"
split = load_file_split("gowalla")
holdout = tuning_holdout(split, seed=0, negatives=99, users=3000)
tuning = json.loads(open(f"{STUDY}/cells/ials-d1024/tuning.json").read())
study = optuna.load_study(study_name="gowalla:ials:d1024", storage=f"sqlite:///{STUDY}/optuna.db")
best = study.trials[tuning["best_trial"]]
model = fit_config("ials", 1024, tuning["best_params"], holdout.train, seed=0, threads=2)
print(f"trial {best.number}: {best.params}")
print(
    f"holdout NDCG@20 refitted {holdout_score(model, holdout, 'ndcg', 20)!r}, trial {best.value!r}"
)
