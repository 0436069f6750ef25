"""``dotrec train MODEL``: fit a model on a dataset, evaluate it, save the artifact.

Hyperparameter flags are shared by every model where they apply (``--embedding-dim``,
``--epochs``, ...). A flag that the chosen model does not take is an error, not silently
ignored. Unset flags keep the model's defaults.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from dotrec.artifacts import FORMAT, META_FILE, recover_dir, written_by_dotrec
from dotrec.cli._common import (
    check_model_out,
    epoch_progress,
    load_split,
    print_table,
    results_table,
    with_data_options,
)
from dotrec.cli.app import (
    app,
    console,
    data_dir_option,
    dataset_option,
    default_threads,
    device_option,
    early_stopping_option,
    format_option,
    holdout_users_option,
    k_option,
    optimizer_option,
    precision_option,
    threads_option,
)
from dotrec.data.registry import DataOptions
from dotrec.data.splits import FileSplit, Split
from dotrec.errors import ConfigError
from dotrec.eval.protocols import evaluate
from dotrec.eval.ranking import evaluate_ranking
from dotrec.models import MODELS, Model, load_model
from dotrec.train import EpochSelection, select_epochs
from dotrec.train.early_stopping import with_epochs


def parse_int_list(text: str, flag: str) -> list[int]:
    """Parse ``"128,64,32"`` into integers, naming ``flag`` in the error."""
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not vals:
        raise ConfigError(f"{flag}: empty list")
    return vals


def build_model(model_name: str, options: dict[str, Any], seed: int | None = None) -> Model:
    """Instantiate ``model_name`` with the options that were set, rejecting foreign ones.

    ``seed`` is passed to models that take one (Popularity does not).
    """
    if model_name not in MODELS:
        raise ConfigError(
            f"unknown model {model_name!r}; choose one of {', '.join(sorted(MODELS))}"
        )
    cls = MODELS[model_name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    given = {k: v for k, v in options.items() if v is not None}
    foreign = sorted(set(given) - accepted)
    if foreign:
        flags = ", ".join(
            "--" + k.replace("_", "-").replace("n-negatives", "negatives") for k in foreign
        )
        raise ConfigError(f"{flags} does not apply to model {model_name!r}")
    if "threads" in accepted and "threads" not in given:
        given["threads"] = default_threads()
    if seed is not None and "seed" in accepted:
        given["seed"] = seed
    return cls(**given)


def options_from_config(
    path: Path, model_name: str | None, flags: dict[str, Any], seed: int
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """The model, its options and (NeuMF) its pretraining options from a tuning result.

    The tuned size is converted to the model's width; flags that were set override the file.
    """
    from dotrec.tune.spaces import pipeline_options, read_best_config  # needs optuna

    model, size, params, torch_options = read_best_config(path)
    if model_name is not None and model_name != model:
        raise ConfigError(f"{path} tunes {model!r}, not {model_name!r}")
    given = {k: v for k, v in flags.items() if v is not None}
    threads = int(given.get("threads") or default_threads())
    torch_options.update({k: given[k] for k in ("optimizer", "precision", "device") if k in given})
    final, pre = pipeline_options(model, size, params, seed, threads, torch_options)
    final.update(given)
    return model, final, pre


def pretrain(name: str, options: dict[str, Any], split: Split | FileSplit) -> Model:
    """Fit NeuMF's GMF or MLP (``--config`` of a NeuMF tuning result), with a progress bar."""
    model = build_model(name, options)
    with epoch_progress(transient=True) as progress:
        task = progress.add_task(f"pretrain {name}", total=model.config()["epochs"], info="")
        model.fit(split.train, on_epoch=lambda e, m: progress.update(task, completed=e))
    return model


def choose_epochs(
    model: Model,
    name: str,
    split: Split | FileSplit,
    patience: int,
    seed: int,
    k: int,
    holdout_users: int | None = None,
) -> EpochSelection:
    """``--early-stopping``: the epoch count chosen on the holdout, with a progress bar."""
    epochs = int(model.config()["epochs"])
    with epoch_progress() as progress:
        task = progress.add_task(f"holdout {name}", total=epochs, info="")

        def on_epoch(epoch: int, value: float) -> None:
            progress.update(task, completed=epoch, info=f"NDCG@{k} {value:.4f}")

        selection = select_epochs(
            model,
            split,
            patience=patience,
            k=k,
            seed=seed,
            holdout_users=holdout_users,
            on_epoch=on_epoch,
        )
    console.print(
        f"holdout: best epoch {selection.best_epoch} (NDCG@{k} {selection.best_value:.4f}) "
        f"of {max(selection.values)} run; fitting {selection.best_epoch} epochs on all the "
        "training data"
    )
    return selection


