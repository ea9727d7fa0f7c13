import pytest
import torch

from chatrlhf.chat_format import render_prompt
import chatrlhf.engine as engine_mod
from chatrlhf.engine import (Engine, SamplingParams, _HFRunner, _Int4Linear, _Int8Linear, _LlamaRunner,
                             _Linear)

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea and the wind in autumn, please, with vivid imagery.",
    "Hi",
    "Name three primary colours.",
]


def _prompts(tok):
    return [render_prompt([{"role": "user", "content": q}], tok) for q in QUESTIONS]


def _hf_greedy(model, tok, prompts, n):
    T = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (T - len(p)) + p for p in prompts])
    am = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts])
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=am, max_new_tokens=n, do_sample=False,
                             pad_token_id=tok.pad_token_id)
    rows = []
    for row in out[:, T:].tolist():
        if tok.eos_token_id in row:
            row = row[: row.index(tok.eos_token_id) + 1]
        rows.append(row)
    return rows


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_greedy_equals_hf_generate_for_a_mixed_length_batch(which, request):
    model, tok = request.getfixturevalue(which)
    prompts = _prompts(tok)
    assert len(set(map(len, prompts))) == len(prompts)  # really different lengths
    n = 24
    ours = Engine(model, tok).generate(prompts, SamplingParams(max_new_tokens=n, temperature=0))
    assert [c.token_ids for c in ours] == _hf_greedy(model, tok, prompts, n)
    assert {c.finish_reason for c in ours} <= {"stop", "length"}


def test_logprobs_match_a_full_forward_pass(smollm2):
    model, tok = smollm2
    prompts = _prompts(tok)[:3]
    for temp in (0.0, 0.7):
        res = Engine(model, tok).generate(
            prompts, SamplingParams(max_new_tokens=16, temperature=temp, seed=3))
        for p, c in zip(prompts, res):
            with torch.no_grad():
                logits = model(torch.tensor([p + c.token_ids])).logits[0].float()
            scaled = logits / (temp if temp > 0 else 1.0)
            ref = torch.log_softmax(scaled, -1)[len(p) - 1 : -1]
            ref = ref.gather(1, torch.tensor(c.token_ids)[:, None])[:, 0]
            assert (ref - torch.tensor(c.logprobs)).abs().max().item() < 1e-4


def test_fast_and_generic_runners_agree(tiny, monkeypatch):
    model, tok = tiny
    assert _LlamaRunner.supports(model)
    prompts = _prompts(tok)
    params = SamplingParams(max_new_tokens=12, temperature=0.9, seed=11)
    fast = Engine(model, tok).generate(prompts, params)
    monkeypatch.setattr(_LlamaRunner, "supports", staticmethod(lambda m: False))
    eng = Engine(model, tok)
    assert isinstance(eng._runner(), _HFRunner)
    generic = eng.generate(prompts, params)
    assert [c.token_ids for c in fast] == [c.token_ids for c in generic]


