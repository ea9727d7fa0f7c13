"""Build and run the server from a ``ServeConfig``: what ``chatrlhf serve`` calls.

Consumes a model spec (nothing = the embedded default, ``"tiny"``, an HF directory, or a pipeline
run directory whose newest policy checkpoint is served: the last complete PPO round ``ppo-N/``,
else ``ppo/``, else ``sft/``) and a store URL;
produces a running uvicorn server. ``build_app`` returns the app without running it (tests,
benchmarks and other ASGI servers use that).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


# A pipeline run (chatrlhf.pipeline) keeps its policies in ppo/ (round 1), ppo-2/, ppo-3/ ... and
# sft/; a stage is complete when its DONE file exists (chatrlhf.train_utils).
DONE = "DONE"
ENGINE_DTYPES = ("fp32", "bf16", "int8", "int4")  # engine.WEIGHTS, "fp32" for "model"

@dataclass
class ServeConfig:
    model: str | None = None  # None: the embedded default; "tiny"; an HF dir; a run dir
    host: str = "127.0.0.1"
    port: int = 8000
    db: str | None = None  # store URL or SQLite path; None: $CHATRLHF_DB or the default file
    no_auth: bool = False  # accept requests without a key (loopback only)
    # Host names besides the loopback ones (and the bound address) that browsers may use to
    # reach the server, "name" or "name:port"; anything else is refused (DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    requests_per_minute: int = 120  # generation requests per user (API key or login); 0 = off
    max_concurrent: int = 8  # generations of one user in flight at once; 0 = off
    tokens_per_day: int = 0  # completion tokens per user per day; 0 = off
    max_batch_size: int = 16  # rows per engine batch
    batch_wait_ms: float = 20.0  # how long a batch waits for more requests to join
    # A prompt longer than this is prefilled this many tokens per engine step, between the other
    # batches' decode steps, so one 8k-token prompt does not freeze every stream while it is read.
    prefill_chunk: int = 256
    # Weights the engine decodes with: "fp32" (the model's own), or "bf16" / "int8" / "int4"
    # copies for faster decoding (engine.py; +270 / +405 / +365 MB per version for SmolLM2-135M).
    engine_dtype: str = "fp32"
    # Serve what the registry deploys (chatrlhf models promote|rollback|split), following it live;
    # False pins the server to ``model``.
    follow_registry: bool = True
    # What moderates inputs and replies (MODERATION_MODES): "model", the trained classifier (the
    # one bundled in the package unless ``moderation_model`` names another); "pattern", the
    # readable pattern filter (chatrlhf.moderation); "off".
    moderation: str = "model"
    # The web chat's arena (server/arena.py): this share of new user turns is answered by two
    # versions side by side when two are available; 0 = off. ``arena_versions`` names the two
    # (else the two heaviest of the traffic split).
    arena_share: float = 0.0
    arena_versions: tuple[str, ...] = ()
    # With moderation "model": a model directory (chatrlhf moderation train; None: the bundled
    # one), and what its verdict does: "block", "warn" or "log" (safety.moderator.POLICIES).
    moderation_model: str | None = None
    moderation_policy: str = "block"
    log_level: str = "info"
    # "engine": the project's engine; "vllm": vLLM's LLMEngine on a GPU (the ``vllm`` extra;
    # vllm_backend.VLLMServingEngine), which batches continuously itself.
    backend: str = "engine"
    # vLLM's share of the GPU per served version; below one half so the registry can load the next
    # version beside the current one during a live swap.
    vllm_gpu_memory: float = 0.45
    # torch intra-op threads; 0 = half the CPUs. On a shared or small machine, more threads than
    # free cores make OpenMP spin-wait (10x slower measured with 2 threads on 2 busy cores).
    threads: int = 0


class ServeError(ValueError):
    """A configuration the server refuses to start with; the message says why."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, no_auth: bool) -> None:
    if no_auth and not is_loopback(host):
        raise ServeError(
            f"--no-auth refuses to bind to {host!r}: without auth anyone who can reach the port "
            "could use the model and read conversations. Bind to 127.0.0.1, or drop --no-auth "
            "and create a key with `chatrlhf keys create`."
        )


def resolve_model(spec: str | None) -> tuple[str | None, str]:
    """``(spec for models.load_model, served model name)``; a run dir becomes its checkpoint."""
    from ..models import EMBEDDED_ALIASES, EMBEDDED_NAME

    if spec in EMBEDDED_ALIASES:
        return None, EMBEDDED_NAME
    if spec == "tiny":
        return "tiny", "tiny"
    p = Path(str(spec)).expanduser()
    if p.is_dir() and not (p / "config.json").exists():
        ckpt = newest_policy_checkpoint(p)
        if ckpt is None:
            raise ServeError(
                f"{p} has no config.json, and no policy checkpoint in ppo/, ppo-N/ or sft/"
            )
        return str(ckpt), f"{p.resolve().name}/{ckpt.relative_to(p).as_posix()}"
    if p.is_dir():
        return str(p), p.resolve().name
    return str(spec), str(spec)  # a hub id: models.load_model says where it looked


