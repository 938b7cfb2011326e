"""``report.html``: one self-contained page per run, to attach to a ticket or a review.

It holds the overall verdict, the checks in human units, why the SLO was missed, every
plot of the run folder embedded as a base64 PNG (no file beside it is needed), the
metrics of every replication, and the effective scenario (after ``--profile`` and
``--set``). No scripts, no external styles or fonts: it opens offline and prints.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import pandas as pd

from .humanize import human, human_interval
from .verdict import describe_observed, overall_line, p_pass_text
from .why import why_lines

__all__ = ["render_html", "write_html"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:90%}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}
.pass{color:#176f2c;font-weight:bold}.fail{color:#b00020;font-weight:bold}
pre{background:#f6f6f6;padding:1em;overflow-x:auto}
img{max-width:100%}
.scroll{overflow-x:auto}
"""


def write_html(path: Path, summary: dict[str, Any], replications: pd.DataFrame,
               scenario_yaml: str, images: list[Path]) -> None:
    """Write ``report.html`` (see the module docstring)."""
    path.write_text(render_html(summary, replications, scenario_yaml, images), encoding="utf-8")


def render_html(summary: dict[str, Any], replications: pd.DataFrame, scenario_yaml: str,
                images: list[Path]) -> str:
    """The page as a string."""
    e = html.escape
    verdict = "pass" if summary["passed"] else "fail"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(summary['scenario'])}: {e(overall_line(summary))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{e(summary['scenario'])}</h1>",
        f"<p class='{verdict}'>{e(overall_line(summary))}</p>",
        f"<p>{e(summary.get('description') or '')}</p>",
        f"<p>{summary['replications']} replication(s), seed {summary['seed']}; "
        f"source {e(str(summary.get('source')))}"
        f"{'; profile ' + e(summary['profile']) if summary.get('profile') else ''}"
        f"{'; --set ' + e(' '.join(summary['overrides'])) if summary.get('overrides') else ''}"
        "</p>",
        "<h2>Checks</h2>", _checks(summary),
        "<h2>Why</h2>", "<pre>" + e("\n".join(why_lines(summary.get("why")))) + "</pre>",
        "<h2>Plots</h2>", *(_image(p) for p in images if p.exists()),
        "<h2>Replications</h2><div class='scroll'>",
        replications.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.6g}"),
        "</div><h2>Effective scenario</h2>", f"<pre>{e(scenario_yaml)}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _checks(summary: dict[str, Any]) -> str:
    e = html.escape
    rows = ["<table><tr><th>check</th><th>scope</th><th>threshold</th><th>observed</th>"
            "<th>95% CI</th><th>P(pass)</th><th>verdict</th></tr>"]
    for c in summary["checks"]:
        metric = c["metric"]
        ci = human_interval(c["ci_low"], c["ci_high"], metric)
        cls, word = ("pass", "pass") if c["passed"] else ("fail", "FAIL")
        rows.append(f"<tr><td>{e(c['name'])}<br><small>{e(metric)}</small></td>"
                    f"<td>{e(c['over'])}</td><td>{e(c['op'])} {e(human(c['threshold'], metric))}"
                    f"</td><td>{e(describe_observed(c, summary))}</td><td>{e(ci)}</td>"
                    f"<td>{e(p_pass_text(c))}</td><td class='{cls}'>{word}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<figure><img alt='{html.escape(path.name)}' src='data:image/png;base64,{data}'>" \
           f"<figcaption>{html.escape(path.name)}</figcaption></figure>"
