"""``chatrlhf redteam TARGET``: attack a model or an endpoint with jailbreaks and report the ASR.

TARGET is a model spec (``tiny``, ``smollm2``, a HF directory, a pipeline run directory: its newest
policy) or, with ``--target-url``, the model name to send to that OpenAI-compatible endpoint
(``-`` for none). OVERRIDES set other ``RedTeamConfig`` fields, e.g. ``holdout_families=[base64]``
``split=eval shots=4``.
"""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    @group.command("redteam")
    @click.argument("target")
    @click.option("--out", "out_dir", default=None, help="Output folder [default: runs/redteam].")
    @click.option("--target-url", default=None, help="OpenAI-compatible base URL of the target (…/v1).")
    @click.option("--target-key", default=None, envvar="CHATRLHF_REDTEAM_TARGET_KEY",
                  help="Bearer token for --target-url [env CHATRLHF_REDTEAM_TARGET_KEY].")
    @click.option("--attacker", default=None, metavar="SPEC", help="Attacker chat model [default: the target].")
    @click.option("--attacker-url", default=None, help="OpenAI-compatible endpoint of the attacker.")
    @click.option("--attacker-key", default=None, envvar="CHATRLHF_REDTEAM_ATTACKER_KEY")
    @click.option("--attacker-model", default=None, help="Model name sent to --attacker-url.")
    @click.option("--modes", default=None, help="Comma-separated: template,zero_shot,few_shot,multi_turn "
                  "[default: template,multi_turn].")
    @click.option("--n", "n", type=int, default=None, help="Attacks per mode [default: all intent×family pairs].")
    @click.option("--seed", type=int, default=None)
    @click.option("--max-new-tokens", type=int, default=None)
    @click.option("--intents", default=None, metavar="FILE", help="JSONL of {intent, category}.")
    @click.option("--examples", default=None, metavar="FILE", help="few_shot: earlier attacks.jsonl.")
    @click.option("--config", "config_path", default=None, help="A YAML file overlaid on the defaults.")
    @click.argument("overrides", nargs=-1)
    def redteam_cmd(target, out_dir, target_url, target_key, attacker, attacker_url, attacker_key,
                    attacker_model, modes, n, seed, max_new_tokens, intents, examples, config_path,
                    overrides) -> None:
        """Send jailbreak attacks to TARGET, judge every reply, write attacks.jsonl, summary.json,
        asr.png and report.md."""
        from pathlib import Path

        from chatrlhf.cli.chat import resolve_run_or_model
        from chatrlhf.config import load_config
        from chatrlhf.safety.redteam import RedTeamConfig, RedTeamError, run

        if config_path and not Path(config_path).is_file():
            raise click.BadParameter(f"no such file: {config_path}", param_hint="--config")
        try:
            cfg = load_config(RedTeamConfig, config_path, list(overrides))
        except Exception as e:  # OmegaConf's errors: an unknown key, a value of the wrong type
            raise click.UsageError(f"bad override: {e}".splitlines()[0]) from None
        cfg.target = "" if target_url and target == "-" else (target if target_url else resolve_run_or_model(target))
        given = {"out_dir": out_dir, "target_url": target_url, "target_key": target_key,
                 "attacker": resolve_run_or_model(attacker) if attacker else None,
                 "attacker_url": attacker_url, "attacker_key": attacker_key, "attacker_model": attacker_model,
                 "n": n, "seed": seed, "max_new_tokens": max_new_tokens, "intents": intents, "examples": examples}
        for k, v in given.items():
            if v is not None:
                setattr(cfg, k, v)
        if modes is not None:
            cfg.modes = [m.strip() for m in modes.split(",") if m.strip()]
        for opt, path in (("--intents", cfg.intents), ("--examples", cfg.examples)):
            if path and not Path(path).is_file():
                raise click.BadParameter(f"no such file: {path}", param_hint=opt)
        try:
            summary = run(cfg, log=click.echo)
        except RedTeamError as e:
            raise click.ClickException(str(e)) from None
        o = summary["overall"]
        click.echo(f"ASR {o['asr']:.3f} ({o['success']}/{o['n']}); {cfg.out_dir}/report.md" if o["n"]
                   else "no attacks were made")
