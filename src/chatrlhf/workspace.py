"""The AI-trainer workspace's data access: ranking tasks, assignment, demonstrations, quality, export.

Consumes a ``chatrlhf.store.Store`` (its ``session()``/``transaction()`` context managers and the ``ws_*`` tables of
``workspace_tables``) and completions sampled by the engine; produces the records the ``sft`` and
``reward`` stages read: ``export_demos(store) -> [schema.Conversation]`` and
``export_rankings(store) -> [schema.Ranking]``.

- Ranking tasks: ``make_task`` picks a model-written message at random from recorded conversations
  (or a prompt from an admin-uploaded list), keeps the recorded reply as one candidate and samples
  the rest (K in 4..9 in all) through a ``Sampler``; the K completions are stored in a shuffled
  display order with their source model, which trainers never see.
- Assignment: ``next_task`` hands a trainer the oldest open task that still needs trainers and that
  they never held (a unique (task, user) row makes "never twice" a database guarantee); a task is
  done when ``required`` trainers have submitted.
- Quality: ``agreement_report`` (pairwise agreement per trainer and overall) and ``aggregate_task``
  (ranked pairs or Bradley–Terry over a task's rankings), both from ``chatrlhf.aggregate``.

Ranks and flags are keyed by display position everywhere, so what a trainer submits is stored
as-is; exported rankings list completions in that same (shuffled) order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence

from sqlalchemy import String, cast, exists, func, select

from chatrlhf import aggregate as agg
from chatrlhf.schema import Conversation, Message, Ranking, RecordError, validate_messages
from chatrlhf.store import NotFound, Store
from chatrlhf.store.models import MessageRow, UserRow
from chatrlhf.store.validate import check_json, check_text
from chatrlhf.store.workspace_tables import (AssignmentRow, DemoRow, PromptListRow, PromptRow, RankingRow,
                                       RankingTaskRow, TaskCompletionRow)

K_MIN, K_MAX = 4, 9
FLAGS = ("harmful", "untruthful", "unhelpful", "off_topic")
MAX_CONTENT_BYTES = 64 * 1024
MAX_TURNS = 64
# An assignment not submitted within this time stops counting toward a task's quota, so a trainer
# who walks away does not block it; they can still submit it later.
ASSIGNMENT_LEASE = timedelta(hours=2)

# (prefix messages, n) -> n completion texts
Sampler = Callable[[list[Message], int], list[str]]


@dataclass(frozen=True)
class TaskView:
    """What a trainer sees: no source model and no original order."""

    id: int
    prefix: list[Message]
    completions: list[str]  # in display order
    required: int


@dataclass(frozen=True)
class TaskSummary:
    id: int
    k: int
    required: int
    submitted: int
    assigned: int
    status: str
    source: str
    created_at: datetime
    prompt: str  # the last user turn, for lists


@dataclass(frozen=True)
class Demo:
    id: int
    user_id: int | None
    messages: list[Message]
    status: str
    source: str
    meta: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)  # SQLite drops the zone


# --------------------------------------------------------------------------- prompt lists

def upload_prompts(store: Store, name: str, prompts: Sequence[Conversation], *,
                   user_id: int | None = None) -> int:
    """Store a prompt list; every prompt must end on a user turn. Returns the list id."""
    check_text("name", name, max_chars=200)
    rows = []
    for n, conv in enumerate(prompts):
        if not conv.is_prompt:
            raise ValueError(f"prompt {n} must end with a user message")
        rows.append(check_messages(conv.messages, final=True))
    if not rows:
        raise ValueError("the prompt list is empty")
    with store.transaction() as s:
        plist = PromptListRow(name=name, created_by=user_id)
        s.add(plist)
        s.flush()
        s.add_all(PromptRow(list_id=plist.id, messages=m) for m in rows)
        return plist.id


def list_prompt_lists(store: Store) -> list[dict[str, Any]]:
    with store.session() as s:
        q = (select(PromptListRow, func.count(PromptRow.id), func.coalesce(func.sum(PromptRow.used), 0))
             .outerjoin(PromptRow, PromptRow.list_id == PromptListRow.id)
             .group_by(PromptListRow.id).order_by(PromptListRow.id))
        return [{"id": pl.id, "name": pl.name, "prompts": n, "used": int(used),
                 "created_at": pl.created_at.isoformat()} for pl, n, used in s.execute(q)]


# --------------------------------------------------------------------------- task creation

def check_messages(messages: Any, *, final: bool) -> list[Message]:
    """Validate a dialog; ``final`` also requires non-empty turns that alternate user/assistant."""
    if not isinstance(messages, list) or len(messages) > MAX_TURNS:
        raise ValueError(f"messages must be a list of at most {MAX_TURNS} turns")
    if not messages and not final:
        return []
    try:
        out = validate_messages(messages)
    except RecordError as e:
        raise ValueError(str(e)) from None
    for i, m in enumerate(out):
        check_text(f"messages[{i}].content", m["content"], max_bytes=MAX_CONTENT_BYTES)
    if final:
        body = out[1:] if out[0]["role"] == "system" else out
        for i, m in enumerate(body):
            if m["role"] != ("user" if i % 2 == 0 else "assistant"):
                raise ValueError("turns must alternate user, assistant, user, ... starting with the user")
            if not m["content"].strip():
                raise ValueError(f"turn {i + 1} is empty")
    return out


def create_task(store: Store, prefix: list[Message], completions: Sequence[tuple[str, str]], *,
                required: int = 1, source: str = "manual", source_ref: str = "",
                created_by: int | None = None, rng: random.Random | None = None,
                k_min: int = K_MIN, meta: dict[str, Any] | None = None) -> int:
    """Store a ranking task: ``completions`` are (text, model) pairs, shuffled for display."""
    prefix = check_messages(prefix, final=True)
    if prefix[-1]["role"] != "user":
        raise ValueError("a ranking task's prefix must end with a user message")
    if not k_min <= len(completions) <= K_MAX:
        raise ValueError(f"a ranking task needs {k_min} to {K_MAX} completions, got {len(completions)}")
    if not 1 <= required <= 50:
        raise ValueError("required trainers must be between 1 and 50")
    for i, (text, _) in enumerate(completions):
        check_text(f"completions[{i}]", text, max_bytes=MAX_CONTENT_BYTES)
    order = list(range(len(completions)))
    (rng or random.Random()).shuffle(order)
    with store.transaction() as s:
        task = RankingTaskRow(prefix=prefix, required=required, source=source, source_ref=source_ref,
                              created_by=created_by, meta=check_json("meta", meta))
        s.add(task)
        s.flush()
        s.add_all(TaskCompletionRow(task_id=task.id, position=pos, text=completions[i][0],
                                    model=completions[i][1][:128]) for pos, i in enumerate(order))
        return task.id


def pick_conversation_message(store: Store, rng: random.Random) -> tuple[list[Message], str, str, int] | None:
    """A random model-written reply not yet used for a task: (prefix, text, model, message id)."""
    with store.session() as s:
        used = select(RankingTaskRow.id).where(RankingTaskRow.source == "conversation",
                                               RankingTaskRow.source_ref == cast(MessageRow.id, String))
        q = select(MessageRow).where(
            MessageRow.role == "assistant", MessageRow.model_version.is_not(None),
            MessageRow.parent_id.is_not(None), MessageRow.content != "", ~exists(used))
        n = s.scalar(select(func.count()).select_from(q.subquery()))
        if not n:
            return None
        # Offset by a random index (not ORDER BY random()) so a seeded rng reproduces the pick.
        row = s.scalars(q.order_by(MessageRow.id).offset(rng.randrange(n)).limit(1)).one()
        text, model, parent = row.content, row.model_version or "", row.parent_id
    prefix = store.prompt_messages(parent)
    if prefix[-1]["role"] != "user":
        return None
    return prefix, text, model, row.id


def pick_prompt(store: Store, rng: random.Random, list_id: int | None = None) -> tuple[list[Message], int] | None:
    """The least-used prompt (of one list, or of all), chosen at random among equals."""
    with store.transaction() as s:
        where = [] if list_id is None else [PromptRow.list_id == list_id]
        q = select(PromptRow).where(*where)
        least = s.scalar(select(func.min(PromptRow.used)).where(*where))
        if least is None:
            return None
        rows = s.scalars(q.where(PromptRow.used == least)).all()
        row = rng.choice(rows)
        row.used += 1
        return list(row.messages), row.id


def pick_source(store: Store, source: str, *, list_id: int | None = None, rng: random.Random | None = None
                ) -> tuple[list[Message], list[tuple[str, str]], str] | None:
    """(prefix, given completions, source ref) for a new task, or None when nothing is left.

    From a conversation the recorded reply is one of the candidates (its writer stays hidden), so
    trainers compare the deployed model's answer against fresh samples.
    """
    rng = rng or random.Random()
    if source == "conversation":
        picked = pick_conversation_message(store, rng)
        if picked is None:
            return None
        prefix, text, model, message_id = picked
        return prefix, [(text, model)], str(message_id)
    if source == "prompt_list":
        got = pick_prompt(store, rng, list_id)
        return None if got is None else (got[0], [], str(got[1]))
    raise ValueError(f"source must be 'conversation' or 'prompt_list', got {source!r}")


def check_k(k: Any) -> int:
    if not isinstance(k, int) or not K_MIN <= k <= K_MAX:
        raise ValueError(f"K must be between {K_MIN} and {K_MAX}, got {k!r}")
    return k


def make_task(store: Store, sampler: Sampler, *, k: int = 4, required: int = 1, source: str = "conversation",
              list_id: int | None = None, model_name: str = "current", created_by: int | None = None,
              rng: random.Random | None = None) -> int | None:
    """Pick a prefix (``pick_source``), sample the other completions, store the task; None when
    there is nothing left to pick from."""
    check_k(k)
    rng = rng or random.Random()
    picked = pick_source(store, source, list_id=list_id, rng=rng)
    if picked is None:
        return None
    prefix, given, ref = picked
    completions = given + [(t, model_name) for t in sampler(prefix, k - len(given))]
    return create_task(store, prefix, completions, required=required, source=source, source_ref=ref,
                       created_by=created_by, rng=rng)


def engine_sampler(engine: Any, tokenizer: Any, params: Any) -> Sampler:
    """A Sampler over ``chatrlhf.engine.Engine``; rows get distinct seeds so samples differ."""
    from chatrlhf.chat_format import render_prompt

    def sample(prefix: list[Message], n: int) -> list[str]:
        ids = render_prompt(prefix, tokenizer)
        per_row = [params if params.seed is None else replace(params, seed=params.seed + i) for i in range(n)]
        return [c.text for c in engine.generate([ids] * n, per_row)]

    return sample


# --------------------------------------------------------------------------- assignment

def _active_counts(s: Any, task_ids: Any, now: datetime) -> dict[int, int]:
    """Trainers who submitted or hold a fresh assignment, per task."""
    cutoff = now - ASSIGNMENT_LEASE
    q = (select(AssignmentRow.task_id, func.count()).where(
        AssignmentRow.task_id.in_(task_ids),
        (AssignmentRow.status == "submitted")
        | ((AssignmentRow.status == "assigned") & (AssignmentRow.assigned_at >= cutoff)))
        .group_by(AssignmentRow.task_id))
    return dict(s.execute(q).all())


def _view(s: Any, task: RankingTaskRow) -> TaskView:
    rows = s.scalars(select(TaskCompletionRow).where(TaskCompletionRow.task_id == task.id)
                     .order_by(TaskCompletionRow.position)).all()
    return TaskView(id=task.id, prefix=list(task.prefix), completions=[r.text for r in rows],
                    required=task.required)


def next_task(store: Store, user_id: int) -> TaskView | None:
    """The task this trainer holds, else assign the oldest open task they never had; None if none."""
    now = _now()
    with store.transaction() as s:
        # One trainer's calls run one at a time: on PostgreSQL two at once (two tabs, or two
        # server replicas) both saw nothing held and both assigned, so one got a 409 from the
        # (task, trainer) unique row or the trainer held two tasks. Locking the trainer's row
        # makes the second wait, then (READ COMMITTED: a fresh snapshot per statement) find the
        # first one's assignment as held. SQLite ignores FOR UPDATE; BEGIN IMMEDIATE already
        # serialises its writers.
        s.execute(select(UserRow.id).where(UserRow.id == user_id).with_for_update())
        held = s.scalar(select(AssignmentRow).join(RankingTaskRow, RankingTaskRow.id == AssignmentRow.task_id)
                        .where(AssignmentRow.user_id == user_id, AssignmentRow.status == "assigned",
                               RankingTaskRow.status == "open").order_by(AssignmentRow.id))
        if held is not None:
            return _view(s, s.get(RankingTaskRow, held.task_id))
        mine = select(AssignmentRow.task_id).where(AssignmentRow.user_id == user_id)
        candidates = s.scalars(select(RankingTaskRow).where(
            RankingTaskRow.status == "open", RankingTaskRow.id.not_in(mine))
            .order_by(RankingTaskRow.id).limit(200).with_for_update()).all()
        counts = _active_counts(s, [t.id for t in candidates], now)
        for task in candidates:
            if counts.get(task.id, 0) < task.required:
                s.add(AssignmentRow(task_id=task.id, user_id=user_id, assigned_at=now))
                return _view(s, task)
    return None


def get_task(store: Store, task_id: int, user_id: int | None = None) -> TaskView:
    """A task as trainers see it; with ``user_id``, only if it was assigned to that trainer."""
    with store.session() as s:
        task = s.get(RankingTaskRow, task_id)
        if task is None or (user_id is not None and s.scalar(select(AssignmentRow.id).where(
                AssignmentRow.task_id == task_id, AssignmentRow.user_id == user_id)) is None):
            raise NotFound(f"no task {task_id} assigned to you")
        return _view(s, task)


def _check_ranking(ranks: Any, flags: Any, k: int) -> tuple[list[int], dict[str, list[str]]]:
    if not isinstance(ranks, list) or len(ranks) != k or not all(
            isinstance(r, int) and not isinstance(r, bool) and 0 <= r < k for r in ranks):
        raise ValueError(f"ranks must be {k} integers in 0..{k - 1} (equal values are ties)")
    levels = sorted(set(ranks))
    dense = [levels.index(r) for r in ranks]  # 0,2,2 -> 0,1,1: ranks mean order, not gaps
    flags = flags or {}
    if not isinstance(flags, dict):
        raise ValueError("flags must map a completion position to a list of labels")
    clean: dict[str, list[str]] = {}
    for pos, labels in flags.items():
        if not str(pos).isdigit() or not 0 <= int(pos) < k:
            raise ValueError(f"flags refer to completion {pos!r}, which does not exist")
        if not isinstance(labels, list) or any(lb not in FLAGS for lb in labels):
            raise ValueError(f"flags must be lists of {list(FLAGS)}")
        if labels:
            clean[str(int(pos))] = sorted(set(labels))
    return dense, clean


def submit_ranking(store: Store, task_id: int, user_id: int, ranks: list[int], *,
                   flags: dict[Any, list[str]] | None = None, all_unacceptable: bool = False,
                   comment: str = "") -> int:
    """Record a trainer's ranking of a task they were assigned; closes the task when it is full."""
    check_text("comment", comment, max_chars=4000)
    with store.transaction() as s:
        a = s.scalar(select(AssignmentRow).where(AssignmentRow.task_id == task_id,
                                                 AssignmentRow.user_id == user_id))
        if a is None:
            raise NotFound(f"no task {task_id} assigned to you")
        if a.status != "assigned":
            raise ValueError(f"task {task_id} was already {a.status}")
        k = s.scalar(select(func.count()).where(TaskCompletionRow.task_id == task_id))
        dense, clean = _check_ranking(ranks, flags, k)
        user = s.get(UserRow, user_id)
        row = RankingRow(task_id=task_id, user_id=user_id, annotator=user.username, ranks=dense, flags=clean,
                         all_unacceptable=bool(all_unacceptable), comment=comment)
        s.add(row)
        a.status = "submitted"
        s.flush()
        task = s.get(RankingTaskRow, task_id)
        done = s.scalar(select(func.count()).where(RankingRow.task_id == task_id, RankingRow.user_id.is_not(None)))
        if done >= task.required:
            task.status = "done"
        return row.id


