"""``chatrlhf monitor --out report.html``: a self-contained report (no script, PNG charts inline)
with the per-version numbers, the arena's table and chart (or a line with no picks) and the shown
topics, and nothing of a small group's text."""

import re

from click.testing import CliRunner

from chatrlhf.cli import cli
from chatrlhf.deploy import monitor, monitor_report
from chatrlhf.store.arena_tables import add_pick
from topic_fixture import NOISE, SMALL, TOPICS

ODD = "<i>v$\\x$</i>"  # markup for the page, and invalid mathtext for matplotlib


def arena_turn(store, user, conv_id, parent_id, versions, choice):
    """An arena turn in conversation ``conv_id`` after ``parent_id``, answered by ``versions`` (A, B)."""
    turn = store.add_message(conv_id, "user", "and then?", parent_id=parent_id)
    for side, version in zip("AB", versions):
        store.add_message(conv_id, "assistant", "ok", parent_id=turn.id, model_version=version,
                          meta={"arena": {"turn": turn.id, "side": side}, "status": "done"})
    add_pick(store, user.id, turn.id, choice)


def test_monitor_writes_a_static_report(store, db_url, tmp_path):
    a = store.create_user("a")
    for i, text in enumerate([t for ts in TOPICS.values() for t in ts] + SMALL + NOISE):
        conv = store.create_conversation(a.id, messages=[
            {"role": "user", "content": text},
            {"role": "assistant", "content": "ok", "meta": {"ttft_s": 0.5, "tokens_per_s": 12.0}}],
            model_version="v1" if i % 2 else "v<2>")
        if i % 3 == 0:
            store.set_feedback(conv.messages[-1].id, a.id, 1 if i % 2 else -1)
        if i < 3:  # later turns of three conversations: their first messages, the topics, stay as they are
            arena_turn(store, a, conv.id, conv.messages[-1].id, ("v1", ODD) if i % 2 else (ODD, "v1"), "A")
    out = tmp_path / "report.html"
    r = CliRunner().invoke(cli, ["monitor", "--db", db_url, "--out", str(out), "--days", "3",
                                 "--min-topic-size", "8"])
    assert r.exit_code == 0, r.output
    assert "55 conversations" in r.output and "3 topics" in r.output and "3 arena picks" in r.output
    page = out.read_text()
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")  # self-contained
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 8  # six metric charts, arena, topics
    assert "v&lt;2&gt;" in page and "<2>" not in page  # store strings are escaped
    # The arena: ODD won picks 0 (as A) and 2 (as A), v1 pick 1 (as B): 2 of 3 and 1 of 3.
    arena = page[page.index("<h2>Arena</h2>"):page.index("<h2>What people ask about</h2>")]
    assert "3 picks, 3 games" in arena and "<i>" not in page
    assert ("<td>&lt;i&gt;v$\\x$&lt;/i&gt;</td><td>3</td><td>2 / 1 / 0</td><td>0</td>"
            "<td>66.7% (20.8%–93.9%)</td>") in arena
    assert "<td>v1</td><td>3</td><td>1 / 2 / 0</td><td>0</td><td>33.3% (6.1%–79.2%)</td>" in arena
    assert arena.count('src="data:image/png;base64,') == 1
    assert "python" in page and "zorblat" not in page.lower() and "quilt" not in page.lower()
    assert all(text not in page for text in SMALL + NOISE)
    # Topics from every user turn: the three conversations with later (arena) turns move away from
    # their opening's topic, which may then fall under the rule; the small group stays hidden.
    r = CliRunner().invoke(cli, ["monitor", "--db", db_url, "--out", str(out), "--days", "3",
                                 "--min-topic-size", "8", "--topic-turns", "all"])
    assert r.exit_code == 0 and re.search(r"\b[23] topics", r.output), r.output
    assert "zorblat" not in out.read_text().lower()
    r = CliRunner().invoke(cli, ["monitor", "--db", db_url, "--out", str(out), "--topic-turns", "last"])
    assert r.exit_code == 2 and "'last' is not one of" in r.output, r.output


def test_a_report_without_arena_picks_says_so(store):
    m = monitor.metrics(store, days=7)
    t = {"topics": [], "other": 0, "other_share": None, "clustered": 0, "conversations": 0,
         "min_cluster_size": 10, "sampled": False}
    page = monitor_report.render(m, t)
    assert "<h2>Arena</h2>\n<p class=\"muted\">No arena picks in this window.</p>" in page
    assert "Win rate (95% CI)" not in page
