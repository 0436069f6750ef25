"""Retrieval: top-k items for a user vector, exact or approximate (MIPS).

:class:`ExactIndex` scans every item (the reference); :class:`HNSWIndex`, :class:`IVFIndex`
and :class:`IVFPQIndex` (compressed codes, for 10^7 to 10^8 items) are faiss indexes over the
MIPS-to-L2 transform of the bias-folded item vectors. Build one for
a model with :func:`build_index`, store it beside the model with :func:`save_index`, and read
it back without a rebuild with :func:`load_index`.
"""

from dotrec.retrieval.ann import HNSWIndex, IVFIndex, IVFPQIndex
from dotrec.retrieval.index import (
    INDEX_KINDS,
    ExactIndex,
    ItemIndex,
    build_index,
    index_path,
    load_index,
    recall_at_k,
    save_index,
    saved_index_kinds,
)
from dotrec.retrieval.topk import topk_dot, topk_rows

__all__ = [
    "INDEX_KINDS",
    "ExactIndex",
    "HNSWIndex",
    "IVFIndex",
    "IVFPQIndex",
    "ItemIndex",
    "build_index",
    "index_path",
    "load_index",
    "recall_at_k",
    "save_index",
    "saved_index_kinds",
    "topk_dot",
    "topk_rows",
]
