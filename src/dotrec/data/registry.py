"""The dataset registry and the data directory.

Files are looked up in ``DATA_DIR/NAME/`` where ``DATA_DIR`` is ``--data-dir``, else
``$DOTREC_DATA_DIR``, else a per-user cache directory (``platformdirs.user_cache_dir``).
:func:`load_dataset` takes a registry name or a path (an NCF prefix, or a raw ratings file).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dotrec.data.filters import FilterReport, filter_interactions
from dotrec.data.interactions import Interactions
from dotrec.data.readers import (
    NCFFiles,
    read_ncf,
    read_ratings_file,
    read_table,
    read_user_items,
)
from dotrec.data.splits import DEFAULT_EVAL_NEGATIVES, FileSplit, Split, leave_one_out
from dotrec.data.synthetic import SyntheticConfig, generate
from dotrec.errors import ConfigError, DatasetNotFoundError

NCF_BASE = (
    "https://raw.githubusercontent.com/hexiangnan/neural_collaborative_filtering/"
    "4aab159e81c44b062c091bdaed0ab54ac632371f/Data/"
)
GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
LIGHTGCN = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset and where to fetch it.

    ``checksum`` is ``"sha256:<hex>"``, ``"gitblob:<sha1>"`` (the id of the file in the
    upstream git tree, for files whose sha256 was never published) or ``"pairs256:<hex>"``
    (for user-items files: the sha256 of their sorted pairs, written as ``user<TAB>item``
    lines joined by newlines; it does not depend on the order inside a line). ``member``
    names the file inside a zip archive at ``url``; ``optional`` files may be missing.
    """

    name: str
    url: str
    checksum: str | None
    member: str | None = None
    optional: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset."""

    name: str
    kind: str  # "ncf", "raw", "synthetic" or "files" (train.txt / test.txt user-items files)
    description: str
    files: tuple[RemoteFile, ...] = ()
    raw_file: str | None = None
    synthetic: SyntheticConfig | None = None
    citation: str = ""
    notes: list[str] = field(default_factory=list)


def _ncf(
    name: str, train_blob: str, test_sha: str, neg_sha: str | None, neg_blob: str, description: str
) -> DatasetSpec:
    files = (
        RemoteFile(
            f"{name}.train.rating", NCF_BASE + f"{name}.train.rating", f"gitblob:{train_blob}"
        ),
        RemoteFile(f"{name}.test.rating", NCF_BASE + f"{name}.test.rating", f"sha256:{test_sha}"),
        RemoteFile(
            f"{name}.test.negative",
            NCF_BASE + f"{name}.test.negative",
            f"sha256:{neg_sha}" if neg_sha else f"gitblob:{neg_blob}",
        ),
    )
    return DatasetSpec(
        name,
        "ncf",
        description,
        files,
        citation="He et al., Neural Collaborative Filtering, WWW 2017",
    )


DATASETS: dict[str, DatasetSpec] = {
    "ml-1m": _ncf(
        "ml-1m",
        "31ba384fd58dac8fbd09d2dfc6616431f3563ab5",
        "231ae11eb060b643a8c58c063cd17ffc743b54f569afb073d1abb6cf126b88b5",
        "127853228a76b7d21c0481e8ef8d00dd009cd5c88670dbdd9e9debfdb9f93de4",
        "c82844fb99d021f94751a6f915a230a1e8b8da92",
        "MovieLens-1M, the NCF leave-one-out split with 99 negatives (He et al. 2017)",
    ),
    "pinterest-20": _ncf(
        "pinterest-20",
        "99813f8ed7486c36fa0f405e3f400db5d6fed0be",
        "3a8a8f7eb8e21cc5928b8259dd2c265269ecfa219d92ba829249956aa293d732",
        None,
        "b752ccdc14df423b9484771440ff4a73e4a4a304",
        "Pinterest (users with >= 20 pins), the NCF leave-one-out split",
    ),
    "ml-1m-u3k": DatasetSpec(
        "ml-1m-u3k",
        "ncf",
        "The NCF ml-1m split restricted to its first 2,999 users "
        "(a faithful subset for fast tests; not comparable with published numbers)",
    ),
    "ml-100k": DatasetSpec(
        "ml-100k",
        "raw",
        "MovieLens 100K u.data, leave-one-out by time, 99 seeded negatives",
        (
            RemoteFile(
                "u.data",
                GROUPLENS + "ml-100k.zip",
                "sha256:06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                member="ml-100k/u.data",
            ),
        ),
        raw_file="u.data",
        citation="Harper & Konstan, ACM TiiS 5(4):19, 2015",
    ),
    "ml-latest-small": DatasetSpec(
        "ml-latest-small",
        "raw",
        "MovieLens latest-small ratings.csv, leave-one-out by time, 99 seeded negatives",
        (
            RemoteFile(
                "ratings.csv",
                GROUPLENS + "ml-latest-small.zip",
                "sha256:aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
                member="ml-latest-small/ratings.csv",
            ),
        ),
        raw_file="ratings.csv",
        citation="Harper & Konstan, ACM TiiS 5(4):19, 2015",
    ),
    "gowalla": DatasetSpec(
        "gowalla",
        "files",
        "Gowalla check-ins, the NGCF / LightGCN split (train.txt / test.txt, 29,858 users, "
        "40,981 items, about 20% of each user's items in the test file)",
        (
            RemoteFile(
                "train.txt",
                LIGHTGCN + "gowalla/train.txt",
                "pairs256:9d453db6583bc20241f8be818bb5262aac05a62d32f5dd7f5ab9609553fe241b",
            ),
            RemoteFile(
                "test.txt",
                LIGHTGCN + "gowalla/test.txt",
                "pairs256:0be451b93ddfaf0c1119ab9c2aa6b6642daee16508ab7ee7e029b425170ff06d",
            ),
        ),
        citation="Cho, Myers, Leskovec, KDD 2011; split of Wang et al. (NGCF, SIGIR 2019) "
        "as used by He et al. (LightGCN, SIGIR 2020)",
    ),
    "synthetic": DatasetSpec(
        "synthetic",
        "synthetic",
        "Built-in synthetic data, dot-product ground truth "
        "(2,000 users, 1,000 items, long-tail popularity)",
        synthetic=SyntheticConfig(),
    ),
    "synthetic-mlp": DatasetSpec(
        "synthetic-mlp",
        "synthetic",
        "Built-in synthetic data whose ground-truth similarity is "
        "a random MLP (where a learned similarity could win)",
        synthetic=SyntheticConfig(similarity="mlp"),
    ),
}


def default_data_dir() -> Path:
    """``$DOTREC_DATA_DIR``, else the per-user cache directory."""
    env = os.environ.get("DOTREC_DATA_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("dotrec")) / "data"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def dataset_path(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of a registered dataset inside the data directory."""
    return resolve_data_dir(data_dir) / name