def _ppo_round(d: Path) -> int:
    tail = d.name.removeprefix("ppo")
    return 1 if tail == "" else int(tail[1:]) if tail[1:].isdigit() and tail[0] == "-" else 0


def newest_policy_checkpoint(run_dir: Path) -> Path | None:
    """The last PPO round's policy, else the SFT policy; complete stages (DONE) first, so a run
    that was killed mid-PPO serves its previous policy."""
    ppo = sorted((d for d in run_dir.glob("ppo*") if _ppo_round(d) > 0), key=_ppo_round, reverse=True)
    candidates = [d for d in [*ppo, run_dir / "sft"] if (d / "config.json").is_file()]
    complete = [d for d in candidates if (d / DONE).exists()]
    return (complete or candidates or [None])[0]


def register_model_version(store: Any, name: str, path: str) -> str:
    """The served model as a row in the store's model_versions (created on first serve)."""
    from ..store import Conflict

    name = name[:128]
    if store.get_model_version(name) is None:
        try:
            store.add_model_version(name, path, notes="registered by chatrlhf serve")
        except Conflict:  # a replica registered it first
            pass
    return name


MODERATION_MODES = ("model", "pattern", "off")


def moderation_hook(mode: str = "model", model_dir: str | None = None, policy: str = "block") -> Any:
    """The chat service's moderation hook for ``mode``: None for "off", the pattern filter for
    "pattern", else the trained model in ``model_dir`` (None: the bundled one) under ``policy``.
    Options that ``mode`` would ignore are refused, and a model directory is checked before the
    slow policy-model load."""
    from ..safety.moderator import POLICIES

    if mode not in MODERATION_MODES:
        raise ServeError(f"--moderation must be one of {MODERATION_MODES}, got {mode!r}")
    if policy not in POLICIES:
        raise ServeError(f"--moderation-policy must be one of {POLICIES}, got {policy!r}")
    if mode != "model" and (model_dir is not None or policy != "block"):
        raise ServeError(f"--moderation-model and --moderation-policy apply to the trained model; "
                         f"they make no sense with --moderation {mode}")
    if mode == "off":
        return None
    if mode == "pattern":
        from ..moderation import moderate

        return moderate
    from ..safety.moderator import load_moderator

    if model_dir is not None and not (Path(model_dir) / "model.json").is_file():
        raise ServeError(f"{model_dir} holds no moderation model; train one with "
                         "`chatrlhf moderation train --out DIR`")
    return load_moderator(model_dir, policy)


def build_service(
    model_spec: str | None,
    model_name: str,
    *,
    store: Any = None,
    max_batch_size: int = 16,
    batch_wait_ms: float = 20.0,
    prefill_chunk: int | None = 256,
    engine_dtype: str = "fp32",
    moderation: str = "model",
    moderation_model: str | None = None,
    moderation_policy: str = "block",
    follow_registry: bool = True,
    poll_s: float = 1.0,
    backend: str = "engine",
    vllm_gpu_memory: float = 0.45,
) -> Any:
    """Load the model, wrap it in an engine and a scheduler, and return the ``ChatService``.

    With a store and ``follow_registry``, the service serves what the registry's deployment log
    says (``chatrlhf models promote``) and follows it while it runs; ``model_spec`` is what it
    serves while nothing has been deployed. ``moderation``: see ``moderation_hook`` (the default,
    the bundled trained model, loads MiniLM: about a second)."""
    from ..engine import Engine
    from ..models import load_model, resolve_model_dir
    from .router import Backend, Router
    from .scheduler import BatchScheduler
    from .service import ChatService

    if backend not in ("engine", "vllm"):
        raise ServeError(f"--backend must be 'engine' or 'vllm', got {backend!r}")

    def make_backend(version: str, spec: str | None) -> Backend:
        if backend == "vllm":  # vLLM loads the weights itself; here only the tokenizer and config
            from transformers import AutoConfig

            from ..models import load_tokenizer
            from ..vllm_backend import VLLMServingEngine, VLLMUnavailable

            path = resolve_model_dir(spec)
            try:
                engine = VLLMServingEngine(path, max_num_seqs=max_batch_size, gpu_memory_utilization=vllm_gpu_memory)
            except VLLMUnavailable as e:
                raise ServeError(str(e)) from e
            tokenizer, config = load_tokenizer(spec), AutoConfig.from_pretrained(path)
        else:
            model, tokenizer = load_model(spec)
            # Served models load in fp32, so "fp32" is the model's own weights.
            weights = "model" if engine_dtype == "fp32" else engine_dtype
            engine = Engine(model, tokenizer, max_batch_size=max_batch_size, prefill_chunk=prefill_chunk,
                            weights=weights)
            config = model.config
        scheduler = BatchScheduler(engine, max_batch_size=max_batch_size,
                                   batch_wait_s=batch_wait_ms / 1000)
        return Backend(version, scheduler, tokenizer, getattr(config, "max_position_embeddings", None))

    hook = moderation_hook(moderation, moderation_model, moderation_policy)
    follow = store is not None and follow_registry
    deployed = store.current_deployment() if follow else None
    if deployed is not None:
        mv = store.get_model_version(deployed.version)
        first = make_backend(mv.name, mv.path)
    else:
        version = model_name
        if store is not None:
            version = register_model_version(store, model_name, str(resolve_model_dir(model_spec)))
        first = make_backend(version, model_spec)
    router = Router(first, alias=model_name, store=store if follow else None,
                    loader=(lambda mv: make_backend(mv.name, mv.path)) if follow else None, poll_s=poll_s)
    return ChatService(
        first.scheduler, first.tokenizer, model_name=model_name, moderation=hook,
        store=store, context_length=first.context_length, model_version=first.version,
        router=router,
    )


