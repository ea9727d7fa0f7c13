"""Models the training stages share: a causal LM with a scalar head (reward model, or the PPO value
head on the policy trunk), LoRA wrapping, and checkpoint I/O.

A checkpoint directory is always a plain ``save_pretrained`` causal LM (loadable by ``transformers``
and vLLM) plus, for a scalar model, ``scalar_head.safetensors`` and ``scalar_head.json`` (the bias
that normalises reward scores). Under LoRA the adapter is merged into the saved weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

HEAD_WEIGHTS = "scalar_head.safetensors"
HEAD_META = "scalar_head.json"


def decoder_of(lm: Any) -> Any:
    """The transformer trunk of a causal LM (also through a PEFT wrapper, LoRA layers included)."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return base.get_decoder()


def lm_head_of(lm: Any) -> Any:
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return base.get_output_embeddings()


def hidden_states(lm: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor") -> "torch.Tensor":
    """(B, T) -> (B, T, H) final-layer (normed) hidden states; positions follow the attention mask
    so left-padded prompts get the same rotary positions as unpadded ones."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = decoder_of(lm)(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=False)
    return out.last_hidden_state


def _run_blocks(lm: Any, h: "torch.Tensor", attention_mask: "torch.Tensor", layers: Any) -> "torch.Tensor":
    """Run decoder blocks over (B, T, H) states of right- or left-padded rows, with the masks and
    rotary positions the model's own forward would use."""
    from transformers.masking_utils import create_causal_mask

    dec = decoder_of(lm)
    pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    mask = create_causal_mask(config=dec.config, inputs_embeds=h, attention_mask=attention_mask,
                              past_key_values=None, position_ids=pos)
    pe = dec.rotary_emb(h, position_ids=pos)
    for layer in layers:
        out = layer(h, attention_mask=mask, position_ids=pos, position_embeddings=pe)
        h = out[0] if isinstance(out, tuple) else out
    return h


def lower_states(lm: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor", upto: int) -> "torch.Tensor":
    """(B, T) -> (B, T, H): the input of block ``upto`` (embeddings, then blocks 0..upto-1).
    With the lower blocks frozen these states never change, so a stage can compute them once."""
    dec = decoder_of(lm)
    return _run_blocks(lm, dec.embed_tokens(input_ids), attention_mask, list(dec.layers)[:upto])


def cache_lower_states(lm: Any, seqs: Any, pad_id: int, upto: int, max_tokens: int, dtype: str,
                       desc: str = "frozen blocks") -> list["torch.Tensor"]:
    """Each sequence's input to block ``upto`` (T_i, H), computed once with no grad, in
    length-grouped chunks of at most ``max_tokens`` padded tokens."""
    import torch

    from chatrlhf.train_utils import autocast, device, length_buckets, pad_right, progress

    out: list[Any] = [None] * len(seqs)
    lm.eval()
    with torch.no_grad(), autocast(dtype):
        for group in progress(length_buckets([len(s) for s in seqs], max_tokens), desc=desc):
            ids, attn = pad_right([seqs[i] for i in group], pad_id)
            h = lower_states(lm, ids.to(device()), attn.to(device()), upto)
            for row, i in enumerate(group):
                out[i] = h[row, : len(seqs[i])].detach().clone()
    return out


def upper_hidden(lm: Any, states: "torch.Tensor", attention_mask: "torch.Tensor", start: int) -> "torch.Tensor":
    """(B, T, H) input of block ``start`` -> (B, T, H) final normed hidden states."""
    dec = decoder_of(lm)
    return dec.norm(_run_blocks(lm, states, attention_mask, list(dec.layers)[start:]))


def last_real_index(attention_mask: "torch.Tensor") -> "torch.Tensor":
    """(B, T) -> (B,) column of each row's last real token, for left, right or both-side padding."""
    T = attention_mask.shape[1]
    return T - 1 - attention_mask.long().flip(1).argmax(1)


def new_scalar_head(hidden_size: int, init_std: float = 0.0) -> "torch.nn.Linear":
    """A hidden -> 1 linear head; zero init makes a fresh critic predict 0 everywhere."""
    import torch

    head = torch.nn.Linear(hidden_size, 1)
    torch.nn.init.normal_(head.weight, std=init_std) if init_std > 0 else torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head


class ScalarModel:
    """A causal LM plus a linear head read at the last real token: the reward model.

    Not an ``nn.Module`` itself so that the LM stays a plain ``transformers`` model for saving;
    ``parameters()`` covers both parts for the optimizer.
    """

    def __init__(self, lm: Any, head: "torch.nn.Linear", bias: float = 0.0):
        self.lm, self.head, self.bias = lm, head, bias

    def parameters(self):
        yield from (p for p in self.lm.parameters() if p.requires_grad)
        yield from self.head.parameters()

    def train(self, mode: bool = True) -> "ScalarModel":
        self.lm.train(mode)
        self.head.train(mode)
        return self

    def eval(self) -> "ScalarModel":
        return self.train(False)

    def raw_scores(self, input_ids: "torch.Tensor", attention_mask: "torch.Tensor") -> "torch.Tensor":
        """(B, T) -> (B,) head output at each row's last real token (no bias)."""
        import torch

        h = hidden_states(self.lm, input_ids, attention_mask)  # (B, T, H)
        last = last_real_index(attention_mask)  # (B,)
        h_last = h[torch.arange(h.shape[0], device=h.device), last]  # (B, H)
        return self.head(h_last.to(self.head.weight.dtype)).squeeze(-1).float()

    def raw_scores_from_states(self, states: "torch.Tensor", attention_mask: "torch.Tensor",
                               start: int) -> "torch.Tensor":
        """Like ``raw_scores``, from cached ``lower_states(.., upto=start)`` (frozen lower blocks)."""
        import torch

        h = upper_hidden(self.lm, states, attention_mask, start)
        last = last_real_index(attention_mask)
        h_last = h[torch.arange(h.shape[0], device=h.device), last]
        return self.head(h_last.to(self.head.weight.dtype)).squeeze(-1).float()

    def scores(self, input_ids: "torch.Tensor", attention_mask: "torch.Tensor") -> "torch.Tensor":
        """Normalised reward: raw score plus the bias that makes SFT demonstrations average 0."""
        return self.raw_scores(input_ids, attention_mask) + self.bias

    def save(self, out_dir: str | Path, tokenizer: Any, extra: dict | None = None) -> None:
        save_lm(self.lm, tokenizer, out_dir)
        save_head(self.head, out_dir, {"bias": self.bias, **(extra or {})})


def save_head(head: "torch.nn.Linear", out_dir: str | Path, meta: dict) -> None:
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().float().contiguous().cpu() for k, v in head.state_dict().items()},
              str(out_dir / HEAD_WEIGHTS))
    (out_dir / HEAD_META).write_text(json.dumps({"hidden_size": head.in_features, **meta}, indent=1))


