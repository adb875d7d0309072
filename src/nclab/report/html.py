"""Render report sections as one self-contained HTML file (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Mapping, Sequence

from nclab.report.sections import Claim, Section, Table

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1200px;color:#222;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.5rem}
.meta{color:#666;font-size:.9rem}
.row{display:flex;gap:1.2rem;align-items:flex-start;margin:1rem 0;flex-wrap:wrap}
figure{margin:0;flex:0 1 auto;max-width:62%}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85rem;color:#555}
.claims{flex:1 1 300px;min-width:280px}
.claim{border-left:5px solid #999;background:#f7f7f7;padding:.5rem .8rem;margin:0 0 .7rem 0}
.claim.ok{border-color:#2a9d4b;background:#eef8f0}.claim.fail{border-color:#d1495b;
background:#fbeff1}.claim.na{border-color:#c9a227;background:#fbf6e6}
.claim .text{font-style:italic;margin:0}.claim .src{color:#666;font-style:normal;font-size:.85rem}
.claim .verdict{margin:.3rem 0 0 0}.badge{font-weight:600}
table{border-collapse:collapse;margin:.6rem 0 1.2rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}th{background:#f0f0f0}
caption{text-align:left;font-weight:600;padding:.3rem 0}
.note{color:#8a5a00}
"""


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def _claim_html(c: Claim) -> str:
    cls, badge = {True: ("ok", "supported"), False: ("fail", "not supported"),
                  None: ("na", "not testable")}[c.supported]
    return (f'<div class="claim {cls}"><p class="text">“{_esc(c.text)}” '
            f'<span class="src">— {_esc(c.source)}</span></p>'
            f'<p class="verdict"><span class="badge">{badge}:</span> {_esc(c.verdict)}</p></div>')


def _figure_html(sec: Section, fid: str, images: Mapping[str, tuple[Path, Path]],
                 out: Path) -> str:
    png, svg = images[fid]
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    rel = svg.relative_to(out).as_posix() if svg.is_relative_to(out) else svg.name
    cap = sec.captions.get(fid, "")
    return (f'<figure><img alt="{_esc(fid)}" src="data:image/png;base64,{data}">'
            f'<figcaption>{_esc(cap)} <a href="{_esc(rel)}">SVG</a></figcaption></figure>')


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>"
                   for row in t.rows)
    return f"<table><caption>{_esc(t.title)}</caption><tr>{head}</tr>{body}</table>"


def _counts(sec: Section) -> tuple[int, int, int]:
    ok = sum(1 for c in sec.claims if c.supported is True)
    bad = sum(1 for c in sec.claims if c.supported is False)
    return ok, bad, len(sec.claims) - ok - bad


def render_html(
    sections: Sequence[Section],
    images: Mapping[tuple[str, str], tuple[Path, Path]],
    out: Path,
    *,
    title: str = "nclab report",
    meta: Mapping[str, str] | None = None,
    presets: Mapping[str, str] | None = None,
    deviations: Sequence[Sequence[str]] = (),
) -> str:
    """The HTML text of the report.

    Parameters
    ----------
    sections : sequence of Section
    images : dict of (section name, figure id) -> (png path, svg path)
    out : Path
        Folder the report is written to (SVG links are relative to it).
    meta : dict of str to str, optional
        Lines shown under the title (store path, versions, ...).
    presets : dict of section name -> preset, optional
    deviations : sequence of (experiment, preset, topic, the source says, nclab does, why)
        Rows of the deviations table (generated from the experiment specs).
    """
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_esc(title)}</h1>"]
    info = {"generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **(meta or {})}
    parts.append('<p class="meta">' + " · ".join(f"{_esc(k)}: {_esc(v)}" for k, v in info.items())
                 + "</p>")
    rows = []
    for sec in sections:
        ok, bad, na = _counts(sec)
        rows.append([f'<a href="#{_esc(sec.name)}">{_esc(sec.name)}</a>', _esc(sec.source),
                     _esc((presets or {}).get(sec.name, "")), str(sec.n_runs), str(ok), str(bad),
                     str(na)])
    parts.append("<table><caption>Summary: claims of the sources tested by each experiment"
                 "</caption><tr><th>experiment</th><th>reproduces</th><th>preset</th>"
                 "<th>runs</th><th>supported</th><th>not supported</th><th>not testable</th></tr>"
                 + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
                 + "</table>")
    if deviations:
        parts.append(_table_html(Table(
            "Deviations from the sources, per experiment and preset (generated from the "
            "experiment specs)", ["experiment", "preset", "topic", "the source says",
                                  "nclab does", "why"], [list(map(str, d)) for d in deviations])
        ).replace("<table>", '<table id="deviations">', 1))
    for sec in sections:
        parts.append(f'<section id="{_esc(sec.name)}"><h2>{_esc(sec.name)}: {_esc(sec.title)}'
                     "</h2>")
        preset = (presets or {}).get(sec.name)
        parts.append(f'<p class="meta">Reproduces {_esc(sec.source)}. {sec.n_runs} runs'
                     + (f", preset {_esc(preset)}" if preset else "") + ".</p>")
        if sec.n_runs == 0:
            parts.append('<p class="note">No finished runs of this experiment in the store.</p>')
        for note in sec.notes:
            parts.append(f'<p class="note">{_esc(note)}</p>')
        shown: set[str] = set()
        for fid in sec.figures:
            claims = [c for c in sec.claims if c.figure == fid]
            if (sec.name, fid) not in images:
                continue
            parts.append('<div class="row">' + _figure_html(sec, fid, {fid: images[(sec.name,
                                                                                    fid)]}, out)
                         + '<div class="claims">' + "".join(_claim_html(c) for c in claims)
                         + "</div></div>")
            shown.update(id(c) for c in claims)
        loose = [c for c in sec.claims if id(c) not in shown]
        if loose:
            parts.append('<div class="claims">' + "".join(_claim_html(c) for c in loose)
                         + "</div>")
        for t in sec.tables:
            parts.append(_table_html(t))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
