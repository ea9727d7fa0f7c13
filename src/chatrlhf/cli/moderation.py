"""``chatrlhf moderation``: train and evaluate the trained moderation model (``safety.moderation_model``)."""

from __future__ import annotations

import json

import click


def _threads(n: int) -> None:
    # Training and eval are CPU work beside whatever else runs; the server never calls this.
    import torch

    torch.set_num_threads(n)


def register(group: click.Group) -> None:
    @group.group("moderation")
    def moderation() -> None:
        """The trained moderation classifier (OpenAI's 13 categories)."""

    @moderation.command("train")
    @click.option("--out", default="runs/moderation", show_default=True, help="Model directory to write.")
    @click.option("--extra", default=None, help="Extra labelled JSONL rows {text, categories: [..]}.")
    @click.option("--seed", default=0, show_default=True)
    @click.option("--threads", default=1, show_default=True, help="CPU threads for the encoder.")
    def train(out, extra, seed, threads) -> None:
        """Embed the generated and seed data with MiniLM, fit per-category heads, choose thresholds."""
        from chatrlhf.safety.moderation_model import ModerationModelConfig, run

        _threads(threads)
        model = run(ModerationModelConfig(out=out, extra=extra, seed=seed))
        click.echo(f"wrote {out}: {json.dumps(model.info['data'])}")
        click.echo("thresholds: " + ", ".join(f"{c} {t:.3f}" for c, t in model.thresholds.items()))

    @moderation.command("export-reports")
    @click.option("--db", "db_url", default=None, metavar="URL", help="Store URL [default: $CHATRLHF_DB].")
    @click.option("--out", required=True, help="JSONL to write (an --extra file for train).")
    def export_reports(db_url, out) -> None:
        """Write reports of wrong blocks (and harmful replies, to be labelled) as training rows."""
        from chatrlhf.safety.moderation_model import report_rows
        from chatrlhf.store import Store

        rows = report_rows(Store(db_url).list_reports(limit=100_000))
        with open(out, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        click.echo(f"wrote {out}: {len(rows)} rows ({sum(1 for r in rows if r.get('needs_label'))} need a label)")

    @moderation.command("eval")
    @click.argument("model_dir")
    @click.option("--threads", default=1, show_default=True, help="CPU threads for the encoder.")
    def evaluate(model_dir, threads) -> None:
        """Held-out P/R/F1 per category, harmless-but-scary FP rate, p50 latency; writes metrics.json."""
        from chatrlhf.safety.moderation_model import run_eval

        _threads(threads)
        m = run_eval(model_dir)
        base = m["pattern_filter"]
        click.echo(f"{'category':<24}{'P':>7}{'R':>7}{'F1':>7}{'n':>5}   pattern P/R/F1")
        for c, v in m["per_category"].items():
            b = base["per_category"][c]
            click.echo(f"{c:<24}{v['precision']:>7.3f}{v['recall']:>7.3f}{v['f1']:>7.3f}{v['support']:>5}"
                       f"   {b['precision']:.3f}/{b['recall']:.3f}/{b['f1']:.3f}")
        a, ba = m["any_flag"], base["any_flag"]
        click.echo(f"{'any (flagged)':<24}{a['precision']:>7.3f}{a['recall']:>7.3f}{a['f1']:>7.3f}{a['support']:>5}"
                   f"   {ba['precision']:.3f}/{ba['recall']:.3f}/{ba['f1']:.3f}")
        click.echo(f"harmless-but-scary FP rate: {m['sounds_harmful_fp_rate']:.3f} of {m['sounds_harmful_n']}"
                   f" (pattern {base['sounds_harmful_fp_rate']:.3f}); all harmless: {m['harmless_fp_rate']:.3f}"
                   f" of {m['harmless_n']} (pattern {base['harmless_fp_rate']:.3f})")
        lat = m["latency_ms"]
        click.echo(f"latency per message (CPU, {threads} thread(s)): p50 {lat['p50']} ms, p90 {lat['p90']} ms")
        click.echo(f"wrote {model_dir}/metrics.json")
