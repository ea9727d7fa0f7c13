"""Trainer-workspace commands: ``export rankings|demos``, ``import FORMAT FILE`` and ``tasks ...``.

Thin wrappers over ``chatrlhf.importers`` and ``chatrlhf.workspace``. ``export`` is a group shared
with the store's ``export feedback``: whichever area registers first creates it, the other adds
its subcommands. Store commands take ``--db URL`` (default: ``$CHATRLHF_DB``, else the SQLite file
in the user data dir) and migrate the database first.
"""

from __future__ import annotations

from pathlib import Path

import click

from chatrlhf.cli.store import DB_OPTION, _store, export_group


def _write(path: str, records: list, what: str) -> None:
    from chatrlhf.schema import write_jsonl

    digest = write_jsonl(path, records)
    click.echo(f"wrote {len(records)} {what} to {path} (sha256 {digest[:12]})")


@click.command("rankings")
@click.option("--to", "path", required=True, type=click.Path(dir_okay=False), help="Output JSONL (reward stage).")
@click.option("--aggregate", type=click.Choice(["ranked_pairs", "bradley_terry"]), default=None,
              help="One record per task, merging its trainers' rankings (default: one per ranking).")
@click.option("--no-imported", is_flag=True, help="Only rankings written in the workspace.")
@DB_OPTION
def export_rankings_cmd(path: str, aggregate: str | None, no_imported: bool, db_url: str | None) -> None:
    """Export trainer (and imported) rankings as the records `chatrlhf reward` reads."""
    from chatrlhf.workspace import export_rankings

    records = export_rankings(_store(db_url), aggregate=aggregate, imported=not no_imported)
    _write(path, records, "ranking(s)")


@click.command("demos")
@click.option("--to", "path", required=True, type=click.Path(dir_okay=False), help="Output JSONL (sft stage).")
@click.option("--no-imported", is_flag=True, help="Only demonstrations written in the workspace.")
@DB_OPTION
def export_demos_cmd(path: str, no_imported: bool, db_url: str | None) -> None:
    """Export submitted demonstrations as the records `chatrlhf sft` reads."""
    from chatrlhf.workspace import export_demos

    _write(path, export_demos(_store(db_url), imported=not no_imported), "demonstration(s)")


@click.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["hh-rlhf", "messages", "oasst", "alpaca",
                                                             "self-instruct", "prompts"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--to", "path", default=None, type=click.Path(dir_okay=False),
              help="Output JSONL; when a format yields both kinds, NAME.demos.jsonl and NAME.rankings.jsonl.")
@click.option("--db", "db_url", default=None, metavar="URL", help="Import into this store instead.")
@click.option("--only", type=click.Choice(["demos", "rankings"]), default=None, help="Keep one kind of record.")
@click.option("--max-errors", default=20, show_default=True, help="Rejected lines to print (all are counted).")
def import_cmd(fmt: str, file: str, path: str | None, db_url: str | None, only: str | None, max_errors: int) -> None:
    """Read a public dataset FILE (plain or .gz) into dataset files or the store.

    Malformed records are rejected with their file, line and reason; the rest still load.
    """
    from chatrlhf import importers

    if (path is None) == (db_url is None):
        raise click.UsageError("give exactly one of --to FILE or --db URL")
    res = importers.read(fmt, file)
    for e in res.errors[:max_errors]:
        click.echo(f"rejected {e}", err=True)
    if len(res.errors) > max_errors:
        click.echo(f"... and {len(res.errors) - max_errors} more rejected line(s)", err=True)
    demos = [] if only == "rankings" else res.demos
    rankings = [] if only == "demos" else res.rankings
    if db_url is not None:
        from chatrlhf.workspace import import_records

        n_d, n_r = import_records(_store(db_url), [*demos, *rankings], f"import:{fmt}")
        click.echo(f"imported {n_d} conversation(s) and {n_r} ranking(s) into the store")
    elif demos and rankings:
        stem = Path(path).with_suffix("")
        _write(f"{stem}.demos.jsonl", demos, "conversation(s)")
        _write(f"{stem}.rankings.jsonl", rankings, "ranking(s)")
    else:
        _write(path, demos or rankings, "conversation(s)" if demos else "record(s)")
    click.echo(f"summary: {res.summary()}")


