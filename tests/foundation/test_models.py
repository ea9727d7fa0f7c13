import pytest

from chatrlhf.models import ModelNotFoundError, cache_dir, load_model, resolve_model_dir


def test_missing_model_names_everything_tried(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError) as e:
        load_model(str(missing))
    msg = str(e.value)
    assert str(missing) in msg and "smollm2" in msg and "tiny" in msg


def test_directory_without_config_is_explained(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model_dir(tmp_path)


def test_hub_id_is_offline_by_default(monkeypatch):
    monkeypatch.delenv("CHATRLHF_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(ModelNotFoundError, match="offline by default"):
        resolve_model_dir("nobody/no-such-model-xyz")


def test_embedded_default_is_cached_as_safetensors(smollm2):
    model, tok = smollm2
    d = resolve_model_dir(None)
    assert d.parent == cache_dir() and (d / "model.safetensors").exists()
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert tok.eos_token == "<|im_end|>"


def test_checkpoint_directory_loads_in_plain_transformers(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    model, tok = tiny
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, _ = load_model(str(tmp_path))
    plain = AutoModelForCausalLM.from_pretrained(tmp_path)
    for a, b in zip(again.parameters(), plain.parameters()):
        assert (a == b).all()
