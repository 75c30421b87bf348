import pytest

import data


@pytest.fixture(scope="module")
def syn_dir(tmp_path_factory):
    """A small synthetic-language data directory (60 K train, 8 K val tokens)."""
    path = str(tmp_path_factory.mktemp("data") / "syn")
    data.prepare_synthetic(path, train_tokens=60_000, val_tokens=8_000, seed=0)
    return path
