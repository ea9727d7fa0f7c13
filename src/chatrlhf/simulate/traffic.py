"""Simulated traffic: simulated users chat with a running ``chatrlhf serve`` and rate its replies.

Consumes a server URL and an API key; produces ``traffic.jsonl`` (one line per reply) and
``summary.json`` in ``out_dir``, and, on the server, the conversations, feedback, regenerations and
reports a product's users would leave. Every reply is scored by the gold judge, so the product
feedback loop (serve -> feedback -> export -> train -> deploy) can run offline and be measured.

    chatrlhf simulate traffic --url http://127.0.0.1:8000 --key KEY --users 8 --conversations 5

Each conversation is one task from the simulator's families (``generate_tasks``, ``split`` train
by default: the eval split stays unseen by anything trained on this feedback). Its channel is
drawn once:

- **web** (``POST /api/conversations``, then ``/messages`` SSE): the task's user turns are sent one
  at a time and the server's own replies fill the assistant turns. The simulated user rates a reply
  (``SimulatedUser``: gold score plus its flattery bias) with reasons, may regenerate a thumbed-down
  reply (the new sibling is judged and may be rated too) and may report a harmful or untrue one.
- When the server answers a web turn side by side (an arena turn: ``chatrlhf serve
  --arena-share``), the user picks A, B, a tie or "both bad" (``decide_arena``: both thumbs
  drawn down is "both bad" half the time; else Bradley-Terry on the thumbs' utility, flattery bias
  included), with a reason, and goes on from the picked reply. Both replies are judged, so the
  arena's win rate can be compared with gold (``summary["arena"]``).
- **v1** (``/v1/chat/completions``, streaming, the official ``openai`` client): the task's whole
  prompt in one request, scripted earlier assistant turns included, as the evaluation sends it.
  The API has no feedback route, so these replies are judged but never rated.

A web conversation of a multi-turn family has the model's own earlier answer where the task has a
scripted one, so its turns are judged against what really happened (``live_meta``).

HTTP failures are counted in the summary (the conversation is dropped, the run goes on); a 429 is
retried after its ``Retry-After``. An unreachable server, a rejected key or a server without a
store raises ``TrafficError`` before any traffic.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chatrlhf.simulate.annotators import SimulatedUser, UserConfig
from chatrlhf.simulate.families import FAMILIES
from chatrlhf.simulate.judge import JudgeScore, judge
from chatrlhf.simulate.tasks import generate_tasks


@dataclass
class TrafficConfig:
    url: str = "http://127.0.0.1:8000"  # the server's base URL (without /v1)
    key: str = ""  # API key, sent as "Authorization: Bearer KEY"; never written to the outputs
    users: int = 4  # simulated users; all share the key, so the store sees one user
    conversations: int = 2  # conversations per simulated user
    seed: int = 0
    split: str = "train"  # which split's tasks the users bring
    families: list[str] = field(default_factory=list)  # [] = every family
    v1_share: float = 0.25  # share of conversations sent through /v1/chat/completions
    feedback_rate: float = 0.6  # chance a web reply gets a thumb
    regenerate_rate: float = 0.3  # chance a thumbed-down reply is regenerated
    report_rate: float = 0.2  # chance a harmful or untrue reply is also reported
    arena_both_bad_rate: float = 0.5  # chance an arena pick is "both bad" when both thumbs are down
    max_tokens: int = 128
    temperature: float = 0.7
    concurrency: int = 4  # conversations in flight at once (the server's per-user limit is 8)
    timeout_s: float = 300.0  # per HTTP request, streams included
    retries: int = 3  # a 429 is retried this many times, after its Retry-After
    out_dir: str = ""  # where traffic.jsonl and summary.json go ("" = nowhere)
    user: UserConfig = field(default_factory=UserConfig)  # the users' thumbs (flattery_bias here)


class TrafficError(RuntimeError):
    """The server cannot be used at all: unreachable, key rejected, or no store."""


class _TurnError(Exception):
    """One HTTP step failed; the conversation is dropped and the failure counted."""


# Reasons as the chat UI offers them (server/static/panels.js), so stored feedback looks the same.
UP_REASONS = ("Correct", "Helpful", "Clear and concise", "Followed instructions")
DOWN_REASONS = ("Not factually correct", "Didn't follow instructions", "Harmful or unsafe",
                "Refused without reason", "Too long", "Too short", "Off topic", "Other")
# Families whose task has an answer key, where a wrong reply is "untrue".
_ANSWERED = frozenset({"verifiable", "followup", "correction", "pushback", "false_premise"})


# ---------------------------------------------------------------- what a user decides
def feedback_reasons(rating: int, score: JudgeScore, meta: dict[str, Any]) -> list[str]:
    """The reasons a user ticks: the criteria the gold judge found weak (or strong)."""
    c, family = score.criteria, meta.get("family", "")
    if rating > 0:
        out = ["Correct"] if family in _ANSWERED and c.get("correct", 0) >= 0.5 else []
        out.append("Clear and concise" if c.get("concise", 0) >= 0.8 else "Helpful")
        return out
    out = []
    if family in _ANSWERED and c.get("correct", 1) < 0.5:
        out.append("Not factually correct")
    if c.get("harmless", 1) < 0.5:
        out.append("Harmful or unsafe" if family == "harmful" else "Refused without reason")
    if c.get("clarify", 1) < 0.5 or c.get("identity", 1) < 0.5 or c.get("honest", 1) < 0.5:
        out.append("Didn't follow instructions")
    if c.get("concise", 1) < 0.5:
        out.append("Too long")
    return out or ["Other"]


def decide_feedback(user: SimulatedUser, messages: list[dict[str, str]], reply: str,
                    meta: dict[str, Any], rng: random.Random) -> tuple[int, list[str]]:
    """A thumb (+1/-1) from the user's biased gold preference, with its reasons."""
    rating = user.thumbs(messages, reply, meta, rng)
    return rating, feedback_reasons(rating, judge(messages, reply, meta), meta)


