"""Readers for public preference and instruction datasets, producing the project's own records.

Consumes a JSONL file (plain or ``.gz``) in one of the formats below and produces
``schema.Conversation`` (demonstrations / prompts) and ``schema.Ranking`` records:

- ``hh-rlhf``: Anthropic HH-RLHF ``{"chosen", "rejected"}`` transcripts
  (``"\\n\\nHuman: ...\\n\\nAssistant: ..."``) -> one K=2 Ranking over the shared prefix.
- ``messages``: OpenAI-style ``{"messages": [{role, content}], ...}`` -> Conversation.
- ``oasst``: OpenAssistant message trees -> one demonstration along the best-ranked path of each
  tree, and one Ranking among the ranked sibling replies of every prompter message.
- ``alpaca``: ``{"instruction", "input", "output"}``; ``self-instruct``: ``{"instruction",
  "instances": [{"input", "output"}]}`` -> one Conversation per instance.
- ``prompts``: one JSON string (or ``{"prompt": str}``) per line -> a one-turn prompt Conversation.

A malformed record never aborts the import: it becomes a ``Rejected(file, line, reason)`` and the
rest of the file still loads, because public dumps always contain a few broken lines and a user
importing 100k records wants the 99.9% that are fine plus an exact list of the rest.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from chatrlhf.schema import Conversation, Message, Ranking, RecordError, validate_messages

Record = Conversation | Ranking


@dataclass
class Rejected:
    file: str
    line: int  # 1-based line of a JSONL file, or 1-based item of a JSON array file
    reason: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.unit == "line" else f"{self.file}[item {self.line}]"
        return f"{where}: {self.reason}"


@dataclass
class ImportResult:
    records: list[Record] = field(default_factory=list)
    errors: list[Rejected] = field(default_factory=list)

    @property
    def demos(self) -> list[Conversation]:
        return [r for r in self.records if isinstance(r, Conversation)]

    @property
    def rankings(self) -> list[Ranking]:
        return [r for r in self.records if isinstance(r, Ranking)]

    def summary(self) -> str:
        return (f"{len(self.demos)} conversation(s), {len(self.rankings)} ranking(s), "
                f"{len(self.errors)} rejected line(s)")


# --------------------------------------------------------------------------- HH-RLHF

_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
_HH_ROLE = {"Human": "user", "Assistant": "assistant"}


def parse_hh_transcript(text: str) -> list[Message]:
    """Split an HH transcript into messages; consecutive turns of one speaker are merged.

    The dump contains transcripts such as "Assistant: Umm...\\n\\nAssistant: A solar panel...";
    merging keeps the conversation alternating, which the chat template requires.
    """
    if not isinstance(text, str):
        raise RecordError("transcript must be a string")
    parts = _HH_TURN.split(text)
    if parts[0].strip():
        raise RecordError("transcript must start with '\\n\\nHuman:'")
    if len(parts) < 3:
        raise RecordError("transcript has no Human/Assistant turns")
    messages: list[Message] = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        role, content = _HH_ROLE[speaker], content.strip()
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": role, "content": content})
    if messages[0]["role"] != "user":
        raise RecordError("transcript must start with a Human turn")
    return messages


def _hh_record(obj: Any) -> list[Record]:
    if not isinstance(obj, dict) or "chosen" not in obj or "rejected" not in obj:
        raise RecordError("expected an object with 'chosen' and 'rejected'")
    chosen, rejected = parse_hh_transcript(obj["chosen"]), parse_hh_transcript(obj["rejected"])
    for name, conv in (("chosen", chosen), ("rejected", rejected)):
        if conv[-1]["role"] != "assistant" or len(conv) < 2:
            raise RecordError(f"{name} transcript must end with an Assistant turn")
    if chosen[:-1] != rejected[:-1]:
        raise RecordError("chosen and rejected do not share the same conversation prefix")
    a, b = chosen[-1]["content"], rejected[-1]["content"]
    if a == b:
        raise RecordError("chosen and rejected replies are identical")
    return [Ranking(prefix=chosen[:-1], completions=[a, b], ranks=[0, 1], annotator="hh-rlhf",
                    meta={"source": "hh-rlhf"})]


# --------------------------------------------------------------------------- OpenAI messages

_OPENAI_ROLE = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _openai_content(content: Any, i: int) -> str:
    """OpenAI content is a string or a list of parts; only text parts can become training text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise RecordError(f"messages[{i}]: only text content parts can be imported")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise RecordError(f"messages[{i}].content must be a string or a list of text parts")