def print_ranking(name: str, summary: dict[str, Any], where: str) -> None:
    """A results table of the full-ranking protocol of a split given by files."""
    t = Table(title=f"{where} (full ranking, all test items)")
    t.add_column("model")
    metrics = [key for key in summary if "@" in key]
    for key in metrics:
        t.add_column(key, justify="right")
    t.add_column("users", justify="right")
    t.add_row(name, *(f"{summary[key]:.4f}" for key in metrics), str(summary["users"]))
    print_table(t)


def checkpoint_path(out: Path) -> Path:
    """Where ``dotrec train --out OUT`` keeps its checkpoint: the sibling ``OUT.ckpt``."""
    return out.with_name(out.name + ".ckpt")


def resume_from(ckpt: Path, requested: Model, split: Split | FileSplit) -> Model:
    """Load a checkpoint and check it continues exactly the requested run."""
    model = load_model(ckpt)
    if type(model) is not type(requested) or model.config() != requested.config():
        raise ConfigError(
            f"{ckpt}: the checkpoint is for {model!r}, not the requested "
            f"{requested!r}; remove it or rerun with the same settings"
        )
    if model.train_fingerprint != split.train.fingerprint():
        raise ConfigError(
            f"{ckpt}: the checkpoint was trained on other interactions than "
            f"{split.name}'s training set"
        )
    return model


