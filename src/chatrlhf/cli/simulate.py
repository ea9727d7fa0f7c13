"""``chatrlhf simulate``: write simulated datasets, show tasks, measure annotator agreement."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    @group.group("simulate")
    def simulate() -> None:
        """Simulated users, annotators and gold judge (the offline source of labels)."""

    @simulate.command("run")
    @click.option("--out", "out_dir", default=None, help="Output folder [default: runs/sim/data].")
    @click.option("--config", "config_path", default=None, help="A YAML file overlaid on the defaults.")
    @click.argument("overrides", nargs=-1)
    def run_cmd(out_dir, config_path, overrides) -> None:
        """Write demos.jsonl, prompts.jsonl, rankings.jsonl and manifest.json.

        OVERRIDES are dotted settings, e.g. seed=1 demos_per_family=100 annotator.temperature=0.3
        """
        from chatrlhf.config import load_config
        from chatrlhf.simulate.export import SimulateConfig, run

        cfg = load_config(SimulateConfig, config_path, overrides)
        manifest = run(cfg, out_dir)
        where = out_dir or cfg.out_dir
        for name, info in manifest["files"].items():
            click.echo(f"{where}/{name}: {info['records']} records, sha256 {info['sha256'][:12]}")

    @simulate.command("show")
    @click.option("--family", default=None, help="One family [default: all].")
    @click.option("--split", default="train", type=click.Choice(["train", "eval"]), show_default=True)
    @click.option("-n", "n", default=2, show_default=True, help="Tasks per family.")
    @click.option("--seed", default=0, show_default=True)
    def show(family, split, n, seed) -> None:
        """Print generated tasks with an ideal reply and its gold score."""
        from chatrlhf.simulate import make_demos, judge

        for d in make_demos(seed, n, split, [family] if family else None):
            score = judge(d.messages[:-1], d.messages[-1]["content"], d.meta)
            click.echo(f"[{d.meta['family']}/{d.meta['task']['kind']}] gold {score.total:.2f}")
            for m in d.messages:
                click.echo(f"  {m['role']:>9}: {m['content']}")

    @simulate.command("agreement")
    @click.option("--rankings", "rankings_path", default=None,
                  help="A rankings.jsonl to measure [default: fresh simulator candidate sets].")
    @click.option("-n", "n", default=30, show_default=True, help="Prompts per family when generating.")
    @click.option("--seed", default=0, show_default=True)
    @click.argument("overrides", nargs=-1)
    def agreement(rankings_path, n, seed, overrides) -> None:
        """Print annotator agreement with the gold judge and between two annotators.

        OVERRIDES set the annotator, e.g. temperature=0.4 length_bias=0.05
        """
        from chatrlhf.config import load_config
        from chatrlhf.simulate.agreement import agreement_report
        from chatrlhf.simulate.annotators import AnnotatorConfig

        cfg = load_config(AnnotatorConfig, None, overrides)
        click.echo(agreement_report(cfg, rankings_path=rankings_path, n_per_family=n, seed=seed))
