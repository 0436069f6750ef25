"""The items each user has seen, stored beside a model so that serving needs no dataset.

:meth:`dotrec.models.base.Model.save` with ``train=`` writes :data:`SEEN_FILE` (raw id maps and
each user's training items as CSR) into the artifact directory; :func:`load_seen` reads it.
"""

from __future__ import annotations

import os

import numpy as np

from dotrec.artifacts import load_aux
from dotrec.data.ids import IdMap
from dotrec.data.interactions import Interactions
from dotrec.errors import ArtifactError

#: File name of the seen items inside a model directory.
SEEN_FILE = "seen.npz"


def seen_arrays(train: Interactions) -> dict[str, np.ndarray]:
    """Id maps and each user's items (CSR) of ``train``, as stored in :data:`SEEN_FILE`."""
    csr = train.csr
    return {
        "user_ids": train.users.ids,
        "item_ids": train.items.ids,
        "indptr": csr.indptr.astype(np.int64),
        "indices": csr.indices.astype(np.int32),
    }


def load_seen(path: str | os.PathLike[str]) -> Interactions | None:
    """The training interactions (id maps + items per user) saved beside a model, if any."""
    arrays = load_aux(path, SEEN_FILE)
    if arrays is None:
        return None
    try:
        indptr, indices = arrays["indptr"], arrays["indices"]
        users = IdMap(arrays["user_ids"])
        items = IdMap(arrays["item_ids"])
        user_index = np.repeat(np.arange(len(users)), np.diff(indptr))
        return Interactions.from_indices(
            user_index,
            indices,
            n_users=len(users),
            n_items=len(items),
            users=users,
            items=items,
            source=f"{path}/{SEEN_FILE}",
        )
    except (KeyError, ValueError) as e:
        raise ArtifactError(f"{path}/{SEEN_FILE}: inconsistent ({e})") from None
