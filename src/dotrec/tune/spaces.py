"""Search spaces of every model, and the paper's accounting of embedding size.

A study cell fixes one embedding *size* and tunes everything else. Sizes follow the accounting
of Rendle et al. (2020, Figure 2) and He et al. (2017): MF and iALS have ``embedding_dim = d``;
an NCF model with predictive factor k counts as size k (GMF), 2k (MLP) or 3k (NeuMF, whose GMF
branch has k and whose MLP branch 2k). A size that is not a multiple is rounded to the nearest
factor (NeuMF at size 64 uses k = 21, counted as 63) and the report states the size used.

Ranges are on a log scale where the natural unit is a factor (learning rates, regularization,
initial scale, unobserved weight, negatives). ``epochs`` and NeuMF's ``pretrain_epochs`` are
searched too; ``epoch_scale`` multiplies both ends of those ranges (keeping their proportions
between models) to make a cheap study.

NeuMF is tuned and trained as in He et al. (2017, section 3.4.1): a GMF and an MLP with the
same predictive factor are first trained with Adam (``pretrain_learning_rate``,
``pretrain_epochs``), then NeuMF starts from them and trains with plain SGD
(``learning_rate``, ``epochs``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from dotrec._torch import resolve_device
from dotrec.data.interactions import Interactions
from dotrec.errors import ConfigError
from dotrec.models import MODELS, Model


@dataclass(frozen=True)
class Float:
    """A float range (``log``: sampled uniformly in log space)."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    """An integer range, bounds included (``log``: sampled uniformly in log space)."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """One of a few values."""

    choices: tuple[Any, ...]


Param = Float | Int | Choice

_NCF_COMMON: dict[str, Param] = {
    "learning_rate": Float(1e-4, 1e-2, log=True),
    "regularization": Float(1e-9, 1e-3, log=True),
    "n_negatives": Int(1, 10, log=True),
    "batch_size": Choice((256, 512, 1024)),
    "epochs": Int(5, 40),
}

#: Model name -> hyperparameter name -> range. The embedding size is fixed per study cell.
SPACES: dict[str, dict[str, Param]] = {
    "mf": {
        "learning_rate": Float(1e-3, 1e-1, log=True),
        "regularization": Float(1e-4, 1e-1, log=True),
        "n_negatives": Int(1, 16, log=True),
        "stddev": Float(0.01, 0.3, log=True),
        "epochs": Int(10, 256, log=True),
    },
    "ials": {
        "regularization": Float(1e-4, 1e-1, log=True),
        "regularization_exponent": Float(0.0, 1.0),
        "unobserved_weight": Float(1e-3, 1.0, log=True),
        "stddev": Float(0.01, 0.3, log=True),
        "epochs": Int(4, 24),
    },
    "gmf": dict(_NCF_COMMON),
    "mlp": dict(_NCF_COMMON),
    "neumf": {
        "pretrain_learning_rate": Float(1e-4, 1e-2, log=True),
        "pretrain_epochs": Int(5, 40),
        "learning_rate": Float(1e-4, 1.0, log=True),
        "regularization": Float(1e-9, 1e-3, log=True),
        "n_negatives": Int(1, 10, log=True),
        "batch_size": Choice((256, 512, 1024)),
        "epochs": Int(2, 20),
    },
}

#: The published configuration of each model: trial 0 of every study tries it (epochs scaled by
#: ``epoch_scale``, every value clipped into the search space), so even a small budget includes
#: the settings the literature reports. Regularization 0 (NCF) maps to the lowest searched value.
REFERENCE: dict[str, dict[str, Any]] = {
    # Rendle et al. 2020, the ml-1m command of the reference code (mf_simple.py).
    "mf": {
        "learning_rate": 0.002,
        "regularization": 0.005,
        "n_negatives": 8,
        "stddev": 0.1,
        "epochs": 256,
    },
    # The published ml-1m iALS settings (dotrec issue #4, after Rendle et al. 2022).
    "ials": {
        "regularization": 0.007,
        "regularization_exponent": 1.0,
        "unobserved_weight": 0.3,
        "stddev": 0.1,
        "epochs": 12,
    },
    # He et al. 2017: Adam 0.001, 4 negatives, batch 256, about 20 epochs, no L2.
    "gmf": {
        "learning_rate": 0.001,
        "regularization": 0.0,
        "n_negatives": 4,
        "batch_size": 256,
        "epochs": 20,
    },
    "mlp": {
        "learning_rate": 0.001,
        "regularization": 0.0,
        "n_negatives": 4,
        "batch_size": 256,
        "epochs": 20,
    },
    # He et al. 2017, section 3.4.1: pretrained GMF and MLP as above, then SGD.
    "neumf": {
        "pretrain_learning_rate": 0.001,
        "pretrain_epochs": 20,
        "learning_rate": 0.001,
        "regularization": 0.0,
        "n_negatives": 4,
        "batch_size": 256,
        "epochs": 20,
    },
}

#: Settings held fixed while tuning (beside the size, the seed and the thread count).
FIXED: dict[str, dict[str, Any]] = {"ials": {"solver": "cg"}}

#: How the paper counts a model's embedding size from its width parameter (each model class
#: declares it: ``Model.size_multiplier``).
SIZE_MULTIPLIER: dict[str, int] = {name: MODELS[name].size_multiplier for name in SPACES}

_EPOCH_PARAMS = ("epochs", "pretrain_epochs")


def check_model(model: str) -> None:
    """Raise :class:`ConfigError` unless ``model`` has a search space and is installed."""
    if model not in SPACES or model not in MODELS:
        raise ConfigError(
            f"cannot tune model {model!r}; tunable models: "
            f"{', '.join(m for m in SPACES if m in MODELS)}"
        )


def width_for_size(model: str, size: int) -> int:
    """The model's width parameter (``embedding_dim`` or predictive factor k) for ``size``."""
    check_model(model)
    if size < 1:
        raise ConfigError(f"embedding size must be >= 1, got {size}")
    return max(1, round(size / SIZE_MULTIPLIER[model]))