def build_app(cfg: ServeConfig, store: Any = None) -> Any:
    """The ASGI app for ``cfg``; opens (and migrates) the store unless one is given."""
    from ..store import Store
    from .app import create_app

    check_bind(cfg.host, cfg.no_auth)
    if not 0.0 <= cfg.arena_share <= 1.0 or len(cfg.arena_versions) not in (0, 2):
        raise ServeError("--arena-share must be in [0, 1], and --arena-versions names two versions")
    if cfg.engine_dtype not in ENGINE_DTYPES:
        raise ServeError(f"--engine-dtype must be one of {', '.join(ENGINE_DTYPES)}, got {cfg.engine_dtype!r}")
    if store is None:
        store = Store(cfg.db)
        store.upgrade()
    spec, name = resolve_model(cfg.model)
    service = build_service(spec, name, store=store, max_batch_size=cfg.max_batch_size,
                            batch_wait_ms=cfg.batch_wait_ms, prefill_chunk=cfg.prefill_chunk,
                            engine_dtype=cfg.engine_dtype, follow_registry=cfg.follow_registry, moderation=cfg.moderation,
                            moderation_model=cfg.moderation_model,
                            moderation_policy=cfg.moderation_policy, backend=cfg.backend,
                            vllm_gpu_memory=cfg.vllm_gpu_memory)
    from .browser import host_allow_list
    from .quotas import QuotaConfig

    # /v1/moderations reports the trained model's own verdict whatever the blocking policy.
    endpoint_moderation = getattr(service.moderation, "unfiltered", service.moderation)
    app = create_app(service, store=store, moderation=endpoint_moderation, no_auth=cfg.no_auth,
                     allowed_hosts=host_allow_list(cfg.host, cfg.port, cfg.allowed_hosts),
                     quotas=QuotaConfig(requests_per_minute=cfg.requests_per_minute,
                                        concurrent=cfg.max_concurrent,
                                        tokens_per_day=cfg.tokens_per_day))
    from .arena import ArenaConfig

    app.state.arena = ArenaConfig(share=cfg.arena_share, versions=tuple(cfg.arena_versions))
    return app


def torch_threads(requested: int) -> int:
    return requested if requested > 0 else max(1, (os.cpu_count() or 2) // 2)


def log_to_stderr(level: str) -> None:
    """The package's own log lines (moderation verdicts, the router's swaps) at ``--log-level``
    on stderr, beside uvicorn's: uvicorn configures only its own loggers."""
    import logging

    logger = logging.getLogger("chatrlhf")
    logger.setLevel("DEBUG" if level.lower() == "trace" else level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)


def run(cfg: ServeConfig) -> None:
    import torch
    import uvicorn

    check_bind(cfg.host, cfg.no_auth)  # before the slow model load
    # Process-wide, so only here (the serve process), never in build_app (tests share a process).
    torch.set_num_threads(torch_threads(cfg.threads))
    log_to_stderr(cfg.log_level)
    app = build_app(cfg)
    auth = ("no auth (loopback only)" if cfg.no_auth
            else "API key or web login required (`chatrlhf keys create --name NAME`)")
    moderation = (f"moderation model {cfg.moderation_model or 'bundled'} ({cfg.moderation_policy})"
                  if cfg.moderation == "model" else f"moderation {cfg.moderation}")
    print(f"chatrlhf: serving {app.state.model_name!r} on http://{cfg.host}:{cfg.port} "
          f"(OpenAI API at /v1; {auth}; {moderation}; store {app.state.store.url})", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)
