"""Two `dotrec tune` workers share one study on a real PostgreSQL server.

The server's URL comes from ``DOTREC_TEST_POSTGRES_URL`` (``.ci/run`` installs PostgreSQL from
Debian packages, starts it and sets the variable). Without it the test is skipped locally and
fails in CI (``CI=true``).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import optuna
import pytest

from dotrec.tune import open_storage
from tests.tune.cli_helpers import finished, start_dotrec, trials

N = 6


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("DOTREC_TEST_POSTGRES_URL")
    if not url:
        msg = "DOTREC_TEST_POSTGRES_URL is not set (no PostgreSQL server to test against)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return url


@pytest.mark.slow
def test_two_workers_finish_n_trials_together_without_duplicates(
    postgres_url: str, tmp_path: Path
) -> None:
    name = f"two-workers-{uuid.uuid4().hex[:8]}"
    args = (
        "tune",
        "mf",
        "--dataset",
        "synthetic",
        "--dim",
        "8",
        "--trials",
        str(N),
        "--epoch-scale",
        "0.2",
        "--threads",
        "1",
        "--pruner",
        "none",
        "--heartbeat",
        "2",
        "--storage",
        postgres_url,
        "--study",
        name,
        "--json",
    )
    workers = [start_dotrec(*args, "--out", str(tmp_path / str(i))) for i in range(2)]
    outputs = [w.communicate(timeout=240) for w in workers]
    storage = open_storage(postgres_url)
    try:
        for w, (out, err) in zip(workers, outputs, strict=True):
            assert w.returncode == 0, err
            assert json.loads(out)["complete"] + json.loads(out)["pruned"] == N
        ts = trials(storage, name)
        done = finished(ts)
        assert len(done) == N
        assert len({t.number for t in ts}) == len(ts)
        # Every extra trial ended at once as an untrained surplus slot, nothing else.
        extra = [t for t in ts if t not in done]
        assert all(t.user_attrs.get("surplus") and not t.intermediate_values for t in extra)
        configs = [tuple(sorted(t.params.items())) for t in done]
        assert len(set(configs)) == N, "two trials ran the same configuration"
        by_worker = {t.user_attrs["worker"] for t in done}
        assert len(by_worker) == 2, f"only {by_worker} ran trials"
    finally:
        optuna.delete_study(study_name=name, storage=storage)
