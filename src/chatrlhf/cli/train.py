"""``chatrlhf pipeline`` (the whole recipe), the per-stage commands ``sft``, ``reward``, ``ppo``,
``evaluate`` and ``report``, and ``ablations`` (of a finished run): thin wrappers over the stage modules' ``run`` functions.

Settings come from a preset (``tiny``, ``cpu`` the default, ``gpu``, or a YAML path) plus dotted
overrides, e.g. ``chatrlhf pipeline --config cpu ppo.iterations=10 sft.lr=2e-5``. A stage command
takes that stage's section of the same preset, so ``chatrlhf sft model=smollm2 data=[d.jsonl]``
overrides ``sft.model`` and ``sft.data``.
"""

from __future__ import annotations

import click

_PRESET_HELP = "Preset name (tiny, cpu, gpu) or a YAML file."
_OUTSIDE_HELP = ("Directory of public data written by people (laid out like ../shared/data): adds the "
                 "outside-prompt evaluation and the RM on hh-rlhf pairs.")


def _stage_cfg(stage: str, preset: str, overrides: tuple[str, ...]):
    from chatrlhf.pipeline import load

    cfg = load(preset, [f"{stage}.{o}" for o in overrides])
    return getattr(cfg, stage)


def _echo_json(obj) -> None:
    import json

    click.echo(json.dumps(obj, indent=1, default=str))


def register(group: click.Group) -> None:
    @group.command("pipeline")
    @click.option("--config", "preset", default="cpu", show_default=True, help=_PRESET_HELP)
    @click.option("--rounds", type=int, default=None, help="Repeat steps 3-7 this many times.")
    @click.option("--run-dir", default=None, help="Run directory [default: the preset's run_dir].")
    @click.option("--labels", default=None,
                  help="sim (simulated annotators), db:URL (store export) or a rankings JSONL file.")
    @click.option("--outside-data", default=None, metavar="PATH", help=_OUTSIDE_HELP)
    @click.option("--register", "register_db", default=None, metavar="DB",
                  help="Register the run's models as versions in this store (URL or SQLite path).")
    @click.option("--adversarial", is_flag=True, default=None,
                  help="Red-team each round's policy and train on the successful attacks; measure ASR on fresh "
                       "attacks at the end, beside over-refusal (settings: redteam.*).")
    @click.argument("overrides", nargs=-1)
    def pipeline_cmd(preset, rounds, run_dir, labels, outside_data, register_db, adversarial, overrides) -> None:
        """Simulate, SFT, sample K, label, reward model, PPO, evaluate, report; resumable.

        OVERRIDES are dotted settings such as ``ppo.iterations=10`` or ``sample.k=4``.
        """
        from chatrlhf.pipeline import load, run

        extra = list(overrides)
        extra += [f"rounds={rounds}"] if rounds is not None else []
        extra += [f"run_dir={run_dir}"] if run_dir else []
        extra += [f"labels={labels}"] if labels else []
        extra += [f"outside_data={outside_data}"] if outside_data else []
        extra += [f"register={register_db}"] if register_db else []
        extra += ["adversarial=true"] if adversarial else []
        results = run(load(preset, extra), log=click.echo)
        if results:
            for name, s in results["models"].items():
                click.echo(f"{name:>8}: gold {s['gold']:.3f}")
            for k, v in results["win_rates"].items():
                click.echo(f"{k}: win rate {v['win_rate']:.2f}")

    @group.command("sft")
    @click.option("--config", "preset", default="cpu", show_default=True, help=_PRESET_HELP)
    @click.argument("overrides", nargs=-1)
    def sft_cmd(preset, overrides) -> None:
        """Supervised fine-tuning on demonstrations (e.g. ``model=smollm2 data=[demos.jsonl] out_dir=..``)."""
        from chatrlhf import sft

        _echo_json(sft.run(_stage_cfg("sft", preset, overrides)))

    @group.command("reward")
    @click.option("--config", "preset", default="cpu", show_default=True, help=_PRESET_HELP)
    @click.argument("overrides", nargs=-1)
    def reward_cmd(preset, overrides) -> None:
        """Train a reward model on rankings (``model=SFT_DIR rankings=[r.jsonl] out_dir=..``)."""
        from chatrlhf import reward

        _echo_json(reward.run(_stage_cfg("reward", preset, overrides)))

    @group.command("ppo")
    @click.option("--config", "preset", default="cpu", show_default=True, help=_PRESET_HELP)
    @click.argument("overrides", nargs=-1)
    def ppo_cmd(preset, overrides) -> None:
        """PPO against a reward model (``policy=SFT_DIR reward_model=RM_DIR prompts=[p.jsonl] out_dir=..``)."""
        from chatrlhf import ppo

        _echo_json(ppo.run(_stage_cfg("ppo", preset, overrides)))

    @group.command("evaluate")
    @click.option("--config", "preset", default="cpu", show_default=True, help=_PRESET_HELP)
    @click.option("--outside-data", default=None, metavar="PATH", help=_OUTSIDE_HELP)
    @click.argument("overrides", nargs=-1)
    def evaluate_cmd(preset, outside_data, overrides) -> None:
        """Gold scores, win rates and refusal rates on held-out prompts (``models={a: DIR, b: DIR} ..``)."""
        from chatrlhf import evaluate

        extra = overrides + ((f"outside_data={outside_data}",) if outside_data else ())
        res = evaluate.run(_stage_cfg("eval", preset, extra))
        _echo_json({k: res[k] for k in ("models", "win_rates", "outside", "gate") if k in res})

    @group.command("report")
    @click.argument("run_dir")
    @click.option("--rounds", type=int, default=1, show_default=True)
    def report_cmd(run_dir, rounds) -> None:
        """Rewrite RUN_DIR/report.md and its plots from the files of a (partial) run."""
        from chatrlhf.report import write_report

        click.echo(str(write_report(run_dir, rounds)))

    @group.command("ablations")
    @click.argument("run_dir")
    @click.option("--only", default="", help="Comma-separated subset of sft_long,ppo_no_rm,ppo_no_ptx,dpo,bon.")
    @click.option("--iterations", type=int, default=0, help="PPO iterations of the PPO ablations [default: the run's].")
    @click.option("--threads", type=int, default=0, help="Torch threads [default: the run's].")
    @click.argument("overrides", nargs=-1)
    def ablations_cmd(run_dir, only, iterations, threads, overrides) -> None:
        """Train and evaluate the ablations of a finished run under RUN_DIR/ablations/ (resumable).

        SFT trained longer, PPO without RM reward, PPO without ptx, DPO on the same rankings and
        best-of-n with the RM, next to base, SFT and PPO. OVERRIDES set AblationsConfig fields,
        e.g. ``dpo_beta=0.2 dpo_lr=5e-6 bon_ns=[4,16]``.
        """
        from chatrlhf.ablations import AblationsConfig, run
        from chatrlhf.config import load_config

        names = [n.strip() for n in only.split(",") if n.strip()]
        cfg = load_config(AblationsConfig, None, list(overrides))
        cfg.run_dir, cfg.only, cfg.iterations, cfg.threads = run_dir, names, iterations, threads
        res = run(cfg, log=click.echo)
        for name, s in res["models"].items():
            w = res["win_rates_vs_sft"].get(name)
            click.echo(f"{name:>10}: gold {s['gold']:.3f}" + (f"  vs SFT {w['win_rate']:.2f}" if w else ""))
