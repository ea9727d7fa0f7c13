"""The vLLM backend's own logic, against a fake ``vllm`` module (tests/fake_vllm.py): parameter
mapping, output conversion, streaming and cancelling for the server, weight sync after every PPO
update, the trainer's recomputed log-probs, and the error when vLLM is missing. Real vLLM (a GPU)
is not exercised here."""

import copy
import sys

import pytest
import torch

import fake_vllm
from chatrlhf.engine import SamplingParams


@pytest.fixture
def vllm(monkeypatch):
    mod = fake_vllm.module()
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return mod


def test_sampling_params_map_to_vllms(vllm):
    from chatrlhf.vllm_backend import to_vllm_params

    greedy = to_vllm_params(vllm, SamplingParams(max_new_tokens=9, temperature=0.0, stop=["\n\n"],
                                                 stop_token_ids=[5], seed=3))
    assert greedy.kw == dict(n=1, max_tokens=9, temperature=0.0, top_p=1.0, stop=["\n\n"], stop_token_ids=[5],
                             seed=3, ignore_eos=False, logprobs=0)
    sampled = to_vllm_params(vllm, SamplingParams(temperature=0.7, top_p=0.9, top_k=40, ignore_eos=True))
    assert (sampled.temperature, sampled.top_p, sampled.top_k, sampled.ignore_eos) == (0.7, 0.9, 40, True)
    assert "top_k" not in to_vllm_params(vllm, SamplingParams(top_k=0)).kw  # ours "off" -> vLLM's default


def test_request_outputs_become_completions(vllm):
    from chatrlhf.vllm_backend import to_completion

    lp = fake_vllm.Logprob
    out = fake_vllm.CompletionOutput(0, "Hi.", [11, 12, 2], None, [{11: lp(-0.5)}, {12: lp(-1.5)}, {2: lp(-0.1)}],
                                     "stop")
    c = to_completion(fake_vllm.RequestOutput("0", [1], [out], True))
    assert (c.token_ids, c.logprobs, c.text, c.finish_reason) == ([11, 12, 2], [-0.5, -1.5, -0.1], "Hi.", "stop")
    for theirs, ours in (("length", "length"), ("abort", "cancelled")):
        out.finish_reason = theirs
        assert to_completion(fake_vllm.RequestOutput("0", [1], [out], True)).finish_reason == ours
    out.finish_reason = None
    with pytest.raises(ValueError, match="unknown reason"):
        to_completion(fake_vllm.RequestOutput("0", [1], [out], True))