def release_task(store: Store, task_id: int, user_id: int) -> None:
    """Skip a task: it goes back to the queue for others, never to this trainer again."""
    with store.transaction() as s:
        a = s.scalar(select(AssignmentRow).where(AssignmentRow.task_id == task_id,
                                                 AssignmentRow.user_id == user_id,
                                                 AssignmentRow.status == "assigned"))
        if a is None:
            raise NotFound(f"no task {task_id} held by you")
        a.status = "released"


def task_summaries(store: Store, *, status: str | None = None, limit: int = 200) -> list[TaskSummary]:
    now = _now()
    with store.session() as s:
        q = select(RankingTaskRow).order_by(RankingTaskRow.id.desc()).limit(limit)
        if status:
            q = q.where(RankingTaskRow.status == status)
        tasks = s.scalars(q).all()
        ids = [t.id for t in tasks]
        k = dict(s.execute(select(TaskCompletionRow.task_id, func.count()).where(
            TaskCompletionRow.task_id.in_(ids)).group_by(TaskCompletionRow.task_id)).all())
        sub = dict(s.execute(select(RankingRow.task_id, func.count()).where(
            RankingRow.task_id.in_(ids)).group_by(RankingRow.task_id)).all())
        active = _active_counts(s, ids, now)
        return [TaskSummary(id=t.id, k=k.get(t.id, 0), required=t.required, submitted=sub.get(t.id, 0),
                            assigned=max(0, active.get(t.id, 0) - sub.get(t.id, 0)),
                            status=t.status, source=t.source, created_at=t.created_at,
                            prompt=t.prefix[-1]["content"][:200]) for t in tasks]


