"""One training epoch resumed from an NCF checkpoint, with and without flush-to-zero.

A model whose L2 (coupled into Adam) has driven the weights of dead ReLU units, or a collapsed
GMF, into the subnormal range trains many times slower on x86 unless subnormals are flushed
to zero, which ``GMF``/``MLP``/``NeuMF`` training now does. Give it a checkpoint with subnormal
weights, such as a study trial's (``OUT/trial-checkpoints/STUDY/trial-N/mlp-E``), and the
dataset it was trained on; it times the next epoch both ways from the same start. Run on a
quiet machine:

    python benchmarks/subnormal_epoch.py CHECKPOINT_DIR --dataset ml-1m --holdout
"""

import argparse
import time

import numpy as np
import torch

from dotrec.data.registry import load_dataset
from dotrec.eval.holdout import tuning_holdout
from dotrec.machine import machine_line
from dotrec.models import GMF, MLP, NeuMF, load_model


def subnormal_share(weights: dict[str, np.ndarray]) -> float:
    """The share of float32 weights that are subnormal."""
    w = np.concatenate([a.ravel() for a in weights.values()])
    return float(np.mean((w != 0) & (np.abs(w) < np.finfo(np.float32).tiny)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="train on the tuning holdout's training set "
        "(a study trial's checkpoint), seed 0, 99 negatives",
    )
    args = parser.parse_args()
    print(machine_line(), flush=True)
    split = load_dataset(args.dataset, data_dir=args.data_dir)
    train = (tuning_holdout(split, 0, 99) if args.holdout else split).train
    flush = torch.set_flush_denormal
    for label, patch in (("flush to zero", None), ("subnormals kept", lambda mode: True)):
        model = load_model(args.checkpoint)
        assert isinstance(model, GMF | MLP | NeuMF), "an NCF model's checkpoint"
        share = subnormal_share(model.weights)
        model.epochs = model.epochs_done + 1
        torch.set_flush_denormal = patch or flush
        try:
            start = time.perf_counter()
            model.fit(train, resume=True)
            seconds = time.perf_counter() - start
        finally:
            torch.set_flush_denormal = flush
        print(
            f"{label}: epoch {model.epochs_done} in {seconds:.1f} s "
            f"(subnormal weights at the start: {share:.1%}, after: "
            f"{subnormal_share(model.weights):.1%})",
            flush=True,
        )


if __name__ == "__main__":
    main()
