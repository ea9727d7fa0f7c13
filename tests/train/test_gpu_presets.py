"""The GPU presets: the shipped accelerate config files, read by accelerate's own loader, and the
SFT and reward stages' sharded-weights path (eval inside the wrapped forward, full state dict
gathered for saving). accelerate refuses FSDP without a GPU ("no available devices"), so that path
is driven here in one CPU process with ``weights_sharded`` forced on: it checks our gathering and
reloading, not FSDP or DeepSpeed themselves."""

import fnmatch
import tomllib
from pathlib import Path

import pytest
from safetensors.torch import load_file

import chatrlhf
from test_accelerate import _data, _rows, _sft_cfg

PRESETS = Path(chatrlhf.__file__).parent / "presets" / "accelerate"


def test_fsdp_config_is_full_shard_bf16_with_a_full_state_dict_for_saving():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    cfg = load_config_from_file(str(PRESETS / "fsdp.yaml"))
    assert cfg.distributed_type == DistributedType.FSDP and cfg.mixed_precision == "bf16" and not cfg.use_cpu
    f = cfg.fsdp_config
    assert f["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert f["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # what accelerator.get_state_dict gathers
    assert f["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert f["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"  # the class SmolLM2's blocks are
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    assert LlamaDecoderLayer.__name__ == f["fsdp_transformer_layer_cls_to_wrap"]
    assert f["fsdp_use_orig_params"] is True  # the stages build the optimizer before prepare


def test_zero3_config_is_stage_3_bf16_and_saves_a_16bit_model():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    cfg = load_config_from_file(str(PRESETS / "zero3.yaml"))
    assert cfg.distributed_type == DistributedType.DEEPSPEED and cfg.mixed_precision == "bf16"
    d = cfg.deepspeed_config
    assert d["zero_stage"] == 3
    assert d["zero3_save_16bit_model"] is True  # else get_state_dict refuses a ZeRO-3 model
    assert d["gradient_clipping"] == 1.0  # the stages' clip norm; DeepSpeed clips, not accelerate


def test_accelerate_configs_ship_with_the_package():
    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["chatrlhf"]
    for name in ("fsdp.yaml", "zero3.yaml"):
        rel = f"presets/accelerate/{name}"
        assert (PRESETS / name).is_file()
        assert any(fnmatch.fnmatch(rel, g) and g.count("/") == rel.count("/") for g in globs), rel


def _force_sharded(monkeypatch):
    import chatrlhf.train_utils as tu

    monkeypatch.setattr(tu, "weights_sharded", lambda acc: True)


def test_sft_sharded_path_evaluates_in_the_wrapped_forward_and_saves_the_gathered_weights(tiny, tmp_path,
                                                                                         monkeypatch):
    from chatrlhf import sft

    demos, _ = _data(tmp_path)
    sft.run(_sft_cfg(demos, tmp_path / "plain"))
    _force_sharded(monkeypatch)
    # sharded, eval must run inside the wrapped module's forward: count the calls it gets
    real_eval, inside = sft.eval_loss, []

    def eval_loss(lm, examples, pad, bs, dtype, wrapped=None):
        inside.append(wrapped is not None)
        return real_eval(lm, examples, pad, bs, dtype, wrapped)

    monkeypatch.setattr(sft, "eval_loss", eval_loss)
    sft.run(_sft_cfg(demos, tmp_path / "sharded"))
    plain, sharded = _rows(tmp_path / "plain" / "metrics.jsonl"), _rows(tmp_path / "sharded" / "metrics.jsonl")
    assert [r.get("eval_loss") for r in sharded] == [r.get("eval_loss") for r in plain]
    assert sharded[0]["eval_loss"] is not None and inside and all(inside)
    a = load_file(tmp_path / "plain" / "model.safetensors")
    b = load_file(tmp_path / "sharded" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # fresh copy + gathered = trained


def test_reward_sharded_path_saves_the_gathered_weights(tiny, tmp_path, monkeypatch):
    from chatrlhf import reward

    demos, rankings = _data(tmp_path)

    def run(out):
        cfg = reward.RewardConfig(model="tiny", rankings=[rankings], demos=demos, out_dir=str(tmp_path / out),
                                  lr=1e-3, max_length=64, norm_samples=4, dtype="float32", train_layers=1,
                                  batch_rankings=4)
        return reward.run(cfg)

    plain = run("plain")
    _force_sharded(monkeypatch)
    sharded = run("sharded")
    assert sharded == plain  # same training, and normalised and evaluated on the reloaded copy
    for f in ("model.safetensors", "scalar_head.safetensors"):
        a, b = load_file(tmp_path / "plain" / f), load_file(tmp_path / "sharded" / f)
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), f


def test_gathered_weights_that_do_not_fit_are_refused(tiny):
    import torch

    from chatrlhf.train_utils import as_module, gathered_parts

    class Acc:
        is_main_process = True

        def get_state_dict(self, wrapped):
            return {"parts.0.weight": torch.zeros(2, 2)}

    with pytest.raises(ValueError, match="missing"):
        gathered_parts(Acc(), None, lambda: [torch.nn.Linear(2, 2)], sharded=True)
    got = gathered_parts(Acc(), as_module(torch.nn.Linear(2, 2, bias=False)),
                         lambda: [torch.nn.Linear(2, 2, bias=False)], sharded=True)
    assert torch.equal(got[0].weight, torch.zeros(2, 2))