def _messages_record(obj: Any) -> list[Record]:
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise RecordError("expected an object with a 'messages' list")
    messages = []
    for i, m in enumerate(obj["messages"]):
        if not isinstance(m, dict):
            raise RecordError(f"messages[{i}] must be an object")
        role = _OPENAI_ROLE.get(m.get("role"))  # type: ignore[arg-type]
        if role is None:
            raise RecordError(f"messages[{i}].role {m.get('role')!r} cannot be imported")
        messages.append({"role": role, "content": _openai_content(m.get("content"), i)})
    meta = {k: v for k, v in obj.items() if k != "messages"}
    return [Conversation(messages=messages, meta={"source": "messages", **meta})]


# --------------------------------------------------------------------------- OpenAssistant

_OASST_ROLE = {"prompter": "user", "assistant": "assistant"}


def _oasst_usable(node: dict) -> bool:
    return not node.get("deleted") and node.get("review_result", True) is not False


def _oasst_message(node: Any) -> Message:
    if not isinstance(node, dict) or not isinstance(node.get("text"), str):
        raise RecordError("every tree node needs a string 'text'")
    role = _OASST_ROLE.get(node.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise RecordError(f"unknown OpenAssistant role {node.get('role')!r}")
    return {"role": role, "content": node["text"]}


def _oasst_best(replies: list[dict]) -> dict | None:
    """The reply humans ranked best; an unranked lone reply counts, unranked siblings do not."""
    usable = [r for r in replies if _oasst_usable(r)]
    ranked = [r for r in usable if isinstance(r.get("rank"), int)]
    if ranked:
        return min(ranked, key=lambda r: r["rank"])
    return usable[0] if len(usable) == 1 else None


def _oasst_record(obj: Any) -> list[Record]:
    if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), dict):
        raise RecordError("expected a message tree with a 'prompt' object")
    root = obj["prompt"]
    tree_id = obj.get("message_tree_id", root.get("message_id"))
    if _oasst_message(root)["role"] != "user":
        raise RecordError("the tree's prompt must be a prompter message")
    records: list[Record] = []

    # Best path: follow the top-ranked reply at every level, then trim to end on an assistant turn.
    path, node = [_oasst_message(root)], root
    while (node := _oasst_best(node.get("replies") or [])) is not None:
        path.append(_oasst_message(node))
    while path and path[-1]["role"] != "assistant":
        path.pop()
    if path:
        records.append(Conversation(messages=validate_messages(path),
                                    meta={"source": "oasst", "tree_id": tree_id}))

    # Rankings: at every prompter node, the assistant replies that carry a human rank.
    stack: list[tuple[dict, list[Message]]] = [(root, [])]
    while stack:
        node, prefix = stack.pop()
        prefix = prefix + [_oasst_message(node)]
        replies = [r for r in node.get("replies") or [] if _oasst_usable(r)]
        ranked = [r for r in replies if isinstance(r.get("rank"), int)]
        if prefix[-1]["role"] == "user" and len(ranked) >= 2:
            texts = [_oasst_message(r)["content"] for r in ranked]
            records.append(Ranking(prefix=prefix, completions=texts, ranks=_dense([r["rank"] for r in ranked]),
                                   annotator="oasst", meta={"source": "oasst", "tree_id": tree_id,
                                                            "message_id": node.get("message_id")}))
        stack.extend((r, prefix) for r in replies)
    if not records:
        raise RecordError("tree has no assistant reply to import")
    return records


def _dense(values: list[int]) -> list[int]:
    """Renumber ranks 0..n-1 keeping ties, so gaps left by deleted siblings disappear."""
    levels = sorted(set(values))
    return [levels.index(v) for v in values]


# --------------------------------------------------------------------------- Alpaca / self-instruct

def _instruction_prompt(instruction: str, inp: Any) -> str:
    if inp is not None and not isinstance(inp, str):
        raise RecordError("'input' must be a string")
    return f"{instruction.strip()}\n\n{inp.strip()}" if inp and inp.strip() else instruction.strip()


def _instruction_record(obj: Any) -> list[Record]:
    if not isinstance(obj, dict) or not isinstance(obj.get("instruction"), str) or not obj["instruction"].strip():
        raise RecordError("expected an object with a non-empty string 'instruction'")
    if "instances" in obj:
        instances = obj["instances"]
        if not isinstance(instances, list) or not instances:
            raise RecordError("'instances' must be a non-empty list")
    else:
        instances = [{"input": obj.get("input", ""), "output": obj.get("output")}]
    meta = {"source": "self-instruct" if "instances" in obj else "alpaca"}
    meta.update({k: obj[k] for k in ("id", "name", "motivation_app") if k in obj})
    out: list[Record] = []
    for n, inst in enumerate(instances):
        if not isinstance(inst, dict) or not isinstance(inst.get("output"), str) or not inst["output"].strip():
            raise RecordError(f"instance {n} needs a non-empty string 'output'")
        messages = [{"role": "user", "content": _instruction_prompt(obj["instruction"], inst.get("input"))},
                    {"role": "assistant", "content": inst["output"].strip()}]
        out.append(Conversation(messages=messages, meta={**meta, "instance": n}))
    return out


