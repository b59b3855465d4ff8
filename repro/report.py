"""DIR/index.html: every figure with its caption, verdict, numbers and settings, and the manifest, on one page
that works offline (the PNGs beside it, no external assets)."""
from __future__ import annotations

import html
import json
from pathlib import Path

from probe.files import write_bytes
from repro.catalog import all_figures
from repro.check import LEGEND, verdicts
from repro.records import read_manifest, read_record

STYLE = """body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}
img{max-width:100%;border:1px solid #ccc}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%;text-align:left;vertical-align:top}
.v-reproduced{color:#fff;background:#2a7d2a}.v-not-reproduced{color:#fff;background:#b22}
.v-as-expected{color:#fff;background:#3a6ea5}.v-regressed{color:#fff;background:#c60}
.v-failed{color:#fff;background:#600}.v-not-run{background:#f4f4f4;color:#777}
.v-not-comparable{background:#ddd}.badge{padding:2px 8px;border-radius:4px}
.faithful{color:darkgreen}.reconstruction{color:darkorange}pre{background:#f6f6f6;padding:.5em;overflow:auto;
font-size:85%}section{border-top:2px solid #888;margin-top:2em}"""


DETAILS = ("settings", "models", "images", "seed", "threads", "device", "dtype", "fingerprint")


def _e(value) -> str:
    return html.escape(str(value))


def _metrics_table(metrics: dict) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(json.dumps(v) if not isinstance(v, str) else v)}</td></tr>"
                   for k, v in metrics.items())
    return f"<table>{rows}</table>"


def _verdict(v) -> str:
    if v is None:
        return ""
    rows = "".join(f"<tr><td>{'ok' if ok else 'FAIL'}</td><td>{_e(r.describe())}</td><td>{_e(value)}</td>"
                   f"<td>{_e(r.against)}</td><td>{_e(r.source)}</td></tr>" for r, value, ok in v.rows)
    table = (f"<table><tr><th></th><th>reference</th><th>got</th><th>against</th><th>source</th></tr>{rows}</table>"
             if rows else "")
    against = f" (against the {_e(v.against)})" if v.against else ""
    return f"<p>Verdict: {_badge(v.status)}{against} {_e(v.reason)}</p>{table}"


def _legend() -> str:
    rows = "".join(f"<tr><td>{_badge(status)}</td><td>{_e(text)}</td></tr>" for status, text in LEGEND.items())
    return f"<details open><summary>What the verdicts mean</summary><table>{rows}</table></details>"


def _badge(status: str) -> str:
    return f"<span class='badge v-{status.replace(' ', '-')}'>{_e(status)}</span>"


def write(out: Path, results=None) -> Path:
    """Write OUT/index.html from the figures there (verdicts from `repro.check` unless given)."""
    out = Path(out)
    results = {v.figure: v for v in (results if results is not None else verdicts(out))}
    manifest = read_manifest(out)
    profile = manifest.get("profile", {}).get("name", "?")
    git = manifest.get("git", {})
    summary = "".join(f"<tr><td><a href='#fig{i}'>Fig {i}</a></td><td>{_e(f.title)}</td>"
                      f"<td class='{f.kind}'>{f.kind}</td><td>{_badge(results[i].status)}</td></tr>"
                      for i, f in all_figures().items() if i in results)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>repro: arXiv:2401.15568 ({_e(profile)})"
             f"</title><style>{STYLE}</style></head><body>",
             "<h1>Figures of <i>Intriguing Equivalence Structures of the Embedding Space of Vision Transformers</i> "
             "(Salman, Shams, Liu, arXiv:2401.15568), regenerated</h1>",
             f"<p>Profile <b>{_e(profile)}</b>; git commit {_e(git.get('commit'))}"
             f"{' with uncommitted changes' if git.get('dirty') else ''}; updated "
             f"{_e(manifest.get('updated', '?'))}. Figs 1-5 follow the paper's captions; Figs 6-20 are "
             "reconstructions (their captions are unknown), designed here to test one claim each: they are not "
             "copies of the paper's figures.</p>",
             f"<table><tr><th>figure</th><th>title</th><th>kind</th><th>verdict</th></tr>{summary}</table>",
             _legend()]
    for fid, figure in all_figures().items():
        record = read_record(out, fid)
        parts.append(f"<section id='fig{fid}'><h2>Fig {fid}. {_e(figure.title)}</h2>")
        if record is None:
            verdict = results.get(fid)
            parts.append(f"<p>{_verdict(verdict) if verdict else 'Not made yet (or incomplete).'}</p></section>")
            continue
        parts += [f"<p class='{figure.kind}'><b>{_e(figure.label)}</b></p>",
                  f"<img src='fig{fid}.png' alt='Fig {fid}'>",
                  f"<p><b>Tests</b> {_e(figure.claim_text())}. {_e(figure.design)}</p>"]
        if record.get("substitutions"):
            parts.append(f"<p><b>Substitutions</b>: {_e('; '.join(record['substitutions']))}</p>")
        for note in record.get("notes", []):
            parts.append(f"<p>{_e(note)}</p>")
        parts += [_verdict(results.get(fid)), "<h3>Numbers</h3>", _metrics_table(record.get("metrics", {})),
                  f"<details><summary>settings, models, images ({record.get('seconds', 0):.1f} s)</summary><pre>"
                  f"{_e(json.dumps({k: record.get(k) for k in DETAILS}, indent=1))}</pre></details>",
                  f"<p><a href='fig{fid}.json'>fig{fid}.json</a> (all numbers plotted)</p></section>"]
    parts.append(f"<section><h2>Manifest</h2><pre>{_e(json.dumps(manifest, indent=1))}</pre></section></body></html>")
    return write_bytes(out / "index.html", "\n".join(parts).encode())
