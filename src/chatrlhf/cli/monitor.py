"""``chatrlhf monitor --out report.html``: the admin monitoring page as a static report.

A thin wrapper over ``chatrlhf.deploy.monitor_report`` (metrics, the arena's picks, topics,
matplotlib charts as embedded PNGs). Takes ``--db`` as the store commands do.
"""

from __future__ import annotations

import click

from chatrlhf.cli.store import DB_OPTION, _store


def register(cli: click.Group) -> None:
    @cli.command("monitor")
    @DB_OPTION
    @click.option("--out", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
    @click.option("--days", default=14.0, show_default=True, type=click.FloatRange(min=0, min_open=True, max=366),
                  help="The window, in days back from now.")
    @click.option("--bucket", default="day", show_default=True, type=click.Choice(["day", "hour"]))
    @click.option("--min-topic-size", default=10, show_default=True, type=click.IntRange(min=2),
                  help="Topics with fewer conversations are not shown (they count as 'other').")
    @click.option("--topic-turns", default="first", show_default=True, type=click.Choice(["first", "all"]),
                  help="Cluster conversations by their opening message, or by all their user turns "
                       "(purer topics, more left as 'other').")
    def monitor(db_url: str | None, out: str, days: float, bucket: str, min_topic_size: int, topic_turns: str) -> None:
        """Write traffic, thumbs, moderation flags, reports, latency, arena picks and topics to a static HTML report."""
        from chatrlhf.deploy.monitor_report import write
        from chatrlhf.deploy.topics import TopicConfig

        store = _store(db_url)
        try:
            res = write(store, out, days, bucket, TopicConfig(min_cluster_size=min_topic_size, turns=topic_turns))
        finally:
            store.dispose()
        t = res["totals"]
        click.echo(f"{out}: {t['conversations']} conversations, {t['replies']} replies, {res['topics']} topics, "
                   f"{res['arena_picks']} arena picks")
