"""Two real ``chatrlhf serve`` processes (the tiny model) on one PostgreSQL database that the test
starts (tests/pg_server.py): they start at once on an empty database (one migrates, the other
waits on the advisory lock and finds it migrated), a conversation started on one continues on
the other, feedback and reports written through both are all stored, and threads writing through
both at once lose nothing and get no 5xx. Everything goes through the web app's HTTP API; the
test reads the database only to check what the servers wrote."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import chatrlhf
from chatrlhf.store import Store
from chatrlhf.store.db import head_revision

pytestmark = pytest.mark.slow  # two process starts (model load included) on a busy CPU

PASSWORD = "two servers, one database"
JSON = {"X-Requested-With": "chatrlhf"}
# Cheap replies: the test is about what is stored, not what the tiny model says.
SETTINGS = {"max_tokens": 4, "temperature": 0.0}
START_TIMEOUT_S = 240


@dataclass
class Replica:
    url: str
    proc: subprocess.Popen
    log: Path

    def client(self, cookies: httpx.Cookies | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=JSON, timeout=60, cookies=cookies)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(db_url: str, log: Path) -> Replica:
    port = _free_port()
    # The subprocess imports the chatrlhf this test imported (a worktree's src/, say).
    src = str(Path(chatrlhf.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-c", "from chatrlhf.cli import main; main()", "serve", "tiny",
           "--port", str(port), "--db", db_url, "--threads", "1", "--max-batch-size", "4"]
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    return Replica(f"http://127.0.0.1:{port}", proc, log)


def _wait_healthy(r: Replica) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if r.proc.poll() is not None:
            pytest.fail(f"chatrlhf serve exited with {r.proc.returncode}:\n{r.log_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(r.url + "/health", timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    pytest.fail(f"chatrlhf serve did not answer /health in {START_TIMEOUT_S} s:\n{r.log_text()[-3000:]}")


def _stop(r: Replica) -> None:
    r.proc.terminate()
    try:
        r.proc.wait(20)
    except subprocess.TimeoutExpired:
        r.proc.kill()
        r.proc.wait(10)


@pytest.fixture(scope="module")
def replicas(pg_server, tmp_path_factory):
    """(store, A, B): both servers started at the same moment on one new, empty database."""
    db_url = pg_server.new_database()
    logs = tmp_path_factory.mktemp("replicas")
    started = [_spawn(db_url, logs / f"{name}.log") for name in "ab"]
    try:
        for r in started:
            _wait_healthy(r)
        store = Store(db_url)  # the test's own view of the database; migrated by the servers
        yield store, started[0], started[1]
        store.dispose()
    finally:
        for r in started:
            _stop(r)


def _assert_clean_logs(*rs: Replica) -> None:
    for r in rs:
        text = r.log_text()
        # uvicorn's access log line of any 5xx answer ends '" 5NN <reason>'.
        assert "Traceback" not in text and not re.search(r'" 5\d\d ', text), text[-4000:]


def _user(store: Store, name: str) -> None:
    if store.get_user_by_name(name) is None:
        store.create_user(name, PASSWORD)


def _login(r: Replica, name: str) -> httpx.Client:
    c = r.client()
    resp = c.post("/api/login", json={"username": name, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return c


def _send(c: httpx.Client, conv_id: int, content: str, parent_id: int | None) -> tuple[dict, dict]:
    """One user turn and its streamed reply: (user message, finished assistant message)."""
    body = {"content": content, "parent_id": parent_id}
    with c.stream("POST", f"/api/conversations/{conv_id}/messages", json=body) as resp:
        assert resp.status_code == 200, resp.read()
        events = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "user" and kinds[1] == "assistant" and kinds[-1] == "done", events
    return events[0]["message"], events[-1]["message"]


def _new_conv(c: httpx.Client, **body) -> int:
    resp = c.post("/api/conversations", json={"settings": SETTINGS, **body})
    assert resp.status_code == 200, resp.text
    return resp.json()["conversation"]["id"]


def test_both_start_at_once_on_an_empty_database(replicas):
    store, a, b = replicas
    assert store.revision() == head_revision()
    for r in (a, b):
        assert httpx.get(r.url + "/health").json()["version"] == "tiny"
    # Both registered the served model; the race left one row, not two and not a crash.
    assert [v.name for v in store.list_model_versions()] == ["tiny"]
    _assert_clean_logs(a, b)


def test_a_conversation_started_on_one_server_continues_on_the_other(replicas):
    store, a, b = replicas
    _user(store, "ann")
    on_a = _login(a, "ann")
    # The session cookie A issued is a row in the shared database: B knows it too.
    on_b = b.client(cookies=on_a.cookies)
    assert on_b.get("/api/me").json()["user"]["username"] == "ann"

    conv = _new_conv(on_a, system_prompt="Be brief.")
    u1, r1 = _send(on_a, conv, "Hello from server A.", None)
    u2, r2 = _send(on_b, conv, "And now from server B.", r1["id"])
    u3, r3 = _send(on_a, conv, "Back on A.", r2["id"])

    chain = [u1, r1, u2, r2, u3, r3]
    views = [c.get(f"/api/conversations/{conv}").json() for c in (on_a, on_b)]
    assert views[0] == views[1]
    msgs = views[0]["messages"]
    assert [m["id"] for m in msgs] == [m["id"] for m in chain]
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 3
    assert [m["content"] for m in msgs[::2]] == ["Hello from server A.", "And now from server B.", "Back on A."]
    # One branch, each turn under the previous one, and every reply finished.
    assert [m["parent_id"] for m in msgs] == [None] + [m["id"] for m in msgs[:-1]]
    assert all(m["status"] == "done" for m in msgs[1::2])
    assert views[0]["conversation"]["current_id"] == r3["id"]
    assert views[0]["conversation"]["title"] == "Hello from server A."
    # B's prompt was the whole branch read from the database, led by the system prompt.
    assert [m["content"] for m in store.prompt_messages(u2["id"])] == [
        "Be brief.", "Hello from server A.", r1["content"], "And now from server B."]
    # The list of conversations is the same from both servers.
    lists = [c.get("/api/conversations").json()["conversations"] for c in (on_a, on_b)]
    assert lists[0] == lists[1] and [x["id"] for x in lists[0]] == [conv]
    _assert_clean_logs(a, b)


def test_feedback_and_reports_through_both_servers_are_all_stored(replicas):
    store, a, b = replicas
    _user(store, "bob")
    on_a, on_b = _login(a, "bob"), _login(b, "bob")
    conv = _new_conv(on_a)
    _, r1 = _send(on_a, conv, "First question.", None)
    _, r2 = _send(on_b, conv, "Second question.", r1["id"])

    # Each reply is rated and reported through the server that did not write it.
    for c, reply, rating, reasons in ((on_b, r1, -1, ["unhelpful", "too short"]),
                                      (on_a, r2, 1, ["clear"])):
        resp = c.post(f"/api/messages/{reply['id']}/feedback",
                      json={"rating": rating, "reasons": reasons, "comment": f"on {reply['id']}"})
        assert resp.status_code == 200, resp.text
    assert on_a.post(f"/api/messages/{r1['id']}/report",
                     json={"kind": "untrue", "comment": "via A"}).status_code == 200
    assert on_b.post(f"/api/messages/{r2['id']}/report",
                     json={"kind": "harmful", "comment": "via B"}).status_code == 200
    # A second thumb on r1, through A this time, replaces the one B stored.
    resp = on_a.post(f"/api/messages/{r1['id']}/feedback", json={"rating": 1, "reasons": ["fixed"]})
    assert resp.status_code == 200

    uid = store.get_user_by_name("bob").id
    fb = {f.message_id: f for f in store.list_feedback(user_id=uid)}
    assert set(fb) == {r1["id"], r2["id"]}
    assert (fb[r1["id"]].rating, fb[r1["id"]].reasons) == (1, ["fixed"])
    assert (fb[r2["id"]].rating, fb[r2["id"]].reasons, fb[r2["id"]].comment) == (1, ["clear"], f"on {r2['id']}")
    reports = {(r.message_id, r.kind, r.comment) for r in store.list_reports() if r.user_id == uid}
    assert reports == {(r1["id"], "untrue", "via A"), (r2["id"], "harmful", "via B")}
    # And both servers show the same feedback and reports on the conversation.
    views = [c.get(f"/api/conversations/{conv}").json()["messages"] for c in (on_a, on_b)]
    assert views[0] == views[1]
    by_id = {m["id"]: m for m in views[0]}
    assert by_id[r2["id"]]["feedback"]["reasons"] == ["clear"] and by_id[r2["id"]]["reports"] == ["harmful"]
    assert by_id[r1["id"]]["reports"] == ["untrue"]
    _assert_clean_logs(a, b)


THREADS_PER_SERVER = 3


def test_concurrent_writes_through_both_servers_lose_nothing(replicas):
    store, a, b = replicas
    names = [f"w{i}" for i in range(2 * THREADS_PER_SERVER)]
    for n in names:
        _user(store, n)
    _user(store, "shared")
    # One conversation every thread writes into at once: a sibling turn each under one reply,
    # then, all at the same moment, the shared user's thumb on every sibling reply through both
    # servers, so a (message, user) row may be inserted by both at once (the timing decides).
    owner = _login(a, "shared")
    shared = _new_conv(owner)
    _, root_reply = _send(owner, shared, "Everyone answers here.", None)

    statuses: list[int] = []
    failures: list[str] = []
    siblings: list[int] = []
    lock = threading.Lock()
    together = threading.Barrier(len(names))

    def check(resp: httpx.Response) -> None:
        with lock:
            statuses.append(resp.status_code)

    def worker(i: int, replica: Replica) -> None:
        try:
            c = _login(replica, names[i])
            mine = replica.client(cookies=owner.cookies)  # the shared user's session, on this server
            conv = _new_conv(c, title=f"thread {i}")
            _, r = _send(c, conv, f"Question {i}.", None)
            check(c.post(f"/api/messages/{r['id']}/feedback", json={"rating": 1 if i % 2 else -1,
                                                                    "reasons": [f"r{i}"]}))
            check(c.post(f"/api/messages/{r['id']}/report", json={"kind": "untrue", "comment": str(i)}))
            _, sib = _send(mine, shared, f"Sibling {i}.", root_reply["id"])
            with lock:
                siblings.append(sib["id"])
            together.wait(120)
            for m in sorted(siblings):
                check(mine.post(f"/api/messages/{m}/feedback", json={"rating": 1, "reasons": [f"from {i}"]}))
        except BaseException as e:  # noqa: BLE001  (reported below, with the thread)
            together.abort()
            with lock:
                failures.append(f"thread {i}: {e!r}")

    threads = [threading.Thread(target=worker, args=(i, a if i % 2 == 0 else b))
               for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert failures == []
    assert len(statuses) == len(names) * (2 + len(names))
    assert all(s == 200 for s in statuses), statuses

    # Every thread's conversation, reply, thumb and report is there.
    for i, n in enumerate(names):
        uid = store.get_user_by_name(n).id
        convs = store.list_conversations(uid)
        assert [c.title for c in convs] == [f"thread {i}"]
        conv = store.get_conversation(convs[0].id)
        assert [m.role for m in conv.messages] == ["user", "assistant"]
        assert [(f.rating, f.reasons) for f in store.list_feedback(user_id=uid)] == [
            (1 if i % 2 else -1, [f"r{i}"])]
        assert [r.comment for r in store.list_reports() if r.user_id == uid] == [str(i)]
    # The shared conversation: one sibling turn and reply per thread under the first reply, ids
    # unique across both servers, and one thumb (the last one written) from the shared user.
    conv = store.get_conversation(shared)
    under = [m for m in conv.messages if m.parent_id == root_reply["id"]]
    assert sorted(m.content for m in under) == sorted(f"Sibling {i}." for i in range(len(names)))
    replies = [m for m in conv.messages if m.parent_id in {u.id for u in under}]
    assert len(replies) == len(names) and all(m.meta.get("status") == "done" for m in replies)
    assert len({m.id for m in conv.messages}) == len(conv.messages) == 2 + 2 * len(names)
    shared_uid = store.get_user_by_name("shared").id
    thumbs = store.list_feedback(user_id=shared_uid)
    assert sorted(f.message_id for f in thumbs) == sorted(siblings) == sorted(m.id for m in replies)
    assert all(f.reasons[0] in {f"from {i}" for i in range(len(names))} for f in thumbs)
    _assert_clean_logs(a, b)

