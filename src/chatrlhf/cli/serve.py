"""``chatrlhf serve``: run the OpenAI-compatible API and web chat over one model."""

from __future__ import annotations

import click


def moderation_mode(moderation: str | None, no_moderation: bool, model_dir: str | None, policy: str) -> str:
    """``--moderation`` with ``--no-moderation`` folded in (kept as its old spelling); options
    for the trained model are refused with another mode here, before a store is opened."""
    if no_moderation and moderation not in (None, "off"):
        raise click.UsageError(f"--no-moderation contradicts --moderation {moderation}")
    mode = "off" if no_moderation else moderation or "model"
    if mode != "model" and (model_dir is not None or policy != "block"):
        raise click.UsageError(f"--moderation-model and --moderation-policy apply to the trained "
                               f"model, not to --moderation {mode}")
    return mode


def register(group: click.Group) -> None:
    @group.command("serve")
    @click.argument("model_or_run", required=False)
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
    @click.option("--port", default=8000, show_default=True, type=int)
    @click.option("--db", default=None, help="Store URL or SQLite path [default: $CHATRLHF_DB or "
                  "~/.local/share/chatrlhf/chatrlhf.db].")
    @click.option("--no-auth", is_flag=True, help="Accept requests without an API key "
                  "(only when bound to a loopback address).")
    @click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME[:PORT]",
                  help="A Host name browsers may reach the server by, besides localhost, "
                  "127.0.0.1, [::1] and --host (repeatable); other Host headers are refused.")
    @click.option("--requests-per-minute", default=120, show_default=True, type=int,
                  help="Generation requests per user or API key (429 past it); 0 = no limit.")
    @click.option("--max-concurrent", default=8, show_default=True, type=int,
                  help="Generations of one user in flight at once (429 past it); 0 = no limit.")
    @click.option("--tokens-per-day", default=0, show_default=True, type=int,
                  help="Completion tokens per user or API key per day (429 past it); 0 = no limit.")
    @click.option("--max-batch-size", default=16, show_default=True, type=int,
                  help="Rows the engine generates together.")
    @click.option("--batch-wait-ms", default=20.0, show_default=True, type=float,
                  help="How long a batch waits for more requests to join it.")
    @click.option("--prefill-chunk", default=256, show_default=True, type=click.IntRange(min=1),
                  help="Prompt tokens read per engine step for long prompts (other streams "
                  "keep decoding in between).")
    @click.option("--backend", default="engine", show_default=True, type=click.Choice(["engine", "vllm"]),
                  help="What generates: the built-in engine, or vLLM on a GPU (pip install 'chatrlhf[vllm]').")
    @click.option("--vllm-gpu-memory", default=0.45, show_default=True, type=click.FloatRange(0.05, 0.95),
                  help="With --backend vllm: its share of GPU memory per served version.")
    @click.option("--engine-dtype", default="fp32", show_default=True,
                  type=click.Choice(["fp32", "bf16", "int8", "int4"]),
                  help="Weights the engine decodes with: bf16, int8 or int4 copies decode faster "
                  "(int4 fastest for one stream; see docs/serving.md).")
    @click.option("--follow-registry/--no-follow-registry", default=True, show_default=True,
                  help="Serve the version the registry deploys (chatrlhf models promote) and move "
                  "with it live; MODEL_OR_RUN is served until something is deployed.")
    @click.option("--arena-share", default=0.0, show_default=True, type=click.FloatRange(0, 1),
                  help="Share of web chat turns answered by two versions side by side for the "
                  "user to pick from (when a split is active or --arena-versions names two); 0 = off.")
    @click.option("--arena-versions", default="", metavar="A,B",
                  help="The two versions the arena compares (default: the split's two heaviest).")
    @click.option("--moderation", "moderation", default=None,
                  type=click.Choice(["model", "pattern", "off"]),
                  help="What moderates inputs and replies: the trained classifier (bundled, or "
                  "--moderation-model), the readable pattern filter, or nothing  [default: model].")
    @click.option("--no-moderation", is_flag=True, help="Same as --moderation off.")
    @click.option("--moderation-model", default=None, metavar="DIR",
                  help="Another trained moderation model (chatrlhf moderation train) in place of "
                  "the bundled one.")
    @click.option("--moderation-policy", default="block", show_default=True,
                  type=click.Choice(["block", "warn", "log"]),
                  help="What a flag from the trained model does: stop the text, or only log it.")
    @click.option("--threads", default=0, show_default=True, type=int,
                  help="torch CPU threads; 0 = half the CPUs.")
    @click.option("--log-level", default="info", show_default=True)
    def serve(model_or_run, host, port, db, no_auth, allowed_hosts, requests_per_minute,
              max_concurrent, tokens_per_day, max_batch_size, batch_wait_ms,
              prefill_chunk, engine_dtype, backend, vllm_gpu_memory, follow_registry, arena_share, arena_versions, moderation, no_moderation, moderation_model, moderation_policy, threads, log_level) -> None:
        """Serve MODEL_OR_RUN: nothing (the embedded SmolLM2), "tiny", a Hugging Face directory,
        or a pipeline run directory (its newest policy: the last PPO round, else sft/)."""
        from chatrlhf.server.launch import ServeConfig, ServeError, check_bind, run

        cfg = ServeConfig(model=model_or_run, host=host, port=port, db=db, no_auth=no_auth,
                          allowed_hosts=tuple(allowed_hosts), requests_per_minute=requests_per_minute,
                          max_concurrent=max_concurrent, tokens_per_day=tokens_per_day,
                          max_batch_size=max_batch_size, batch_wait_ms=batch_wait_ms,
                          prefill_chunk=prefill_chunk, engine_dtype=engine_dtype, backend=backend,
                          vllm_gpu_memory=vllm_gpu_memory, follow_registry=follow_registry,
                          moderation=moderation_mode(moderation, no_moderation, moderation_model, moderation_policy),
                          moderation_model=moderation_model,
                          moderation_policy=moderation_policy, threads=threads, log_level=log_level,
                          arena_share=arena_share,
                          arena_versions=tuple(v.strip() for v in arena_versions.split(",") if v.strip()))
        try:
            check_bind(cfg.host, cfg.no_auth)
            run(cfg)
        except ServeError as e:
            raise click.UsageError(str(e)) from None
