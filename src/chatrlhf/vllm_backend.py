"""vLLM as the generation backend: PPO rollouts and serving, behind the engine's own interface.

Consumes prompt token ids and ``chatrlhf.engine.SamplingParams``; produces the engine's
``Completion``s (``VLLMRollouts.generate``, for PPO) or a stream of its ``TokenEvent``s
(``VLLMServingEngine.stream``, for ``server.scheduler.BatchScheduler``). Selected by
``PPOConfig.rollout_backend = "vllm"`` and ``chatrlhf serve --backend vllm``; vLLM is the optional
extra ``chatrlhf[vllm]`` and is imported only here, only when selected.

What differs from the engine, and why it is safe:
- Log-probs: vLLM reports its own (by default from the raw logits, before temperature, in its own
  kernels and precision), which are not the trainer's. They are passed through on ``Completion``
  for inspection, but PPO never reads them: ``ppo.make_experience`` recomputes the old log-probs
  with the trainer's model on the sampled tokens, whichever backend sampled them.
- Weights: vLLM holds its own copy of the policy. ``VLLMRollouts.load_weights`` copies the
  trainer's current tensors into it (vLLM's ``model.load_weights`` takes Hugging Face names and
  does its own fusing of q/k/v and gate/up) and drops vLLM's prefix cache, whose keys and values
  were computed with the old weights. PPO calls it before every rollout batch, i.e. after every
  policy update (and once at the start, which also covers a resumed run).
- Cancelling (serving): an aborted vLLM request produces no further output, so the stream ends the
  row itself with a ``TokenEvent`` whose ``token_id`` is -1 (no token) and ``finish_reason``
  "cancelled"; the scheduler does not relay a cancelled row's events.

None of this has run against a real vLLM here (no GPU); the tests drive it with a fake ``vllm``
module that implements the few names used below.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from chatrlhf.engine import Completion, SamplingParams, TokenEvent

INSTALL_HINT = "pip install 'chatrlhf[vllm]' on a machine with a CUDA GPU"

# vLLM's finish reasons -> the engine's; "abort" is a request cancelled by the caller.
_FINISH = {"stop": "stop", "length": "length", "abort": "cancelled"}


class VLLMUnavailable(ImportError):
    """vLLM was selected but cannot be imported."""


def import_vllm(what: str = "the vLLM backend") -> Any:
    try:
        import vllm
    except ImportError as e:
        raise VLLMUnavailable(f"{what} needs vLLM, which is not installed ({e}); {INSTALL_HINT}, "
                              "or use the built-in engine") from e
    return vllm


def to_vllm_params(vllm: Any, p: SamplingParams) -> Any:
    """The engine's ``SamplingParams`` as vLLM's. Both read temperature 0 as greedy. ``logprobs=0``
    asks vLLM for the sampled token's log-prob only (no top alternatives)."""
    kw: dict[str, Any] = dict(
        n=1, max_tokens=p.max_new_tokens, temperature=p.temperature, top_p=p.top_p,
        stop=list(p.stop), stop_token_ids=list(p.stop_token_ids), seed=p.seed,
        ignore_eos=p.ignore_eos, logprobs=0,
    )
    if p.top_k > 0:  # 0 = off here; vLLM's "off" value has changed across versions, so leave its default
        kw["top_k"] = p.top_k
    return vllm.SamplingParams(**kw)


def _token_logprobs(out: Any, token_ids: Sequence[int]) -> list[float]:
    """The sampled tokens' log-probs from a ``CompletionOutput`` (one {token id: Logprob} per token);
    NaN where vLLM returned none (PPO does not read them)."""
    per_token = getattr(out, "logprobs", None) or []
    lps = []
    for i, t in enumerate(token_ids):
        entry = per_token[i].get(t) if i < len(per_token) and per_token[i] else None
        lps.append(float(entry.logprob) if entry is not None else float("nan"))
    return lps


def finish_reason(reason: str | None) -> str:
    if reason not in _FINISH:
        raise ValueError(f"vLLM finished a request with an unknown reason {reason!r}")
    return _FINISH[reason]


def to_completion(request_output: Any) -> Completion:
    """A finished vLLM ``RequestOutput`` (n=1) as the engine's ``Completion``. vLLM keeps the EOS
    or stop token in ``token_ids``, as the engine does; a stop string is cut from ``text``."""
    out = request_output.outputs[0]
    ids = [int(t) for t in out.token_ids]
    return Completion(ids, _token_logprobs(out, ids), out.text, finish_reason(out.finish_reason))


