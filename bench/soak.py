"""Soak ``chatrlhf serve``: streaming users, an attacker, a health probe, then ``kill -9``.

    python bench/soak.py                       # 8 users for 10 minutes, embedded SmolLM2
    python bench/soak.py --minutes 2 --json soak.json

The server runs in a subprocess on a free loopback port with a throwaway SQLite store, with
auth and moderation on. Each client has its own API key (so per-user quotas do not interfere).

1. **Soak.** ``--clients`` users loop for ``--minutes``: open a conversation, stream a reply
   through the web API (``/api/conversations/{id}/messages``), rate it (thumbs with a reason),
   and every third turn stream through ``/v1/chat/completions`` as well. At the same time an
   attacker sends the moderation filter's pathological inputs (repeated words, 32 KB without
   punctuation, nested brackets) to ``/v1/moderations`` and as chat messages, and bad numbers
   (a 2^70 seed, negative or huge ``max_tokens``, NaN-like temperatures, 2^70 ids). A probe
   asks ``/health`` four times a second.
2. **Kill.** The users start one more stream each; once every stream has sent a first token and
   the feedback of the turn before is acknowledged, the server gets SIGKILL. It is restarted on
   the same store, and every message id and feedback row the server acknowledged before the kill
   (an ``assistant``/``done`` event, a 200 on feedback) is looked up again.

Prints: user errors (target 0), p50/p95 time to first token, the attacker's statuses (target: no
5xx), the largest ``/health`` latency (target < 1 s), and acknowledged vs found rows after the
kill (target: all found).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import PROMPTS, free_port, pct, start_server  # noqa: E402  (a sibling benchmark script)

BIG = 2 ** 70
PATHOLOGICAL = [
    "kill " + "the " * 40 + "!",
    "how to make a " + "very " * 2000 + "bomb",
    "x" * 32_000,
    "(" * 5000 + "kill" + ")" * 5000,
    "[" * 3000 + "steal a car" + "]" * 3000,
    ("hate " * 3000).strip(),
]
BAD_BODIES = [
    {"seed": BIG},
    {"max_tokens": -1},
    {"max_tokens": BIG},
    {"temperature": 1e308},
    {"top_p": -3},
    {"n": 10 ** 6},
    {"messages": []},
    {"messages": [{"role": "wizard", "content": "hi"}]},
]


@dataclass
class Stats:
    ttft: list[float] = field(default_factory=list)
    turns: int = 0
    errors: list[str] = field(default_factory=list)
    attacker: Counter = field(default_factory=Counter)
    health: list[float] = field(default_factory=list)
    health_errors: int = 0
    # what the server acknowledged: (key index, conversation id) -> message ids; message id -> rating
    messages: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    feedback: dict[tuple[int, int], int] = field(default_factory=dict)


def make_keys(db: str, n: int) -> list[str]:
    from chatrlhf.store import Store

    store = Store(db)
    store.upgrade()
    keys = [store.create_api_key(f"soak-{i}") for i in range(n)]
    store.dispose()
    return keys


async def sse_events(client: httpx.AsyncClient, url: str, body: dict):
    """Yields (status, event dict) from a streaming POST; a non-200 yields one (status, None)."""
    async with client.stream("POST", url, json=body) as r:
        if r.status_code != 200:
            await r.aread()
            yield r.status_code, None
            return
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                yield 200, json.loads(line[6:])


async def web_turn(c: httpx.AsyncClient, i: int, n: int, st: Stats, first_token: asyncio.Event | None = None,
                   conv: int | None = None) -> tuple[int, int] | None:
    """One conversation turn through the web API; returns (conversation id, reply id)."""
    t0 = time.perf_counter()
    if conv is None:
        r = await c.post("/api/conversations", json={})
        if r.status_code != 200:
            st.errors.append(f"create conversation: HTTP {r.status_code}")
            return None
        conv = r.json()["conversation"]["id"]
        st.messages.setdefault((i, conv), set())
    reply, got = None, False
    async for status, ev in sse_events(c, f"/api/conversations/{conv}/messages",
                                       {"content": PROMPTS[(i + n) % len(PROMPTS)]}):
        if ev is None:
            st.errors.append(f"send: HTTP {status}")
            return None
        kind = ev.get("type")
        if kind in ("user", "assistant", "done"):
            st.messages[(i, conv)].add(ev["message"]["id"])
            if kind != "user":
                reply = ev["message"]["id"]
        elif kind == "delta" and not got:
            got = True
            st.ttft.append(time.perf_counter() - t0)
            if first_token is not None:
                first_token.set()
        elif kind == "error":
            st.errors.append(f"stream error event: {ev.get('error')}")
            return None
    st.turns += 1
    return conv, reply


async def rate(c: httpx.AsyncClient, i: int, reply: int, n: int, st: Stats) -> None:
    rating = 1 if n % 2 else -1
    r = await c.post(f"/api/messages/{reply}/feedback",
                     json={"rating": rating, "reasons": [] if rating > 0 else ["not_helpful"]})
    if r.status_code == 200:
        st.feedback[(i, reply)] = rating
    else:
        st.errors.append(f"feedback: HTTP {r.status_code} {r.text[:120]}")


async def v1_turn(c: httpx.AsyncClient, n: int, st: Stats) -> None:
    t0, got = time.perf_counter(), False
    body = {"messages": [{"role": "user", "content": PROMPTS[n % len(PROMPTS)]}], "max_tokens": 32, "stream": True}
    async for status, ev in sse_events(c, "/v1/chat/completions", body):
        if ev is None:
            st.errors.append(f"/v1 stream: HTTP {status}")
            return
        if not got and any(ch["delta"].get("content") for ch in ev.get("choices", [])):
            got = True
            st.ttft.append(time.perf_counter() - t0)
    st.turns += 1


async def user(url: str, key: str, i: int, until: float, st: Stats) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600) as c:
        n = 0
        while time.time() < until:
            try:
                got = await web_turn(c, i, n, st)
                if got and got[1] is not None:
                    await rate(c, i, got[1], n, st)
                if n % 3 == 2:
                    await v1_turn(c, n, st)
            except httpx.HTTPError as e:  # a benchmark counts every failure
                st.errors.append(f"{type(e).__name__}: {e}")
            n += 1


async def attacker(url: str, key: str, until: float, st: Stats) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        n = 0
        while time.time() < until:
            try:
                text = PATHOLOGICAL[n % len(PATHOLOGICAL)]
                r = await c.post("/v1/moderations", json={"input": text})
                st.attacker[f"moderations {r.status_code}"] += 1
                bad = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **BAD_BODIES[n % len(BAD_BODIES)]}
                r = await c.post("/v1/chat/completions", json=bad)
                st.attacker[f"bad numbers {r.status_code}"] += 1
                r = await c.get(f"/api/conversations/{BIG}")
                st.attacker[f"huge id {r.status_code}"] += 1
                if n % 4 == 0:  # a pathological message through the whole chat path (input moderation)
                    r = await c.post("/v1/chat/completions",
                                     json={"messages": [{"role": "user", "content": text[:30000]}], "max_tokens": 4})
                    st.attacker[f"pathological chat {r.status_code}"] += 1
            except httpx.HTTPError as e:
                st.attacker[type(e).__name__] += 1
            n += 1
            await asyncio.sleep(0.05)


async def probe(url: str, until: float, st: Stats) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        while time.time() < until:
            t0 = time.perf_counter()
            try:
                r = await c.get("/health")
                if r.status_code != 200:
                    st.health_errors += 1
            except httpx.HTTPError:
                st.health_errors += 1
            st.health.append(time.perf_counter() - t0)
            await asyncio.sleep(0.25)


async def soak(url: str, keys: list[str], minutes: float, st: Stats) -> None:
    until = time.time() + minutes * 60
    users = [user(url, k, i, until, st) for i, k in enumerate(keys[:-1])]
    await asyncio.gather(*users, attacker(url, keys[-1], until, st), probe(url, until, st))


async def kill_mid_stream(url: str, keys: list[str], proc: subprocess.Popen, st: Stats) -> int:
    """Every user starts a turn; SIGKILL once each has a first token. Returns streams cut."""
    firsts = [asyncio.Event() for _ in keys[:-1]]
    clients = [httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {k}"}, timeout=600) for k in keys[:-1]]

    async def one(i: int) -> None:
        try:
            await web_turn(clients[i], i, 99, st, first_token=firsts[i])
        except httpx.HTTPError:
            pass  # the kill cuts it: expected

    tasks = [asyncio.create_task(one(i)) for i in range(len(clients))]
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in firsts)), timeout=300)
    except asyncio.TimeoutError:
        pass
    cut = sum(not t.done() for t in tasks)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in clients:
        await c.aclose()
    return cut


def verify(url: str, keys: list[str], st: Stats) -> dict[str, int]:
    found_m = found_f = 0
    for (i, conv), ids in st.messages.items():
        r = httpx.get(f"{url}/api/conversations/{conv}", headers={"Authorization": f"Bearer {keys[i]}"}, timeout=60)
        if r.status_code != 200:
            continue
        msgs = {m["id"]: m for m in r.json()["messages"]}
        found_m += sum(m in msgs for m in ids)
        for (j, reply), rating in st.feedback.items():
            if j == i and reply in msgs and (msgs[reply]["feedback"] or {}).get("rating") == rating:
                found_f += 1
    return {"messages_acknowledged": sum(len(v) for v in st.messages.values()), "messages_found": found_m,
            "feedback_acknowledged": len(st.feedback), "feedback_found": found_f}


def main() -> int:
    ap = argparse.ArgumentParser(description="Soak chatrlhf serve, then kill -9 it mid-stream.")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=8, help="streaming users (an attacker comes on top)")
    ap.add_argument("--threads", type=int, default=0, help="the server's torch threads (0 = its default)")
    ap.add_argument("--json", default="", help="also write the figures here")
    a = ap.parse_args()
    st = Stats()
    with tempfile.TemporaryDirectory() as tmp:
        db, port = os.path.join(tmp, "soak.db"), free_port()
        url = f"http://127.0.0.1:{port}"
        keys = make_keys(db, a.clients + 1)
        log = open(os.path.join(tmp, "server.log"), "ab")
        print(f"starting the server (embedded model) on {url} ...", flush=True)
        proc = start_server(None, port, db, 16, a.threads, no_auth=False, log=log)
        try:
            print(f"soak: {a.clients} users + 1 attacker + /health probe for {a.minutes:g} min", flush=True)
            t0 = time.time()
            asyncio.run(soak(url, keys, a.minutes, st))
            soak_s = time.time() - t0
            user_errors = list(st.errors)
            cut = asyncio.run(kill_mid_stream(url, keys, proc, st))
            print(f"kill -9 with {cut} streams open; restarting on the same store", flush=True)
            proc = start_server(None, port, db, 16, a.threads, no_auth=False, log=log)
            after = verify(url, keys, st)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
            log.close()
            server_log = Path(tmp, "server.log").read_text(errors="replace")
    fives = {k: v for k, v in st.attacker.items() if k.split()[-1].startswith("5")}
    out = {
        "minutes": a.minutes, "soak_s": round(soak_s, 1), "clients": a.clients, "turns": st.turns,
        "user_errors": len(user_errors), "first_user_errors": user_errors[:5],
        "ttft_p50_s": pct(st.ttft, 0.5), "ttft_p95_s": pct(st.ttft, 0.95),
        "attacker": dict(st.attacker), "attacker_5xx": sum(fives.values()),
        "health_max_s": max(st.health, default=float("nan")), "health_p95_s": pct(st.health, 0.95),
        "health_errors": st.health_errors, "streams_cut_by_kill": cut, **after,
        "server_tracebacks": server_log.count("Traceback"),
    }
    print(f"\nturns {out['turns']} in {out['soak_s']:.0f} s; user errors {out['user_errors']} (target 0)")
    for e in out["first_user_errors"]:
        print(f"  {e}")
    print(f"time to first token p50 {out['ttft_p50_s']:.2f} s, p95 {out['ttft_p95_s']:.2f} s")
    print(f"attacker: {json.dumps(out['attacker'], sort_keys=True)}; 5xx {out['attacker_5xx']} (target 0)")
    print(f"/health: largest {out['health_max_s']:.3f} s (target < 1 s), p95 {out['health_p95_s']:.3f} s, "
          f"errors {out['health_errors']}")
    print(f"after kill -9: messages {out['messages_found']}/{out['messages_acknowledged']}, "
          f"feedback {out['feedback_found']}/{out['feedback_acknowledged']} (target: all)")
    print(f"server tracebacks in its log: {out['server_tracebacks']}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    ok = (out["user_errors"] == 0 and out["attacker_5xx"] == 0 and out["health_max_s"] < 1.0
          and out["messages_found"] == out["messages_acknowledged"]
          and out["feedback_found"] == out["feedback_acknowledged"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
