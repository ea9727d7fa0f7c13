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

    @simulate.command("traffic")
    @click.option("--url", default=None, help="The server's base URL [default: http://127.0.0.1:8000].")
    @click.option("--key", default=None, envvar="CHATRLHF_API_KEY", help="API key [env CHATRLHF_API_KEY].")
    @click.option("--users", type=int, default=None, help="Simulated users [default: 4].")
    @click.option("--conversations", type=int, default=None, help="Conversations per user [default: 2].")
    @click.option("--seed", type=int, default=None)
    @click.option("--flattery-bias", type=float, default=None,
                  help="Added to the users' liking of flattering or agreeing replies [default: 0].")
    @click.option("--out", "out_dir", default=None, help="Write traffic.jsonl and summary.json here.")
    @click.option("--config", "config_path", default=None, help="A YAML file overlaid on the defaults.")
    @click.argument("overrides", nargs=-1)
    def traffic(url, key, users, conversations, seed, flattery_bias, out_dir, config_path, overrides) -> None:
        """Simulated users chat with a running `chatrlhf serve`, rate, regenerate and report.

        OVERRIDES set other TrafficConfig fields, e.g. v1_share=0.5 feedback_rate=1 split=eval
        families=[verifiable,harmful] user.threshold=0.5
        """
        import json

        from chatrlhf.config import load_config
        from chatrlhf.simulate.traffic import TrafficConfig, TrafficError, run_traffic

        try:
            cfg = load_config(TrafficConfig, config_path, list(overrides))
        except Exception as e:  # OmegaConf's errors: an unknown key, a value of the wrong type
            raise click.UsageError(f"bad override: {e}".splitlines()[0]) from None
        given = {"url": url, "key": key, "users": users, "conversations": conversations, "seed": seed,
                 "out_dir": out_dir}
        for k, v in given.items():
            if v is not None:
                setattr(cfg, k, v)
        if flattery_bias is not None:
            cfg.user.flattery_bias = flattery_bias
        try:
            summary = run_traffic(cfg)
        except TrafficError as e:
            raise click.ClickException(str(e)) from None
        summary.pop("config")
        click.echo(json.dumps(summary, indent=1))
        if summary["errors"]:
            click.echo(f"{summary['errors']} HTTP failures (see error_kinds)", err=True)
