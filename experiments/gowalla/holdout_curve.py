"""iALS holdout curve on Gowalla: Recall@20 / NDCG@20 of the tuning holdout after every epoch.

The holdout is the one `dotrec tune` uses (a seeded 20% of each user's training items, seed 0);
the test file is never read. Each argument is one run, ``DIM,REG,UNOBSERVED_WEIGHT,NU,EPOCHS``:

    python experiments/gowalla/holdout_curve.py 1024,0.0067,0.0145,0.91,8

prints ``dim reg uw nu epoch recall ndcg seconds`` per epoch (ials_d1024_holdout.log).
With ``HOLDOUT_USERS=3000`` the holdout items of the seeded 3,000 users of the studies run with
``--holdout-users 3000`` are scored instead of every user's (ials_d1024_holdout_u3000.log).
"""

import os
import sys
import time

from dotrec.data.registry import load_file_split
from dotrec.eval.holdout import holdout_score, tuning_holdout
from dotrec.models.base import Model
from dotrec.models.ials import IALS

split = load_file_split("gowalla")
holdout = tuning_holdout(
    split, seed=0, negatives=99, users=int(os.environ.get("HOLDOUT_USERS", 0)) or None
)
for spec in sys.argv[1:]:
    d, reg, uw, nu, epochs = spec.split(",")
    model = IALS(
        embedding_dim=int(d),
        regularization=float(reg),
        unobserved_weight=float(uw),
        regularization_exponent=float(nu),
        epochs=int(epochs),
        stddev=0.166,
        seed=0,
        threads=2,
    )
    start = time.time()

    def report(epoch: int, m: Model, head: str = spec.replace(",", " "), t0: float = start) -> None:
        recall = holdout_score(m, holdout, "recall", 20)
        ndcg = holdout_score(m, holdout, "ndcg", 20)
        print(head, epoch, f"{recall:.4f}", f"{ndcg:.4f}", f"{time.time() - t0:.1f}", flush=True)

    model.fit(holdout.train, on_epoch=report)
