"""`chatrlhf chat [MODEL]`: a multi-turn terminal chat that streams replies.

Commands typed at the prompt: /reset (forget the conversation), /system TEXT (set the system
prompt and reset), /quit. MODEL is anything `models.load_model` accepts, or a pipeline run
directory (its newest policy checkpoint: ppo/, else sft/).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

HELP = "Commands: /reset  /system TEXT  /quit"


def resolve_run_or_model(spec: str | None) -> str | None:
    """A pipeline run directory means its newest policy; anything else passes through."""
    if spec and (Path(spec) / "config.yaml").exists():
        for stage in sorted(Path(spec).glob("ppo*/"), reverse=True) + [Path(spec) / "sft"]:
            if (stage / "config.json").exists():
                return str(stage)
    return spec


def chat_loop(engine, tokenizer, params, system: str | None, read=input, write=None) -> None:
    """The REPL, separated from model loading so it can be driven by tests."""
    from chatrlhf.chat_format import render_prompt

    write = write or (lambda s: (sys.stdout.write(s), sys.stdout.flush()))
    history: list[dict[str, str]] = []
    write(f"{HELP}\n")
    while True:
        try:
            line = read("you> ")
        except (EOFError, KeyboardInterrupt):
            write("\n")
            return
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            return
        if text == "/reset":
            history = []
            write("(conversation reset)\n")
            continue
        if text.startswith("/system"):
            system = text[len("/system") :].strip() or None
            history = []
            write(f"(system prompt {'set' if system else 'cleared'}; conversation reset)\n")
            continue
        if text.startswith("/"):
            write(f"unknown command {text.split()[0]!r}. {HELP}\n")
            continue
        history.append({"role": "user", "content": text})
        messages = ([{"role": "system", "content": system}] if system else []) + history
        prompt = render_prompt(messages, tokenizer, max_length=2048 - params.max_new_tokens)
        write("assistant> ")
        gen = engine.stream([prompt], params)
        try:
            for ev in gen:
                write(ev.text)
        except KeyboardInterrupt:  # Ctrl-C stops the reply, not the chat
            gen.cancel(0)
            for _ in gen:
                pass
        reply = gen.results[0].text if gen.results else ""
        write("\n")
        history.append({"role": "assistant", "content": reply})


def register(group: click.Group) -> None:
    @group.command()
    @click.argument("model", required=False)
    @click.option("--system", default=None, help="System prompt.")
    @click.option("--temperature", default=0.7, show_default=True, type=float)
    @click.option("--top-p", default=0.9, show_default=True, type=float)
    @click.option("--max-tokens", default=256, show_default=True, type=int)
    @click.option("--seed", default=None, type=int)
    def chat(model, system, temperature, top_p, max_tokens, seed):
        """Chat with MODEL in the terminal (default: embedded SmolLM2-135M-Instruct)."""
        import torch

        from chatrlhf.engine import Engine, SamplingParams
        from chatrlhf.models import ModelNotFoundError, load_model

        torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
        try:
            m, tok = load_model(resolve_run_or_model(model))
        except ModelNotFoundError as e:
            raise click.ClickException(str(e))
        params = SamplingParams(max_new_tokens=max_tokens, temperature=temperature,
                                top_p=top_p, seed=seed)
        chat_loop(Engine(m, tok, max_batch_size=1), tok, params, system)