# --------------------------------------------------------------------------- demonstrations

def _demo(r: DemoRow) -> Demo:
    return Demo(id=r.id, user_id=r.user_id, messages=list(r.messages), status=r.status, source=r.source,
                meta=dict(r.meta or {}), updated_at=r.updated_at)


def _save(s: Any, user_id: int, messages: list[Message], demo_id: int | None, meta: dict[str, Any]) -> DemoRow:
    if demo_id is None:
        row = DemoRow(user_id=user_id, messages=messages, meta=meta)
        s.add(row)
    else:
        row = s.get(DemoRow, demo_id)
        if row is None or row.user_id != user_id:
            raise NotFound(f"no draft {demo_id}")
        if row.status != "draft":
            raise ValueError(f"demonstration {demo_id} was already submitted")
        row.messages, row.meta, row.updated_at = messages, meta, _now()
    s.flush()
    return row


def save_draft(store: Store, user_id: int, messages: list[Message], *, demo_id: int | None = None,
               meta: dict[str, Any] | None = None) -> Demo:
    """Create or overwrite a draft (autosave: partial and empty turns are fine)."""
    messages = check_messages(messages, final=False)
    meta = check_json("meta", meta)
    with store.transaction() as s:
        return _demo(_save(s, user_id, messages, demo_id, meta))


