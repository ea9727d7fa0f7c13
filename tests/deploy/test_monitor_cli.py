"""``chatrlhf monitor --out report.html``: a self-contained report (no script, PNG charts inline)
with the per-version numbers and the shown topics, and nothing of a small group's text."""

import re

from click.testing import CliRunner

from chatrlhf.cli import cli
from topic_fixture import NOISE, SMALL, TOPICS


def test_monitor_writes_a_static_report(store, db_url, tmp_path):
    a = store.create_user("a")
    for i, text in enumerate([t for ts in TOPICS.values() for t in ts] + SMALL + NOISE):
        conv = store.create_conversation(a.id, messages=[
            {"role": "user", "content": text},
            {"role": "assistant", "content": "ok", "meta": {"ttft_s": 0.5, "tokens_per_s": 12.0}}],
            model_version="v1" if i % 2 else "v<2>")
        if i % 3 == 0:
            store.set_feedback(conv.messages[-1].id, a.id, 1 if i % 2 else -1)
    out = tmp_path / "report.html"
    r = CliRunner().invoke(cli, ["monitor", "--db", db_url, "--out", str(out), "--days", "3",
                                 "--min-topic-size", "8"])
    assert r.exit_code == 0, r.output
    assert "55 conversations" in r.output and "3 topics" in r.output
    page = out.read_text()
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")  # self-contained
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 7  # six metric charts + topics
    assert "v&lt;2&gt;" in page and "<2>" not in page  # store strings are escaped
    assert "python" in page and "zorblat" not in page.lower() and "quilt" not in page.lower()
    assert all(text not in page for text in SMALL + NOISE)
