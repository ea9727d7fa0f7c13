"""The product feedback that arrived since a watermark, as rankings for the reward model.

Consumes a Store and a ``Watermark`` (the highest message, feedback, report, workspace-ranking
and arena-pick ids, and the newest feedback time, that an earlier loop round consumed). Produces a
``NewFeedback``: the rankings touched by anything newer, the prompts of the conversations they came
from, counts by source, and the watermark to hand to the next round. ``chatrlhf.deploy.loop`` is its one caller.

Where pairwise signal comes from (and where it does not):
- regenerations: siblings under one user message rated differently (``export_feedback_rankings``);
- the same exact context answered in different conversations and rated differently
  (``export_same_prompt_rankings``; ``same_prompt=False`` leaves them out);
- trainer workspace rankings (``workspace.export_rankings``), new by ranking id;
- arena picks (``arena_rankings``: two versions answered one turn side by side and the user
  picked; ``store.export.export_arena_rankings``), new by pick id; a regeneration "ranking" of
  the same two replies (thumbs on both) is left out, the pick already compares them.
Every new thumb is also a ``schema.Rating`` (the reply, its context, ±1), which the reward model
learns pointwise: most thumbs have no pair. A thumb on a reply with no differently-rated
alternative to the same context is *not* turned into a pair. Pairing it with a reply to a similar
prompt compares answers to different questions; pairing it with a freshly sampled reply needs someone to rank the fresh one, and ranking it with the current
reward model only teaches the new RM what the old one believed. Such thumbs are counted
(``unpaired_thumbs``) and their prompts still go to PPO.

A ranking is new when one of its replies is a message newer than the watermark, or has feedback or
a report newer than it. A thumb changed later keeps its row id but gets a new time, hence the time
in the watermark. A removed thumb leaves no trace and is not seen. Each ranking gets
``meta["loop_key"]`` (its regeneration set, context or workspace ranking), so a later round's
version of the same set supersedes the earlier one instead of counting twice.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from chatrlhf.store.models import FeedbackRow, MessageRow, ReportRow


@dataclass
class Watermark:
    message_id: int = 0
    feedback_id: int = 0
    feedback_at: str = ""  # ISO time of the newest feedback consumed ("" = none yet)
    report_id: int = 0
    ws_ranking_id: int = 0
    arena_pick_id: int = 0  # picks never change once made, so the id alone says what is new

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NewFeedback:
    rankings: list[Any]  # schema.Ranking, each with meta["loop_key"]
    prompts: list[Any]  # schema.Conversation ending on the user turn that was answered
    ratings: list[Any] = field(default_factory=list)  # schema.Rating per new thumb, meta["loop_key"]
    counts: dict[str, Any] = field(default_factory=dict)
    watermark: Watermark = field(default_factory=Watermark)


def _workspace_ranking_ids(s: Any) -> int:
    try:
        from chatrlhf.store.workspace_tables import RankingRow
    except ImportError:
        return 0
    return s.scalar(select(func.max(RankingRow.id))) or 0


def _arena_pick_ids(s: Any) -> int:
    try:
        from chatrlhf.store.arena_tables import ArenaPickRow
    except ImportError:
        return 0
    return s.scalar(select(func.max(ArenaPickRow.id))) or 0


def watermark_of(store: Any) -> Watermark:
    """The highest ids (and feedback time) in the store now."""
    with store.session() as s:
        at = s.scalar(select(func.max(FeedbackRow.created_at)))
        return Watermark(message_id=s.scalar(select(func.max(MessageRow.id))) or 0,
                         feedback_id=s.scalar(select(func.max(FeedbackRow.id))) or 0,
                         feedback_at=at.isoformat() if at else "",
                         report_id=s.scalar(select(func.max(ReportRow.id))) or 0,
                         ws_ranking_id=_workspace_ranking_ids(s),
                         arena_pick_id=_arena_pick_ids(s))


def _touched(store: Any, w: Watermark) -> tuple[set[int], list[Any], list[Any], list[MessageRow]]:
    """Ids of messages touched since ``w``, and the new feedback, reports and assistant messages."""
    with store.session() as s:
        q = select(FeedbackRow).where(FeedbackRow.id > w.feedback_id)
        if w.feedback_at:
            q = select(FeedbackRow).where((FeedbackRow.id > w.feedback_id)
                                          | (FeedbackRow.created_at > datetime.fromisoformat(w.feedback_at)))
        fb = list(s.scalars(q.order_by(FeedbackRow.id)))
        reports = list(s.scalars(select(ReportRow).where(ReportRow.id > w.report_id,
                                                         ReportRow.message_id.is_not(None))))
        msgs = list(s.scalars(select(MessageRow).where(MessageRow.id > w.message_id, MessageRow.role == "assistant")))
        s.expunge_all()
    touched = {f.message_id for f in fb} | {r.message_id for r in reports} | {m.id for m in msgs}
    return touched, fb, reports, msgs


def arena_rankings(store: Any, w: Watermark) -> list[Any]:
    """Side-by-side arena picks made since ``w``, one two-reply Ranking each, with
    ``meta["loop_key"] = f"arena:{pick_id}"`` (a tie: equal ranks; both bad: equal ranks and
    ``all_unacceptable``; see ``store.export.export_arena_rankings``)."""
    from chatrlhf.store.export import export_arena_rankings

    out = export_arena_rankings(store, after_id=w.arena_pick_id)
    for r in out:
        r.meta["loop_key"] = f"arena:{r.meta['pick_id']}"
    return out


def _picked_arena_messages(store: Any) -> set[int]:
    try:
        from chatrlhf.store.arena_tables import ArenaPickRow
    except ImportError:
        return set()
    with store.session() as s:
        return {i for a, b in s.execute(select(ArenaPickRow.a_message_id, ArenaPickRow.b_message_id))
                for i in (a, b)}


def thumb_ratings(store: Any, fb: list[Any]) -> list[Any]:
    """One ``schema.Rating`` per feedback row (a user's current thumb on a reply), with
    ``meta["loop_key"] = f"thumb:{message_id}:{user_id}"``: a thumb changed later replaces it."""
    from chatrlhf.schema import Rating

    out = []
    for f in fb:
        try:
            path = store.prompt_messages(f.message_id)
        except LookupError:  # the conversation was deleted meanwhile
            continue
        if len(path) < 2 or path[-1]["role"] != "assistant" or path[-2]["role"] != "user":
            continue
        out.append(Rating(prefix=path[:-1], completion=path[-1]["content"], rating=int(f.rating),
                          reasons=list(f.reasons or []),
                          meta={"source": "feedback_thumb", "message_id": f.message_id, "user_id": f.user_id,
                                "loop_key": f"thumb:{f.message_id}:{f.user_id}"}))
    return out


def collect(store: Any, w: Watermark, *, same_prompt: bool = True, workspace: bool = True,
            arena: bool = True) -> NewFeedback:
    """Every ranking touched since ``w``, the prompts behind them and counts by source.
    ``workspace=False`` / ``arena=False`` leave trainer rankings / arena picks out (the watermark
    still moves past them): what is left comes from users' thumbs alone."""
    from chatrlhf.schema import Conversation
    from chatrlhf.store.export import export_feedback_rankings, export_same_prompt_rankings

    now = watermark_of(store)  # read first: anything later is seen again next round, never lost
    touched, fb, reports, msgs = _touched(store, w)
    same = [r for r in (export_same_prompt_rankings(store) if same_prompt else [])
            if touched & set(r.meta["message_ids"])]
    in_same = [set(r.meta["message_ids"]) for r in same]
    arena_picks = arena_rankings(store, w) if arena else []
    picked = _picked_arena_messages(store)
    regen = [r for r in export_feedback_rankings(store) if touched & set(r.meta["message_ids"])
             and not any(set(r.meta["message_ids"]) <= ids for ids in in_same)  # covered by a larger set
             and not set(r.meta["message_ids"]) <= picked]  # an arena pick already compares them
    for r in regen:
        r.meta["loop_key"] = f"regenerate:{r.meta['message_ids'][0]}"  # its oldest reply: stable as siblings join
    for r in same:
        r.meta["loop_key"] = f"same_prompt:{r.meta['prompt_sha256']}"
    ws: list[Any] = []
    if workspace:
        from chatrlhf.workspace import export_rankings

        ws = [r for r in export_rankings(store) if r.meta.get("ranking_id", 0) > w.ws_ranking_id]
        for r in ws:
            r.meta["loop_key"] = f"workspace:{r.meta['ranking_id']}"
    rankings = [*regen, *same, *ws, *arena_picks]
    paired = {i for r in [*regen, *same, *arena_picks] for i in r.meta["message_ids"]}
    thumbs = {f.message_id for f in fb}
    prompts, seen = [], set()

    def add_prompt(messages: list[dict[str, str]], meta: dict[str, Any]) -> None:
        key = json.dumps(messages, sort_keys=True)
        if key not in seen and messages and messages[-1]["role"] == "user":
            seen.add(key)
            prompts.append(Conversation(messages=messages, meta={"split": "train", **meta}))

    for r in rankings:
        add_prompt(list(r.prefix), {"source": r.meta.get("source", "feedback"), "loop_key": r.meta["loop_key"]})
    ratings = thumb_ratings(store, fb)
    prefix_of = {r.meta["message_id"]: r.prefix for r in ratings}  # each thumbed reply's context, read once
    for mid in sorted((thumbs - paired) & set(prefix_of)):  # a thumb without a pair: its prompt is real
        add_prompt(list(prefix_of[mid]), {"source": "feedback_thumb", "message_id": mid})
    with store.session() as s:  # the first reply under each parent: any later one is a regeneration
        first = dict(s.execute(select(MessageRow.parent_id, func.min(MessageRow.id))
                               .where(MessageRow.role == "assistant",
                                      MessageRow.parent_id.in_({m.parent_id for m in msgs if m.parent_id}))
                               .group_by(MessageRow.parent_id)).all())
    reports_by_kind: dict[str, int] = {}
    for r in reports:
        reports_by_kind[r.kind] = reports_by_kind.get(r.kind, 0) + 1
    counts = {
        "rankings": len(rankings),
        "by_source": {"regenerate": len(regen), "same_prompt": len(same), "workspace": len(ws), "arena": len(arena_picks)},
        "thumbs_up": sum(f.rating > 0 for f in fb), "thumbs_down": sum(f.rating < 0 for f in fb),
        "thumbs_with_reasons": sum(bool(f.reasons) for f in fb),
        "unpaired_thumbs": len(thumbs - paired),
        # An arena turn's second reply is a sibling but no regeneration.
        "regenerations": sum(1 for m in msgs if first.get(m.parent_id, m.id) < m.id
                             and not (m.meta or {}).get("arena")),
        "arena_choices": {c: sum(r.meta["choice"] == c for r in arena_picks) for c in ("A", "B", "tie", "both_bad")},
        "reports": reports_by_kind,
        "prompts": len(prompts),
    }
    counts["ratings"] = len(ratings)
    return NewFeedback(rankings, prompts, ratings=ratings, counts=counts, watermark=now)