def submit_demo(store: Store, user_id: int, messages: list[Message], *, demo_id: int | None = None,
                meta: dict[str, Any] | None = None) -> Demo:
    """Store an SFT record (from a draft, or directly): alternating non-empty turns, assistant last."""
    messages = check_messages(messages, final=True)
    if messages[-1]["role"] != "assistant":
        raise ValueError("a demonstration must end with an assistant reply")
    meta = check_json("meta", meta)
    with store.transaction() as s:
        row = _save(s, user_id, messages, demo_id, meta)
        row.status = "submitted"
        return _demo(row)


def list_demos(store: Store, user_id: int | None = None, status: str | None = None) -> list[Demo]:
    with store.session() as s:
        q = select(DemoRow).order_by(DemoRow.id.desc())
        if user_id is not None:
            q = q.where(DemoRow.user_id == user_id)
        if status is not None:
            q = q.where(DemoRow.status == status)
        return [_demo(r) for r in s.scalars(q)]


def delete_draft(store: Store, user_id: int, demo_id: int) -> None:
    with store.transaction() as s:
        row = s.get(DemoRow, demo_id)
        if row is None or row.user_id != user_id or row.status != "draft":
            raise NotFound(f"no draft {demo_id}")
        s.delete(row)


# --------------------------------------------------------------------------- quality

