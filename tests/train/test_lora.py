"""LoRA: the SFT checkpoint is merged (plain transformers loads it, no adapter keys), and under LoRA
PPO's reference is the same model with its adapter disabled."""

import copy
import json

import torch

from chatrlhf.engine import Completion
from chatrlhf.heads import ScalarModel, apply_lora, new_scalar_head
from chatrlhf.ppo import Models, PPOConfig, make_experience
from chatrlhf.schema import Conversation, write_jsonl


def test_sft_with_lora_saves_a_merged_plain_checkpoint(tmp_path, tiny):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from chatrlhf import sft

    demos = [Conversation([{"role": "user", "content": f"say {i}"}, {"role": "assistant", "content": f"{i}."}])
             for i in range(6)]
    write_jsonl(tmp_path / "d.jsonl", demos)
    out = tmp_path / "sft"
    summary = sft.run(sft.SFTConfig(model="tiny", data=[str(tmp_path / "d.jsonl")], out_dir=str(out), max_steps=2,
                                    batch_size=2, lr=1e-2, lora_r=4, dtype="float32"))
    assert summary["steps"] == 2 and (out / "DONE").exists()
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert not any("lora" in k for k in f.keys())
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = tiny[0].state_dict()
    changed = any(not torch.equal(v, base[k]) for k, v in merged.state_dict().items() if k in base)
    assert changed  # the adapter's update was folded into the saved weights
    assert json.loads((out / "DONE").read_text())["stage"] == "sft"


def test_lora_reference_is_the_adapter_disabled(tiny):
    lm, tok = tiny
    from chatrlhf.chat_format import render_prompt

    policy = apply_lora(copy.deepcopy(lm), 4, 8)
    # make the adapter non-trivial so policy and reference differ
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5)
    rm = ScalarModel(copy.deepcopy(lm).requires_grad_(False), new_scalar_head(lm.config.hidden_size, 0.5))
    models = Models(policy, None, new_scalar_head(lm.config.hidden_size), rm, tok, None)
    conv = Conversation([{"role": "user", "content": "hi"}])
    batch = [(conv, render_prompt(conv.messages, tok))]
    exp = make_experience(models, batch, [Completion([11, 12, tok.eos_token_id], [0.0] * 3, "x", "stop")], 0.1,
                          PPOConfig(dtype="float32", lora_r=4))
    seq = torch.tensor([batch[0][1] + [11, 12, tok.eos_token_id]])
    with torch.no_grad():
        base_logits = lm(input_ids=seq).logits[0]
    n = len(batch[0][1])
    expect = torch.log_softmax(base_logits[n - 1: n + 2], -1)[torch.arange(3), torch.tensor([11, 12, tok.eos_token_id])]
    assert torch.allclose(exp.ref_logprobs[0], expect, atol=1e-4)  # reference = base weights
    assert not torch.allclose(exp.old_logprobs[0], expect, atol=1e-3)  # the policy has moved