def _prompt(ids: Sequence[int]) -> dict[str, list[int]]:
    """Token ids as a vLLM prompt (the ``TokensPrompt`` dict): the chat template has already been
    applied (chat_format), so vLLM must not tokenize or template anything."""
    return {"prompt_token_ids": list(ids)}


# --------------------------------------------------------------------------------------------
# PPO rollouts


class VLLMRollouts:
    """Offline ``vllm.LLM`` over the policy, with ``generate`` as the engine's and a weight sync.

    ``model_dir``: a checkpoint directory vLLM can load (``models.resolve_model_dir``); only its
    architecture, tokenizer and starting weights are read, the policy's tensors replace them at
    the first ``load_weights``. ``gpu_memory_utilization`` is the share of the GPU vLLM may take
    (weights + KV cache); the trainer shares the GPU, so keep it well below vLLM's 0.9."""

    def __init__(self, model_dir: str | Path, *, dtype: str = "bfloat16", gpu_memory_utilization: float = 0.3,
                 seed: int = 0, **llm_kwargs: Any):
        vllm = import_vllm("PPOConfig.rollout_backend='vllm'")
        # Colocated with the trainer: keep vLLM's engine in this process (no engine-core
        # subprocess), so the model it samples from is reachable for ``load_weights``.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.vllm = vllm
        self.llm = vllm.LLM(model=str(model_dir), dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                            seed=seed, worker_extension_cls=f"{__name__}.WeightLoader", **llm_kwargs)
        self.syncs = 0  # how many times the policy's weights were copied in

    def generate(self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams]) -> list[Completion]:
        per_row = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        if len(per_row) != len(prompts):
            raise ValueError(f"got {len(per_row)} SamplingParams for {len(prompts)} prompts")
        outs = self.llm.generate([_prompt(p) for p in prompts],
                                 [to_vllm_params(self.vllm, p) for p in per_row], use_tqdm=False)
        return [to_completion(o) for o in outs]  # vLLM returns them in prompt order

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Copy the trainer's tensors (Hugging Face names) into vLLM's model."""
        weights = [(name, t.detach()) for name, t in named_tensors]
        model = _in_process_model(self.llm)
        if model is not None:
            model.load_weights(weights=weights)
        else:  # engine in another process: the worker extension loads them there
            self.llm.collective_rpc("chatrlhf_load_weights", args=(weights,))
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()  # cached keys/values came from the old weights
        self.syncs += 1


def _in_process_model(llm: Any) -> Any | None:
    """vLLM's model object when its engine runs in this process, else None. The attribute path
    is vLLM-internal (the same one colocated RLHF trainers use)."""
    try:
        return llm.llm_engine.model_executor.driver_worker.worker.model_runner.model
    except AttributeError:
        return None


class WeightLoader:
    """Mixed into vLLM's GPU worker (``worker_extension_cls``) so ``collective_rpc`` can reach the
    model when the engine runs in a subprocess."""

    def chatrlhf_load_weights(self, weights: list[tuple[str, Any]]) -> None:
        self.model_runner.model.load_weights(weights=weights)


# --------------------------------------------------------------------------------------------
# Serving


class VLLMGeneration:
    """One ``stream`` batch over the shared ``vllm.LLMEngine``: the same protocol as the engine's
    ``Generation`` (iterate ``TokenEvent``s, ``cancel(row)``, ``results`` once done).

    vLLM batches every live request itself, so stepping it advances every generation at once;
    outputs for other generations' rows are queued on them, and each generation steps the engine
    only while its own queue is empty."""

    def __init__(self, owner: "VLLMServingEngine", request_ids: list[str]):
        self.owner = owner
        self.ids = request_ids
        self.row_of = {rid: r for r, rid in enumerate(request_ids)}
        self.queue: deque[Any] = deque()
        self.cancelled: set[int] = set()
        self._aborted: set[int] = set()
        self._done: dict[int, Completion] = {}
        self._tokens: list[list[int]] = [[] for _ in request_ids]  # relayed so far, per row
        self._logprobs: list[list[float]] = [[] for _ in request_ids]
        self._text = [""] * len(request_ids)
        self.results: list[Completion] = []

    def cancel(self, row: int) -> None:
        self.cancelled.add(row)

    def __iter__(self) -> Iterator[TokenEvent]:
        while len(self._done) < len(self.ids):
            yield from self._abort_cancelled()
            if len(self._done) == len(self.ids):
                break
            if not self.queue:
                self.owner.step()
                if not self.queue and not self.owner.engine.has_unfinished_requests():
                    raise RuntimeError("vLLM has no unfinished request, yet rows of this batch never finished")
                continue
            yield from self._relay(self.queue.popleft())
        self.results = [self._done[r] for r in range(len(self.ids))]
        self.owner.forget(self)

    def _abort_cancelled(self) -> Iterator[TokenEvent]:
        rows = [r for r in self.cancelled - self._aborted if r not in self._done]
        if not rows:
            return
        self.owner.engine.abort_request([self.ids[r] for r in rows])
        for r in rows:
            self._aborted.add(r)
            self._finish(r, None, "cancelled")
            yield TokenEvent(r, -1, 0.0, "", "cancelled")

    def _relay(self, req: Any) -> Iterator[TokenEvent]:
        """Events for the tokens a (cumulative) ``RequestOutput`` adds since the last one; the
        new text rides on the last of them."""
        r = self.row_of[req.request_id]
        if r in self._done:
            return
        out = req.outputs[0]
        ids = [int(t) for t in out.token_ids]
        lps = _token_logprobs(out, ids)
        new = range(len(self._tokens[r]), len(ids))
        # text only grows; vLLM holds back what might be the start of a stop string
        text = out.text[len(self._text[r]):] if out.text.startswith(self._text[r]) else ""
        reason = finish_reason(out.finish_reason) if req.finished else None
        if reason is not None:
            self._finish(r, req, reason)
        for k, i in enumerate(new):
            last = k == len(new) - 1
            yield TokenEvent(r, ids[i], lps[i], text if last else "", reason if last else None)
        self._tokens[r], self._logprobs[r], self._text[r] = ids, lps, out.text
        if reason is not None and not new:  # finished without a new token: still end the row
            yield TokenEvent(r, -1, 0.0, text, reason)

    def _finish(self, r: int, req: Any, reason: str) -> None:
        if req is None:  # cancelled: what had been produced so far
            self._done[r] = Completion(list(self._tokens[r]), list(self._logprobs[r]), self._text[r], reason)
        else:
            c = to_completion(req)
            c.finish_reason = reason
            self._done[r] = c


class VLLMServingEngine:
    """A synchronous ``vllm.LLMEngine`` with the engine's ``stream``/``generate`` interface, for the
    server's ``BatchScheduler`` (whose one worker thread owns it, as it owns the built-in engine).
    vLLM does continuous batching and chunked prefill itself, so no ``PrefillStep`` is yielded."""

    def __init__(self, model_dir: str | Path, *, dtype: str = "bfloat16", gpu_memory_utilization: float = 0.45,
                 max_num_seqs: int = 16, engine: Any = None, **engine_kwargs: Any):
        vllm = import_vllm("chatrlhf serve --backend vllm")
        self.vllm = vllm
        if engine is None:
            args = vllm.EngineArgs(model=str(model_dir), dtype=dtype, max_num_seqs=max_num_seqs,
                                   gpu_memory_utilization=gpu_memory_utilization, **engine_kwargs)
            engine = vllm.LLMEngine.from_engine_args(args)
        self.engine = engine
        self._ids = itertools.count()
        self._owner: dict[str, VLLMGeneration] = {}

    def stream(self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams]) -> VLLMGeneration:
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        per_row = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        if len(per_row) != len(prompts):
            raise ValueError(f"got {len(per_row)} SamplingParams for {len(prompts)} prompts")
        rids = [f"chatrlhf-{next(self._ids)}" for _ in prompts]
        gen = VLLMGeneration(self, rids)
        for rid, ids, p in zip(rids, prompts, per_row):
            self.engine.add_request(rid, _prompt(ids), to_vllm_params(self.vllm, p))
            self._owner[rid] = gen
        return gen

    def generate(self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams]) -> list[Completion]:
        gen = self.stream(prompts, params)
        for _ in gen:
            pass
        return gen.results

    def step(self) -> None:
        """One vLLM step; each output goes to the generation that owns its request."""
        for req in self.engine.step():
            gen = self._owner.get(req.request_id)
            if gen is not None:
                gen.queue.append(req)

    def forget(self, gen: VLLMGeneration) -> None:
        for rid in gen.ids:
            self._owner.pop(rid, None)
