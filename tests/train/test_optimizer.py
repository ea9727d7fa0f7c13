"""``train_utils.adamw``: the fused AdamW where PyTorch has the kernel, the same update as the
unfused one, and the plain optimizer wherever the fused one cannot or must not be used."""

import types

import pytest
import torch

from chatrlhf.train_utils import adamw


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.randn(7, 5, generator=g)), torch.nn.Parameter(torch.randn(5, generator=g))]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g)
    return ps


def test_fused_on_cpu_and_the_same_step_as_the_unfused_optimizer():
    a, b = _params(), _params()
    fused = adamw([{"params": a[:1], "lr": 1e-2}, {"params": a[1:], "lr": 1e-3}], weight_decay=0.1)
    plain = torch.optim.AdamW([{"params": b[:1], "lr": 1e-2}, {"params": b[1:], "lr": 1e-3}], weight_decay=0.1)
    assert fused.defaults["fused"] is True and not plain.defaults.get("fused")
    for _ in range(3):
        fused.step()
        plain.step()
    for x, y, start in zip(a, b, _params()):
        assert not torch.equal(x, start), "the step moved the weights"
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["DistributedType.DEEPSPEED", "DistributedType.FSDP"])
def test_not_fused_where_deepspeed_or_fsdp_own_the_optimizer_state(kind):
    opt = adamw(_params(), types.SimpleNamespace(distributed_type=kind), lr=1e-3)
    assert not opt.defaults.get("fused")
    assert adamw(_params(), types.SimpleNamespace(distributed_type="DistributedType.MULTI_CPU"),
                 lr=1e-3).defaults["fused"] is True, "DDP over gloo keeps the fused kernel"


def test_not_fused_for_a_tensor_the_kernel_does_not_take():
    meta = [torch.nn.Parameter(torch.empty(3, device="meta"))]  # neither CPU nor CUDA
    assert not adamw(meta, lr=1e-3).defaults.get("fused")
    with pytest.raises(ValueError):
        adamw([], lr=1e-3)  # as torch.optim.AdamW: nothing to optimise is an error
