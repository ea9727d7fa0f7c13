"""The sampling engine: batched generation with a KV cache, log-probs and streaming.

The engine knows nothing of HTTP or chat templates. It consumes lists of prompt token ids and
``SamplingParams`` (one for all rows or one per row) and produces ``Completion``s: sampled token
ids, their log-probs and a finish reason; or, through ``stream``, ``TokenEvent``s as tokens appear.

Prompts of different lengths are left-padded into one batch. Position ids count real tokens only
(the first real token is position 0), and padded keys are masked, so a row's output does not
depend on what it is batched with. Rows that finish are dropped from the batch (their cache rows
with them), so one long reply does not make the others pay for it. Rows whose prompts are the
same token ids share one prefill (the K samples per prompt of PPO, RLOO or GRPO).

Two runners compute the forward pass:
- ``_LlamaRunner``, for Llama-architecture models (SmolLM2): a preallocated KV cache written in
  place, grouped-query attention without materialising repeated keys, logits for the last position
  only, and no per-step mask or module-hook overhead. It decodes from packed layouts of the
  model's weights (MKL's or oneDNN's, a copy), rebuilt whenever an optimizer step has changed a
  parameter (``_Packed.key``).
- ``_HFRunner``, for anything else (and PEFT-wrapped models): the model's own forward with a
  ``DynamicCache``.

Weights (``Engine(weights=...)``), for the Llama runner:
- "model" (default): the model's own parameters in their own dtype (packed, and repacked after
  every update). fp32 equals the model's forward to fp32 rounding: bitwise on MKL's packed GEMM (Intel CPUs), ~1e-4
  on logits of ~10 on oneDNN's (elsewhere; ``_pick_fp32_gemm``). PPO samples from it and takes
  its log-probs from the model's own forward. A bf16 model (PPO's rollout copy) runs on oneDNN's
  packed bf16 GEMM.
- "bf16": bf16 copies of every Linear weight, packed once for oneDNN (AMX/AVX512-BF16, fp32
  accumulation); norms, attention, the residual stream and the KV cache stay fp32. +270 MB for
  SmolLM2-135M beside the fp32 model.
- "int8": int8 weight-only copies (per-output-channel scales) for decode steps of up to 4 rows;
  prefill and larger batches use a bf16 copy. +405 MB.
- "int4": 4-bit copies in groups of 32 (scale and zero, GGUF Q4_1's layout, which the embedded
  model ships in) for decode steps of up to 4 rows, the LM head int8; the fastest single stream
  (1.5x int8's on the AMD EPYC) and closer to fp32 than int8 there. +365 MB.
These copies are for serving: log-probs move by up to ~0.1 nat and greedy tokens differ from fp32's
on some near-tie steps (tests/foundation/test_engine.py states the tolerances), so a trainer that
samples with them must recompute log-probs from the model itself.

Log-probs: ``logprobs[t] = log_softmax(logits_t / T)[token_t]`` with ``T`` the row's temperature
(1 when greedy), before top-k/top-p filtering. That is the distribution PPO differentiates, so
rollouts and training agree when the trainer uses the same temperature.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F


@dataclass
class SamplingParams:
    max_new_tokens: int = 128
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int | None = None
    ignore_eos: bool = False  # benchmarks: always generate max_new_tokens

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "stop" | "length" | "cancelled"


@dataclass
class TokenEvent:
    row: int
    token_id: int
    logprob: float
    text: str  # newly printable text ("" while held back)
    finish_reason: str | None  # set on the row's last event


@dataclass(frozen=True)
class PrefillStep:
    """Yielded by ``stream`` between prefill chunks of a long prompt (only when the engine has a
    ``prefill_chunk``): no token yet, but the caller may serve other work before the next chunk."""

    rows: tuple[int, ...]


# --------------------------------------------------------------------------------------------
# Runners: prefill(ids, valid) -> logits of the last position; decode(tokens) -> logits; keep(rows)


_MKL_PACKED = torch.backends.mkl.is_available() and hasattr(torch.ops.mkl, "_mkl_linear")
_SMALL_M = 128  # rows up to which a packed or transposed weight beats F.linear (decode batches)
# oneDNN's bf16 GEMM runs on AMX/AVX512-BF16 where the CPU has them (fp32 accumulation inside).
_ONEDNN_BF16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()

WEIGHTS = ("model", "bf16", "int8", "int4")  # ``Engine(weights=...)``: see the module docstring
FP32_GEMMS = ("mkl", "onednn")


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _pick_fp32_gemm() -> str:
    """The packed fp32 GEMM for decode steps: "mkl" or "onednn".

    On the Intel Xeon of session 9 MKL's packed SGEMM was the fastest fp32 kernel we had measured.
    On an AMD EPYC (Zen 4, AVX-512) MKL is 1.4-2.3x slower than oneDNN's packed fp32 GEMM at
    8-32 rows (the 49k-row LM head: 16.1 vs 4.2 ms at 8 rows, 23.1 vs 10.2 ms at 32), so the
    engine decoded 2x faster at batch 8 with oneDNN. MKL is Intel's library; oneDNN dispatches on
    the ISA alone. ``CHATRLHF_FP32_GEMM=mkl|onednn``, read at import, overrides the choice (to
    measure both)."""
    forced = os.environ.get("CHATRLHF_FP32_GEMM", "").strip().lower()
    if forced in FP32_GEMMS and (forced == "onednn" or _MKL_PACKED):
        return forced
    if forced:  # read once, at import: a typo must not break every command that imports us
        warnings.warn(f"CHATRLHF_FP32_GEMM={forced!r} ignored: use one of {FP32_GEMMS}"
                      + ("" if _MKL_PACKED else " (this torch has no packed MKL linear)"))
    if not torch.backends.mkldnn.is_available():
        return "mkl"  # (without MKL either, _Linear falls back to a transposed weight)
    return "mkl" if _MKL_PACKED and _cpu_vendor() == "GenuineIntel" else "onednn"


_FP32_GEMM = _pick_fp32_gemm()


def _fused(ws: Sequence[torch.Tensor]) -> torch.Tensor:
    return (ws[0] if len(ws) == 1 else torch.cat(list(ws), dim=0)).detach().contiguous()  # (out, in)


class _Linear:
    """One weight matrix laid out for decoding, in the model's dtype or as a copy in ``dtype``.

    fp32: for the few rows of a decode step, MKL's packed SGEMM (the weight reordered once into
    MKL's internal panel format, as Inductor's freezing pass does) ran 1.4x faster than
    ``x @ W.t()`` on contiguous transposed weights at 32 rows, and 1.8x on the 49k-row LM head;
    both beat ``F.linear`` by 1.2-3x. For prefill (hundreds of rows) ``F.linear`` on the plain
    weight is fastest. All three give bitwise-identical results on an Intel CPU (the same MKL
    kernels underneath), which the greedy-equals-HF tests check. Elsewhere oneDNN's fp32 pack
    serves every row count (``_pick_fp32_gemm``): not bitwise equal to ``F.linear``, within fp32
    rounding.

    bf16: the weight reordered once for oneDNN (``mkldnn._reorder_linear_weight``, Inductor's own
    bf16 prepack), for every row count: unpacked, ``F.linear`` on bf16 re-lays the weight out on
    each call and was no faster than fp32 at one row; packed it ran 1.5x faster than packed fp32
    at 1 row and 2.4x at 32 (30 layers and the LM head, 1 thread, busy machine)."""

    def __init__(self, *ws: torch.Tensor, dtype: torch.dtype | None = None):
        """``dtype``: keep a copy in it (fed any dtype; returns its own)."""
        self.w = _fused(ws)
        if dtype is not None:
            self.w = self.w.to(dtype)
        self.dtype, self.in_features = self.w.dtype, self.w.shape[1]
        self.packed = self.onednn = self.wt = None
        if self.w.dtype == torch.float32 and _FP32_GEMM == "onednn":
            # oneDNN's fp32 pack, used for every row count (prefill too: 8-25% faster than
            # F.linear at 129-1280 rows on the AMD EPYC). Not bitwise equal to F.linear (another
            # summation order), within fp32 rounding.
            self.onednn = torch.ops.mkldnn._reorder_linear_weight(self.w, 32)
        elif _MKL_PACKED and self.w.dtype == torch.float32:
            # The pack does not depend on the row count; 32 is only MKL's sizing hint.
            self.packed = torch.ops.mkl._mkl_reorder_linear_weight(self.w, 32)
        elif _ONEDNN_BF16 and self.w.dtype == torch.bfloat16:
            self.onednn = torch.ops.mkldnn._reorder_linear_weight(self.w, 32)  # 32: a layout hint
        else:
            self.wt = self.w.t().contiguous()  # (in, out)
        if self.onednn is not None and dtype is not None:
            self.w = None  # a copy that oneDNN holds packed: the plain one would double its memory

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1]).to(self.dtype)  # a no-op unless this is a copy
        m = x2.shape[0]
        if self.onednn is not None:
            y = torch.ops.mkldnn._linear_pointwise(x2, self.onednn, None, "none", [], "")
        elif m > _SMALL_M:
            y = F.linear(x2, self.w)
        elif self.packed is not None:
            # The last argument must equal the row count, or MKL falls back to an unpacked GEMM.
            y = torch.ops.mkl._mkl_linear(x2, self.packed, self.w, None, m)
        else:
            y = x2 @ self.wt
        # A copy's output stays in its dtype: the residual add and RoPE promote it to the
        # caller's, and the MLP's down projection takes silu(gate) * up as it is; casting back on
        # every call cost 13% of a bf16 batch-32 decode.
        return y.view(*x.shape[:-1], y.shape[-1])


_INT8_M = 4  # rows up to which the int8 weight-only kernel beat packed bf16 (1.3x at 1 row)


class _FewRowsQuantized:
    """A weight-only quantized copy (``_mm``, bf16 in and out) for decode steps of up to
    ``_INT8_M`` rows, beside a bf16 copy (``bf16``) for prefill and larger batches."""

    bf16: _Linear

    def _mm(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        if x2.shape[0] > _INT8_M:
            return self.bf16(x)
        y = self._mm(x2.to(torch.bfloat16))  # bf16 out
        return y.view(*x.shape[:-1], y.shape[-1])


class _Int8Linear(_FewRowsQuantized):
    """An int8 copy of one weight matrix for single-stream decoding, beside a bf16 one.

    Weight-only: int8 weights with per-output-channel symmetric scales, bf16 activations, through
    ``torch._weight_int8pack_mm`` (the CPU kernel torchao's int8 weight-only layout uses). Up to
    ``_INT8_M`` rows it reads a quarter of the fp32 bytes and ran 1.3x faster than packed bf16 at
    one row; past that it slows fast (3.8x slower than bf16 at 32 rows), so prefill and larger
    decode batches take the bf16 copy. Dynamic int8 activations (``quantize_dynamic``'s kernel)
    ran faster still but flipped the greedy next token on half of our chat prompts: SmolLM2's
    activation outliers (in ``down_proj``'s input above all) do not survive per-tensor 8 bits."""

    def __init__(self, *ws: torch.Tensor):
        w = _fused(ws).float()
        scale = (w.abs().amax(1) / 127).clamp(min=torch.finfo(torch.float32).tiny)  # (out,)
        self.q = (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8)  # (out, in)
        self.scale = scale.to(torch.bfloat16)
        self.bf16 = _Linear(w, dtype=torch.bfloat16)

    def _mm(self, x: torch.Tensor) -> torch.Tensor:
        return torch._weight_int8pack_mm(x, self.q, self.scale)


_INT4_GROUP = 32  # weights per (scale, zero) pair along the input dimension: GGUF Q4_1's block


class _Int4Linear(_FewRowsQuantized):
    """A 4-bit copy of one weight matrix for single-stream decoding, beside a bf16 one.

    Groups of 32 input weights share a scale and a zero point: ``w = (q - 8) * scale + zero``
    with ``q`` in 0..15, through ``torch._weight_int4pack_mm_for_cpu`` (the CPU kernel of
    torchao's int4 weight-only layout; bf16 activations, ``scale``/``zero`` in bf16). That is
    GGUF's Q4_1 format (blocks of 32, ``d * q + m``), the embedded model's own: on weights
    dequantised from that file ``q`` comes back exactly and only the bf16 rounding of scale and
    zero remains, so here int4 is closer to the source weights than per-channel int8 is. On
    trained weights it is ordinary group-wise 4-bit quantisation, as llama.cpp's Q4_1 is. It reads
    half of int8's bytes: the 30 layers' weights took 4.1 ms per token against int8's 8.5 ms
    (1 row, 2 threads, AMD EPYC). Past ``_INT8_M`` rows the bf16 copy takes over, as for int8."""

    def __init__(self, *ws: torch.Tensor):
        w = _fused(ws).float()  # (N, K)
        n, k = w.shape
        g = w.view(n, k // _INT4_GROUP, _INT4_GROUP)
        lo, hi = g.amin(-1), g.amax(-1)  # (N, G)
        scale = ((hi - lo) / 15).clamp(min=torch.finfo(torch.float32).tiny).bfloat16().float()
        zero = (lo + 8 * scale).bfloat16().float()
        # q from the bf16-rounded scale and zero, the values the kernel will multiply by
        q = ((g - zero[..., None]) / scale[..., None] + 8).round().clamp(0, 15).to(torch.int32)
        self.q = torch._convert_weight_to_int4pack_for_cpu(q.view(n, k), 2)
        self.scale_zero = torch.stack([scale, zero], -1).transpose(0, 1).contiguous().bfloat16()  # (G, N, 2)
        self.bf16 = _Linear(w, dtype=torch.bfloat16)

    @staticmethod
    def fits(*ws: torch.Tensor) -> bool:
        # the CPU packer wants whole groups along K and output rows in multiples of 16
        return ws[0].shape[1] % _INT4_GROUP == 0 and sum(w.shape[0] for w in ws) % 16 == 0

    def dequantized(self) -> torch.Tensor:
        """The weights the kernel computes with, (N, K) fp32 (tests)."""
        eye = torch.eye(self.bf16.in_features, dtype=torch.bfloat16)
        return self._mm(eye).float().t()

    def _mm(self, x: torch.Tensor) -> torch.Tensor:
        return torch._weight_int4pack_mm_for_cpu(x, self.q, _INT4_GROUP, self.scale_zero)


def _int4(*ws: torch.Tensor) -> "_Int4Linear | _Int8Linear":
    return _Int4Linear(*ws) if _Int4Linear.fits(*ws) else _Int8Linear(*ws)


class _Packed:
    """The model's weights laid out for decoding (see ``_Linear``), with Q|K|V fused into one
    matrix. Fusing gate|up as well was slower at batch 32 (75 ms vs 55 ms for 30 layers), so those
    stay apart. A copy goes stale when training updates the parameters in place; ``key``
    (parameter ids and version counters) tells the engine when to rebuild it."""

    @staticmethod
    def key(model: Any) -> tuple:
        return tuple((id(p), p._version) for p in model.parameters())

    def __init__(self, model: Any, weights: str = "model"):
        # "model": the parameters in their own dtype; "bf16"/"int8": lower-precision copies fed
        # the model's dtype and returning bf16 (the residual stream, norms, RoPE, attention and
        # the KV cache stay in the model's dtype).
        lin = {"model": _Linear, "bf16": lambda *w: _Linear(*w, dtype=torch.bfloat16),
               "int8": _Int8Linear, "int4": _int4}[weights]
        self.layers = []
        for layer in model.model.layers:
            a, m = layer.self_attn, layer.mlp
            self.layers.append((
                layer.input_layernorm.weight.detach(),
                lin(a.q_proj.weight, a.k_proj.weight, a.v_proj.weight),  # D -> (nh + 2 nkv) hd
                lin(a.o_proj.weight),  # nh hd -> D
                layer.post_attention_layernorm.weight.detach(),
                lin(m.gate_proj.weight),  # D -> I
                lin(m.up_proj.weight),  # D -> I
                lin(m.down_proj.weight),  # I -> D
            ))
        self.norm = model.model.norm.weight.detach()
        # int4: the LM head (tied to the embedding, Q8_0 in the embedded GGUF) stays int8
        self.lm_head = (_Int8Linear if weights == "int4" else lin)(model.lm_head.weight)  # D -> V


class _LlamaRunner:
    """A lean forward pass for Llama-family models over packed copies of their weights."""

    @staticmethod
    def supports(model: Any) -> bool:
        cfg = getattr(model, "config", None)
        if type(model).__name__ != "LlamaForCausalLM" or cfg is None:
            return False
        if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
            return False
        if getattr(cfg, "hidden_act", "silu") != "silu":
            return False
        layer = model.model.layers[0]
        mods = [layer.self_attn.q_proj, layer.self_attn.k_proj, layer.mlp.gate_proj, model.lm_head]
        return all(type(m) is torch.nn.Linear for m in mods)

    def __init__(self, model: Any, packed: _Packed):
        cfg = model.config
        self.model, self.w = model, packed
        self.nh = cfg.num_attention_heads
        self.nkv = cfg.num_key_value_heads
        self.hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.nh
        self.eps = cfg.rms_norm_eps
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []

    def _norm(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # Same arithmetic as LlamaRMSNorm (fp32 statistics).
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return w * x32.to(x.dtype)

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rot * sin

    def _attend_one(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
        """Attention for one query per row (a decode step): the query heads that share a KV head
        are one (g, hd) @ (hd, S) matmul, so keys are never repeated. SDPA's CPU kernel, built
        for long queries, took 1.3x as long for this shape (32 rows, 9 heads, ~100 keys). fp32
        caches only: a bf16 cache keeps SDPA, whose scores and softmax stay in fp32."""
        B, nh, _, hd = q.shape
        s = q.view(B, self.nkv, nh // self.nkv, hd) @ k.transpose(-1, -2)  # (B, nkv, g, S)
        s = (s * hd**-0.5).masked_fill(~mask, float("-inf"))  # mask: (B, 1, 1, S)
        return (torch.softmax(s, -1) @ v).view(B, nh, 1, hd)

    def _forward(self, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # ids, pos: (B, T); mask: (B, 1, T, end) bool, True = may attend. Returns (B, V) logits.
        m = self.model.model
        B, T = ids.shape
        nq, nkv = self.nh * self.hd, self.nkv * self.hd
        h = m.embed_tokens(ids)  # (B, T, D)
        cos, sin = m.rotary_emb(h, pos)  # (B, T, hd)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        start, end = self.len, self.len + T
        for i, (ln1, qkv_w, o_w, ln2, gate_w, up_w, down_w) in enumerate(self.w.layers):
            qkv = qkv_w(self._norm(h, ln1))  # (B, T, nq + 2 nkv)
            # RoPE on Q and K in one call: their heads lie side by side in the fused output.
            qk = self._rope(qkv[..., : nq + nkv].view(B, T, self.nh + self.nkv, self.hd)
                            .transpose(1, 2), cos, sin)  # (B, nh + nkv, T, hd)
            q, k = qk[:, : self.nh], qk[:, self.nh :]
            v = qkv[..., nq + nkv :].view(B, T, self.nkv, self.hd).transpose(1, 2)
            self.k[i][:, :, start:end] = k  # cache: (B, nkv, S_max, hd), written in place
            self.v[i][:, :, start:end] = v
            keys, vals = self.k[i][:, :, :end], self.v[i][:, :, :end]
            if T == 1 and keys.dtype == torch.float32:
                o = self._attend_one(q, keys, vals, mask)
            else:
                o = F.scaled_dot_product_attention(q, keys, vals, attn_mask=mask, enable_gqa=True)
            # o: (B, nh, T, hd)
            h = h + o_w(o.transpose(1, 2).reshape(B, T, nq))
            x = self._norm(h, ln2)
            h = h + down_w(F.silu(gate_w(x)) * up_w(x))  # (B, T, D)
        self.len = end
        last = self._norm(h[:, -1], self.w.norm)  # (B, D): only the next token's logits
        return self.w.lm_head(last).float()

    def prefill(self, ids: torch.Tensor, valid: torch.Tensor, max_new: int) -> torch.Tensor:
        out = None
        for out in self.prefill_chunks(ids, valid, max_new, chunk=ids.shape[1]):
            pass
        return out

    def prefill_chunks(
        self, ids: torch.Tensor, valid: torch.Tensor, max_new: int, chunk: int
    ) -> Iterator[torch.Tensor | None]:
        """Prefill ``chunk`` positions per forward; yields None after each chunk but the last,
        then the last position's logits. A long prompt thus never holds the caller (the server's
        one engine thread) for longer than one chunk, and attention scores stay (chunk, T)."""
        B, T = ids.shape
        dtype = self.w.norm.dtype
        shape = (B, self.nkv, T + max_new, self.hd)
        self.k = [torch.empty(shape, dtype=dtype) for _ in self.w.layers]
        self.v = [torch.empty(shape, dtype=dtype) for _ in self.w.layers]
        self.len = 0
        self.valid = torch.zeros(B, T + max_new, dtype=torch.bool)
        self.valid[:, :T] = valid
        self.valid[:, T:] = True
        self.pos = (valid.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        for s in range(0, T, chunk):
            e = min(T, s + chunk)
            q = torch.arange(s, e)[:, None]
            k = torch.arange(e)[None, :]
            mask = (k <= q)[None] & valid[:, None, :e]  # causal, padded keys masked
            mask |= (k == q)[None]  # a padded query attends to itself: no NaN rows
            logits = self._forward(ids[:, s:e], self.pos[:, s:e], mask[:, None])
            if e < T:
                yield None
        self.next_pos = self.pos[:, -1] + 1  # (B,)
        yield logits

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = self.valid[:, None, None, : self.len + 1]
        logits = self._forward(tokens[:, None], self.next_pos[:, None], mask)
        self.next_pos = self.next_pos + 1
        return logits

    def keep(self, rows: torch.Tensor) -> None:
        self.k = [c.index_select(0, rows) for c in self.k]
        self.v = [c.index_select(0, rows) for c in self.v]
        self.valid = self.valid.index_select(0, rows)
        self.next_pos = self.next_pos.index_select(0, rows)


class _HFRunner:
    """Any causal LM through its own forward and a DynamicCache (slower, fully general)."""

    def __init__(self, model: Any):
        self.model = model

    def prefill(self, ids: torch.Tensor, valid: torch.Tensor, max_new: int) -> torch.Tensor:
        from transformers import DynamicCache

        self.cache = DynamicCache(config=getattr(self.model, "config", None))
        self.attn = valid.long()
        pos = (self.attn.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids, attention_mask=self.attn, position_ids=pos,
            past_key_values=self.cache, use_cache=True,
        )
        self.cache = out.past_key_values
        self.next_pos = pos[:, -1] + 1
        return out.logits[:, -1].float()

    def prefill_chunks(
        self, ids: torch.Tensor, valid: torch.Tensor, max_new: int, chunk: int
    ) -> Iterator[torch.Tensor | None]:
        # The general path prefills in one forward (its padding mask is the model's own).
        yield self.prefill(ids, valid, max_new)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        self.attn = torch.cat([self.attn, torch.ones_like(self.attn[:, :1])], dim=1)
        out = self.model(
            input_ids=tokens[:, None], attention_mask=self.attn,
            position_ids=self.next_pos[:, None], past_key_values=self.cache, use_cache=True,
        )
        self.cache = out.past_key_values
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1].float()

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.attn = self.attn.index_select(0, rows)
        self.next_pos = self.next_pos.index_select(0, rows)


# --------------------------------------------------------------------------------------------
# Sampling


_CANDIDATES = 512  # top-p/top-k rows draw from at most this many tokens, unless that is too few


def _sample(
    logits: torch.Tensor, params: list[SamplingParams], gens: list[torch.Generator]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row. logits: (B, V) fp32. Returns (tokens (B,), logprobs (B,)).

    Filtering is vectorised: one ``topk`` over all filtered rows gives each a sorted candidate
    set (a full sort of 49k logits costs ~4 ms a row on this CPU; the top-p nucleus nearly always
    lies in the top few hundred tokens, and a row whose does not falls back to the full
    vocabulary). The draw itself is per row, from the row's own generator, so a seeded row
    samples the same tokens whatever it is batched with.
    """
    if all(p.temperature == 0 for p in params):  # greedy (chat at T=0, evaluation, the benches)
        tokens = logits.argmax(-1)
        # log_softmax at the picked token alone: no (B, V) division or log-prob table to write
        return tokens, logits.gather(1, tokens[:, None])[:, 0] - torch.logsumexp(logits, -1)
    temps = torch.tensor([p.temperature if p.temperature > 0 else 1.0 for p in params])
    logp = torch.log_softmax(logits / temps[:, None], dim=-1)  # (B, V)
    tokens = logits.argmax(-1)
    V = logp.shape[1]
    filtered = [r for r, p in enumerate(params) if p.temperature > 0 and (p.top_k or p.top_p < 1)]
    plain = [r for r, p in enumerate(params) if p.temperature > 0 and not (p.top_k or p.top_p < 1)]
    if plain:
        # Inverse-CDF draws for every unfiltered row at once: one uniform from each row's own
        # generator, one cumsum over the batch. multinomial per row ran an exponential over all
        # 49k tokens (1 ms a row): 45 ms of a 32-row decode step, a third of PPO's rollout.
        # float64: an fp32 CDF past 0.5 moves in steps of 6e-8, and rarer tokens would be drawn
        # with probability 0 or 6e-8 instead of their own.
        u = torch.cat([torch.rand(1, generator=gens[r], dtype=torch.float64) for r in plain])  # (S,)
        cdf = logp[plain].double().exp().cumsum(-1)  # (S, V)
        picks = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0]
        tokens[plain] = picks.clamp(max=V - 1)  # only NaN logits reach past the end
    if filtered:
        kc = min(V, max(_CANDIDATES, max(params[r].top_k for r in filtered)))
        cand_lp, cand_ids = torch.topk(logp[filtered], kc, dim=-1)  # (S, kc) descending
    for r, p in enumerate(params):
        if p.temperature == 0 or r not in filtered:
            continue
        i = filtered.index(r)
        lp, ids = cand_lp[i], cand_ids[i]
        if p.top_k:
            lp, ids = lp[: p.top_k], ids[: p.top_k]
        if p.top_p < 1:
            probs = lp.exp()
            if not p.top_k and float(probs.sum()) < p.top_p:  # nucleus wider than the candidates
                lp, ids = torch.sort(logp[r], descending=True)
                probs = lp.exp()
            # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
            keep = int(((probs.cumsum(-1) - probs) < p.top_p).sum())
            lp, ids = lp[:keep], ids[:keep]
        tokens[r] = ids[torch.multinomial(torch.softmax(lp, -1), 1, generator=gens[r])[0]]
    return tokens, logp.gather(1, tokens[:, None])[:, 0]


class _RowText:
    """Incremental detokenization with stop strings and held-back partial text.

    Only the ids since the last settled point are re-decoded each step (re-decoding the whole
    reply made every token O(length)). Text settles once the window decodes without a trailing
    replacement character, i.e. at a UTF-8 character boundary, where byte-level BPE decoding is
    concatenative. Tokenizers that rewrite text across tokens (``clean_up_tokenization_spaces``)
    are always decoded whole."""

    _WINDOW = 8  # ids kept undecided before settling them into ``fixed``

    def __init__(self, tokenizer: Any, stop: list[str]):
        self.tok, self.stop = tokenizer, [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.ids: list[int] = []
        self.text, self.sent = "", 0
        self.fixed, self.start = "", 0  # text of ids[:start], which never changes again
        self.whole = bool(getattr(tokenizer, "clean_up_tokenization_spaces", False))

    def add(self, token_id: int) -> bool:
        """Append a token; True when a stop string has appeared (text is cut before it)."""
        self.ids.append(token_id)
        if self.whole:
            self.text = self.tok.decode(self.ids, skip_special_tokens=True)
        else:
            window = self.tok.decode(self.ids[self.start :], skip_special_tokens=True)
            self.text = self.fixed + window
            if len(self.ids) - self.start >= self._WINDOW and not window.endswith("\ufffd"):
                self.fixed, self.start = self.text, len(self.ids)
        if self.stop:
            lo = max(0, self.sent - self.hold - 1)
            hits = [i for i in (self.text.find(s, lo) for s in self.stop) if i >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                return True
        return False

    def flush(self, final: bool) -> str:
        end = len(self.text)
        if not final:
            end -= self.hold
            while end > self.sent and self.text[end - 1] == "\ufffd":  # incomplete UTF-8
                end -= 1
        out = self.text[self.sent : max(end, self.sent)]
        self.sent = max(end, self.sent)
        return out


class Generation:
    """An iterator of ``TokenEvent``s for one batch; ``cancel(row)`` stops a row early and
    ``results`` holds the ``Completion``s once iteration has finished."""

    def __init__(self, engine: "Engine", prompts: list[list[int]], params: list[SamplingParams]):
        self._events = engine._run(prompts, params, self)
        self.cancelled: set[int] = set()
        self.results: list[Completion] = []

    def cancel(self, row: int) -> None:
        self.cancelled.add(row)

    def __iter__(self) -> Iterator[TokenEvent | PrefillStep]:
        return self._events


class Engine:
    def __init__(
        self, model: Any, tokenizer: Any, *, max_batch_size: int = 32,
        prefill_chunk: int | None = None, weights: str = "model",
    ):
        """``prefill_chunk``: prefill prompts longer than this many tokens in chunks of it, and
        yield a ``PrefillStep`` from ``stream`` after each (a server interleaves other batches'
        decode steps there). None: one forward, no ``PrefillStep`` events.

        ``weights``: "model" (the model's own parameters in their own dtype: fp32 to fp32
        rounding, the training path), or "bf16" / "int8" / "int4" (the Llama runner over
        lower-precision copies: faster decoding for serving; log-probs are then close to, not
        equal to, the model's)."""
        self.model, self.tokenizer = model, tokenizer
        self.max_batch_size = max_batch_size
        if prefill_chunk is not None and prefill_chunk < 1:
            raise ValueError("prefill_chunk must be >= 1")
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
        if weights != "model" and not _LlamaRunner.supports(model):
            raise ValueError(f"weights={weights!r} needs a plain Llama-architecture model "
                             f"(got {type(model).__name__}); use weights='model'")
        self.prefill_chunk, self.weights = prefill_chunk, weights
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None:
            eos.append(tokenizer.eos_token_id)
        self.eos_ids = sorted(set(eos))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self._packed: _Packed | None = None
        self._packed_key: tuple = ()

    def _runner(self) -> _LlamaRunner | _HFRunner:
        # Chosen per call: PPO may wrap or unwrap the model (LoRA) or update its weights between
        # calls; the packed copy is rebuilt only when a parameter has changed.
        if not _LlamaRunner.supports(self.model):
            if self.weights != "model":  # e.g. wrapped in LoRA since: no copy to build
                raise ValueError(f"weights={self.weights!r} needs a plain Llama-architecture model")
            self._packed = None
            return _HFRunner(self.model)
        key = _Packed.key(self.model)
        if self._packed is None or self._packed_key != key:
            self._packed, self._packed_key = _Packed(self.model, self.weights), key
        return _LlamaRunner(self.model, self._packed)

    @staticmethod
    def _per_row(params: SamplingParams | Sequence[SamplingParams], n: int) -> list[SamplingParams]:
        if isinstance(params, SamplingParams):
            return [params] * n
        if len(params) != n:
            raise ValueError(f"got {len(params)} SamplingParams for {n} prompts")
        return list(params)

    def stream(
        self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams]
    ) -> Generation:
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        return Generation(self, [list(p) for p in prompts], self._per_row(params, len(prompts)))

    def generate(
        self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams]
    ) -> list[Completion]:
        gen = self.stream(prompts, params)
        for _ in gen:
            pass
        return gen.results

    def _run(
        self, prompts: list[list[int]], params: list[SamplingParams], gen: Generation
    ) -> Iterator[TokenEvent | PrefillStep]:
        # Sorting by length keeps padding small when prompts are split into several batches.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: dict[int, Completion] = {}
        for s in range(0, len(order), self.max_batch_size):
            rows = order[s : s + self.max_batch_size]
            yield from self._run_batch(rows, prompts, params, gen, results)
        gen.results = [results[i] for i in range(len(prompts))]

    @torch.inference_mode()
    def _run_batch(
        self,
        rows: list[int],
        prompts: list[list[int]],
        params: list[SamplingParams],
        gen: Generation,
        results: dict[int, Completion],
    ) -> Iterator[TokenEvent | PrefillStep]:
        # 1. Left-pad the distinct prompts: ids, valid (U, T). Rows with the same prompt (PPO,
        #    RLOO and GRPO sample each prompt several times) share one prefill: its KV cache and
        #    logits are copied to each of them before the first token is drawn.
        first: dict[tuple[int, ...], int] = {}
        of_row = [first.setdefault(tuple(prompts[r]), len(first)) for r in rows]  # row -> unique
        uniq = list(first)
        T = max(len(p) for p in uniq)
        ids = torch.full((len(uniq), T), self.pad_id, dtype=torch.long)
        valid = torch.zeros((len(uniq), T), dtype=torch.bool)
        for u, p in enumerate(uniq):
            ids[u, T - len(p) :] = torch.tensor(p)
            valid[u, T - len(p) :] = True
        ps = [params[r] for r in rows]
        gens = [torch.Generator().manual_seed(p.seed if p.seed is not None else
                                              int(torch.randint(0, 2**62, (1,)))) for p in ps]
        stops = [set(p.stop_token_ids) | (set() if p.ignore_eos else set(self.eos_ids)) for p in ps]
        texts = [_RowText(self.tokenizer, p.stop) for p in ps]
        toks: list[list[int]] = [[] for _ in rows]
        lps: list[list[float]] = [[] for _ in rows]
        max_new = max(p.max_new_tokens for p in ps)
        runner = self._runner()
        # 2. Prefill, then one decode step per token; `live` maps batch slots to local rows.
        chunk = self.prefill_chunk
        if chunk is None or T <= chunk:
            logits = runner.prefill(ids, valid, max_new)
        else:
            for logits in runner.prefill_chunks(ids, valid, max_new, chunk):
                if logits is not None:
                    break
                if all(r in gen.cancelled for r in rows):  # everyone left while we prefilled
                    for r in rows:
                        results[r] = Completion([], [], "", "cancelled")
                    return
                yield PrefillStep(tuple(rows))
        if len(uniq) < len(rows):
            expand = torch.tensor(of_row)
            runner.keep(expand)  # index_select with repeats: each row gets its prompt's cache
            logits = logits.index_select(0, expand)
        live = list(range(len(rows)))
        while live:
            tokens, logprobs = _sample(logits, [ps[b] for b in live], [gens[b] for b in live])
            keep = []
            for slot, b in enumerate(live):
                t, lp = int(tokens[slot]), float(logprobs[slot])
                toks[b].append(t)
                lps[b].append(lp)
                reason = None
                if t in stops[b]:
                    reason = "stop"
                elif texts[b].add(t):
                    reason = "stop"
                elif rows[b] in gen.cancelled:
                    reason = "cancelled"
                elif len(toks[b]) >= ps[b].max_new_tokens:
                    reason = "length"
                yield TokenEvent(rows[b], t, lp, texts[b].flush(reason is not None), reason)
                if reason is None:
                    keep.append(slot)
                else:
                    results[rows[b]] = Completion(toks[b], lps[b], texts[b].text, reason)
            if not keep:
                break
            if len(keep) < len(live):
                runner.keep(torch.tensor(keep))
                live = [live[s] for s in keep]
            logits = runner.decode(tokens[torch.tensor(keep)] if len(keep) < len(tokens) else tokens)