def _rankings_by_task(s: Any, task_ids: Sequence[int] | None = None) -> dict[int, list[RankingRow]]:
    q = select(RankingRow).order_by(RankingRow.id)
    if task_ids is not None:
        q = q.where(RankingRow.task_id.in_(task_ids))
    out: dict[int, list[RankingRow]] = {}
    for r in s.scalars(q):
        out.setdefault(r.task_id, []).append(r)
    return out


def agreement_report(store: Store) -> agg.Agreement:
    """Pairwise agreement of trainers (by username) over tasks that several of them ranked."""
    with store.session() as s:
        by_task = _rankings_by_task(s)
    return agg.agreement({t: {r.annotator: r.ranks for r in rows} for t, rows in by_task.items()
                          if len(rows) > 1})


def aggregate_task(store: Store, task_id: int, method: str = "ranked_pairs") -> list[int]:
    """One rank vector (by display position) from all the task's rankings."""
    with store.session() as s:
        rows = _rankings_by_task(s, [task_id]).get(task_id, [])
    if not rows:
        raise NotFound(f"task {task_id} has no rankings yet")
    return agg.aggregate([r.ranks for r in rows], method)


# --------------------------------------------------------------------------- import / export

def import_records(store: Store, records: Sequence[Conversation | Ranking], source: str) -> tuple[int, int]:
    """Store imported demonstrations and rankings (annotator kept, no user); returns the counts."""
    demos = [r for r in records if isinstance(r, Conversation)]
    rankings = [r for r in records if isinstance(r, Ranking)]
    with store.transaction() as s:
        s.add_all(DemoRow(user_id=None, messages=c.messages, status="submitted", source=source,
                          meta=c.meta) for c in demos)
        # All tasks in one flush (one batched INSERT), then their rows: a per-task flush makes
        # importing a public dataset of thousands of rankings take minutes.
        tasks = [RankingTaskRow(prefix=r.prefix, required=1, source="import", source_ref=source[:128],
                                status="done", meta=r.meta) for r in rankings]
        s.add_all(tasks)
        s.flush()
        for task, r in zip(tasks, rankings):
            s.add_all(TaskCompletionRow(task_id=task.id, position=i, text=t, model=source[:128])
                      for i, t in enumerate(r.completions))
            s.add(RankingRow(task_id=task.id, user_id=None, annotator=r.annotator[:64], ranks=list(r.ranks),
                             flags={str(i): v for i, v in r.flags.items()},
                             all_unacceptable=r.all_unacceptable))
    return len(demos), len(rankings)


