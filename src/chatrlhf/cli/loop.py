"""``chatrlhf loop``: one round of improvement from product feedback (``chatrlhf.deploy.loop``).

Settings come from a preset (its reward/ppo/eval sections: ``tiny``, ``cpu`` the default, ``gpu``)
plus dotted overrides of ``LoopConfig``, e.g. ``chatrlhf loop --db store.db ppo.iterations=10
min_rankings=20 gates.min_win_rate=0.55``. Exit status 1, with the reason, when there is too little
new feedback or when the gates refuse the candidate (the decision is printed either way).
"""

from __future__ import annotations

import click

from chatrlhf.cli.store import DB_OPTION


def register(group: click.Group) -> None:
    @group.command("loop")
    @click.option("--config", "preset", default="cpu", show_default=True,
                  help="Preset name (tiny, cpu, gpu) or a YAML file: its reward, ppo and eval sections.")
    @click.option("--loop-dir", default=None, help="Where state.json and round-N/ live [default: runs/loop].")
    @click.option("--base-run", default=None, metavar="RUN_DIR",
                  help="Pipeline run directory of the served lineage [default: found from the registry].")
    @click.option("--min-rankings", type=int, default=None, help="Fewest new rankings a round trains on (unless min_ratings=N thumbs arrived; pointwise=false for pairs only).")
    @click.option("--optional", "optional", multiple=True,
                  help="A gate that passes when its metric is missing (repeat).")
    @click.option("--outside-data", default=None, metavar="PATH", help="Public data for the outside-prompt gates.")
    @click.option("--dry-run", is_flag=True, help="Train, evaluate, register and decide; do not promote.")
    @click.option("--signal", type=click.Choice(["all", "thumbs"]), default=None,
                  help="all: every feedback source plus the served RM's rankings [default]; thumbs: users' "
                       "thumbs alone (the sycophancy experiment of docs/deploy.md).")
    @DB_OPTION
    @click.argument("overrides", nargs=-1)
    def loop_cmd(preset, loop_dir, base_run, min_rankings, optional, outside_data, dry_run, signal, db_url,
                 overrides) -> None:
        """Train a candidate on the feedback since the last round, gate it against the served version
        and promote it or keep the current one; resumable (rerun to finish a killed round)."""
        from chatrlhf.deploy.loop import LoopError, load, run_loop
        from chatrlhf.deploy.registry import RegistryError

        extra = list(overrides)
        for key, value in (("loop_dir", loop_dir), ("base_run", base_run), ("min_rankings", min_rankings),
                           ("outside_data", outside_data), ("db", db_url), ("signal", signal)):
            if value is not None:
                extra.append(f"{key}={value}")
        if optional:
            extra.append(f"gates.optional=[{','.join(optional)}]")
        if dry_run:
            extra.append("promote=false")
        try:
            res = run_loop(load(preset, extra), log=click.echo)
        except (LoopError, RegistryError) as e:
            raise click.ClickException(str(e))
        fb = res["feedback"]
        click.echo(f"round {res['round']}: {fb['rankings']} new rankings {fb['by_source']}; {res['dir']}/decision.md")
        if not res["promoted"] and not dry_run:
            raise click.ClickException(f"{res['candidate']} refused by the gates; still serving {res['current']}")
