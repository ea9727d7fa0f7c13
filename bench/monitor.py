"""Time the monitoring page with 10,000 conversations in the store.

    python bench/monitor.py                      # 10,000 conversations over 14 days, 3 versions
    python bench/monitor.py --conversations 2000 --json monitor.json

Fills a throwaway SQLite store in one transaction: each conversation's first user message is a
simulator prompt (every task family, so the topics are real ones), one reply (a regeneration on
every 5th), with latency meta, thumbs on 40% of the replies, a moderation flag on 3%, a report on
1%; versions v1, v2 and v3 (v3 only in the last 4 days). Then, against a live server (tiny
model, the store above):

1. ``deploy.monitor.metrics`` called directly (median of 3);
2. ``GET /api/admin/monitor?days=14``: the first call (topics not computed yet), the time until
   the background topics are ready, and warm calls (median of 5);
3. headless Chromium: the monitoring page from navigation to every chart drawn, cold (the
   topics still computing) and warm (topics cached), and the admin page (/workspace/admin) to
   its network going idle.

Prints each figure in seconds.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from uvicorn_live import run_uvicorn  # noqa: E402  (the tests' live-server helper)

PASSWORD = "bench-password-1"
CHROMIUM = "/usr/bin/chromium"


def fill(store, n: int, days: int = 14, seed: int = 0) -> dict[str, int]:
    """``n`` conversations in one transaction (core inserts with explicit ids and times)."""
    from sqlalchemy import insert

    from chatrlhf.simulate.tasks import FAMILIES, generate_tasks
    from chatrlhf.store.models import ConversationRow, FeedbackRow, MessageRow, ReportRow

    rng = random.Random(seed)
    prompts = [c.messages[0]["content"] for c in generate_tasks(seed, n // len(FAMILIES) + 1, "train")
               if c.messages and c.messages[0]["role"] == "user"]
    rng.shuffle(prompts)
    users = [store.create_user(f"u{i}") for i in range(50)]
    now = datetime.now(timezone.utc)
    convs, msgs, fbs, reps = [], [], [], []
    mid = 0
    for cid in range(1, n + 1):
        t = now - timedelta(seconds=rng.uniform(0, days * 86400 - 60))
        version = "v3" if t > now - timedelta(days=4) and rng.random() < 0.5 else rng.choice(["v1", "v2"])
        user = rng.choice(users)
        convs.append({"id": cid, "user_id": user.id, "title": "", "system_prompt": "", "settings": {},
                      "source": "web", "created_at": t, "updated_at": t})
        mid += 1
        first = mid
        msgs.append({"id": mid, "conversation_id": cid, "parent_id": None, "role": "user",
                     "content": prompts[cid % len(prompts)], "model_version": None, "created_at": t, "meta": {}})
        for k in range(2 if cid % 5 == 0 else 1):
            mid += 1
            meta = {"status": "done", "finish_reason": "stop", "completion_tokens": rng.randint(20, 200),
                    "ttft_s": round(rng.lognormvariate(-1.0 if version != "v3" else -0.7, 0.5), 3),
                    "tokens_per_s": round(rng.gauss(18 if version != "v3" else 14, 3), 2)}
            if rng.random() < 0.03:
                meta["moderation"], meta["finish_reason"] = ["violence"], "content_filter"
            msgs.append({"id": mid, "conversation_id": cid, "parent_id": first, "role": "assistant",
                         "content": "a reply", "model_version": version,
                         "created_at": t + timedelta(seconds=5 + k), "meta": meta})
            if rng.random() < 0.4:
                up = rng.random() < {"v1": 0.7, "v2": 0.75, "v3": 0.8}[version]
                fbs.append({"message_id": mid, "user_id": user.id, "rating": 1 if up else -1, "reasons": [],
                            "comment": "", "created_at": t + timedelta(seconds=30)})
            if rng.random() < 0.01:
                reps.append({"user_id": user.id, "kind": rng.choice(["harmful", "untrue"]), "message_id": mid,
                             "comment": "", "text": "", "status": "open", "created_at": t + timedelta(seconds=60)})
        convs[-1]["current_id"] = mid
    with store.transaction() as s:
        for table, rows in ((ConversationRow, convs), (MessageRow, msgs), (FeedbackRow, fbs), (ReportRow, reps)):
            for i in range(0, len(rows), 5000):
                s.execute(insert(table), rows[i:i + 5000])
    return {"conversations": len(convs), "messages": len(msgs), "feedback": len(fbs), "reports": len(reps)}


def median_time(fn, n: int) -> float:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def browser_figures(url: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = b.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"{url}/?next=/workspace/monitor")
        page.fill("#login-username", "root")
        page.fill("#login-password", PASSWORD)
        t0 = time.perf_counter()
        page.click("#login-submit")
        page.wait_for_selector("body[data-loaded='1']", timeout=120_000)
        out["page_cold_charts_s"] = time.perf_counter() - t0  # includes the login round trip
        page.wait_for_selector("#topics tr[data-topic]", timeout=600_000)
        out["page_cold_topics_s"] = time.perf_counter() - t0
        warm = []
        for _ in range(3):
            t0 = time.perf_counter()
            page.goto(f"{url}/workspace/monitor")
            page.wait_for_selector("body[data-loaded='1'] #topics tr[data-topic]", timeout=60_000)
            page.wait_for_function("() => window.Chart.getChart(document.getElementById('chart-topics'))")
            warm.append(time.perf_counter() - t0)
        out["page_warm_s"] = statistics.median(warm)
        admin = []
        for _ in range(3):
            t0 = time.perf_counter()
            page.goto(f"{url}/workspace/admin", wait_until="networkidle")
            admin.append(time.perf_counter() - t0)
        out["admin_page_s"] = statistics.median(admin)
        b.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conversations", type=int, default=10_000)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    import httpx

    from chatrlhf.deploy import monitor
    from chatrlhf.server.app import create_app
    from chatrlhf.server.launch import build_service
    from chatrlhf.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    store = Store(f"sqlite:///{tmp}/store.db")
    store.upgrade()
    t0 = time.perf_counter()
    counts = fill(store, args.conversations)
    figures: dict[str, float | int] = {**counts, "fill_s": time.perf_counter() - t0}
    store.create_user("root", PASSWORD, "admin")
    key = store.create_api_key("bench-admin", role="admin")

    figures["metrics_direct_s"] = median_time(lambda: monitor.metrics(store, 14, "day"), 3)
    figures["metrics_direct_hour_s"] = median_time(lambda: monitor.metrics(store, 14, "hour"), 3)

    service = build_service("tiny", "chatrlhf", store=store, max_batch_size=2, moderation="off")
    app = create_app(service, store=store, moderation=None)
    with run_uvicorn(app) as url:
        figures.update(browser_figures(url))  # the browser's first visit is the cold one
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        r = api.get("/api/admin/monitor", params={"days": 14}).json()
        figures["topics_compute_s"] = r["topics"].get("seconds")
        figures["topics_shown"] = len(r["topics"]["topics"])
        figures["topics_clustered"] = r["topics"]["clustered"]
        figures["topics_other"] = r["topics"]["other"]
        figures["api_warm_s"] = median_time(lambda: api.get("/api/admin/monitor", params={"days": 14}), 5)
        figures["api_warm_hour_s"] = median_time(
            lambda: api.get("/api/admin/monitor", params={"days": 14, "bucket": "hour"}), 3)
        labels = [t["label"] for t in r["topics"]["topics"]]
    store.dispose()
    for k, v in figures.items():
        print(f"{k:24s} {v:.3f}" if isinstance(v, float) else f"{k:24s} {v}")
    print("topics:", "; ".join(labels))
    if args.json:
        Path(args.json).write_text(json.dumps({**figures, "topics": labels}, indent=1))


if __name__ == "__main__":
    main()
