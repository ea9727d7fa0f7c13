"""`chatrlhf import`, `chatrlhf export rankings|demos` and `chatrlhf tasks` through click."""

from __future__ import annotations

import gzip
import json

import pytest

from click.testing import CliRunner

from chatrlhf.cli import cli
from chatrlhf.schema import Conversation, Ranking, read_jsonl


def test_export_group_is_shared_with_the_store():
    names = set(cli.commands["export"].commands)
    assert {"rankings", "demos"} <= names
    assert "import" in cli.commands and "tasks" in cli.commands


def test_import_to_files_reports_bad_lines(tmp_path, shared_data):
    runner = CliRunner()
    src = tmp_path / "mixed.jsonl"
    good = (shared_data / "self-instruct" / "seed_tasks.jsonl").read_text().splitlines()[:3]
    src.write_text("\n".join([good[0], "not json", good[1], json.dumps({"instruction": "x"}), good[2]]) + "\n")
    out = tmp_path / "sft.jsonl"
    r = runner.invoke(cli, ["import", "self-instruct", str(src), "--to", str(out)])
    assert r.exit_code == 0, r.output
    assert f"rejected {src}:2: invalid JSON" in r.output
    assert f"rejected {src}:4: instance 0 needs a non-empty string 'output'" in r.output
    assert "3 conversation(s), 0 ranking(s), 2 rejected line(s)" in r.output
    assert len(read_jsonl(out, Conversation)) == 3

    r = runner.invoke(cli, ["import", "oasst", str(shared_data / "oasst-sample" / "en_100_tree.jsonl"),
                            "--to", str(tmp_path / "oa.jsonl")])
    assert r.exit_code == 0, r.output
    assert len(read_jsonl(tmp_path / "oa.demos.jsonl", Conversation)) >= 90
    assert len(read_jsonl(tmp_path / "oa.rankings.jsonl", Ranking)) >= 150
    r = runner.invoke(cli, ["import", "oasst", str(src)])
    assert r.exit_code != 0 and "exactly one of --to FILE or --db URL" in r.output


def test_import_into_the_store_then_export(tmp_path, shared_data):
    runner = CliRunner()
    db = str(tmp_path / "ws.db")
    # The first 300 real records keep the test fast (the whole file is covered in the importer tests).
    with gzip.open(shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl.gz", "rt") as f:
        head = [next(f) for _ in range(300)]
    hh = tmp_path / "harmless-300.jsonl.gz"
    with gzip.open(hh, "wt") as f:
        f.writelines(head)
    r = runner.invoke(cli, ["import", "hh-rlhf", str(hh), "--db", db])
    assert r.exit_code == 0, r.output
    assert "imported 0 conversation(s) and 300 ranking(s)" in r.output
    r = runner.invoke(cli, ["export", "rankings", "--to", str(tmp_path / "r.jsonl"), "--db", db])
    assert r.exit_code == 0 and "wrote 300 ranking(s)" in r.output
    rankings = read_jsonl(tmp_path / "r.jsonl", Ranking)
    assert rankings[0].annotator == "hh-rlhf" and rankings[0].ranks == [0, 1]
    r = runner.invoke(cli, ["export", "demos", "--to", str(tmp_path / "d.jsonl"), "--db", db])
    assert r.exit_code == 0 and "wrote 0 demonstration(s)" in r.output
    r = runner.invoke(cli, ["tasks", "list", "--db", db])
    assert r.exit_code == 0 and "\tdone\t" in r.output


def test_pipeline_labels_db_reads_workspace_rankings(tmp_path):
    """`chatrlhf pipeline --labels db:URL` gets the workspace's rankings through export_rankings."""
    comparisons = pytest.importorskip("chatrlhf.comparisons")
    from chatrlhf import workspace as ws
    from chatrlhf.store import Store

    db = tmp_path / "labels.db"
    st = Store(str(db))
    st.upgrade()
    ws.import_records(st, [Ranking(prefix=[{"role": "user", "content": "q"}], completions=["a", "b"],
                                   ranks=[1, 0], annotator="hh-rlhf")], "import:test")
    st.dispose()
    (rk,) = comparisons.load_external(f"db:{db}")
    assert rk.completions == ["a", "b"] and rk.ranks == [1, 0]