@pytest.mark.parametrize("generic", [False, True])
def test_repeated_prompts_share_one_prefill_and_still_sample_apart(generic, tiny, monkeypatch):
    # PPO lists each prompt K times: the engine prefills it once and copies the cache, and each
    # copy must then behave exactly as the prompt alone would (greedy and seeded sampling), and
    # rows that finish early must not disturb the copies that go on.
    model, tok = tiny
    if generic:
        monkeypatch.setattr(_LlamaRunner, "supports", staticmethod(lambda m: False))
    a, b, c = _prompts(tok)[:3]
    batch = [a, b, a, c, a, b]
    prefills = []
    runner_cls = _HFRunner if generic else _LlamaRunner
    real = runner_cls.prefill

    def counting(self, ids, valid, max_new):
        prefills.append(ids.shape[0])
        return real(self, ids, valid, max_new)

    monkeypatch.setattr(runner_cls, "prefill", counting)
    eng = Engine(model, tok)
    greedy = SamplingParams(max_new_tokens=10, temperature=0)
    got = eng.generate(batch, greedy)
    assert prefills == [3]  # three distinct prompts, one prefill row each
    alone = {i: eng.generate([p], greedy)[0].token_ids for i, p in enumerate((a, b, c))}
    assert [r.token_ids for r in got] == [alone[0], alone[1], alone[0], alone[2], alone[0], alone[1]]
    # Seeded sampling: each row follows its own seed, as if it were alone, also when the rows
    # sharing a prompt leave the batch at different steps; the same prompt with different seeds
    # gives different replies.
    params = [SamplingParams(max_new_tokens=3 + 2 * s, temperature=1.0, seed=s, ignore_eos=True)
              for s in range(len(batch))]
    got = eng.generate(batch, params)
    assert [len(r.token_ids) for r in got] == [3 + 2 * s for s in range(len(batch))]
    for p, q, r in zip(batch, params, got):
        assert r.token_ids == eng.generate([p], q)[0].token_ids
    assert len({tuple(r.token_ids[:3]) for r, p in zip(got, batch) if p == a}) > 1
    if generic:
        return
    # Chunked prefill (the server's path): one of two rows sharing a prompt cancels between
    # chunks; the other still gets the reply it would get alone.
    long_a = a + a  # long enough for several chunks
    gen = Engine(model, tok, prefill_chunk=4).stream([long_a, long_a], greedy)
    it = iter(gen)
    assert isinstance(next(it), engine_mod.PrefillStep)
    gen.cancel(0)
    rest = list(it)
    assert gen.results[0].finish_reason == "cancelled"
    assert gen.results[1].token_ids == eng.generate([long_a], greedy)[0].token_ids
    assert {e.row for e in rest if isinstance(e, engine_mod.TokenEvent)} <= {0, 1}


def test_stop_strings_cut_the_text(smollm2):
    model, tok = smollm2
    prompt = _prompts(tok)[:1]
    full = Engine(model, tok).generate(prompt, SamplingParams(max_new_tokens=30, temperature=0))[0]
    assert "Paris" in full.text
    cut = Engine(model, tok).generate(
        prompt, SamplingParams(max_new_tokens=30, temperature=0, stop=["Paris", "zzz"]))[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index("Paris")]
    assert len(cut.token_ids) < len(full.token_ids)


def test_stop_token_ids_and_length(tiny):
    model, tok = tiny
    prompt = _prompts(tok)[:1]
    free = Engine(model, tok).generate(prompt, SamplingParams(max_new_tokens=8, temperature=0))[0]
    assert free.finish_reason == "length" and len(free.token_ids) == 8
    stop_at = free.token_ids[3]
    first = free.token_ids.index(stop_at)
    res = Engine(model, tok).generate(
        prompt, SamplingParams(max_new_tokens=8, temperature=0, stop_token_ids=[stop_at]))[0]
    assert res.finish_reason == "stop" and res.token_ids == free.token_ids[: first + 1]


def test_streaming_yields_the_same_text_and_can_cancel(smollm2):
    model, tok = smollm2
    prompts = _prompts(tok)[:2]
    params = SamplingParams(max_new_tokens=20, temperature=0)
    gen = Engine(model, tok).stream(prompts, params)
    pieces = {0: [], 1: []}
    for ev in gen:
        pieces[ev.row].append(ev.text)
        if ev.row == 1 and len(pieces[1]) == 3:
            gen.cancel(1)
    assert "".join(pieces[0]) == gen.results[0].text
    assert len([p for p in pieces[0] if p]) > 1  # really incremental
    assert gen.results[1].finish_reason == "cancelled" and len(gen.results[1].token_ids) == 4


def test_seed_makes_sampling_reproducible_whatever_the_batch(tiny):
    model, tok = tiny
    prompts = _prompts(tok)
    eng = Engine(model, tok)
    p = SamplingParams(max_new_tokens=10, temperature=1.0, top_p=0.9, top_k=50, seed=7)
    a = eng.generate(prompts, p)
    b = eng.generate(prompts[:1], p)
    assert a[0].token_ids == b[0].token_ids
    other = eng.generate(prompts[:1], SamplingParams(max_new_tokens=10, temperature=1.0, seed=8))
    assert other[0].token_ids != a[0].token_ids


def test_top_k_one_is_greedy_and_batches_split(tiny):
    model, tok = tiny
    prompts = _prompts(tok) * 3
    greedy = Engine(model, tok).generate(prompts, SamplingParams(max_new_tokens=6, temperature=0))
    topk = Engine(model, tok, max_batch_size=5).generate(
        prompts, SamplingParams(max_new_tokens=6, temperature=1.3, top_k=1, seed=1))
    assert [c.token_ids for c in greedy] == [c.token_ids for c in topk]


