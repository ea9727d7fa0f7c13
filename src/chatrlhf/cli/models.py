"""Model registry commands: ``chatrlhf models list|show|register|register-run|promote|rollback|split``.

Thin wrappers over ``chatrlhf.deploy`` (registry, gates, runs). Every command takes ``--db`` as the
store commands do. ``promote`` runs the promotion gates against the version served now and
promotes only when they pass (exit code 1 and the report when they do not); ``--no-gate`` skips
them and then needs ``--report`` saying why.
"""

from __future__ import annotations

import os
from typing import Any

import click

from chatrlhf.cli.store import DB_OPTION, _store

ACTOR_OPTION = click.option("--actor", default=lambda: os.environ.get("USER", "")[:64], show_default="$USER",
                            help="Who made the change (kept in the deployment log).")


def _fail(e: Exception) -> None:
    raise click.ClickException(str(e))


def _errors() -> tuple[type[Exception], ...]:
    from chatrlhf.deploy.registry import RegistryError
    from chatrlhf.store.store import NotFound

    return (RegistryError, NotFound, ValueError)


def _served(store: Any) -> dict[str, float]:
    """{version: share of traffic} of what is served now ({} when nothing is)."""
    from chatrlhf.deploy import registry

    d = registry.current(store)
    if d is None:
        return {}
    if not d.traffic:
        return {d.version: 1.0}
    total = sum(d.traffic.values())
    return {k: w / total for k, w in d.traffic.items()}


@click.group("models")
def models_group() -> None:
    """The model registry: versions, lineage, what is served, promotion gates."""


@models_group.command("list")
@DB_OPTION
def list_cmd(db_url: str | None) -> None:
    """Every version, oldest first; '*' marks what is served (with its share in a split)."""
    store = _store(db_url)
    served = _served(store)
    rows = [("", "NAME", "KIND", "PARENT", "STATUS", "CREATED")]
    for mv in store.list_model_versions():
        mark = "" if mv.name not in served else "*" if served[mv.name] == 1.0 else f"*{served[mv.name]:.0%}"
        rows.append((mark, mv.name, mv.kind or "-", mv.parent or "-", mv.status,
                     mv.created_at.strftime("%Y-%m-%d %H:%M")))
    if len(rows) == 1:
        click.echo("no model versions (see `chatrlhf models register` and `register-run`)")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _scalars(d: Any, prefix: str = "", depth: int = 2) -> list[tuple[str, Any]]:
    """Dotted (key, value) pairs of the scalars of a nested dict, ``depth`` levels deep."""
    out: list[tuple[str, Any]] = []
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            if depth > 1:
                out += _scalars(v, f"{prefix}{k}.", depth - 1)
        elif not isinstance(v, list):
            out.append((f"{prefix}{k}", v))
    return out