def export_rankings(store: Store, *, aggregate: str | None = None, imported: bool = True) -> list[Ranking]:
    """Rankings for the reward stage: one per trainer submission, or one per task if ``aggregate``
    ("ranked_pairs" | "bradley_terry") merges each task's rankings into a single order.
    ``imported=False`` keeps only rankings written in the workspace."""
    out: list[Ranking] = []
    with store.session() as s:
        by_task = _rankings_by_task(s)
        if not imported:
            by_task = {t: [r for r in rows if r.user_id is not None] for t, rows in by_task.items()}
            by_task = {t: rows for t, rows in by_task.items() if rows}
        tasks = {t.id: t for t in s.scalars(select(RankingTaskRow).where(RankingTaskRow.id.in_(list(by_task))))}
        comps: dict[int, list[TaskCompletionRow]] = {}
        for c in s.scalars(select(TaskCompletionRow).where(TaskCompletionRow.task_id.in_(list(by_task)))
                           .order_by(TaskCompletionRow.task_id, TaskCompletionRow.position)):
            comps.setdefault(c.task_id, []).append(c)
    for task_id, rows in by_task.items():
        task, cs = tasks[task_id], comps[task_id]
        meta = {"source": task.source, **(task.meta or {}), "task_id": task_id,
                "models": [c.model for c in cs]}
        texts = [c.text for c in cs]
        if aggregate:
            ranks = agg.aggregate([r.ranks for r in rows], aggregate)
            flags: dict[int, list[str]] = {}
            for r in rows:
                for p, labels in r.flags.items():
                    flags[int(p)] = sorted(set(flags.get(int(p), [])) | set(labels))
            unacceptable = sum(r.all_unacceptable for r in rows) * 2 > len(rows)
            out.append(Ranking(prefix=task.prefix, completions=texts, ranks=ranks, annotator=f"aggregate:{aggregate}",
                               all_unacceptable=unacceptable, flags=flags,
                               meta={**meta, "annotators": [r.annotator for r in rows]}))
            continue
        for r in rows:
            out.append(Ranking(prefix=task.prefix, completions=texts, ranks=list(r.ranks), annotator=r.annotator,
                               all_unacceptable=r.all_unacceptable, flags={int(p): v for p, v in r.flags.items()},
                               meta={**meta, "ranking_id": r.id}))
    return out


