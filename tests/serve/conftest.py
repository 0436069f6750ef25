"""Fixtures: model directories shared with the retrieval tests."""

from tests.retrieval.conftest import mf_dir, popularity_dir  # noqa: F401