@dataclass(frozen=True)
class DataOptions:
    """How to read a raw ratings table and what to keep of it (see :mod:`dotrec.data.filters`).

    The column names (and ``sep``) read any CSV/TSV/Parquet file with a header
    (:func:`~dotrec.data.readers.read_table`); the filters apply to every raw dataset. Fixed
    splits (NCF files, synthetic data) take none of them.
    """

    user_col: str | None = None
    item_col: str | None = None
    rating_col: str | None = None
    time_col: str | None = None
    sep: str | None = None
    min_rating: float | None = None
    min_user_count: int = 0
    min_item_count: int = 0

    def columns_given(self) -> bool:
        return any(
            v is not None
            for v in (self.user_col, self.item_col, self.rating_col, self.time_col, self.sep)
        )

    def filters_given(self) -> bool:
        return self.min_rating is not None or self.min_user_count > 0 or self.min_item_count > 0

    def read(self, path: Path, fmt: str | None) -> Interactions:
        """The table at ``path``: by its columns if they were named, else by its format."""
        if not self.columns_given():
            return read_ratings_file(path, fmt)
        if self.user_col is None or self.item_col is None:
            raise ConfigError(
                "--user-col and --item-col are both needed to read a table by its column names"
            )
        return read_table(
            path,
            user=self.user_col,
            item=self.item_col,
            timestamp=self.time_col,
            rating=self.rating_col,
            sep=self.sep,
        )


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    fmt: str | None = None,
    n_negatives: int = DEFAULT_EVAL_NEGATIVES,
    options: DataOptions | None = None,
    on_filtered: Callable[[FilterReport], None] | None = None,
) -> Split:
    """Load a registered dataset or a path as a leave-one-out :class:`Split`.

    ``seed`` drives the leave-one-out and negative sampling of raw and synthetic datasets (NCF
    files carry their own split). ``options`` name a table's columns and filter raw data;
    ``on_filtered`` receives what the filters removed.
    """
    opts = options or DataOptions()
    spec = DATASETS.get(name)
    fixed = spec is not None and spec.kind in ("ncf", "synthetic")
    if spec is None and NCFFiles.from_prefix(Path(name)).train.exists() and fmt in (None, "ncf"):
        fixed = True
    if fixed and (opts.columns_given() or opts.filters_given()):
        raise ConfigError(
            f"{name} is a fixed split: column names and filters apply to raw ratings files only"
        )
    if spec is not None and spec.kind == "raw" and opts.columns_given():
        raise ConfigError(
            f"{name} is a registered ratings file of known format; column "
            "names apply to other files"
        )

    def split_raw(data: Interactions, split_name: str) -> Split:
        if opts.filters_given():
            data, report = filter_interactions(
                data,
                min_rating=opts.min_rating,
                min_user_count=opts.min_user_count,
                min_item_count=opts.min_item_count,
            )
            if on_filtered is not None:
                on_filtered(report)
        return leave_one_out(data, seed=seed, n_negatives=n_negatives, name=split_name)

    if spec is None:
        p = Path(name)
        if fixed:
            return read_ncf(p, name=p.name)
        if p.is_file():
            return split_raw(opts.read(p, fmt), p.name)
        known = ", ".join(DATASETS)
        raise DatasetNotFoundError(
            f"{name!r} is neither a registered dataset ({known}) nor an "
            "existing NCF prefix or ratings file"
        )
    if spec.kind == "synthetic":
        assert spec.synthetic is not None
        return leave_one_out(
            generate(spec.synthetic), seed=seed, n_negatives=n_negatives, name=name
        )
    folder = dataset_path(name, data_dir)
    missing = missing_files(name, data_dir)
    if missing:
        raise DatasetNotFoundError(_missing_message(name, folder, missing))
    if spec.kind == "ncf":
        return read_ncf(folder / name, name=name)
    if spec.kind == "files":
        raise ConfigError(
            f"{name} is a split given by files, with many test items per user: load it with "
            "dotrec.load_file_split and evaluate it with dotrec.evaluate_ranking (the "
            "LightGCN protocol); the train/evaluate/tune commands do not take it yet"
        )
    assert spec.raw_file is not None
    return split_raw(read_ratings_file(folder / spec.raw_file), name)