def test_bad_input_is_refused(tiny):
    model, tok = tiny
    eng = Engine(model, tok)
    with pytest.raises(ValueError):
        eng.generate([[]], SamplingParams())
    with pytest.raises(ValueError):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError):
        eng.generate([[1], [2]], [SamplingParams()])


def test_filtered_sampling_follows_the_renormalised_distribution():
    from chatrlhf.engine import _sample

    torch.manual_seed(0)
    logits = torch.randn(3, 5000) * 3
    params = [SamplingParams(temperature=0.8, top_p=0.5, seed=1),
              SamplingParams(temperature=1.0, top_k=3, seed=2),
              SamplingParams(temperature=0)]
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    top3 = torch.topk(logits[1], 3)
    want = torch.softmax(top3.values, 0)
    probs = torch.softmax(logits[0] / 0.8, 0)
    sp, order = torch.sort(probs, descending=True)
    nucleus = set(order[: int(((sp.cumsum(0) - sp) < 0.5).sum())].tolist())
    counts = torch.zeros(3)
    n = 3000
    for _ in range(n):
        tok, lp = _sample(logits, params, gens)
        assert int(tok[0]) in nucleus
        assert int(tok[2]) == int(logits[2].argmax())
        counts += (top3.indices == tok[1]).float()
        assert abs(float(lp[0]) - float(torch.log(probs[tok[0]]))) < 1e-4  # unfiltered log-prob
    assert counts.sum() == n  # top-k never leaves the top 3
    assert (counts / n - want).abs().max() < 0.04


def test_unfiltered_sampling_follows_the_tempered_distribution():
    # The inverse-CDF draw: frequencies follow softmax(logits / T), a token of probability 0 never
    # comes out, a row's draws depend on its own generator only, and greedy rows stay greedy.
    from chatrlhf.engine import _sample

    torch.manual_seed(0)
    logits = torch.randn(3, 6) * 2
    logits[0, 4] = float("-inf")  # probability exactly 0
    params = [SamplingParams(temperature=0.7, seed=1), SamplingParams(temperature=1.3, seed=2),
              SamplingParams(temperature=0)]
    want = [torch.softmax(logits[0] / 0.7, 0), torch.softmax(logits[1] / 1.3, 0)]
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    solo = torch.Generator().manual_seed(0)  # the same seed as gens[0]
    counts = torch.zeros(2, 6)
    n = 4000
    for _ in range(n):
        tok, lp = _sample(logits, params, gens)
        alone, _ = _sample(logits[:1], params[:1], [solo])
        assert int(alone[0]) == int(tok[0])  # the same draws whatever the batch
        assert int(tok[2]) == int(logits[2].argmax())
        for r in range(2):
            counts[r, int(tok[r])] += 1
            assert abs(float(lp[r]) - float(torch.log(want[r][tok[r]]))) < 1e-4
    assert counts[0, 4] == 0
    for r in range(2):
        assert (counts[r] / n - want[r]).abs().max() < 0.03


@pytest.mark.parametrize("gemm", ["mkl", "onednn", "none"])
def test_packed_linear_matches_f_linear_for_every_row_count(gemm, monkeypatch):
    # Decode batches (1-128 rows) take the MKL-packed or transposed path, prefill takes F.linear;
    # or oneDNN's fp32 pack for every row count. A batch that shrinks as rows finish must not fall
    # off the packed path into wrong results.
    if gemm == "mkl" and not engine_mod._MKL_PACKED:
        pytest.fail("this torch build has no packed MKL linear (the pinned CPU wheel has it)")
    monkeypatch.setattr(engine_mod, "_MKL_PACKED", gemm == "mkl")
    monkeypatch.setattr(engine_mod, "_FP32_GEMM", "onednn" if gemm == "onednn" else "mkl")
    g = torch.Generator().manual_seed(0)
    w_a, w_b = torch.randn(96, 64, generator=g), torch.randn(32, 64, generator=g)
    lin = _Linear(w_a, w_b)  # fused rows, as Q|K|V are
    assert (lin.packed is not None) == (gemm == "mkl")
    assert (lin.onednn is not None) == (gemm == "onednn")
    assert (lin.wt is not None) == (gemm == "none")
    ref_w = torch.cat([w_a, w_b])
    for rows in (1, 3, 17, 32, 33, 128, 300):
        x = torch.randn(1, rows, 64, generator=g)
        got = lin(x)
        assert got.shape == (1, rows, 128)
        torch.testing.assert_close(got, torch.nn.functional.linear(x, ref_w), rtol=1e-5, atol=1e-5)