def export_demos(store: Store, *, imported: bool = True) -> list[Conversation]:
    """Submitted demonstrations (written in the workspace, and imported unless ``imported=False``)."""
    with store.session() as s:
        q = select(DemoRow).where(DemoRow.status == "submitted").order_by(DemoRow.id)
        if not imported:
            q = q.where(DemoRow.user_id.is_not(None))
        rows = s.scalars(q).all()
        names = dict(s.execute(select(UserRow.id, UserRow.username)).all())
    return [Conversation(messages=list(r.messages),
                         meta={**(r.meta or {}), "source": r.source, "demo_id": r.id,
                               **({"trainer": names.get(r.user_id)} if r.user_id else {})}) for r in rows]


def task_detail(store: Store, task_id: int) -> dict[str, Any]:
    """Everything about one task, source models included: for admins only."""
    with store.session() as s:
        task = s.get(RankingTaskRow, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
        comps = s.scalars(select(TaskCompletionRow).where(TaskCompletionRow.task_id == task_id)
                          .order_by(TaskCompletionRow.position)).all()
        rows = _rankings_by_task(s, [task_id]).get(task_id, [])
        return {"id": task.id, "prefix": task.prefix, "required": task.required, "status": task.status,
                "source": task.source, "source_ref": task.source_ref,
                "completions": [{"text": c.text, "model": c.model} for c in comps],
                "rankings": [{"annotator": r.annotator, "ranks": r.ranks, "flags": r.flags,
                              "all_unacceptable": r.all_unacceptable, "comment": r.comment} for r in rows]}
