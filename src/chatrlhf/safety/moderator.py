"""The trained moderation model as the server's moderation hook, with a per-deployment policy.

Consumes a model directory written by ``chatrlhf moderation train`` (by default the one bundled
in the package, ``moderation_model.BUNDLED_DIR``); produces ``ModelModerator``, a callable with
the pattern filter's signature (``moderator(text, role="user")`` returns a result with
``flagged``, ``categories``, ``scores`` and ``flagged_categories``), which
``server.launch.build_service`` hands to ``ChatService``. This is ``chatrlhf serve``'s default
moderation; ``--moderation-model DIR`` swaps in another trained model, ``--moderation pattern``
the old pattern filter (``chatrlhf.moderation``), ``--moderation off`` nothing.

Policies (``POLICIES``):
  - ``block``: a flagged input or reply is stopped (the service answers with its refusal and
    ``finish_reason: "content_filter"``), as with the pattern filter;
  - ``warn``: nothing is stopped; a flagged text is logged at WARNING with its categories;
  - ``log``: nothing is stopped; a flagged text is logged at INFO.
The ``/v1/moderations`` endpoint always reports the model's own verdict (``unfiltered``), whatever
the policy: a client asking whether a text is harmful must not be told "no" because this
deployment chose not to block.

A block is logged at INFO with the model's categories and, beside them, the pattern filter's
(its readable patterns are how a person can see why a text looks harmful; sub-millisecond), and
never the text itself.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

POLICIES = ("block", "warn", "log")
log = logging.getLogger("chatrlhf.moderation")


class ModelModerator:
    """``ModelModerator(model, policy)(text, role=...)``: the model's result, with ``flagged``
    cleared (and the verdict logged) where the policy does not block."""

    # While a reply streams, the service calls the hook when new text ends a clause or sentence,
    # and at least every ``stream_every`` characters: one MiniLM call per clause, not per word.
    # The price: up to a clause (or 160 characters) of a flagged reply is sent before the cut.
    stream_boundary = frozenset(".!?;:,\n")
    stream_every = 160

    def __init__(self, model: Any, policy: str = "block") -> None:
        if policy not in POLICIES:
            raise ValueError(f"moderation policy must be one of {POLICIES}, got {policy!r}")
        self.model, self.policy = model, policy

    def unfiltered(self, text: str, role: str = "user") -> Any:
        """The model's verdict, whatever the policy (for ``/v1/moderations``)."""
        return self.model(text, role)

    def __call__(self, text: str, role: str = "user") -> Any:
        r = self.model(text, role)
        if not r.flagged:
            return r
        if self.policy == "block":
            if log.isEnabledFor(logging.INFO):
                from chatrlhf.moderation import moderate

                log.info("moderation blocked a %s text of %d chars: model %s; pattern filter %s",
                         role, len(text), r.flagged_categories,
                         moderate(text, role).flagged_categories or "matches nothing")
            return r
        level = logging.WARNING if self.policy == "warn" else logging.INFO
        # Categories and length only: a log line must not copy a user's message.
        log.log(level, "moderation (%s, not blocked): %s text of %d chars flagged %s",
                self.policy, role, len(text), r.flagged_categories)
        return replace(r, flagged=False)


def load_moderator(model_dir: str | Path | None = None, policy: str = "block") -> ModelModerator:
    """A ``ModelModerator`` over the model in ``model_dir`` (None: the bundled one), its encoder
    loaded now (so the first request does not pay for it)."""
    from chatrlhf.safety.moderation_model import BUNDLED_DIR, ModerationModel

    d = Path(model_dir) if model_dir is not None else BUNDLED_DIR
    if not (d / "model.json").is_file():
        raise FileNotFoundError(f"{d} holds no moderation model (model.json); "
                                "train one with `chatrlhf moderation train --out DIR`")
    model = ModerationModel.load(d)
    model("warm-up")
    return ModelModerator(model, policy)
