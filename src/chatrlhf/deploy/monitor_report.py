"""The monitoring page as one static HTML file: ``chatrlhf monitor --out report.html``.

Consumes ``deploy.monitor.metrics`` and ``deploy.topics.topics`` (the same dicts the admin API
returns); produces a self-contained page: the per-version table, the same charts as the page, drawn
by matplotlib and embedded as PNG data URIs, the arena's table and win-rate chart over the window's
picks, and the topics table. No script, no external file:
it opens offline, in a mail attachment, or anywhere a CSP forbids scripts.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from typing import Any

PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _sec(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} s"


def _mpl(text: str) -> str:
    """A store string as matplotlib plain text: an escaped ``$`` never starts mathtext, which
    would render a version name as a formula, or fail on one such as ``$\\x$``."""
    return text.replace("$", r"\$")


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _by_version_plot(m: dict[str, Any], field: str, title: str, ylabel: str, *, bars: bool = False,
                     ratio: bool = False) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    x = list(range(len(m["buckets"])))
    bottom = [0.0] * len(x)
    for i, v in enumerate(m["versions"]):
        cells = {c["bucket"]: c[field] for c in m["by_version_bucket"][v]}
        ys = [cells.get(b) for b in m["buckets"]]
        colour = PALETTE[i % len(PALETTE)]
        if bars:
            vals = [y or 0 for y in ys]
            ax.bar(x, vals, bottom=bottom, color=colour, label=_mpl(v))
            bottom = [a + b for a, b in zip(bottom, vals)]
        else:
            pts = [(xi, y) for xi, y in zip(x, ys) if y is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, color=colour, label=_mpl(v))
    ticks = x[:: max(1, len(x) // 8)]
    ax.set_xticks(ticks, [m["buckets"][t][5:] for t in ticks], fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=8)
    if ratio:
        ax.set_ylim(0, 1)
    else:
        ax.set_ylim(bottom=0)
    if m["versions"]:
        ax.legend(fontsize=7, loc="best")
    return _png(fig)


def _arena_plot(a: dict[str, Any]) -> str | None:
    """Each version's win rate as a point on a bar spanning its 95% interval (as on the page)."""
    if not a["versions"]:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = a["versions"]
    x = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    ax.bar(x, [r["ci"][1] - r["ci"][0] for r in rows], bottom=[r["ci"][0] for r in rows], width=0.5,
           color=[PALETTE[i % len(PALETTE)] for i in x], alpha=0.45, label="95% interval")
    ax.plot(x, [r["win_rate"] for r in rows], "D", color="#1f2328", label="win rate")
    ax.set_xticks(x, [_mpl(r["version"]) for r in rows], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title("Arena win rate (points per game)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def _arena(a: dict[str, Any]) -> str:
    """The arena section's HTML: a summary line, the table and the chart, or one line with no picks."""
    e = html.escape
    if not a["picks"]:
        return '<p class="muted">No arena picks in this window.</p>'
    c = a["choices"]
    table = _table(
        ["Version", "Games", "Wins / losses / ties", "Both bad", "Win rate (95% CI)", "Bradley-Terry", "Elo"],
        [[r["version"], str(r["games"]), f"{r['wins']} / {r['losses']} / {r['ties']}", str(r["both_bad"]),
          f"{_pct(r['win_rate'])} ({_pct(r['ci'][0])}–{_pct(r['ci'][1])})", f"{r['bt']:.3f}",
          "–" if r["elo"] is None else f"{r['elo']:.0f}"] for r in a["versions"]])
    plot = _arena_plot(a)
    return (f'<p class="muted">{a["picks"]} picks, {a["games"]} games between two versions · A {c["A"]} · '
            f'B {c["B"]} · tie {c["tie"]} · both bad {c["both_bad"]}. A tie or "both bad" is half a point '
            f'each; ties below include both bad.</p>\n{table}\n'
            + (f'<img alt="{e("arena win rates")}" src="{plot}">' if plot else ""))


def _topics_plot(t: dict[str, Any]) -> str | None:
    if not t.get("topics"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    topics = t["topics"][::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(topics) + 1))
    ax.barh([x["label"] for x in topics], [x["count"] for x in topics], color="#009E73")
    ax.set_xlabel("conversations", fontsize=8)
    ax.tick_params(labelsize=8)
    return _png(fig)


def _table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    return ("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
            + "</tbody></table>")


def render(m: dict[str, Any], t: dict[str, Any]) -> str:
    """The report's HTML (every string from the store is escaped)."""
    e = html.escape
    tot = m["totals"]
    versions = _table(
        ["Version", "Conversations", "Replies", "Thumbs up", "Flag rate", "Reports", "TTFT p50 / p90", "Tokens/s p50"],
        [[v, str(r["conversations"]), str(r["replies"]),
          f"{_pct(r['up_ratio'])} ({r['thumbs_up']}/{r['thumbs_up'] + r['thumbs_down']})", _pct(r["flag_rate"]),
          str(r["reports"]), f"{_sec(r['ttft_p50'])} / {_sec(r['ttft_p90'])}",
          "–" if r["tps_p50"] is None else f"{r['tps_p50']:.1f}"]
         for v, r in m["by_version"].items()])
    plots = [
        _by_version_plot(m, "replies", "Traffic: replies per bucket", "replies", bars=True),
        _by_version_plot(m, "up_ratio", "Thumbs-up ratio", "up / (up + down)", ratio=True),
        _by_version_plot(m, "flag_rate", "Moderation flag rate", "flagged / replies"),
        _by_version_plot(m, "reports", "Reports (on a version's replies)", "reports", bars=True),
        _by_version_plot(m, "ttft_p50", "Time to first token, p50", "seconds"),
        _by_version_plot(m, "tps_p50", "Tokens per second, p50", "tokens/s"),
    ]
    kinds = ", ".join(f"{k}: {n}" for k, n in m["reports_by_kind"].items()) or "none"
    topics_plot = _topics_plot(t)
    sample = f" (a random sample of {t['clustered']} of {t['conversations']})" if t.get("sampled") else ""
    topics_rows = [[x["label"], str(x["count"]), _pct(x["share"]),
                    ", ".join(f"{v}: {n}" for v, n in x["by_version"].items())] for x in t.get("topics", [])]
    topics_rows.append(["other", str(t.get("other", 0)), _pct(t.get("other_share")), ""])
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>chatrlhf monitoring report</title>
<style>
body {{ font: 14px system-ui, sans-serif; color: #1f2328; max-width: 1000px; margin: 20px auto; padding: 0 16px; }}
table {{ border-collapse: collapse; width: 100%; margin: 8px 0 18px; }}
th, td {{ text-align: left; padding: 4px 8px; border-bottom: 1px solid #e3e3e6; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 8px; }} .grid img {{ width: 480px; max-width: 100%; }}
.muted {{ color: #6b6f76; }}
</style></head><body>
<h1>Monitoring report</h1>
<p class="muted">{e(m["since"][:16])} to {e(m["until"][:16])} UTC, by {e(m["bucket"])} · made {made}</p>
<p>{tot["conversations"]} conversations, {tot["replies"]} replies, {tot["users"]} users · thumbs up
{_pct(tot["up_ratio"])} · moderation flagged {_pct(tot["flag_rate"])} · {tot["reports"]} reports ({e(kinds)}) ·
time to first token p50 {_sec(tot["ttft_p50"])}</p>
<h2>By version</h2>
{versions}
<div class="grid">{"".join(f'<img alt="chart" src="{p}">' for p in plots)}</div>
<h2>Arena</h2>
{_arena(m["arena"])}
<h2>What people ask about</h2>
<p class="muted">{len(t.get("topics", []))} topics from {t.get("clustered", 0)} conversations{e(sample)}; topics
under {t.get("min_cluster_size", "?")} conversations and unclustered ones count as "other", with no label.</p>
{f'<img alt="topics" src="{topics_plot}">' if topics_plot else ""}
{_table(["Topic", "Conversations", "Share", "By version"], topics_rows)}
</body></html>
"""


def write(store: Any, out: str, days: float = 14, bucket: str = "day", cfg: Any = None) -> dict[str, Any]:
    """Compute the metrics and topics and write the report to ``out``; returns the totals."""
    from pathlib import Path

    from chatrlhf.deploy import monitor, topics

    m = monitor.metrics(store, days, bucket)
    t = topics.topics(store, *monitor.window(days), cfg)
    Path(out).write_text(render(m, t), encoding="utf-8")
    return {"totals": m["totals"], "topics": len(t["topics"]), "arena_picks": m["arena"]["picks"]}
