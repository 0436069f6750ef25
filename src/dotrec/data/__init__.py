"""Interaction data: readers, the Interactions object, splits, synthetic data, the registry."""

from dotrec.data.filters import FilterReport, filter_interactions
from dotrec.data.ids import IdMap
from dotrec.data.interactions import Interactions
from dotrec.data.readers import (
    read_movielens_dat,
    read_ncf,
    read_ratings_csv,
    read_ratings_file,
    read_table,
    read_udata,
)
from dotrec.data.registry import (
    DATASETS,
    DataOptions,
    default_data_dir,
    load_dataset,
    load_file_split,
)
from dotrec.data.splits import FileSplit, Split, leave_one_out, sample_negatives
from dotrec.data.synthetic import SyntheticConfig, generate

__all__ = [
    "FileSplit",
    "load_file_split",
    "DATASETS",
    "DataOptions",
    "FilterReport",
    "filter_interactions",
    "IdMap",
    "Interactions",
    "Split",
    "SyntheticConfig",
    "default_data_dir",
    "generate",
    "leave_one_out",
    "load_dataset",
    "read_movielens_dat",
    "read_ncf",
    "read_ratings_csv",
    "read_ratings_file",
    "read_table",
    "read_udata",
    "sample_negatives",
]
