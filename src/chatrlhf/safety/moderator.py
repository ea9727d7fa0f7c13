"""The trained moderation model as the server's moderation hook, with a per-deployment policy.

Consumes a model directory written by ``chatrlhf moderation train``; produces ``ModelModerator``,
a callable with the pattern filter's signature (``moderator(text, role="user")`` returns a result
with ``flagged``, ``categories``, ``scores`` and ``flagged_categories``), which
``server.launch.build_service`` hands to ``ChatService`` when ``chatrlhf serve`` is given
``--moderation-model DIR``. Without that option nothing changes: the pattern filter
(``chatrlhf.moderation``) stays the default, so the product runs offline with no trained model.

Policies (``POLICIES``):
  - ``block``: a flagged input or reply is stopped (the service answers with its refusal and
    ``finish_reason: "content_filter"``), as with the pattern filter;
  - ``warn``: nothing is stopped; a flagged text is logged at WARNING with its categories;
  - ``log``: nothing is stopped; a flagged text is logged at INFO.
The ``/v1/moderations`` endpoint always reports the model's own verdict (``unfiltered``), whatever
the policy: a client asking whether a text is harmful must not be told "no" because this
deployment chose not to block.
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
        if self.policy == "block" or not r.flagged:
            return r
        level = logging.WARNING if self.policy == "warn" else logging.INFO
        # Categories and length only: a log line must not copy a user's message.
        log.log(level, "moderation (%s, not blocked): %s text of %d chars flagged %s",
                self.policy, role, len(text), r.flagged_categories)
        return replace(r, flagged=False)


def load_moderator(model_dir: str | Path, policy: str = "block") -> ModelModerator:
    """A ``ModelModerator`` over the model in ``model_dir``, its encoder loaded now (so the first
    request does not pay for it)."""
    from chatrlhf.safety.moderation_model import ModerationModel

    d = Path(model_dir)
    if not (d / "model.json").is_file():
        raise FileNotFoundError(f"{d} holds no moderation model (model.json); "
                                "train one with `chatrlhf moderation train --out DIR`")
    model = ModerationModel.load(d)
    model("warm-up")
    return ModelModerator(model, policy)
