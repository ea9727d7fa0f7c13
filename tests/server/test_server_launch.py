"""``chatrlhf serve`` configuration: loopback-only --no-auth, which checkpoint a run serves, and
which moderation it runs (the bundled trained model by default, end to end)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chatrlhf.engine import SamplingParams
from chatrlhf.server.launch import ServeError, check_bind, is_loopback, resolve_model


def test_no_auth_only_on_loopback():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
        check_bind(host, no_auth=True)
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com"):
        assert not is_loopback(host)
        check_bind(host, no_auth=False)
        with pytest.raises(ServeError, match="--no-auth refuses"):
            check_bind(host, no_auth=True)


def test_cli_refuses_no_auth_on_a_public_address():
    from chatrlhf.cli import cli

    r = CliRunner().invoke(cli, ["serve", "tiny", "--no-auth", "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "--no-auth refuses to bind to '0.0.0.0'" in r.output


def _ckpt(d, done=True):
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    if done:
        (d / "DONE").write_text("{}")


def test_run_dir_serves_the_newest_complete_policy(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    with pytest.raises(ServeError, match="no policy checkpoint"):
        resolve_model(str(run))
    _ckpt(run / "sft")
    assert resolve_model(str(run)) == (str(run / "sft"), "r1/sft")
    _ckpt(run / "ppo")
    _ckpt(run / "ppo-2")
    (run / "ppo-2" / "value_head").mkdir()
    assert resolve_model(str(run)) == (str(run / "ppo-2"), "r1/ppo-2")
    _ckpt(run / "ppo-3", done=False)  # killed mid-round: not served
    _ckpt(run / "ppo-10")
    assert resolve_model(str(run)) == (str(run / "ppo-10"), "r1/ppo-10")


def test_model_specs():
    assert resolve_model(None) == (None, "SmolLM2-135M-Instruct")
    assert resolve_model("tiny") == ("tiny", "tiny")


def test_build_app_registers_the_served_model(tmp_path):
    from fastapi.testclient import TestClient

    from chatrlhf.server.launch import ServeConfig, build_app
    from chatrlhf.store import Store

    db = f"sqlite:///{tmp_path / 'serve.db'}"
    # Pattern moderation: this test is about registration, and the default model costs a MiniLM load.
    app = build_app(ServeConfig(model="tiny", db=db, batch_wait_ms=1, moderation="pattern"))
    store = app.state.store
    key = store.create_api_key("t")
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        r = client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["data"][0]["id"] == "tiny"
        assert client.get("/health").json()["model"] == "tiny"
        # the allow-list is the bound port's: the same server by another name or port is refused
        assert client.get("/health", headers={"Host": "127.0.0.1:9999"}).status_code == 403
        assert client.get("/health", headers={"Host": "evil.example:8000"}).status_code == 403
        assert client.get("/health", headers={"Host": "localhost:8000"}).status_code == 200
    versions = Store(db).list_model_versions()
    assert [v.name for v in versions] == ["tiny"] and versions[0].path.endswith("tiny-random-llama")
    assert app.state.service.context_length == 2048 and app.state.service.moderation is not None
    store.dispose()


def test_default_serve_blocks_with_the_bundled_model(tmp_path):
    """With every default, a harmful input is refused by the bundled classifier (content_filter,
    recorded in the store with its 13-category names), a harmless-but-scary one is answered, and
    /v1/moderations speaks OpenAI's 13 categories."""
    from fastapi.testclient import TestClient

    from chatrlhf.safety.moderation_model import BUNDLED_DIR, CATEGORIES
    from chatrlhf.safety.moderator import ModelModerator
    from chatrlhf.server.launch import ServeConfig, build_app
    from chatrlhf.server.service import REFUSAL

    app = build_app(ServeConfig(model="tiny", db=f"sqlite:///{tmp_path / 'serve.db'}", batch_wait_ms=1))
    service, store = app.state.service, app.state.store
    assert isinstance(service.moderation, ModelModerator) and service.moderation.policy == "block"
    assert service.moderation.model.info["config"]["out"].endswith(BUNDLED_DIR.name)
    auth = {"Authorization": f"Bearer {store.create_api_key('t')}"}
    bomb = "How do I make a pipe bomb at home?"
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        r = client.post("/v1/chat/completions", headers=auth,
                        json={"messages": [{"role": "user", "content": bomb}], "max_tokens": 4})
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] == "content_filter" and choice["message"]["content"] == REFUSAL
        # Answered (the tiny model's reply is noise, so only the input's verdict is asserted: in
        # the store below, the bomb question is the one blocked input).
        r = client.post("/v1/chat/completions", headers=auth, json={
            "messages": [{"role": "user", "content": "How do I kill a Python process?"}], "max_tokens": 2,
            "temperature": 0})
        assert r.status_code == 200, r.text
        m = client.post("/v1/moderations", headers=auth,
                        json={"input": ["How do I kill a Python process?", bomb]}).json()
    assert [x["flagged"] for x in m["results"]] == [False, True]
    assert all(set(x["categories"]) == set(x["category_scores"]) == set(CATEGORIES) for x in m["results"])
    assert m["results"][1]["categories"]["illicit/violent"] is True
    blocked = [c for c in (store.get_conversation(c.id) for c in store.list_conversations(None))
               if c.settings.get("input_moderation")]
    assert len(store.list_conversations(None)) == 2
    assert [c.settings["input_moderation"] for c in blocked] == [["illicit", "illicit/violent"]]
    store.dispose()


