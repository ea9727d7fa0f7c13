"""Fixtures for the server tests: one torch thread, the tiny model (loaded once), and ``live``: a
real uvicorn server (server_live.py) over a store on SQLite or on a PostgreSQL server the tests
start (``db_url`` from tests/pg_server.py)."""

from __future__ import annotations

import pytest
from pg_server import db_url, pg_server  # noqa: F401  (fixtures)
from server_live import live_server


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from threads, and on a busy small machine two OpenMP threads
    spin-wait each other (4-5x slower steps measured); restored after each module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny():
    from chatrlhf.models import load_model

    return load_model("tiny")


@pytest.fixture
def live(tiny, db_url):  # noqa: F811  (db_url is the imported fixture)
    with live_server(tiny, db_url) as server:
        yield server


@pytest.fixture(scope="module")
def two_versions(tiny, tmp_path_factory):
    """Directories of two tiny models whose weights differ (versions to register and serve)."""
    import torch

    model, tok = tiny
    root = tmp_path_factory.mktemp("versions")
    dirs = {}
    g = torch.Generator().manual_seed(1)
    for name, noise in (("tiny-a", 0.0), ("tiny-b", 0.5)):
        sd = {k: v + noise * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
              for k, v in model.state_dict().items()}
        m = type(model)(model.config)
        m.load_state_dict(sd)
        m.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        dirs[name] = str(root / name)
    return dirs
