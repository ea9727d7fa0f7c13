"""The store's CLI commands, and that a killed writer loses nothing it committed."""

import os
import signal
import subprocess
import sys
import textwrap

from click.testing import CliRunner

from chatrlhf import schema
from chatrlhf.cli import cli
from chatrlhf.store import Store


def test_keys_users_and_db_commands(db_url):
    runner = CliRunner()
    r = runner.invoke(cli, ["db", "upgrade", "--db", db_url])
    assert r.exit_code == 0 and "at revision" in r.output
    r = runner.invoke(cli, ["keys", "create", "--name", "ci", "--role", "trainer", "--db", db_url])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip()
    store = Store(db_url)
    assert key.startswith("sk-") and store.verify_api_key(key).role == "trainer"
    r = runner.invoke(cli, ["keys", "create", "--name", "ci", "--db", db_url])
    assert r.exit_code != 0 and "already exists" in r.output
    r = runner.invoke(cli, ["users", "create", "alice", "--role", "admin", "--password-stdin", "--db", db_url],
                      input="password123\n")
    assert r.exit_code == 0, r.output
    assert store.authenticate("alice", "password123").role == "admin"
    r = runner.invoke(cli, ["keys", "create", "--name", "laptop", "--user", "alice", "--db", db_url])
    assert store.verify_api_key(r.stdout.strip()).username == "alice"
    r = runner.invoke(cli, ["users", "list", "--db", db_url])
    assert r.output.splitlines()[1:] == [f"{store.get_user_by_name('alice').id}\talice\tadmin\tpassword"]
    r = runner.invoke(cli, ["keys", "list", "--db", db_url])
    assert "ci\t" + key[:10] in r.output and key not in r.output
    assert runner.invoke(cli, ["keys", "revoke", "ci", "--db", db_url]).exit_code == 0
    assert store.verify_api_key(key) is None
    store.dispose()


def test_export_feedback_command(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    store = Store(db)
    store.upgrade()
    alice = store.create_user("alice", "password1")
    conv = store.create_conversation(alice.id, messages=[{"role": "user", "content": "hi"},
                                                         {"role": "assistant", "content": "yo"}])
    better = store.add_message(conv.id, "assistant", "Hello! How can I help?", parent_id=conv.messages[0].id)
    store.set_feedback(better.id, alice.id, 1)
    runner = CliRunner()
    r = runner.invoke(cli, ["export", "feedback", "--to", str(tmp_path / "rankings.jsonl"), "--db", db])
    assert r.exit_code == 0 and "wrote 1 rankings records" in r.output, r.output
    (rk,) = schema.read_jsonl(tmp_path / "rankings.jsonl", schema.Ranking)
    assert (rk.completions, rk.ranks) == (["yo", "Hello! How can I help?"], [1, 0])
    r = runner.invoke(cli, ["export", "feedback", "--to", str(tmp_path / "sft.jsonl"), "--db", db])
    assert r.exit_code == 0 and "wrote 1 sft records" in r.output
    (demo,) = schema.read_jsonl(tmp_path / "sft.jsonl", schema.Conversation)
    assert demo.messages[-1]["content"] == "Hello! How can I help?"
    r = runner.invoke(cli, ["export", "feedback", "--to", str(tmp_path / "out.jsonl"), "--db", db])
    assert r.exit_code != 0 and "--kind" in r.output
    store.dispose()


def test_killed_process_keeps_committed_writes(tmp_path):
    db = f"sqlite:///{tmp_path / 'kill.db'}"
    # The child writes, reports the ids it was told are saved, then dies by SIGKILL mid-run
    # (no atexit, no close, no checkpoint of the WAL).
    code = textwrap.dedent(f"""
        import os, signal
        from chatrlhf.store import Store
        s = Store({db!r}); s.upgrade()
        u = s.create_user("alice", "password1")
        c = s.create_conversation(u.id, messages=[{{"role": "user", "content": "q"}}])
        m = s.add_message(c.id, "assistant", "a", parent_id=c.messages[0].id)
        s.set_feedback(m.id, u.id, -1, reasons=["untrue"])
        print(c.id, m.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr
    conv_id, msg_id = map(int, r.stdout.split())
    assert os.path.exists(tmp_path / "kill.db-wal")  # the writes were in the WAL when it died
    store = Store(db)
    conv = store.get_conversation(conv_id)
    assert [m.content for m in conv.messages] == ["q", "a"]
    assert [(f.message_id, f.rating, f.reasons) for f in conv.feedback] == [(msg_id, -1, ["untrue"])]
    store.dispose()
