"""Store commands: ``chatrlhf db``, ``keys``, ``users`` and ``export feedback``.

Thin wrappers over ``chatrlhf.store``. Every command takes ``--db URL`` (default: ``$CHATRLHF_DB``,
else the SQLite file in the user data dir) and migrates the database to head first, so it works on
a fresh file. ``keys create`` prints only the key on stdout (``KEY=$(chatrlhf keys create ...)``).
"""

from __future__ import annotations

import sys

import click

DB_OPTION = click.option("--db", "db_url", default=None, metavar="URL",
                         help="Database URL or SQLite path (default: $CHATRLHF_DB or the user data dir).")


def _store(db_url: str | None):
    from chatrlhf.store import Store

    store = Store(db_url)
    store.upgrade()
    return store


def _fail(e: Exception) -> None:
    raise click.ClickException(str(e))


@click.group("db")
def db_group() -> None:
    """Create and migrate the database."""


@db_group.command("upgrade")
@DB_OPTION
def db_upgrade(db_url: str | None) -> None:
    """Migrate the database to the newest schema (creates it if missing)."""
    store = _store(db_url)
    click.echo(f"{store.url}: at revision {store.revision()}")


@db_group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration changes.")
@click.option("--rev-id", default=None, help="Revision id, e.g. 0200_something (default: random).")
def db_revision(message: str, rev_id: str | None) -> None:
    """(Developers) autogenerate a migration from the models; review it, then commit it."""
    from chatrlhf.store.db import new_revision

    click.echo(new_revision(message, rev_id=rev_id))


@click.group("keys")
def keys_group() -> None:
    """API keys for the OpenAI-compatible server."""


@keys_group.command("create")
@click.option("--name", required=True, help="A unique name for the key (to list or revoke it).")
@click.option("--role", default="user", show_default=True, type=click.Choice(["user", "trainer", "admin"]),
              help="Role of the key's own user 'key:NAME' (with --user, that user's role applies).")
@click.option("--user", "username", default=None, help="Act as this existing user instead of a new key user.")
@DB_OPTION
def keys_create(name: str, role: str, username: str | None, db_url: str | None) -> None:
    """Print a new API key. It is shown only once: the database keeps its hash."""
    store = _store(db_url)
    user_id = None
    if username is not None:
        user = store.get_user_by_name(username)
        if user is None:
            _fail(LookupError(f"no user {username!r}"))
        user_id = user.id
    try:
        key = store.create_api_key(name, role, user_id=user_id)
    except (ValueError, LookupError) as e:
        _fail(e)
    click.echo(key)
    click.echo(f"created key {name!r}; store it now, it cannot be shown again", err=True)


@keys_group.command("list")
@DB_OPTION
def keys_list(db_url: str | None) -> None:
    """List keys (name, prefix, user, state); never the keys themselves."""
    store = _store(db_url)
    for k in store.list_api_keys():
        state = "revoked" if k.revoked else "active"
        click.echo(f"{k.name}\t{k.prefix}...\tuser {k.user_id}\t{state}\t{k.created_at:%Y-%m-%d %H:%M}")


@keys_group.command("revoke")
@click.argument("name")
@DB_OPTION
def keys_revoke(name: str, db_url: str | None) -> None:
    """Revoke the key called NAME."""
    if not _store(db_url).revoke_api_key(name):
        _fail(LookupError(f"no active key named {name!r}"))
    click.echo(f"revoked {name!r}")


@click.group("users")
def users_group() -> None:
    """Accounts for the web app (roles: user, trainer, admin)."""


@users_group.command("create")
@click.argument("username")
@click.option("--role", default="user", show_default=True, type=click.Choice(["user", "trainer", "admin"]))
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of prompting.")
@DB_OPTION
def users_create(username: str, role: str, password_stdin: bool, db_url: str | None) -> None:
    """Create a user who logs in with a password."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = _store(db_url).create_user(username, password, role)
    except (ValueError, LookupError) as e:
        _fail(e)
    click.echo(f"created user {user.username!r} (id {user.id}, role {user.role})")


@users_group.command("list")
@DB_OPTION
def users_list(db_url: str | None) -> None:
    """List users (id, name, role, whether they can log in with a password)."""
    for u in _store(db_url).list_users():
        login = "password" if u.has_password else "no password"
        click.echo(f"{u.id}\t{u.username}\t{u.role}\t{login}")


@users_group.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(["user", "trainer", "admin"]))
@DB_OPTION
def users_set_role(username: str, role: str, db_url: str | None) -> None:
    """Change a user's role."""
    store = _store(db_url)
    user = store.get_user_by_name(username)
    if user is None:
        _fail(LookupError(f"no user {username!r}"))
    store.set_role(user.id, role)
    click.echo(f"{username}: {role}")


@click.command("feedback")
@click.option("--to", "path", required=True, type=click.Path(dir_okay=False),
              help="Output JSONL: rankings (reward stage) or demonstrations (sft stage).")
@click.option("--kind", type=click.Choice(["rankings", "sft"]), default=None,
              help="Record type; default: from the file name (contains 'rank' or 'sft').")
@click.option("--min-rating", default=1, show_default=True, help="sft: least summed thumbs to keep a reply.")
@DB_OPTION
def export_feedback(path: str, kind: str | None, min_rating: int, db_url: str | None) -> None:
    """Export thumbs and regenerations as training records."""
    from pathlib import Path

    from chatrlhf.schema import write_jsonl
    from chatrlhf.store.export import export_feedback_rankings, export_sft

    name = Path(path).name.lower()
    kind = kind or ("rankings" if "rank" in name else "sft" if "sft" in name else None)
    if kind is None:
        raise click.UsageError("cannot tell the record type from the file name; pass --kind rankings|sft")
    store = _store(db_url)
    records = export_feedback_rankings(store) if kind == "rankings" else export_sft(store, min_rating)
    digest = write_jsonl(path, records)
    click.echo(f"wrote {len(records)} {kind} records to {path} (sha256 {digest[:12]})")
    if not records:
        click.echo("no records: rate regenerated replies differently (rankings) or thumb up replies (sft)",
                   err=True)


def export_group(group: click.Group) -> click.Group:
    """The shared ``chatrlhf export`` group (the trainer workspace adds ``rankings``/``demos``)."""
    existing = group.commands.get("export")
    if isinstance(existing, click.Group):
        return existing

    @group.group("export")
    def export() -> None:
        """Write training records (JSONL) from the store."""

    return export


def register(group: click.Group) -> None:
    for cmd in (db_group, keys_group, users_group):
        group.add_command(cmd)
    export_group(group).add_command(export_feedback)
