"""Reliability tests share the session's tiny model dir and the one real `transformers serve`."""

import pytest
from serve_fixtures import tiny_server  # noqa: F401  (the shared real `transformers serve`)


@pytest.fixture(scope="session")
def micro_model_dir(tiny_model_dir):
    return tiny_model_dir