def counted_size(model: str, size: int) -> int:
    """The size the paper's accounting gives the model built for ``size`` (after rounding)."""
    return SIZE_MULTIPLIER[model] * width_for_size(model, size)


def space(model: str, epoch_scale: float = 1.0) -> dict[str, Param]:
    """The search space of ``model``, its epoch ranges scaled by ``epoch_scale`` (>= 1 epoch)."""
    check_model(model)
    if not 0 < epoch_scale < float("inf"):
        raise ConfigError(f"epoch_scale must be > 0, got {epoch_scale}")
    out = dict(SPACES[model])
    for name in _EPOCH_PARAMS:
        p = out.get(name)
        if isinstance(p, Int) and epoch_scale != 1.0:
            out[name] = Int(
                max(1, round(p.low * epoch_scale)), max(1, round(p.high * epoch_scale)), p.log
            )
    return out


def reference(model: str, epoch_scale: float = 1.0) -> dict[str, Any]:
    """:data:`REFERENCE` of ``model`` fitted into ``space(model, epoch_scale)``."""
    out: dict[str, Any] = {}
    for name, p in space(model, epoch_scale).items():
        value = REFERENCE[model][name]
        if isinstance(p, Int):
            scaled = round(value * epoch_scale) if name in _EPOCH_PARAMS else value
            out[name] = int(min(max(scaled, p.low), p.high))
        elif isinstance(p, Float):
            out[name] = float(min(max(value, p.low), p.high))
        else:
            out[name] = value
    return out


