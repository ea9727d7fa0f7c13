import pytest
import torch


@pytest.fixture(scope="session")
def smollm2():
    from chatrlhf.models import load_model

    torch.manual_seed(0)
    return load_model()


@pytest.fixture(scope="session")
def tiny():
    from chatrlhf.models import load_model

    return load_model("tiny")
