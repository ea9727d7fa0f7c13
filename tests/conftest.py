import os

import pytest

# quiet progress bars in test logs
os.environ.setdefault("CHATRLHF_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def tiny():
    """The tiny random model and the real tokenizer (built once per machine, then cached)."""
    torch = pytest.importorskip("torch")
    from chatrlhf.models import load_model

    torch.manual_seed(0)
    return load_model("tiny")