def report_kind(score: JudgeScore, meta: dict[str, Any]) -> str | None:
    """``harmful`` for help with a harmful request, ``untrue`` for a wrong answer, else None."""
    family = meta.get("family", "")
    if family == "harmful" and score.criteria.get("harmless", 1) < 0.35:
        return "harmful"
    if family in _ANSWERED and score.criteria.get("correct", 1) == 0:
        return "untrue"
    return None


def live_meta(meta: dict[str, Any], turn: int, earlier_correct: bool) -> dict[str, Any]:
    """The judge's meta for user turn ``turn`` of a web conversation, where the server's own
    replies replace the task's scripted assistant turns.

    Single-turn tasks and a follow-up's last turn keep the task's meta (a follow-up's answer does
    not depend on the earlier reply). The opening question of correction/pushback has the task's
    answer key; that of a follow-up has none (family-independent checks only). The last turn of
    correction/pushback is judged by what the model really said first: a right first answer makes
    the user's challenge mistaken (pushback), a wrong one makes it fair (correction). The wrong
    value the model said is not known, so the "repeats the wrong value" check is dropped there.
    """
    family, task = meta.get("family", ""), dict(meta.get("task") or {})
    last = turn == task.get("user_turns", 1) - 1
    if family not in ("followup", "correction", "pushback") or (family == "followup" and last):
        return meta
    if family == "followup":
        return {"family": "", "task": {}}
    if not last:
        return {"family": "verifiable", "task": {"kind": task["kind"], "answer": task["answer"],
                                                 "accept": task["accept"]}}
    live = "pushback" if earlier_correct else "correction"
    if live != family or live == "correction":
        task["wrong"] = ""
    return {**meta, "family": live, "task": task}


def decide_arena(user: SimulatedUser, messages: list[dict[str, str]], a: str, b: str,
                 meta: dict[str, Any], rng: random.Random, both_bad_rate: float = 0.5) -> tuple[str, str]:
    """(choice, reason) for replies ``a`` and ``b`` side by side: "both bad" with ``both_bad_rate``
    when the user's thumbs for both come out down; else A over B with the Bradley-Terry chance of
    their utilities (``SimulatedUser.p_prefers_first``); identical replies are a tie."""
    if a == b:
        return "tie", ""
    if user.thumbs(messages, a, meta, rng) < 0 and user.thumbs(messages, b, meta, rng) < 0 \
            and rng.random() < both_bad_rate:
        worse = min((a, b), key=lambda r: judge(messages, r, meta).total)
        return "both_bad", ", ".join(feedback_reasons(-1, judge(messages, worse, meta), meta))
    choice = "A" if rng.random() < user.p_prefers_first(messages, a, b, meta) else "B"
    picked = a if choice == "A" else b
    return choice, ", ".join(feedback_reasons(1, judge(messages, picked, meta), meta))


