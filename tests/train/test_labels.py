"""Label sources for the comparison step: a rankings file, the store, and bad specs."""

import pytest

from chatrlhf.comparisons import SampleConfig, load_external, run
from chatrlhf.schema import Ranking, read_jsonl, write_jsonl


def _rankings():
    return [Ranking(prefix=[{"role": "user", "content": f"q{i}"}], completions=["a", "b"], ranks=[0, 1],
                    annotator="human") for i in range(3)]


def test_rankings_file_is_used_as_labels_without_sampling(tmp_path):
    write_jsonl(tmp_path / "r.jsonl", _rankings())
    out = tmp_path / "compare"
    summary = run("no-model-needed", [], out, str(tmp_path / "r.jsonl"), SampleConfig(), seed=0, round_=1)
    assert summary["rankings"] == 3 and (out / "DONE").exists()
    assert [r.prefix for r in read_jsonl(out / "rankings.jsonl", Ranking)] == [r.prefix for r in _rankings()]


def test_bad_label_spec_names_the_choices(tmp_path):
    with pytest.raises(FileNotFoundError, match="sim"):
        load_external(str(tmp_path / "missing.jsonl"))


def test_store_export_reads_an_empty_store(tmp_path):
    pytest.importorskip("sqlalchemy")
    assert load_external(f"db:{tmp_path / 'chat.db'}") == []
    with pytest.raises(ValueError, match="no rankings"):
        run("x", [], tmp_path / "c", f"db:{tmp_path / 'chat.db'}", SampleConfig(), seed=0, round_=1)