def suggest(trial: optuna.Trial, model: str, epoch_scale: float = 1.0) -> dict[str, Any]:
    """Sample one configuration of ``model`` from its search space."""
    params: dict[str, Any] = {}
    for name, p in space(model, epoch_scale).items():
        if isinstance(p, Float):
            params[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
        elif isinstance(p, Int):
            params[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
        else:
            params[name] = trial.suggest_categorical(name, list(p.choices))
    return params


#: Models trained with PyTorch: they take ``optimizer``, ``precision`` and ``device``.
TORCH_MODELS = ("gmf", "mlp", "neumf")


def train_device(model: str, torch_options: Mapping[str, Any] | None = None) -> str:
    """The device ``model`` trains on with ``torch_options``: ``"cpu"`` or ``"cuda"``.

    Only the torch models can use a GPU (``device`` ``"cuda"``, or ``"auto"`` with one visible).
    """
    if model not in TORCH_MODELS:
        return "cpu"
    return resolve_device(str((torch_options or {}).get("device", "cpu")))


def _options(
    model: str,
    size: int,
    params: Mapping[str, Any],
    seed: int,
    threads: int,
    torch_options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    width = width_for_size(model, size)
    key = MODELS[model].size_param
    assert key is not None, f"{model} has a search space, so it has a width"
    extra = dict(torch_options or {}) if model in TORCH_MODELS else {}
    return {**FIXED.get(model, {}), **params, **extra, key: width, "seed": seed, "threads": threads}


#: Called as ``on_epoch(phase, epoch, epochs, model)``; ``phase`` names the model being fitted
#: (NeuMF's pretraining phases are ``"gmf"`` and ``"mlp"``, then ``"neumf"``).
PhaseCallback = Callable[[str, int, int, Model], None]


def fit_config(
    model: str,
    size: int,
    params: Mapping[str, Any],
    train: Interactions,
    *,
    seed: int,
    threads: int,
    on_epoch: PhaseCallback | None = None,
    torch_options: Mapping[str, Any] | None = None,
    start: Mapping[str, Model] | None = None,
) -> Model:
    """Build ``model`` at ``size`` with ``params`` and fit it on ``train``.

    For NeuMF this is the whole pipeline: GMF and MLP pretraining, then NeuMF with SGD.
    ``torch_options`` (``optimizer``, ``precision``, ``device``) apply to GMF, MLP and NeuMF.
    ``start`` maps a phase (``gmf``, ``mlp``, or the model's name) to a checkpoint of it with
    these options (:mod:`dotrec.tune.checkpoint`): that phase resumes from the checkpoint's
    epoch, and the phases before a resumed NeuMF are not trained again.
    """
    final, pre = pipeline_options(model, size, params, seed, threads, torch_options)
    resumed = dict(start or {})

    def fit(
        name: str, options: dict[str, Any], pretrained: tuple[Model, Model] | None = None
    ) -> Model:
        epochs = int(options["epochs"])

        def hook(epoch: int, fitted: Model) -> None:
            if on_epoch is not None:
                on_epoch(name, epoch, epochs, fitted)

        if name in resumed:
            m = resumed[name]
            return m if m.epochs_done >= epochs else m.fit(train, on_epoch=hook, resume=True)
        m = MODELS[name](**options)
        if pretrained is not None:
            m.set_pretrained(*pretrained)  # type: ignore[attr-defined]
        return m.fit(train, on_epoch=hook)

    if pre is None or model in resumed:
        return fit(model, final)
    gmf = fit("gmf", pre)
    mlp = fit("mlp", pre)
    return fit("neumf", final, (gmf, mlp))


def phase_options(
    model: str,
    size: int,
    params: Mapping[str, Any],
    seed: int,
    threads: int,
    torch_options: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The constructor options of each phase :func:`fit_config` trains, in order: ``gmf``
    and ``mlp`` then ``neumf`` (started from them: ``pretrain=True``) for NeuMF, else the
    model alone."""
    final, pre = pipeline_options(model, size, params, seed, threads, torch_options)
    if pre is None:
        return {model: final}
    return {"gmf": pre, "mlp": pre, model: {**final, "pretrain": True}}


def pipeline_options(
    model: str,
    size: int,
    params: Mapping[str, Any],
    seed: int,
    threads: int,
    torch_options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Constructor options of ``model`` at ``size``, and of its pretrained GMF and MLP.

    The second item is None except for NeuMF, whose ``pretrain_*`` parameters configure the
    GMF and the MLP it starts from (both take these options).
    """
    opts = _options(model, size, params, seed, threads, torch_options)
    if model != "neumf":
        return opts, None
    shared = ("factor", "regularization", "n_negatives", "batch_size", "seed", "threads")
    pre = {k: opts[k] for k in (*shared, *(torch_options or {})) if k in opts}
    pre.update(learning_rate=opts["pretrain_learning_rate"], epochs=opts["pretrain_epochs"])
    return {k: v for k, v in opts.items() if not k.startswith("pretrain_")}, pre


def read_best_config(path: Path) -> tuple[str, int, dict[str, Any], dict[str, Any]]:
    """``(model, size, best_params, torch_options)`` of a tuning result JSON.

    The file is what ``dotrec tune`` writes (``OUT/STUDY.json``) or a study cell's
    ``tuning.json``.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        settings, params = data["settings"], data["best_params"]
        model, size = str(settings["model"]), int(settings["size"])
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"{path}: not a tuning result of dotrec tune or study ({type(e).__name__}: {e})"
        ) from None
    if not params:
        raise ConfigError(f"{path}: the study has no finished trial yet")
    check_model(model)
    torch_options = {
        k: settings[k] for k in ("optimizer", "precision") if settings.get(k) is not None
    }
    return model, size, dict(params), torch_options