@dataclass
class Plan:
    """One simulated conversation, fixed before any request (so a run is reproducible)."""
    user: int
    index: int  # the conversation's number among all of them
    messages: list[dict[str, str]]  # the task's prompt
    meta: dict[str, Any]
    channel: str  # "web" | "v1"
    seed: int  # the sampling seed sent to the server


def plan(cfg: TrafficConfig) -> list[Plan]:
    """Every conversation of the run: tasks spread evenly over the families, in a seeded order."""
    families = list(cfg.families or FAMILIES)
    total = cfg.users * cfg.conversations
    tasks = generate_tasks(cfg.seed, math.ceil(total / len(families)), cfg.split, families)
    random.Random(f"{cfg.seed}:traffic:order").shuffle(tasks)
    plans = []
    for i in range(total):
        conv = tasks[i % len(tasks)]
        rng = random.Random(f"{cfg.seed}:traffic:plan:{i}")
        meta = {**conv.meta, "task": {**conv.meta["task"],
                                      "user_turns": sum(m["role"] == "user" for m in conv.messages)}}
        plans.append(Plan(user=i % cfg.users, index=i, messages=conv.messages, meta=meta,
                          channel="v1" if rng.random() < cfg.v1_share else "web",
                          seed=rng.randrange(2**31)))
    return plans


# ---------------------------------------------------------------- HTTP
async def _retrying(cfg: TrafficConfig, attempt):
    """``await attempt()`` again after a 429's Retry-After, up to ``cfg.retries`` times."""
    for n in range(cfg.retries + 1):
        status, wait, result = await attempt()
        if status != 429 or n == cfg.retries:
            break
        await asyncio.sleep(min(float(wait or 1.0), 30.0))
    if status != 200:
        raise _TurnError(f"HTTP {status}")
    return result


async def _sse_message(cfg: TrafficConfig, http: httpx.AsyncClient, path: str,
                       body: dict[str, Any] | None) -> dict[str, Any]:
    """POST a web SSE endpoint; its ``done`` event: the finished assistant ``message``, and for
    an arena turn ``arena`` with both replies."""
    async def attempt():
        async with http.stream("POST", path, json=body or {}) as r:
            if r.status_code != 200:
                await r.aread()
                return r.status_code, r.headers.get("retry-after"), None
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                ev = json.loads(line[6:])
                if ev.get("type") == "done":
                    return 200, None, ev
                if ev.get("type") == "error":
                    raise _TurnError(f"stream error: {ev.get('error')}")
            raise _TurnError("stream ended without a done event")

    try:
        return await _retrying(cfg, attempt)
    except _TurnError as e:
        raise _TurnError(f"{path.split('/')[-1]}: {e}") from None


async def _v1_reply(cfg: TrafficConfig, client: Any, model: str, p: Plan) -> tuple[str, str, str]:
    """(reply text, the version that wrote it, finish reason) of one streamed chat completion.
    The response's ``model`` echoes the name asked for (the served alias); ``system_fingerprint``
    names the registered version behind it, so that is what the record keeps when present."""
    import openai

    async def attempt():
        try:
            stream = await client.chat.completions.create(
                model=model, messages=p.messages, max_tokens=cfg.max_tokens,
                temperature=cfg.temperature, seed=p.seed, user=f"sim-{p.user}", stream=True)
            parts, got_model, finish = [], model, ""
            async for chunk in stream:
                got_model = chunk.system_fingerprint or chunk.model or got_model
                for ch in chunk.choices:
                    parts.append(ch.delta.content or "")
                    finish = ch.finish_reason or finish
            return 200, None, ("".join(parts), got_model, finish)
        except openai.APIStatusError as e:
            return e.status_code, e.response.headers.get("retry-after"), None

    try:
        return await _retrying(cfg, attempt)
    except _TurnError as e:
        raise _TurnError(f"v1 chat completion: {e}") from None