@click.group("tasks")
def tasks_group() -> None:
    """Ranking tasks for the trainer workspace."""


@tasks_group.command("create")
@click.option("--count", default=1, show_default=True, help="Tasks to create.")
@click.option("-k", "k", default=4, show_default=True, type=click.IntRange(4, 9), help="Completions per task.")
@click.option("--required", default=1, show_default=True, type=click.IntRange(1, 50),
              help="Independent trainers per task.")
@click.option("--source", type=click.Choice(["conversation", "prompt_list"]), default="conversation",
              show_default=True, help="Random model reply from recorded conversations, or an uploaded prompt.")
@click.option("--list", "list_id", type=int, default=None, help="Prompt list id (with --source prompt_list).")
@click.option("--model", "model_spec", default=None, help="Model that samples: smollm2 (default), tiny, a dir.")
@click.option("--max-tokens", default=256, show_default=True)
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--seed", default=None, type=int)
@DB_OPTION
def tasks_create(count: int, k: int, required: int, source: str, list_id: int | None, model_spec: str | None,
                 max_tokens: int, temperature: float, seed: int | None, db_url: str | None) -> None:
    """Sample K completions for randomly picked prefixes and queue them for ranking."""
    import random

    from chatrlhf import workspace as ws
    from chatrlhf.engine import Engine, SamplingParams
    from chatrlhf.models import load_model

    store = _store(db_url)
    model, tok = load_model(model_spec)
    params = SamplingParams(max_new_tokens=max_tokens, temperature=temperature, seed=seed)
    sampler = ws.engine_sampler(Engine(model, tok), tok, params)
    rng = random.Random(seed)
    name = model_spec or "smollm2"
    for _ in range(count):
        tid = ws.make_task(store, sampler, k=k, required=required, source=source, list_id=list_id,
                           model_name=name, rng=rng)
        if tid is None:
            click.echo("nothing left to pick from that source", err=True)
            break
        click.echo(f"created task {tid}")


@tasks_group.command("upload-prompts")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["prompts", "messages"]), default="prompts", show_default=True)
@DB_OPTION
def tasks_upload(name: str, file: str, fmt: str, db_url: str | None) -> None:
    """Store a prompt list (JSONL) that tasks can be drawn from."""
    from chatrlhf import importers
    from chatrlhf.workspace import upload_prompts

    res = importers.read(fmt, file)
    for e in res.errors:
        click.echo(f"rejected {e}", err=True)
    prompts = [c for c in res.demos if c.is_prompt]
    try:
        list_id = upload_prompts(_store(db_url), name, prompts)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"prompt list {list_id}: {len(prompts)} prompt(s)")


@tasks_group.command("list")
@click.option("--status", type=click.Choice(["open", "done"]), default=None)
@DB_OPTION
def tasks_list(status: str | None, db_url: str | None) -> None:
    """Tasks, newest first: id, K, rankings/required, status, prompt."""
    from chatrlhf.workspace import task_summaries

    for t in task_summaries(_store(db_url), status=status):
        click.echo(f"{t.id}\tK={t.k}\t{t.submitted}/{t.required}\t{t.status}\t{t.prompt[:70]!r}")


@tasks_group.command("agreement")
@DB_OPTION
def tasks_agreement(db_url: str | None) -> None:
    """Pairwise inter-annotator agreement, overall and per trainer."""
    from chatrlhf.workspace import agreement_report

    rep = agreement_report(_store(db_url))
    if rep.overall is None:
        click.echo("no task has rankings from two trainers yet")
        return
    click.echo(f"overall\t{rep.overall:.3f}\t({rep.pairs} pairs)")
    for who, v in sorted(rep.per_annotator.items()):
        click.echo(f"{who}\t{v:.3f}\t({rep.per_annotator_pairs[who]} pairs)")


def register(group: click.Group) -> None:
    export = export_group(group)  # shared with `export feedback`
    export.add_command(export_rankings_cmd)
    export.add_command(export_demos_cmd)
    group.add_command(import_cmd)
    group.add_command(tasks_group)