def test_incremental_detokenization_equals_a_whole_decode(tiny):
    # Multi-byte characters split across tokens must come out whole, at every step.
    from chatrlhf.engine import _RowText

    _, tok = tiny
    text = "Hé 🙂🙂 naïve 東京タワー, emoji 👩‍👩‍👧 and ｆｕｌｌ-width text… " * 4
    ids = tok(text, add_special_tokens=False)["input_ids"]
    row = _RowText(tok, [])
    for n, t in enumerate(ids, 1):
        row.add(t)
        assert row.text == tok.decode(ids[:n], skip_special_tokens=True)
    assert row.text == text


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_chunked_prefill_gives_the_same_tokens_and_logprobs(which, request):
    # A chunk smaller than every prompt, and one that does not divide the padded length.
    model, tok = request.getfixturevalue(which)
    prompts = _prompts(tok)
    params = SamplingParams(max_new_tokens=12, temperature=0)
    whole = Engine(model, tok).generate(prompts, params)
    chunked = Engine(model, tok, prefill_chunk=5)
    gen = chunked.stream(prompts, params)
    events = list(gen)
    steps = [e for e in events if isinstance(e, engine_mod.PrefillStep)]
    T = max(map(len, prompts))
    assert len(steps) == (T - 1) // 5  # one per chunk but the last, which yields the first token
    assert all(isinstance(e, engine_mod.TokenEvent) for e in events[len(steps):])
    assert [c.token_ids for c in gen.results] == [c.token_ids for c in whole]
    for a, b in zip(gen.results, whole):
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4


def test_no_prefill_steps_without_a_chunk_or_for_short_prompts(tiny):
    model, tok = tiny
    prompts = _prompts(tok)
    params = SamplingParams(max_new_tokens=3, temperature=0)
    for eng in (Engine(model, tok), Engine(model, tok, prefill_chunk=10_000)):
        assert not [e for e in eng.stream(prompts, params) if isinstance(e, engine_mod.PrefillStep)]
    with pytest.raises(ValueError, match="prefill_chunk"):
        Engine(model, tok, prefill_chunk=0)


def test_a_batch_cancelled_during_prefill_stops_there(tiny):
    model, tok = tiny
    prompt = _prompts(tok)[1]
    gen = Engine(model, tok, prefill_chunk=4).stream([prompt], SamplingParams(max_new_tokens=50))
    it = iter(gen)
    assert isinstance(next(it), engine_mod.PrefillStep)
    gen.cancel(0)
    assert list(it) == []
    assert gen.results[0].finish_reason == "cancelled" and gen.results[0].token_ids == []


# --- lower-precision weight copies (Engine(weights="bf16"|"int8")) ---------------------------


def _padded(tok):
    prompts = _prompts(tok)
    T = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (T - len(p)) + p for p in prompts])
    valid = torch.tensor([[False] * (T - len(p)) + [True] * len(p) for p in prompts])
    return ids, valid


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_the_default_weights_are_bit_exact_with_the_model_forward(which, request):
    # PPO's log-probs come from the model's forward: the training path must equal it (bitwise on
    # the Intel Xeon of session 9; on an AMD EPYC the GEMMs round differently, ~1e-4 on logits of
    # ~10, so the check is to fp32 rounding), and must not pick up a lower-precision copy.
    model, tok = request.getfixturevalue(which)
    prompt = _prompts(tok)[1]
    eng = Engine(model, tok)
    with torch.inference_mode():
        runner = eng._runner()
        ours = runner.prefill(torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.bool), 1)
        ref = model(torch.tensor([prompt])).logits[:, -1].float()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)
    lin = eng._packed.layers[0][1]
    assert isinstance(lin, _Linear) and lin.w.dtype == torch.float32
    assert lin.onednn is None or lin.onednn.dtype == torch.float32  # oneDNN's fp32 pack, no bf16


