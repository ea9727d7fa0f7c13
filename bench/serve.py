"""Benchmark ``chatrlhf serve``: N concurrent streaming clients on loopback.

Starts the server in a subprocess (embedded SmolLM2 unless ``--model``; ``--no-auth`` on a free
loopback port, a throwaway SQLite store) or uses ``--url``. For each N in ``--clients`` it runs
``--rounds`` rounds in which N clients each stream one chat completion of ``--max-tokens`` tokens
(``ignore_eos`` so every reply has the same length) at the same moment, and prints:

  p50/p95 time to first token, p50 per-stream tokens/s (after the first token), aggregate
  tokens/s (all tokens / wall time of the round), and errors.

The acceptance target: aggregate at 8 clients >= 3x aggregate at 1, with 0 errors.

    python bench/serve.py                     # N = 1, 4, 8 against the embedded model
    python bench/serve.py --url http://127.0.0.1:8000 --key sk-...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import httpx

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle gear system works.",
    "Describe a walk through a forest in autumn.",
    "What should I pack for a week of hiking?",
    "Tell me about the history of tea.",
    "How do bees make honey?",
    "Give me tips for learning to cook.",
    "Describe the life of a city at night.",
]


@dataclass
class StreamResult:
    ttft: float = 0.0  # seconds from request to first content token
    duration: float = 0.0  # seconds from request to [DONE]
    tokens: int = 0
    error: str | None = None

    @property
    def tok_per_s(self) -> float:
        decode = self.duration - self.ttft
        return (self.tokens - 1) / decode if self.tokens > 1 and decode > 0 else 0.0


async def one_stream(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> StreamResult:
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0.8, "stream": True, "stream_options": {"include_usage": True},
            "ignore_eos": True}
    res = StreamResult()
    t0 = time.perf_counter()
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                res.error = f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"
                return res
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    res.tokens = chunk["usage"]["completion_tokens"]
                for ch in chunk["choices"]:
                    if ch["delta"].get("content") and not res.ttft:
                        res.ttft = time.perf_counter() - t0
        res.duration = time.perf_counter() - t0
        if res.tokens != max_tokens:
            res.error = f"expected {max_tokens} tokens, got {res.tokens}"
    except Exception as e:  # a benchmark counts every failure as an error
        res.error = f"{type(e).__name__}: {e}"
    return res


async def run_round(url: str, key: str, n: int, max_tokens: int) -> tuple[list[StreamResult], float]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=n + 2)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600, limits=limits) as c:
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *[one_stream(c, PROMPTS[i % len(PROMPTS)], max_tokens) for i in range(n)])
        return list(results), time.perf_counter() - t0


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def bench(url: str, key: str, clients: list[int], rounds: int, max_tokens: int) -> list[dict]:
    asyncio.run(run_round(url, key, 1, 8))  # warm-up: first-call allocations, caches
    rows = []
    for n in clients:
        results: list[StreamResult] = []
        aggregates = []
        batches_before = engine_batches(url)
        for _ in range(rounds):
            rs, wall = asyncio.run(run_round(url, key, n, max_tokens))
            results += rs
            aggregates.append(sum(r.tokens for r in rs if not r.error) / wall)
        ok = [r for r in results if not r.error]
        rows.append({
            "clients": n,
            "ttft_p50_s": pct([r.ttft for r in ok], 0.5),
            "ttft_p95_s": pct([r.ttft for r in ok], 0.95),
            "stream_tok_s_p50": pct([r.tok_per_s for r in ok], 0.5),
            "aggregate_tok_s": statistics.mean(aggregates),
            "errors": len(results) - len(ok),
            "engine_batches_per_round": (engine_batches(url) - batches_before) / rounds,
            "first_error": next((r.error for r in results if r.error), None),
        })
    return rows


def engine_batches(url: str) -> float:
    """How many engine batches the server has started (its /health says), NaN if unknown."""
    try:
        return httpx.get(f"{url}/health", timeout=10).json()["engine"]["batches_run"]
    except (httpx.HTTPError, KeyError, ValueError):
        return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str | None, port: int, db: str, max_batch_size: int,
                 threads: int, no_auth: bool = True, log=None, extra: list[str] = ()) -> subprocess.Popen:
    """``chatrlhf serve`` on loopback, once its /health answers (``log``: where its output goes)."""
    cmd = [sys.executable, "-c", "from chatrlhf.cli import main; main()", "serve",
           *([model] if model else []), *(["--no-auth"] if no_auth else []), "--host", "127.0.0.1",
           "--port", str(port), "--db", db, "--max-batch-size", str(max_batch_size), "--threads", str(threads),
           "--log-level", "warning", *extra]
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("server did not become healthy in 300 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="benchmark a running server instead of starting one")
    ap.add_argument("--key", default="bench", help="API key for --url")
    ap.add_argument("--model", default=None, help="model for the started server [embedded]")
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="server torch threads (0: half the CPUs)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    clients = [int(x) for x in args.clients.split(",")]

    proc = None
    url = args.url
    with tempfile.TemporaryDirectory() as tmp:
        if url is None:
            port = free_port()
            proc = start_server(args.model, port, os.path.join(tmp, "bench.db"), args.max_batch_size,
                                args.threads)
            url = f"http://127.0.0.1:{port}"
        try:
            rows = bench(url, args.key, clients, args.rounds, args.max_tokens)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)

    print(f"\nchatrlhf serve benchmark: {args.max_tokens} tokens per stream, {args.rounds} rounds, "
          f"model {args.model or 'embedded SmolLM2-135M-Instruct'}, server threads "
          f"{args.threads or 'auto'}")
    print(f"{'clients':>7} {'TTFT p50':>9} {'TTFT p95':>9} {'stream tok/s':>12} "
          f"{'aggregate tok/s':>15} {'errors':>6} {'batches/round':>13}")
    for r in rows:
        print(f"{r['clients']:>7} {r['ttft_p50_s']:>8.3f}s {r['ttft_p95_s']:>8.3f}s "
              f"{r['stream_tok_s_p50']:>12.1f} {r['aggregate_tok_s']:>15.1f} {r['errors']:>6} "
              f"{r['engine_batches_per_round']:>13.1f}")
        if r["first_error"]:
            print(f"        first error: {r['first_error']}")
    by_n = {r["clients"]: r for r in rows}
    if 1 in by_n and 8 in by_n:
        ratio = by_n[8]["aggregate_tok_s"] / max(by_n[1]["aggregate_tok_s"], 1e-9)
        errors = sum(r["errors"] for r in rows)
        verdict = "PASS" if ratio >= 3 and errors == 0 else "FAIL"
        print(f"aggregate(8) / aggregate(1) = {ratio:.2f}x (target >= 3x, 0 errors): {verdict}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