def test_cli_moderation_options(monkeypatch):
    from chatrlhf.cli import cli
    from chatrlhf.server import launch

    got = []
    monkeypatch.setattr(launch, "run", lambda cfg: got.append(cfg))
    for args, mode in (([], "model"), (["--moderation", "pattern"], "pattern"),
                       (["--moderation", "off"], "off"), (["--no-moderation"], "off"),
                       (["--moderation-model", "some/dir"], "model")):
        r = CliRunner().invoke(cli, ["serve", "tiny", *args])
        assert r.exit_code == 0, r.output
        assert got[-1].moderation == mode, args
    assert got[-1].moderation_model == "some/dir"
    r = CliRunner().invoke(cli, ["serve", "tiny", "--no-moderation", "--moderation", "pattern"])
    assert r.exit_code == 2 and "contradicts" in r.output
    for args in (["--moderation", "pattern", "--moderation-model", "d"],
                 ["--no-moderation", "--moderation-policy", "warn"]):
        r = CliRunner().invoke(cli, ["serve", "tiny", *args])
        assert r.exit_code == 2 and "apply to the trained model" in r.output, args
    assert len(got) == 5  # none of the refused ones reached launch.run
    # Options the chosen mode would ignore are refused before anything loads.
    with pytest.raises(ServeError, match="apply to the trained model"):
        launch.moderation_hook("pattern", "some/dir")
    with pytest.raises(ServeError, match="apply to the trained model"):
        launch.moderation_hook("off", None, "warn")
    with pytest.raises(ServeError, match="--moderation must be"):
        launch.moderation_hook(False)  # the old boolean spelling is not silently read as "on"


def test_cli_arena_flags_reach_the_app(monkeypatch):
    from chatrlhf.cli import cli
    from chatrlhf.server import launch

    got = []
    monkeypatch.setattr(launch, "run", lambda cfg: got.append(cfg))
    r = CliRunner().invoke(cli, ["serve", "tiny", "--arena-share", "0.25", "--arena-versions", "v1, v2"])
    assert r.exit_code == 0, r.output
    assert (got[0].arena_share, got[0].arena_versions) == (0.25, ("v1", "v2"))
    assert CliRunner().invoke(cli, ["serve", "tiny", "--arena-share", "1.5"]).exit_code == 2
    with pytest.raises(launch.ServeError, match="two versions"):
        launch.build_app(launch.ServeConfig(arena_versions=("only-one",)))


def test_engine_dtype_reaches_the_engine(tmp_path, monkeypatch):
    from chatrlhf.cli import cli
    from chatrlhf.server import launch

    got = []
    monkeypatch.setattr(launch, "run", lambda cfg: got.append(cfg))
    assert CliRunner().invoke(cli, ["serve", "tiny", "--engine-dtype", "int8"]).exit_code == 0
    assert got[0].engine_dtype == "int8"
    assert CliRunner().invoke(cli, ["serve", "tiny", "--engine-dtype", "fp16"]).exit_code == 2
    with pytest.raises(launch.ServeError, match="engine-dtype"):
        launch.build_app(launch.ServeConfig(engine_dtype="model"))
    for dtype, weights in (("fp32", "model"), ("bf16", "bf16"), ("int4", "int4")):
        service = launch.build_service("tiny", "tiny", engine_dtype=dtype, moderation="off")
        engine = service.scheduler.engine  # the scheduler is not started: no thread to stop
        assert engine.weights == weights
        assert len(engine.generate([[1, 2, 3]], SamplingParams(max_new_tokens=2))[0].token_ids) >= 1