# --------------------------------------------------------------------------- prompt lists

def _prompt_record(obj: Any) -> list[Record]:
    text = obj.get("prompt") if isinstance(obj, dict) else obj
    if not isinstance(text, str) or not text.strip():
        raise RecordError("expected a non-empty JSON string or an object with a 'prompt' string")
    return [Conversation(messages=[{"role": "user", "content": text.strip()}], meta={"source": "prompts"})]


FORMATS: dict[str, Callable[[Any], list[Record]]] = {
    "hh-rlhf": _hh_record,
    "messages": _messages_record,
    "oasst": _oasst_record,
    "alpaca": _instruction_record,
    "self-instruct": _instruction_record,
    "prompts": _prompt_record,
}


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The file's raw lines: each is decoded on its own, so bad UTF-8 rejects that line only."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        yield from enumerate(f, 1)


def _decoded(line: str | bytes) -> str:
    """``line`` as text; raises ``UnicodeDecodeError`` on bad UTF-8 (never guesses a character)."""
    return line if isinstance(line, str) else line.decode("utf-8")


def _convert(convert: Callable[[Any], list[Record]], obj: Any, result: ImportResult, where: Rejected) -> None:
    try:
        result.records.extend(convert(obj))
    except RecordError as e:
        where.reason = str(e)
        result.errors.append(where)
    except (TypeError, KeyError, AttributeError, ValueError) as e:  # odd shapes deep in a tree
        where.reason = f"malformed record: {type(e).__name__}: {e}"
        result.errors.append(where)
    except RecursionError:  # the converters walk trees iteratively; this guards any that recurse
        where.reason = "malformed record: nested too deeply"
        result.errors.append(where)


def _converter(fmt: str) -> Callable[[Any], list[Record]]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; known: {sorted(FORMATS)}")
    return FORMATS[fmt]


def parse_lines(fmt: str, lines: Iterable[tuple[int, str | bytes]], name: str) -> ImportResult:
    """Convert (line number, text or raw bytes) pairs of JSONL; the web upload and the file
    reader share this. A bad line (bad UTF-8, bad JSON, nested too deeply, wrong fields) is
    reported with its number and the others still import."""
    convert, result = _converter(fmt), ImportResult()
    for lineno, raw in lines:
        try:
            line = _decoded(raw)
        except UnicodeDecodeError as e:
            result.errors.append(Rejected(name, lineno, f"invalid UTF-8 at byte {e.start + 1}"))
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            result.errors.append(Rejected(name, lineno, f"invalid JSON: {e.msg} at column {e.colno}"))
            continue
        except RecursionError:  # json's parser recurses once per nested array or object
            result.errors.append(Rejected(name, lineno, "invalid JSON: nested too deeply"))
            continue
        if _has_lone_surrogate(line, obj):
            result.errors.append(Rejected(name, lineno, "invalid JSON: a \\u escape is a lone "
                                          "surrogate, not a character"))
            continue
        _convert(convert, obj, result, Rejected(name, lineno, ""))
    return result


def _has_lone_surrogate(line: str, obj: Any) -> bool:
    """True when ``obj`` holds a lone surrogate ("\\ud800" is valid JSON but no character, and
    the store cannot encode it). Only lines with a \\u escape can, so others are not re-walked."""
    if "\\u" not in line:
        return False
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_array(fmt: str, items: list[Any], name: str) -> ImportResult:
    """Convert the items of a JSON array file (Alpaca's ``alpaca_data.json`` is one)."""
    convert, result = _converter(fmt), ImportResult()
    for n, obj in enumerate(items, 1):
        _convert(convert, obj, result, Rejected(name, n, "", unit="item"))
    return result


def _starts_with_bracket(path: Path) -> bool:
    for _, line in _lines(path):
        if line.strip():
            return line.lstrip().startswith(b"[")
    return False


def read(fmt: str, path: str | Path) -> ImportResult:
    """Read a whole JSONL file (or a JSON array file) in format ``fmt``; bad records are
    collected in ``errors``, every good one is kept."""
    path = Path(path)
    _converter(fmt)
    if _starts_with_bracket(path):
        data = b"".join(line for _, line in _lines(path))
        try:
            items = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            return ImportResult(errors=[Rejected(str(path), line, "invalid UTF-8 in a JSON array")])
        except json.JSONDecodeError as e:
            return ImportResult(errors=[Rejected(str(path), e.lineno, f"invalid JSON array: {e.msg}")])
        except RecursionError:
            return ImportResult(errors=[Rejected(str(path), 1, "invalid JSON array: nested too deeply")])
        if isinstance(items, list):
            return parse_array(fmt, items, str(path))
    return parse_lines(fmt, _lines(path), str(path))