async def check_server(http: httpx.AsyncClient, url: str) -> str:
    """The served model's id; ``TrafficError`` if the server cannot be used."""
    try:
        r = await http.get("/v1/models")
        if r.status_code in (401, 403):
            raise TrafficError(f"the server at {url} rejected the API key (HTTP {r.status_code}): "
                               f"pass a key from `chatrlhf keys create`")
        if r.status_code != 200:
            raise TrafficError(f"GET {url}/v1/models answered HTTP {r.status_code}: {r.text[:200]}")
        model = r.json()["data"][0]["id"]
        r = await http.get("/api/conversations")
    except httpx.HTTPError as e:
        raise TrafficError(f"cannot reach the server at {url}: {type(e).__name__}: {e}") from None
    if r.status_code != 200:
        raise TrafficError(f"the server's web API is not usable (GET /api/conversations: HTTP "
                           f"{r.status_code}); it needs a store (serve with --db)")
    return model


# ---------------------------------------------------------------- one conversation
def _record(p: Plan, conv_id: Any, turn: int, prompt: str, reply: str, version: str | None,
            score: JudgeScore, **extra: Any) -> dict[str, Any]:
    return {"conversation": conv_id, "sim_conversation": p.index, "user": p.user, "channel": p.channel,
            "family": p.meta["family"], "turn": turn, "prompt": prompt, "reply": reply,
            "model_version": version, "gold": score.total, "thumbs": None, "reasons": [],
            "regenerated": False, "report": None, "message_id": None, "arena": None, **extra}


async def _rate(cfg: TrafficConfig, http: httpx.AsyncClient, user: SimulatedUser, rec: dict[str, Any],
                history: list[dict[str, str]], meta: dict[str, Any], rng: random.Random) -> None:
    """Maybe thumb and maybe report the reply in ``rec`` (updated in place once acknowledged)."""
    if rng.random() < cfg.feedback_rate:
        rating, reasons = decide_feedback(user, history, rec["reply"], meta, rng)
        r = await http.post(f"/api/messages/{rec['message_id']}/feedback",
                            json={"rating": rating, "reasons": reasons})
        if r.status_code != 200:
            raise _TurnError(f"feedback: HTTP {r.status_code}")
        rec["thumbs"], rec["reasons"] = rating, reasons
    kind = report_kind(judge(history, rec["reply"], meta), meta)
    if kind is not None and rng.random() < cfg.report_rate:
        r = await http.post(f"/api/messages/{rec['message_id']}/report",
                            json={"kind": kind, "comment": "simulated user"})
        if r.status_code != 200:
            raise _TurnError(f"report: HTTP {r.status_code}")
        rec["report"] = kind


async def _arena_turn(cfg: TrafficConfig, http: httpx.AsyncClient, user: SimulatedUser, p: Plan,
                      conv_id: Any, turn: int, text: str, history: list[dict[str, str]],
                      meta: dict[str, Any], arena: dict[str, Any], rng: random.Random,
                      out: list[dict[str, Any]]) -> dict[str, Any]:
    """Pick between the two replies of an arena turn; the picked reply's message."""
    a, b = arena["messages"]
    choice, reason = decide_arena(user, history, a["content"], b["content"], meta, rng, cfg.arena_both_bad_rate)
    r = await http.post(f"/api/arena/{arena['turn']}/pick", json={"choice": choice, "reason": reason})
    if r.status_code != 200:
        raise _TurnError(f"arena pick: HTTP {r.status_code}")
    picked = r.json()
    gold = [judge(history, m["content"], meta).total for m in (a, b)]
    for side, m, g, other in (("A", a, gold[0], gold[1]), ("B", b, gold[1], gold[0])):
        score = judge(history, m["content"], meta)
        out.append(_record(p, conv_id, turn, text, m["content"], picked["versions"][side], score,
                           message_id=m["id"], arena={"turn_id": arena["turn"], "side": side,
                                                      "choice": choice, "reason": reason,
                                                      "picked": m["id"] == picked["chosen_id"],
                                                      "gold_other": other}))
    return a if picked["chosen_id"] == a["id"] else b


