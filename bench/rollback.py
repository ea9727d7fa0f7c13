"""Promote and roll back a live ``chatrlhf serve`` under streaming load; time each switch.

    python bench/rollback.py                 # embedded SmolLM2, 8 streaming clients
    python bench/rollback.py --clients 4 --json rollback.json

Two versions, ``v1`` and ``v2``, are registered in a throwaway SQLite store (both point at the
embedded model's directory unless ``--v2 DIR`` names another model: the timing is about the swap,
not the weights), ``v1`` is promoted, and the server starts following the registry. While
``--clients`` users stream replies in a loop:

1. ``chatrlhf models promote v2`` runs as a separate process (as an operator would); the clock
   stops at the first reply whose ``system_fingerprint`` is ``v2`` (a cold switch: v2 is loaded).
2. ``chatrlhf models rollback`` runs the same way; the clock stops at the first reply by ``v1``
   (a warm switch: the server keeps the previous version loaded).

Prints, per switch: the command's own wall time, the time from the command's start to the first
reply by the new version, and the streams that failed or were cut during the run (target 0; every
stream that started on the old version must finish there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import PROMPTS, free_port, start_server  # noqa: E402  (a sibling benchmark script)


def cli(db: str, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from chatrlhf.cli import main; main()", "models", *args,
                    "--db", db], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


class Load:
    def __init__(self, url: str, clients: int, max_tokens: int):
        self.url, self.clients, self.max_tokens = url, clients, max_tokens
        self.done: list[tuple[float, str, str]] = []  # (end time, version, finish reason)
        self.errors: list[str] = []
        self.stop = False

    async def user(self, i: int) -> None:
        body = {"messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                "max_tokens": self.max_tokens, "stream": True}
        async with httpx.AsyncClient(base_url=self.url, timeout=300) as c:
            while not self.stop:
                version, finish = "", None
                try:
                    async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                        if r.status_code != 200:
                            self.errors.append(f"HTTP {r.status_code}")
                            continue
                        async for line in r.aiter_lines():
                            if not line.startswith("data: ") or line == "data: [DONE]":
                                continue
                            ev = json.loads(line[6:])
                            if "error" in ev:
                                self.errors.append(ev["error"]["message"])
                            version = ev.get("system_fingerprint") or version
                            for ch in ev.get("choices", []):
                                finish = ch.get("finish_reason") or finish
                except httpx.HTTPError as e:
                    self.errors.append(type(e).__name__)
                    continue
                if finish is None:
                    self.errors.append("stream ended without a finish reason")
                self.done.append((time.perf_counter(), version, finish or ""))


async def first_reply(url: str, version: str, since: float, timeout: float = 600) -> float:
    """Seconds from ``since`` to the first short probe answered by ``version``."""
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    async with httpx.AsyncClient(base_url=url, timeout=300) as c:
        while time.perf_counter() - since < timeout:
            r = await c.post("/v1/chat/completions", json=body)
            if r.status_code == 200 and r.json().get("system_fingerprint") == version:
                return time.perf_counter() - since
            await asyncio.sleep(0.05)
    raise SystemExit(f"{version} did not answer within {timeout} s")


async def switch(db: str, url: str, args: list[str], version: str) -> dict[str, float]:
    t0 = time.perf_counter()
    cmd = asyncio.create_task(asyncio.to_thread(cli, db, *args))
    first = await first_reply(url, version, t0)
    return {"command_s": round(await cmd, 2), "first_reply_s": round(first, 2)}


async def scenario(url: str, db: str, clients: int, max_tokens: int, settle_s: float) -> dict:
    load = Load(url, clients, max_tokens)
    users = [asyncio.create_task(load.user(i)) for i in range(clients)]
    await asyncio.sleep(settle_s)  # every user mid-stream
    promote = await switch(db, url, ["promote", "v2", "--no-gate", "--report", "bench"], "v2")
    await asyncio.sleep(settle_s)
    rollback = await switch(db, url, ["rollback"], "v1")
    await asyncio.sleep(settle_s)
    load.stop = True
    await asyncio.gather(*users)
    by_version: dict[str, int] = {}
    for _, v, _ in load.done:
        by_version[v] = by_version.get(v, 0) + 1
    return {"clients": clients, "promote_v2_cold": promote, "rollback_v1_warm": rollback,
            "replies": len(load.done), "replies_by_version": by_version,
            "errors": len(load.errors), "first_errors": load.errors[:5]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--settle-s", type=float, default=20.0, help="load before and after each switch")
    ap.add_argument("--v2", default=None, help="model directory for v2 [the embedded model's]")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    from chatrlhf.deploy import registry
    from chatrlhf.models import resolve_model_dir
    from chatrlhf.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/rollback.db"
        store = Store(db)
        store.upgrade()
        base = str(resolve_model_dir(None))
        registry.register(store, "v1", base, kind="base")
        registry.register(store, "v2", a.v2 or base, kind="ppo", parent="v1")
        registry.promote(store, "v1", actor="bench")
        store.dispose()
        port = free_port()
        log = open(os.path.join(tmp, "server.log"), "w")
        print("starting the server (embedded model, following the registry) ...", flush=True)
        # One local user makes every request here: no per-user quotas.
        proc = start_server(None, port, db, 16, a.threads, no_auth=True, log=log,
                            extra=["--requests-per-minute", "0", "--max-concurrent", "0"])
        try:
            out = asyncio.run(scenario(f"http://127.0.0.1:{port}", db, a.clients, a.max_tokens, a.settle_s))
        finally:
            proc.terminate()
            proc.wait(30)
    p, r = out["promote_v2_cold"], out["rollback_v1_warm"]
    print(f"{a.clients} streaming clients, {out['replies']} replies {out['replies_by_version']}")
    print(f"promote v2 (cold, loads v2): command {p['command_s']} s, first reply by v2 {p['first_reply_s']} s after the command started")
    print(f"rollback to v1 (warm): command {r['command_s']} s, first reply by v1 {r['first_reply_s']} s after the command started")
    print(f"failed or cut streams: {out['errors']} (target 0) {out['first_errors']}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0 if out["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