@app.command("train")
@with_data_options
def train_cmd(
    model_name: str | None = typer.Argument(
        None,
        metavar="[MODEL]",
        help="Model: popularity, mf, and the others registered (optional with --config).",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Start from the best configuration of a tuning result (dotrec tune's JSON, or a "
        "study cell's tuning.json): model, size and hyperparameters; flags override it.",
    ),
    dataset: str = dataset_option(),
    data_dir: Path | None = data_dir_option(),
    fmt: str | None = format_option(),
    out: Path | None = typer.Option(None, "--out", "-o", help="Model directory to write."),
    embedding_dim: int | None = typer.Option(
        None, help="Numbers per vector as the paper counts them (MF: the bias is one of them)."
    ),
    epochs: int | None = typer.Option(None, help="Training epochs."),
    learning_rate: float | None = typer.Option(None, help="Learning rate."),
    regularization: float | None = typer.Option(None, help="L2 regularization weight."),
    negatives: int | None = typer.Option(
        None, "--negatives", help="Sampled negatives per positive."
    ),
    stddev: float | None = typer.Option(None, help="Std. dev. of the initialisation."),
    unobserved_weight: float | None = typer.Option(None, help="iALS weight of unobserved pairs."),
    regularization_exponent: float | None = typer.Option(
        None, help="iALS frequency scaling exponent of the regularization."
    ),
    solver: str | None = typer.Option(None, help="iALS solver."),
    factor: int | None = typer.Option(None, help="NCF predictive factor k."),
    layers: str | None = typer.Option(None, help="MLP tower, e.g. 128,64,32 (overrides --factor)."),
    batch_size: int | None = typer.Option(None, help="Mini-batch size."),
    pretrain_from: str | None = typer.Option(None, help="NeuMF: GMF_DIR,MLP_DIR to start from."),
    optimizer: str | None = optimizer_option(None),
    precision: str | None = precision_option(None),
    device: str | None = device_option(None),
    seed: int = typer.Option(0, help="Random seed (model and, for raw data, the split)."),
    threads: int | None = threads_option(),
    eval_every: int = typer.Option(
        0, help="Evaluate on the test split every N epochs (display only; 0 = at the end only)."
    ),
    k: int = k_option(),
    protocol: str = typer.Option("both", help="Final evaluation: sampled|full|both|none."),
    checkpoint_every: int = typer.Option(
        0, help="Write OUT.ckpt (atomically) every N epochs (needs --out; 0 = never)."
    ),
    resume: bool = typer.Option(
        False, help="Continue from OUT.ckpt if it exists (same model, settings and data)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace --out if it holds a dotrec model (never anything else)."
    ),
    early_stopping: int = early_stopping_option(
        "Choose the epoch count on the tuning holdout (training data less each user's "
        "latest item; --epochs is the maximum; stop N epochs after the best), then fit that "
        "many epochs on all the training data. 0 = off.",
    ),
    holdout_users: int = holdout_users_option(),
    data_options: DataOptions = DataOptions(),
) -> None:
    """Train MODEL on a dataset, print its evaluation, and save it to --out."""
    options: dict[str, Any] = dict(
        embedding_dim=embedding_dim,
        epochs=epochs,
        learning_rate=learning_rate,
        regularization=regularization,
        n_negatives=negatives,
        stddev=stddev,
        unobserved_weight=unobserved_weight,
        regularization_exponent=regularization_exponent,
        solver=solver,
        factor=factor,
        batch_size=batch_size,
        threads=threads,
        optimizer=optimizer,
        precision=precision,
        device=device,
        layers=None if layers is None else parse_int_list(layers, "--layers"),
    )
    pretrain_options: dict[str, Any] | None = None
    if config is not None:
        model_name, options, pretrain_options = options_from_config(
            config, model_name, options, seed
        )
        if pretrain_options is not None and pretrain_from is not None:
            raise ConfigError(
                "--config for neumf pretrains GMF and MLP itself; drop --pretrain-from"
            )
    if model_name is None:
        raise ConfigError("name the MODEL to train (or pass --config FILE)")
    model = build_model(model_name, options, seed)
    if protocol not in ("sampled", "full", "both", "none"):
        raise ConfigError(f"--protocol must be sampled, full, both or none, got {protocol!r}")
    if pretrain_from is not None:
        parts = [p for p in pretrain_from.split(",") if p]
        if len(parts) != 2 or not hasattr(model, "set_pretrained"):
            raise ConfigError("--pretrain-from takes GMF_DIR,MLP_DIR and applies to neumf only")
        model.set_pretrained(load_model(parts[0]), load_model(parts[1]))
    if (checkpoint_every or resume) and out is None:
        raise ConfigError("--checkpoint-every and --resume need --out")
    if checkpoint_every < 0:
        raise ConfigError("--checkpoint-every must be >= 0")
    check_model_out(out, force or resume)  # a resumed run replaces its own model
    ckpt = None if out is None else checkpoint_path(out)
    split = load_split(dataset, data_dir, seed, fmt, options=data_options)
    resuming = False
    if resume and ckpt is not None:
        recover_dir(ckpt, META_FILE, FORMAT)
    if resume and ckpt is not None and ckpt.exists():
        model = resume_from(ckpt, model, split)
        resuming = True
        console.print(f"resuming {model_name} from {ckpt} at epoch {model.epochs_done}")
    if pretrain_options is not None and not resuming:
        model.set_pretrained(  # type: ignore[attr-defined]
            *(pretrain(name, pretrain_options, split) for name in ("gmf", "mlp"))
        )
    selection = None
    if early_stopping:
        if checkpoint_every or resume:
            raise ConfigError("--early-stopping does not combine with checkpoints or --resume")
        selection = choose_epochs(
            model, model_name, split, early_stopping, seed, k, holdout_users or None
        )
        model = with_epochs(model, selection.best_epoch)
    n_epochs = int(model.config().get("epochs", 1) or 1)

    with epoch_progress() as progress:
        task = progress.add_task(f"train {model_name}", total=n_epochs, info="")

        def on_epoch(epoch: int, m: Model) -> None:
            info = []
            loss = m.fit_info.get("loss")
            if loss is not None:
                info.append(f"loss {loss:.4f}")
            if eval_every and epoch % eval_every == 0 and epoch < n_epochs:
                if isinstance(split, FileSplit):
                    s = evaluate_ranking(m, split, k=k).summary()
                    info.append(f"Recall@{k} {s[f'recall@{k}']:.4f} NDCG@{k} {s[f'ndcg@{k}']:.4f}")
                else:
                    s = evaluate(m, split, protocol="sampled", k=k)["sampled"].summary()
                    info.append(f"HR@{k} {s[f'hr@{k}']:.4f} NDCG@{k} {s[f'ndcg@{k}']:.4f}")
                progress.console.print(f"epoch {epoch}: " + "  ".join(info))
            progress.update(task, completed=epoch, info="  ".join(info))
            if (
                ckpt is not None
                and checkpoint_every
                and epoch % checkpoint_every == 0
                and epoch < n_epochs
            ):
                m.save(ckpt, dataset=split.name)

        progress.update(task, completed=model.epochs_done)
        model.fit(split.train, on_epoch=on_epoch, resume=resuming)
    if selection is not None:
        model.fit_info["early_stopping"] = selection.as_dict()

    if out is not None:
        model.save(out, dataset=split.name, train=split.train)
        if ckpt is not None and written_by_dotrec(ckpt, META_FILE, FORMAT):
            shutil.rmtree(ckpt)
        console.print(f"saved {model_name} to {out}")
    if protocol == "none":
        return
    if isinstance(split, FileSplit):
        print_ranking(model.name, evaluate_ranking(model, split, k=k).summary(), split.name)
    else:
        res = {p: r.summary() for p, r in evaluate(model, split, protocol=protocol, k=k).items()}
        print_table(
            results_table(
                [(model_name, res, model.fit_info.get("fit_seconds"))], k, title=f"{split.name}"
            )
        )