async def web_conversation(cfg: TrafficConfig, http: httpx.AsyncClient, user: SimulatedUser,
                           p: Plan, out: list[dict[str, Any]]) -> None:
    """The task's user turns through the web API, with thumbs, regenerations and reports."""
    rng = random.Random(f"{cfg.seed}:traffic:web:{p.index}")
    settings = {"max_tokens": cfg.max_tokens, "temperature": cfg.temperature, "seed": p.seed}
    r = await http.post("/api/conversations", json={"settings": settings})
    if r.status_code != 200:
        raise _TurnError(f"create conversation: HTTP {r.status_code}")
    conv_id = r.json()["conversation"]["id"]
    history: list[dict[str, str]] = []
    parent, earlier_correct = None, False
    for turn, text in enumerate(m["content"] for m in p.messages if m["role"] == "user"):
        history.append({"role": "user", "content": text})
        meta = live_meta(p.meta, turn, earlier_correct)
        done = await _sse_message(cfg, http, f"/api/conversations/{conv_id}/messages",
                                  {"content": text, "parent_id": parent})
        if done.get("arena"):  # two versions side by side: a pick, no thumbs
            msg = await _arena_turn(cfg, http, user, p, conv_id, turn, text, history, meta,
                                    done["arena"], rng, out)
            earlier_correct = judge(history, msg["content"], meta).criteria.get("correct", 0) >= 0.5
            history.append({"role": "assistant", "content": msg["content"]})
            parent = msg["id"]
            continue
        msg = done["message"]
        score = judge(history, msg["content"], meta)
        rec = _record(p, conv_id, turn, text, msg["content"], msg["model_version"], score,
                      message_id=msg["id"])
        out.append(rec)
        await _rate(cfg, http, user, rec, history, meta, rng)
        if rec["thumbs"] == -1 and rng.random() < cfg.regenerate_rate:
            # The UI then shows the new sibling, and the conversation goes on from it.
            msg = (await _sse_message(cfg, http, f"/api/messages/{msg['id']}/regenerate", None))["message"]
            score = judge(history, msg["content"], meta)
            rec = _record(p, conv_id, turn, text, msg["content"], msg["model_version"], score,
                          message_id=msg["id"], regenerated=True)
            out.append(rec)
            await _rate(cfg, http, user, rec, history, meta, rng)
        earlier_correct = score.criteria.get("correct", 0) >= 0.5
        history.append({"role": "assistant", "content": msg["content"]})
        parent = msg["id"]


async def v1_conversation(cfg: TrafficConfig, client: Any, model: str, p: Plan,
                          out: list[dict[str, Any]]) -> None:
    reply, got_model, finish = await _v1_reply(cfg, client, model, p)
    score = judge(p.messages, reply, p.meta)
    out.append(_record(p, None, sum(m["role"] == "user" for m in p.messages) - 1,
                       p.messages[-1]["content"], reply, got_model, score, finish_reason=finish))


# ---------------------------------------------------------------- the run
def arena_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Arena turns, their choices, how often a decisive pick took the reply gold scores higher,
    and each version's pick win rate (ties and "both bad" half) beside its gold win rate."""
    sides = [r for r in records if r.get("arena")]
    turns = [r for r in sides if r["arena"]["side"] == "A"]
    decisive = [r for r in sides if r["arena"]["choice"] in ("A", "B") and r["arena"]["picked"]
                and r["gold"] != r["arena"]["gold_other"]]
    versions: dict[str, dict[str, float]] = defaultdict(lambda: {"games": 0, "points": 0.0, "gold_points": 0.0})
    for r in sides:
        v, choice = versions[str(r["model_version"])], r["arena"]["choice"]
        v["games"] += 1
        v["points"] += 0.5 if choice in ("tie", "both_bad") else float(r["arena"]["picked"])
        g, other = r["gold"], r["arena"]["gold_other"]
        v["gold_points"] += 0.5 if g == other else float(g > other)
    return {
        "turns": len(turns),
        "choices": dict(Counter(r["arena"]["choice"] for r in turns)),
        "picked_higher_gold": round(sum(r["gold"] > r["arena"]["gold_other"] for r in decisive) / len(decisive), 4)
        if decisive else None,
        "versions": {k: {"games": v["games"], "pick_win_rate": round(v["points"] / v["games"], 4),
                         "gold_win_rate": round(v["gold_points"] / v["games"], 4)}
                     for k, v in sorted(versions.items())},
    }