def load_head(ckpt_dir: str | Path) -> tuple["torch.nn.Linear", dict]:
    from safetensors.torch import load_file

    ckpt_dir = Path(ckpt_dir)
    meta = json.loads((ckpt_dir / HEAD_META).read_text())
    head = new_scalar_head(meta["hidden_size"])
    head.load_state_dict(load_file(str(ckpt_dir / HEAD_WEIGHTS)))
    return head, meta


def load_scalar_model(ckpt_dir: str | Path) -> tuple[ScalarModel, Any]:
    """A reward model saved by ``ScalarModel.save``; returns (model, tokenizer)."""
    from chatrlhf.models import load_model

    lm, tok = load_model(str(ckpt_dir))
    head, meta = load_head(ckpt_dir)
    return ScalarModel(lm, head, float(meta.get("bias", 0.0))), tok


def apply_lora(lm: Any, r: int, alpha: int, dropout: float = 0.0) -> Any:
    """Wrap ``lm`` with LoRA adapters on every linear projection (not the LM head)."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear",
                     task_type="CAUSAL_LM")
    return get_peft_model(lm, cfg)


def freeze_lower_layers(lm: Any, train_layers: int) -> None:
    """Train only the top ``train_layers`` blocks and the final norm (0 = train everything).

    On CPU the backward pass dominates a step; stopping it a few blocks below the top makes reward
    model training several times cheaper while the frozen trunk still provides the SFT features.
    """
    if train_layers <= 0:
        return
    dec = decoder_of(lm)
    layers = list(dec.layers)
    for p in lm.parameters():
        p.requires_grad_(False)
    for layer in layers[-train_layers:]:
        for p in layer.parameters():
            p.requires_grad_(True)
    if getattr(dec, "norm", None) is not None:
        for p in dec.norm.parameters():
            p.requires_grad_(True)


def save_lm(lm: Any, tokenizer: Any, out_dir: str | Path) -> None:
    """``save_pretrained`` the LM (LoRA merged into a copy) and its tokenizer into ``out_dir``."""
    import copy

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(lm, "merge_and_unload"):  # a PEFT model: save base weights with the adapter folded in
        lm = copy.deepcopy(lm).merge_and_unload()
    lm.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))


def masked_lm_loss(lm: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor",
                   loss_mask: "torch.Tensor") -> "torch.Tensor":
    """Mean next-token cross-entropy over the tokens where ``loss_mask`` is 1 (assistant replies).

    Only the hidden states that predict a trained token go through the LM head: with a 49k
    vocabulary the head is a fifth of the model's compute, and prompts are half the tokens.
    """
    return _lm_loss_of_hidden(lm, hidden_states(lm, input_ids, attention_mask), input_ids, loss_mask)


def masked_lm_loss_from_states(lm: Any, states: "torch.Tensor", input_ids: "torch.Tensor",
                               attention_mask: "torch.Tensor", loss_mask: "torch.Tensor",
                               start: int) -> "torch.Tensor":
    """``masked_lm_loss`` from cached ``lower_states(.., upto=start)``: with frozen lower blocks,
    the same loss and gradient for a fifth of the forward's compute (6 of 30 blocks)."""
    return _lm_loss_of_hidden(lm, upper_hidden(lm, states, attention_mask, start), input_ids, loss_mask)


def _lm_loss_of_hidden(lm: Any, h: "torch.Tensor", input_ids: "torch.Tensor",
                       loss_mask: "torch.Tensor") -> "torch.Tensor":
    import torch.nn.functional as F

    target_mask = loss_mask[:, 1:].bool()  # token t+1 is predicted from position t
    h_sel = h[:, :-1][target_mask]  # (N, H)
    if h_sel.shape[0] == 0:
        return h.sum() * 0.0
    logits = lm_head_of(lm)(h_sel)  # (N, V)
    targets = input_ids[:, 1:][target_mask]  # (N,)
    return F.cross_entropy(logits.float(), targets)