@pytest.mark.parametrize("forced", ["mkl", "onednn"])
def test_the_fp32_gemm_follows_the_override(forced, monkeypatch):
    monkeypatch.setenv("CHATRLHF_FP32_GEMM", forced)
    assert engine_mod._pick_fp32_gemm() == forced
    monkeypatch.setenv("CHATRLHF_FP32_GEMM", "cublas")  # a typo warns and picks by vendor
    monkeypatch.setattr(engine_mod, "_cpu_vendor", lambda: "AuthenticAMD")
    with pytest.warns(UserWarning, match="CHATRLHF_FP32_GEMM"):
        assert engine_mod._pick_fp32_gemm() == "onednn"
    monkeypatch.delenv("CHATRLHF_FP32_GEMM")
    monkeypatch.setattr(engine_mod, "_cpu_vendor", lambda: "GenuineIntel")
    assert engine_mod._pick_fp32_gemm() == "mkl"
    monkeypatch.setattr(engine_mod, "_cpu_vendor", lambda: "AuthenticAMD")
    assert engine_mod._pick_fp32_gemm() == "onednn"


@pytest.mark.parametrize("which,dlogp,agree", [("tiny", 0.02, 1.0), ("smollm2", 0.3, 0.9)])
@pytest.mark.parametrize("weights", ["bf16", "int8", "int4"])
def test_lower_precision_weights_stay_close_to_fp32(which, dlogp, agree, weights, request):
    # Teacher-forced on fp32's greedy tokens (prefill, then 8 decode steps of a 4-row batch, so
    # int8 takes its weight-only kernel): the log-prob of fp32's choice moves by less than
    # `dlogp` and the fast path picks the same greedy token at least `agree` of the time.
    # Measured: tiny 0.002 (bf16) / 0.004 (int8), all agree; smollm2 0.06 / 0.12, 97% agree.
    model, tok = request.getfixturevalue(which)
    ids, valid = _padded(tok)
    ref = Engine(model, tok)._runner()
    fast = Engine(model, tok, weights=weights)._runner()
    worst, same = 0.0, []
    with torch.inference_mode():
        a, b = ref.prefill(ids, valid, 8), fast.prefill(ids, valid, 8)
        for _ in range(8):
            t = a.argmax(-1)  # (B,)
            la, lb = torch.log_softmax(a, -1), torch.log_softmax(b, -1)
            worst = max(worst, (la.gather(1, t[:, None]) - lb.gather(1, t[:, None])).abs().max().item())
            same += (b.argmax(-1) == t).tolist()
            a, b = ref.decode(t), fast.decode(t)
    assert worst < dlogp
    assert sum(same) / len(same) >= agree


def test_int8_linear_uses_int8_for_few_rows_and_bf16_past_them():
    g = torch.Generator().manual_seed(0)
    w_a, w_b = torch.randn(96, 64, generator=g), torch.randn(32, 64, generator=g)
    lin = _Int8Linear(w_a, w_b)
    ref_w = torch.cat([w_a, w_b])
    assert lin.q.dtype == torch.int8 and lin.q.shape == ref_w.shape
    deq = lin.q.float() * lin.scale.float()[:, None]
    assert (deq - ref_w).abs().max() <= lin.scale.float().max()  # within one quantization step
    for rows in (1, 4, 5, 40):
        x = torch.randn(rows, 64, generator=g)
        got = lin(x).float()  # bf16 out, whichever kernel ran
        assert got.shape == (rows, 128)
        torch.testing.assert_close(got, x @ ref_w.t(), rtol=0.05, atol=0.3)
        alone = lin(x[:1])
        if rows <= engine_mod._INT8_M:  # the int8 kernel: a row's result ignores its batch mates
            torch.testing.assert_close(got[:1], alone.float(), rtol=0.01, atol=0.02)