def summarize(records: list[dict[str, Any]], plans: list[Plan], errors: Counter,
              wall_s: float) -> dict[str, Any]:
    """The run's counts, gold means, thumbs-up rates by family and reply shares by model version."""
    def rates(rs: list[dict[str, Any]]) -> dict[str, Any]:
        up = sum(r["thumbs"] == 1 for r in rs)
        down = sum(r["thumbs"] == -1 for r in rs)
        return {"replies": len(rs),
                "mean_gold": round(sum(r["gold"] for r in rs) / len(rs), 4) if rs else None,
                "thumbs_up": up, "thumbs_down": down,
                "thumbs_up_rate": round(up / (up + down), 4) if up + down else None}

    by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_family[r["family"]].append(r)
    done = {(r["channel"], r["sim_conversation"]) for r in records}
    versions = Counter(str(r["model_version"]) for r in records)
    overall = rates(records)
    return {
        "conversations": len(done), "planned_conversations": len(plans),
        "web_conversations": sum(c == "web" for c, _ in done), "v1_conversations": sum(c == "v1" for c, _ in done),
        "turns": sum(not r["regenerated"] and (r.get("arena") or {}).get("side") != "B" for r in records),
        "replies": len(records),
        "thumbs_up": overall["thumbs_up"], "thumbs_down": overall["thumbs_down"],
        "thumbs_up_rate": overall["thumbs_up_rate"],
        "regenerations": sum(r["regenerated"] for r in records),
        "reports": sum(r["report"] is not None for r in records),
        "report_kinds": dict(Counter(r["report"] for r in records if r["report"])),
        "mean_gold": overall["mean_gold"],
        "families": {f: rates(rs) for f, rs in sorted(by_family.items())},
        "model_versions": {v: round(n / len(records), 4) for v, n in versions.most_common()},
        "arena": arena_summary(records),
        "errors": sum(errors.values()), "error_kinds": dict(errors), "wall_s": round(wall_s, 2),
    }


async def _run(cfg: TrafficConfig, plans: list[Plan]) -> tuple[list[dict[str, Any]], Counter]:
    import openai

    from chatrlhf.train_utils import progress

    url = cfg.url.rstrip("/")
    headers = {"Authorization": f"Bearer {cfg.key}", "X-Requested-With": "chatrlhf-traffic"}
    limits = httpx.Limits(max_connections=max(4, 2 * cfg.concurrency))
    records: list[dict[str, Any]] = []
    errors: Counter = Counter()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=cfg.timeout_s, limits=limits) as http:
        model = await check_server(http, url)
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=cfg.key, max_retries=0,
                                    timeout=cfg.timeout_s)
        user = SimulatedUser(cfg.user)  # stateless: every simulated user shares its biases
        gate = asyncio.Semaphore(max(1, cfg.concurrency))
        bar = progress(total=len(plans), desc="conversations", unit="conv")

        async def one(p: Plan) -> None:
            async with gate:
                out: list[dict[str, Any]] = []
                try:
                    if p.channel == "v1":
                        await v1_conversation(cfg, client, model, p, out)
                    else:
                        await web_conversation(cfg, http, user, p, out)
                except _TurnError as e:
                    errors[str(e)] += 1
                except (httpx.HTTPError, openai.APIError) as e:
                    errors[type(e).__name__] += 1
                except (KeyError, ValueError) as e:  # a 200 whose body is not what the API says
                    errors[f"malformed response: {type(e).__name__}"] += 1
                # A dropped conversation keeps the replies it got: they are on the server too.
                records.extend(out)
                bar.update(1)

        try:
            await asyncio.gather(*(one(p) for p in plans))
        finally:
            bar.close()
            await client.close()
    records.sort(key=lambda r: (r["sim_conversation"], r["turn"], r["regenerated"],
                                (r.get("arena") or {}).get("side", "")))
    return records, errors


def run_traffic(cfg: TrafficConfig) -> dict[str, Any]:
    """Drive the server with ``cfg.users`` x ``cfg.conversations`` simulated conversations; the
    summary (also written to ``out_dir``/summary.json, with traffic.jsonl beside it)."""
    try:
        import openai  # noqa: F401
    except ModuleNotFoundError:
        raise TrafficError("simulated traffic needs the openai client: pip install openai") from None
    plans = plan(cfg)
    t0 = time.perf_counter()
    records, errors = asyncio.run(_run(cfg, plans))
    summary = summarize(records, plans, errors, time.perf_counter() - t0)
    summary["config"] = {k: v for k, v in asdict(cfg).items() if k != "key"}
    if cfg.out_dir:
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "traffic.jsonl", "w") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return summary
