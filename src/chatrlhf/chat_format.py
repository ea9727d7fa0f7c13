"""Conversations to token ids plus an assistant-token mask: the project's only template code.

Consumes ``[{role, content}, ...]`` and a tokenizer whose ``chat_template`` defines the format;
produces ``Rendered(ids, mask)`` where ``mask[t] == 1`` exactly on the tokens of every assistant
reply, including its end-of-turn token (``<|im_end|>`` for SmolLM2) and nothing after it.

How: the template is rendered for growing prefixes of the conversation. The text each message adds
is one *segment*; segments are tokenized separately and concatenated, so every token belongs to one
message and the mask can never drift from its tokens (tokenizing the whole string at once can merge
characters across a turn boundary). An assistant segment is split into its header
(``<|im_start|>assistant\\n``, not trained on: the prompt supplies it) and its body.

Truncation drops whole old turns (keeping a system message) before it ever cuts a turn, and when it
must cut, it cuts ids and mask together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .schema import Message, validate_messages


@dataclass
class Rendered:
    ids: list[int]
    mask: list[int]  # 1 on assistant-reply tokens (with their end-of-turn token), else 0

    def __len__(self) -> int:
        return len(self.ids)


def eot_id(tokenizer: Any) -> int:
    """The token that ends an assistant turn: the tokenizer's EOS in chat models (``<|im_end|>``)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos_token; cannot tell where an assistant turn ends")
    return int(tokenizer.eos_token_id)


def _template(tokenizer: Any, messages: Sequence[Message], gen_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=gen_prompt
    )


def _encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _segments(messages: Sequence[Message], tokenizer: Any) -> list[tuple[list[int], list[int]]]:
    """One (ids, mask) pair per message, in order."""
    out: list[tuple[list[int], list[int]]] = []
    eot = eot_id(tokenizer)
    prev = ""
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            header_text = _template(tokenizer, messages[:i], True)
            if not header_text.startswith(prev):
                raise ValueError("chat template is not prefix-stable; cannot build a loss mask")
            full = _template(tokenizer, messages[: i + 1], False)
            if not full.startswith(header_text):
                raise ValueError("chat template is not prefix-stable; cannot build a loss mask")
            header = _encode(tokenizer, header_text[len(prev) :])
            body = _encode(tokenizer, full[len(header_text) :])
            # The reply ends at its end-of-turn token; what follows (a newline) is formatting.
            if eot in body:
                end = len(body) - body[::-1].index(eot)
            else:
                end = len(body)
            ids = header + body
            mask = [0] * len(header) + [1] * end + [0] * (len(body) - end)
            prev = full
        else:
            full = _template(tokenizer, messages[: i + 1], False)
            if not full.startswith(prev):
                raise ValueError("chat template is not prefix-stable; cannot build a loss mask")
            ids = _encode(tokenizer, full[len(prev) :])
            mask = [0] * len(ids)
            prev = full
        out.append((ids, mask))
    return out


def _fit(
    messages: list[Message], tokenizer: Any, max_length: int | None, tail: list[int],
    cut_left: bool = False,
) -> Rendered:
    """Render, dropping the oldest exchanges (never a system message, never the last user turn and
    what follows it) until the result fits; then, if it still does not fit, cut ids and mask
    together: at the end for training data, at the start for prompts (whose end, the assistant
    header, must survive). Dropped turns are removed before rendering, so a template's default
    system prompt is re-inserted as it would be for the shorter dialog."""
    first = 1 if messages[0]["role"] == "system" else 0
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    last_user = users[-1] if users else first
    while True:
        segs = _segments(messages, tokenizer)
        ids = [t for seg in segs for t in seg[0]] + tail
        mask = [b for seg in segs for b in seg[1]] + [0] * len(tail)
        if max_length is None or len(ids) <= max_length or last_user <= first:
            break
        # Drop one exchange: the oldest user turn and the replies up to the next user turn.
        cut = next((i for i in range(first + 1, len(messages)) if messages[i]["role"] == "user"),
                   last_user)
        messages = messages[:first] + messages[cut:]
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        last_user = users[-1]
    if max_length is not None and len(ids) > max_length:
        sl = slice(len(ids) - max_length, None) if cut_left else slice(0, max_length)
        ids, mask = ids[sl], mask[sl]
    return Rendered(ids, mask)


def render(
    messages: Sequence[Message], tokenizer: Any, *, max_length: int | None = None
) -> Rendered:
    """Token ids and assistant mask for a whole dialog (for SFT and scoring replies)."""
    return _fit(validate_messages(list(messages)), tokenizer, max_length, [])


def render_prompt(
    messages: Sequence[Message], tokenizer: Any, *, max_length: int | None = None
) -> list[int]:
    """Token ids of a conversation that ends with a user turn, plus the assistant header, so the
    model's next tokens are the reply. Old turns are dropped first if ``max_length`` is exceeded."""
    messages = validate_messages(list(messages))
    full = _template(tokenizer, messages, True)
    base = _template(tokenizer, messages, False)
    header = _encode(tokenizer, full[len(base) :]) if full.startswith(base) else []
    if max_length is not None and len(header) >= max_length:
        raise ValueError(f"max_length={max_length} leaves no room for the prompt")
    return _fit(messages, tokenizer, max_length, header, cut_left=True).ids