@models_group.command("show")
@click.argument("name")
@DB_OPTION
def show_cmd(name: str, db_url: str | None) -> None:
    """One version: lineage, training-data hashes, config summary, evaluation and gate report."""
    from chatrlhf.deploy import registry

    store = _store(db_url)
    try:
        mv = registry.get(store, name)
        chain = registry.lineage(store, name)
    except _errors() as e:
        _fail(e)
    served = _served(store)
    click.echo(f"{mv.name}  ({mv.kind or 'no kind'}, {mv.status}"
               f"{', served' if mv.name in served else ''}, created {mv.created_at:%Y-%m-%d %H:%M})")
    click.echo(f"path: {mv.path}")
    if mv.notes:
        click.echo(f"notes: {mv.notes}")
    click.echo("lineage: " + " -> ".join(v.name for v in chain))
    if mv.meta.get("reward_model"):
        click.echo(f"reward model: {mv.meta['reward_model']}")
    sections = [("data (sha256)", [(f, h[:16]) for f, h in (mv.meta.get("data") or {}).items()]),
                ("config", _scalars(mv.meta.get("config"))),
                ("eval", _scalars(mv.meta.get("eval")))]
    for title, pairs in sections:
        click.echo(f"{title}:" + ("" if pairs else " -"))
        for k, v in pairs:
            click.echo(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
    gate = mv.meta.get("gate")
    if gate:
        click.echo("last gate decision:")
        click.echo(gate.get("report", "").rstrip())


@models_group.command("register")
@click.argument("name")
@click.argument("path")
@click.option("--parent", default=None, help="The version it was trained from.")
@click.option("--kind", default="", help="base | sft | rm | ppo | ...")
@click.option("--notes", default="", help="Free text kept with the version.")
@DB_OPTION
def register_cmd(name: str, path: str, parent: str | None, kind: str, notes: str, db_url: str | None) -> None:
    """Add a version by hand (a checkpoint directory or a model spec)."""
    from chatrlhf.deploy import registry

    store = _store(db_url)
    try:
        mv = registry.register(store, name, path, kind=kind, parent=parent, notes=notes)
    except _errors() as e:
        _fail(e)
    click.echo(f"registered {mv.name} ({mv.status})")


@models_group.command("register-run")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--prefix", default=None, help="Version names are PREFIX-sft, PREFIX-ppo1 ... (default: the dir's name).")
@DB_OPTION
def register_run_cmd(run_dir: str, prefix: str | None, db_url: str | None) -> None:
    """Register every finished stage of a pipeline run (base, sft, rm and ppo per round)."""
    from chatrlhf.deploy.runs import register_run

    store = _store(db_url)
    try:
        versions = register_run(store, run_dir, prefix=prefix)
    except _errors() as e:
        _fail(e)
    for mv in versions:
        click.echo(f"{mv.name}\t{mv.kind}\t{mv.parent or '-'}\t{mv.path}")


@models_group.command("promote")
@click.argument("name")
@click.option("--report", "note", default="", help="Why (required with --no-gate); kept in the deployment log.")
@click.option("--no-gate", is_flag=True, help="Promote without running the gates.")
@click.option("--dry-run", is_flag=True, help="Print the gates' decision; change nothing.")
@click.option("--min-win-rate", type=float, default=None, help="Gold win rate the candidate needs vs the served one.")
@click.option("--margin", type=float, default=None, help="Largest allowed regression of every safety rate.")
@click.option("--optional", "optional", multiple=True, help="A gate that passes when its metric is missing (repeat).")
@ACTOR_OPTION
@DB_OPTION
def promote_cmd(name: str, note: str, no_gate: bool, dry_run: bool, min_win_rate: float | None,
                margin: float | None, optional: tuple[str, ...], actor: str, db_url: str | None) -> None:
    """Serve NAME to everyone, if it passes the promotion gates against the version served now."""
    from dataclasses import fields

    from chatrlhf.deploy import gates, registry

    store = _store(db_url)
    try:
        if no_gate:
            if not note:
                raise click.UsageError("--no-gate needs --report saying why the gates are skipped")
            registry.promote(store, name, actor=actor, report=f"gates skipped: {note}")
            click.echo(f"promoted {name} (gates skipped)")
            return
        cfg = gates.GateConfig(optional=optional)
        if min_win_rate is not None:
            cfg.min_win_rate = min_win_rate
        if margin is not None:
            for f in fields(cfg):
                if f.name.startswith("max_"):
                    setattr(cfg, f.name, margin)
        decision = gates.gate_and_promote(store, name, cfg, actor=actor, note=note, dry_run=dry_run)
    except _errors() as e:
        _fail(e)
    if decision.checks:
        click.echo(decision.report().rstrip())
    if dry_run:
        click.echo(f"dry run: {name} would {'be promoted' if decision.promote else 'be refused'}")
    elif decision.promote:
        click.echo(f"promoted {name}")
    else:
        raise click.ClickException(f"{name} refused by the gates and marked rejected "
                                   f"(failed: {', '.join(c.name for c in decision.failed)})")


@models_group.command("rollback")
@click.option("--report", "note", default="", help="Why; kept in the deployment log.")
@ACTOR_OPTION
@DB_OPTION
def rollback_cmd(note: str, actor: str, db_url: str | None) -> None:
    """Serve again the version served before the current one (twice: two versions back)."""
    from chatrlhf.deploy import registry

    store = _store(db_url)
    try:
        now = registry.current(store)
        d = registry.rollback(store, actor=actor, report=note)
    except _errors() as e:
        _fail(e)
    click.echo(f"rolled back from {now.version} to {d.version}")


@models_group.command("split")
@click.argument("weights", nargs=-1, required=True, metavar="NAME=W NAME=W...")
@click.option("--report", "note", default="", help="Why; kept in the deployment log.")
@ACTOR_OPTION
@DB_OPTION
def split_cmd(weights: tuple[str, ...], note: str, actor: str, db_url: str | None) -> None:
    """Serve several versions at once, e.g. `split v1=0.9 v2=0.1`; the heaviest is the default."""
    from chatrlhf.deploy import registry

    traffic: dict[str, float] = {}
    for w in weights:
        name, eq, value = w.rpartition("=")
        try:
            traffic[name] = float(value)
        except ValueError:
            eq = ""
        if not eq or not name:
            raise click.UsageError(f"expected NAME=WEIGHT, got {w!r}")
    store = _store(db_url)
    try:
        d = registry.split(store, traffic, actor=actor, report=note)
    except _errors() as e:
        _fail(e)
    click.echo("serving " + ", ".join(f"{k}={v:g}" for k, v in d.traffic.items()) + f" (default {d.version})")


def register(group: click.Group) -> None:
    group.add_command(models_group)