def load_file_split(name: str, data_dir: str | os.PathLike[str] | None = None) -> FileSplit:
    """A registered split given by files (``gowalla``), or a folder holding ``train.txt`` and
    ``test.txt`` in the user-items layout (:func:`~dotrec.data.readers.read_user_items`)."""
    spec = DATASETS.get(name)
    if spec is None:
        folder = Path(name)
        if not (folder / "train.txt").is_file():
            raise DatasetNotFoundError(
                f"{name!r} is neither a registered file split "
                f"({', '.join(n for n, s in DATASETS.items() if s.kind == 'files')}) nor a "
                "folder holding train.txt and test.txt"
            )
        return read_user_items(folder / "train.txt", folder / "test.txt", name=folder.name)
    if spec.kind != "files":
        raise ConfigError(f"{name} is a leave-one-out dataset: load it with load_dataset")
    folder = dataset_path(name, data_dir)
    missing = missing_files(name, data_dir)
    if missing:
        raise DatasetNotFoundError(_missing_message(name, folder, missing))
    return read_user_items(folder / "train.txt", folder / "test.txt", name=name)


def missing_files(name: str, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The files a registered dataset needs that are not in the data directory."""
    spec = DATASETS[name]
    if spec.kind == "synthetic":
        return []
    folder = dataset_path(name, data_dir)
    if spec.kind == "files":
        return [folder / f.name for f in spec.files if not (folder / f.name).exists()]
    if spec.kind == "ncf":
        files = NCFFiles.from_prefix(folder / name)
        missing = [p for p in (files.train, files.test) if not p.exists()]
        if files.negatives is None:
            missing.append(folder / f"{name}.test.negative")
        return missing
    assert spec.raw_file is not None
    return [] if (folder / spec.raw_file).exists() else [folder / spec.raw_file]


def _missing_message(name: str, folder: Path, missing: list[Path]) -> str:
    names = ", ".join(p.name for p in missing)
    return (
        f"dataset {name!r}: {names} not found in {folder}; run `dotrec data download {name}` "
        "or point --data-dir / DOTREC_DATA_DIR at a folder that holds it"
    )
