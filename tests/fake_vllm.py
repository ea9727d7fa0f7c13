"""A stand-in for the few names of ``vllm`` that ``chatrlhf.vllm_backend`` uses, for tests on a
machine without vLLM (it needs CUDA). It records what the adapter asks of it; its "model" emits a
scripted reply per prompt, so the adapter's conversions can be checked exactly.

Scripted reply for a prompt: tokens ``[100 + last prompt id, 101 + ..., ...]`` up to
``max_tokens``, ending early with ``stop_token`` when the prompt's ids sum to an even number. Log-probs are
always ``LOGPROB``, deliberately unlike any model's."""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any

LOGPROB = -0.125


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool


# the real SamplingParams' field names that the adapter may set (a typo would fail here as there)
_PARAM_NAMES = {"n", "max_tokens", "temperature", "top_p", "top_k", "stop", "stop_token_ids", "seed",
                "ignore_eos", "logprobs"}


class SamplingParams:
    def __init__(self, **kw: Any):
        unknown = set(kw) - _PARAM_NAMES
        if unknown:
            raise TypeError(f"unexpected SamplingParams fields {unknown}")
        self.kw = kw
        self.top_k = kw.get("top_k", 0)
        for k, v in kw.items():
            setattr(self, k, v)


def script(prompt: list[int], params: SamplingParams, stop_token: int) -> tuple[list[int], str]:
    last = prompt[-1]
    ids = [100 + last + i for i in range(params.max_tokens)]
    if sum(prompt) % 2 == 0 and not params.ignore_eos and len(ids) > 1:
        return ids[: len(ids) // 2] + [stop_token], "stop"
    return ids, "length"


def _text(ids: list[int]) -> str:
    return "".join(f"<{t}>" for t in ids)


class FakeModel:
    def __init__(self) -> None:
        self.loads: list[dict[str, Any]] = []

    def load_weights(self, weights):
        self.loads.append({name: t.clone() for name, t in weights})
        return {name for name, _ in weights}


class LLM:
    instances: list["LLM"] = []
    stop_token = 7

    def __init__(self, model: str, **kw: Any):
        self.model_path, self.kw = model, kw
        self.model = FakeModel()
        worker = types.SimpleNamespace(model_runner=types.SimpleNamespace(model=self.model))
        self.llm_engine = types.SimpleNamespace(
            model_executor=types.SimpleNamespace(driver_worker=types.SimpleNamespace(worker=worker)))
        self.prefix_cache_resets = 0
        self.generate_calls: list[tuple[list, list]] = []
        LLM.instances.append(self)

    def reset_prefix_cache(self) -> bool:
        self.prefix_cache_resets += 1
        return True

    def generate(self, prompts, params, use_tqdm=True):
        self.generate_calls.append((prompts, params))
        outs = []
        for i, (p, sp) in enumerate(zip(prompts, params)):
            ids, reason = script(p["prompt_token_ids"], sp, self.stop_token)
            lps = [{t: Logprob(LOGPROB, 1)} for t in ids]
            outs.append(RequestOutput(str(i), p["prompt_token_ids"],
                                      [CompletionOutput(0, _text(ids), ids, None, lps, reason)], True))
        return outs


@dataclass
class EngineArgs:
    model: str
    kw: dict = field(default_factory=dict)

    def __init__(self, model: str, **kw: Any):
        self.model, self.kw = model, kw


class LLMEngine:
    """Steps every live request by one token per ``step``; outputs are cumulative."""

    stop_token = 7

    def __init__(self, args: EngineArgs | None = None):
        self.args = args
        self.live: dict[str, dict] = {}
        self.aborted: list[str] = []
        self.steps = 0

    @classmethod
    def from_engine_args(cls, args: EngineArgs) -> "LLMEngine":
        return cls(args)

    def add_request(self, request_id: str, prompt: dict, params: SamplingParams) -> None:
        ids, reason = script(prompt["prompt_token_ids"], params, self.stop_token)
        self.live[request_id] = {"prompt": prompt["prompt_token_ids"], "ids": ids, "reason": reason, "n": 0}

    def abort_request(self, request_ids) -> None:
        for rid in request_ids:
            self.aborted.append(rid)
            self.live.pop(rid, None)

    def has_unfinished_requests(self) -> bool:
        return bool(self.live)

    def step(self) -> list[RequestOutput]:
        self.steps += 1
        outs = []
        for rid, r in list(self.live.items()):
            r["n"] += 1
            ids = r["ids"][: r["n"]]
            done = r["n"] == len(r["ids"])
            out = CompletionOutput(0, _text(ids), ids, None, [{t: Logprob(LOGPROB)} for t in ids],
                                   r["reason"] if done else None)
            outs.append(RequestOutput(rid, r["prompt"], [out], done))
            if done:
                del self.live[rid]
        return outs


def module() -> types.ModuleType:
    """A fresh ``vllm`` module object (install it with monkeypatch.setitem(sys.modules, ...))."""
    LLM.instances = []
    m = types.ModuleType("vllm")
    m.LLM, m.SamplingParams, m.LLMEngine, m.EngineArgs = LLM, SamplingParams, LLMEngine, EngineArgs
    return m