def test_int4_recovers_q4_1_weights_and_uses_int4_for_few_rows():
    # Weights on GGUF Q4_1's grid (blocks of 32 along the input: d * q + m, q in 0..15), as the
    # embedded model's are once dequantised: the int4 copy holds them up to the bf16 rounding of
    # each block's scale and zero, far inside one quantisation step.
    g = torch.Generator().manual_seed(2)
    n, k = 96, 128
    d = torch.rand(n, k // 32, 1, generator=g) * 0.02 + 0.001
    m = torch.randn(n, k // 32, 1, generator=g) * 0.05
    q = torch.randint(0, 16, (n, k // 32, 32), generator=g)
    q[..., 0], q[..., 1] = 0, 15  # Q4_1 blocks span the full range
    w = (d * q + m).view(n, k)
    lin = _Int4Linear(w[:64], w[64:])  # fused rows, as Q|K|V are
    deq = lin.dequantized()
    step = d.expand(n, k // 32, 32).reshape(n, k)
    zero = (m + 8 * d).expand(n, k // 32, 32).reshape(n, k)
    # what is left is bf16 rounding (scale, zero, the kernel's bf16 dequantisation): measured at
    # most 1.02 x 2^-8 of |w| + |zero| + 8 steps; a wrong q would cost a whole step
    assert ((deq - w).abs() <= (w.abs() + zero.abs() + 8 * step) * 2**-7).all()
    assert ((deq - w).abs() < 0.5 * step).all()
    # ... and so it computes closer to them than per-channel int8 does (both bf16 activations)
    x = torch.randn(16, 1, k, generator=g)
    err4 = (torch.cat([lin(r) for r in x]).float() - x[:, 0] @ w.t()).abs().mean()
    lin8 = _Int8Linear(w)
    err8 = (torch.cat([lin8(r) for r in x]).float() - x[:, 0] @ w.t()).abs().mean()
    assert err4 < err8
    # arbitrary (trained) weights: within half a step of each group's range / 15
    wr = torch.randn(n, k, generator=g)
    grp = wr.view(n, k // 32, 32)
    half_step = ((grp.amax(-1) - grp.amin(-1)) / 30).repeat_interleave(32, 1)
    assert ((_Int4Linear(wr).dequantized() - wr).abs() <= half_step * 1.05 + wr.abs() * 2**-7).all()
    for rows in (1, 4, 5, 40):
        x = torch.randn(rows, k, generator=g)
        got = lin(x).float()
        assert got.shape == (rows, n)
        ref = x @ (deq if rows <= engine_mod._INT8_M else w).t()  # past 4 rows: the bf16 copy
        torch.testing.assert_close(got, ref, rtol=0.02, atol=0.05)


def test_int4_keeps_the_lm_head_int8_and_odd_widths_fall_back(smollm2):
    model, tok = smollm2
    packed = engine_mod._Packed(model, "int4")
    assert isinstance(packed.layers[0][1], _Int4Linear) and isinstance(packed.lm_head, _Int8Linear)
    assert isinstance(engine_mod._int4(torch.randn(16, 40)), _Int8Linear)  # 40 is no multiple of 32
    assert isinstance(engine_mod._int4(torch.randn(40, 64)), _Int8Linear)  # 40 rows: no multiple of 16
    assert isinstance(engine_mod._int4(torch.randn(32, 64), torch.randn(16, 64)), _Int4Linear)


def test_bf16_model_weights_take_the_onednn_pack_when_available():
    # PPO samples from a bf16 copy of the policy: its weights are used as they are, no cast.
    g = torch.Generator().manual_seed(1)
    w = torch.randn(80, 48, generator=g).bfloat16()
    lin = _Linear(w)
    assert (lin.onednn is not None) == engine_mod._ONEDNN_BF16
    for rows in (1, 7, 200):
        x = torch.randn(rows, 48, generator=g).bfloat16()
        got = lin(x)
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.float(), x.float() @ w.float().t(), rtol=0.02, atol=0.05)


def test_weights_option_is_validated(tiny, monkeypatch):
    model, tok = tiny
    with pytest.raises(ValueError, match="weights"):
        Engine(model, tok, weights="fp16")
    monkeypatch.setattr(_LlamaRunner, "supports", staticmethod(lambda m: False))
    with pytest.raises(ValueError, match="Llama"):
        Engine(model, tok, weights="int8")
    assert isinstance(Engine(model, tok)._runner(), _HFRunner)  # the model's own weights still work