def test_rollouts_generate_in_prompt_order_and_sync_weights(vllm, tiny):
    from chatrlhf.vllm_backend import VLLMRollouts

    r = VLLMRollouts("/ckpt", dtype="bfloat16", gpu_memory_utilization=0.25, seed=1)
    llm = vllm.LLM.instances[0]
    assert llm.model_path == "/ckpt" and llm.kw["gpu_memory_utilization"] == 0.25
    assert llm.kw["worker_extension_cls"] == "chatrlhf.vllm_backend.WeightLoader"
    got = r.generate([[1, 2], [4]], SamplingParams(max_new_tokens=4, temperature=0))
    assert [c.token_ids for c in got] == [[102, 103, 104, 105], [104, 105, 7]]
    assert [c.finish_reason for c in got] == ["length", "stop"]
    assert got[1].logprobs == [fake_vllm.LOGPROB] * 3 and got[1].text == "<104><105><7>"
    assert llm.generate_calls[0][0] == [{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": [4]}]

    lm, _ = tiny
    r.load_weights(lm.state_dict().items())
    assert r.syncs == 1 and llm.prefix_cache_resets == 1  # stale cached keys are dropped
    (loaded,) = llm.model.loads
    assert loaded.keys() == lm.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in lm.state_dict().items())


def test_weights_go_through_collective_rpc_when_the_engine_is_out_of_process(vllm):
    from chatrlhf.vllm_backend import VLLMRollouts

    r = VLLMRollouts("/ckpt")
    calls = []
    r.llm.llm_engine = object()  # no in-process model to reach
    r.llm.collective_rpc = lambda method, args=(): calls.append((method, args))
    r.load_weights([("w", torch.ones(2))])
    ((method, (weights,)),) = calls
    assert method == "chatrlhf_load_weights" and weights[0][0] == "w" and torch.equal(weights[0][1], torch.ones(2))


def test_missing_vllm_gives_a_clear_error(monkeypatch, tiny, tmp_path):
    from chatrlhf.vllm_backend import VLLMRollouts, VLLMServingEngine, VLLMUnavailable

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(VLLMUnavailable, match=r"rollout_backend='vllm' needs vLLM.*chatrlhf\[vllm\]"):
        VLLMRollouts("/ckpt")
    with pytest.raises(VLLMUnavailable, match="serve --backend vllm needs vLLM"):
        VLLMServingEngine("/ckpt")
    assert issubclass(VLLMUnavailable, ImportError)


def _events(gen):
    return [ev for ev in gen]


def test_serving_stream_relays_each_token_and_finishes_rows(vllm):
    from chatrlhf.vllm_backend import VLLMServingEngine

    eng = VLLMServingEngine("/ckpt", max_num_seqs=4)
    assert eng.engine.args.model == "/ckpt" and eng.engine.args.kw["max_num_seqs"] == 4
    gen = eng.stream([[1], [2]], SamplingParams(max_new_tokens=3))
    evs = _events(gen)
    row0 = [e for e in evs if e.row == 0]
    row1 = [e for e in evs if e.row == 1]
    assert [e.token_id for e in row0] == [101, 102, 103]
    assert [e.text for e in row0] == ["<101>", "<102>", "<103>"]
    assert [e.finish_reason for e in row0] == [None, None, "length"]
    assert [e.token_id for e in row1] == [102, 7] and row1[-1].finish_reason == "stop"
    assert [c.token_ids for c in gen.results] == [[101, 102, 103], [102, 7]]
    assert "".join(e.text for e in row0) == gen.results[0].text


def test_interleaved_streams_each_get_their_own_rows(vllm):
    """The server steps two batches in turn; vLLM steps all requests at once, so outputs for the
    other batch are queued on it, not lost."""
    from chatrlhf.vllm_backend import VLLMServingEngine

    eng = VLLMServingEngine("/ckpt")
    a = eng.stream([[1]], SamplingParams(max_new_tokens=4))
    b = eng.stream([[3]], SamplingParams(max_new_tokens=2))
    ia, ib = iter(a), iter(b)
    got_a, got_b = [next(ia)], [next(ib)]  # a's step also produced b's first token
    got_b += list(ib)
    got_a += list(ia)
    assert [e.token_id for e in got_a] == [101, 102, 103, 104]
    assert [e.token_id for e in got_b] == [103, 104]
    assert eng.engine.steps == 4  # one shared step per token, not one per batch
    assert not eng._owner  # finished generations are forgotten


def test_cancelled_row_is_aborted_and_ends_with_a_cancelled_event(vllm):
    from chatrlhf.vllm_backend import VLLMServingEngine

    eng = VLLMServingEngine("/ckpt")
    gen = eng.stream([[1], [3]], SamplingParams(max_new_tokens=5))
    it = iter(gen)
    first = [next(it), next(it)]
    gen.cancel(0)
    rest = list(it)
    assert eng.engine.aborted == [gen.ids[0]]
    cancelled = [e for e in rest if e.row == 0]
    assert [(e.token_id, e.finish_reason) for e in cancelled] == [(-1, "cancelled")]
    assert gen.results[0].finish_reason == "cancelled" and gen.results[0].token_ids == [first[0].token_id]
    assert gen.results[1].token_ids == [103, 104, 105, 106, 107]


def test_the_servers_scheduler_runs_on_the_vllm_engine(vllm):
    import asyncio

    from chatrlhf.server.scheduler import BatchScheduler, Done, Token
    from chatrlhf.vllm_backend import VLLMServingEngine

    sched = BatchScheduler(VLLMServingEngine("/ckpt"), max_batch_size=4, batch_wait_s=0.001)

    async def main():
        sched.start()
        try:
            sub = sched.submit([[1], [2]], [SamplingParams(max_new_tokens=3)] * 2)
            tokens, done = [], None
            async for item in sub.events():
                if isinstance(item, Token):
                    tokens.append((item.index, item.event.token_id))
                elif isinstance(item, Done):
                    done = item
            return tokens, done
        finally:
            sched.stop()

    tokens, done = asyncio.run(main())
    assert [t for i, t in tokens if i == 0] == [101, 102, 103] and [t for i, t in tokens if i == 1] == [102, 7]
    assert [c.finish_reason for c in done.completions] == ["length", "stop"]


# ----------------------------------------------------------------------------- PPO


def _ppo_cfg(tmp_path, tiny, **kw):
    from chatrlhf import ppo
    from chatrlhf.heads import ScalarModel, new_scalar_head
    from chatrlhf.schema import Conversation, write_jsonl

    lm, tok = tiny
    torch.manual_seed(0)
    ScalarModel(copy.deepcopy(lm), new_scalar_head(lm.config.hidden_size, 0.5)).save(tmp_path / "rm", tok)
    write_jsonl(tmp_path / "prompts.jsonl",
                [Conversation([{"role": "user", "content": f"Tell me about number {i}."}]) for i in range(6)])
    base = dict(policy="tiny", reward_model=str(tmp_path / "rm"), prompts=[str(tmp_path / "prompts.jsonl")],
                out_dir=str(tmp_path / "ppo"), iterations=3, rollout_batch=3, minibatch_size=3, max_new_tokens=5,
                lr=1e-2, dtype="float32", rollout_dtype="float32", gold=False, threads=1,
                rollout_backend="vllm")
    return ppo.PPOConfig(**{**base, **kw})


def test_ppo_on_vllm_syncs_the_policy_after_every_update_and_recomputes_logprobs(vllm, tiny, tmp_path, monkeypatch):
    from chatrlhf import ppo
    from chatrlhf.chat_format import eot_id
    from chatrlhf.models import resolve_model_dir

    vllm.LLM.stop_token = eot_id(tiny[1])
    snapshots, experiences = [], []
    real_update, real_exp = ppo.ppo_update, ppo.make_experience

    def update(models, *a, **k):
        if not snapshots:  # the weights before the first update
            snapshots.append({n: t.clone() for n, t in models.policy.state_dict().items()})
        out = real_update(models, *a, **k)
        snapshots.append({n: t.clone() for n, t in models.policy.state_dict().items()})
        return out

    def experience(models, batch, completions, *a, **k):
        exp = real_exp(models, batch, completions, *a, **k)
        experiences.append((completions, exp))
        return exp

    monkeypatch.setattr(ppo, "ppo_update", update)
    monkeypatch.setattr(ppo, "make_experience", experience)
    cfg = _ppo_cfg(tmp_path, tiny)
    ppo.run(cfg)

    (llm,) = vllm.LLM.instances  # started once, reused every iteration
    assert llm.model_path == str(resolve_model_dir("tiny")) and llm.kw["dtype"] == "float32"
    assert len(llm.generate_calls) == cfg.iterations
    # before rollout k vLLM holds exactly the policy after update k-1 (k=0: the initial policy)
    assert len(llm.model.loads) == cfg.iterations and llm.prefix_cache_resets == cfg.iterations
    for loaded, want in zip(llm.model.loads, snapshots):
        assert loaded.keys() == want.keys()
        assert all(torch.equal(loaded[n], want[n]) for n in want)
    assert not all(torch.equal(snapshots[0][n], snapshots[-1][n]) for n in snapshots[0])  # it did learn

    # vLLM's log-probs (all LOGPROB) are not PPO's old log-probs: those come from the trainer. At
    # the first iteration the policy still equals the reference, so the two trainer passes agree.
    completions, exp = experiences[0]
    assert all(lp == fake_vllm.LOGPROB for c in completions for lp in c.logprobs)
    valid = exp.mask.bool()
    assert torch.equal(exp.old_logprobs[valid], exp.ref_logprobs[valid])
    assert not torch.allclose(exp.old_logprobs[valid], torch.full_like(exp.old_logprobs[valid], fake_vllm.LOGPROB))
    assert {c.finish_reason for cs, _ in experiences for c in cs} == {"stop", "length"}


def test_ppo_experience_ignores_the_samplers_logprobs(tiny, tmp_path):
    from chatrlhf import ppo
    from chatrlhf.engine import Completion

    cfg = _ppo_cfg(tmp_path, tiny, rollout_backend="engine")
    models = ppo.build_models(cfg)
    batch = ppo.load_prompts(cfg.prompts, models.tokenizer, cfg.max_prompt_len)[:2]
    ids = [[300, 301, 302], [400, 401]]
    exps = [ppo.make_experience(models, batch, [Completion(t, [lp] * len(t), "", "length") for t in ids], 0.05, cfg)
            for lp in (0.0, -9.0)]
    assert torch.equal(exps[0].old_logprobs, exps[1].old_logprobs)
    assert float(exps[0].old_logprobs[0, 0]) < -1.0  # a random model's log-prob, not the sampler's 0


def test_unknown_rollout_backend_is_refused():
    from chatrlhf.ppo import PPOConfig

    with pytest.raises(ValueError, match="rollout_backend"):
        PPOConfig(rollout_backend="hf")


def test_serve_backend_vllm_builds_the_service_on_vllm(vllm, tiny):
    from chatrlhf.models import tiny_dir
    from chatrlhf.server.launch import build_service
    from chatrlhf.vllm_backend import VLLMServingEngine

    service = build_service("tiny", "tiny", backend="vllm", max_batch_size=6, vllm_gpu_memory=0.3)
    engine = service.router.default_backend.scheduler.engine
    assert isinstance(engine, VLLMServingEngine)
    assert engine.engine.args.model == str(tiny_dir())
    assert engine.engine.args.kw["max_num_seqs"] == 6 and engine.engine.args.kw["gpu_memory_utilization"] == 0.3
    assert service.context_length == tiny[0].config.max_position_embeddings


def test_serve_backend_vllm_without_vllm_is_a_usage_error(monkeypatch, tiny):
    from chatrlhf.server.launch import ServeError, build_service

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ServeError, match=r"serve --backend vllm needs vLLM.*chatrlhf\[vllm\]"):
        build_service("tiny", "tiny", backend="vllm")
    with pytest.raises(ServeError, match="--backend"):
        build_service("tiny", "tiny", backend="hf")
