"""The drift report: one self-contained HTML page (inline SVG, no script, nothing fetched).

A summary (rows, requests, malformed lines, violations), the violations table, then one card per
feature: baseline and captured distributions side by side (numbers on the baseline's ten KLL buckets,
categories as their shares, the 12 largest), with the distance, the method, the p-value and PSI.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from kubesage.monitoring.checks import baseline_features, categorical_shares
from kubesage.monitoring.statistics import sketch_sample

WIDTH, HEIGHT, PAD = 360, 150, 24
BASE_COLOUR, CURRENT_COLOUR = "#8da0cb", "#fc8d62"
TOP_CATEGORIES = 12

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} .muted{color:#666;font-size:13px}
.summary{display:flex;gap:16px;margin:16px 0}.tile{background:#f4f4f6;padding:10px 14px;border-radius:6px}
.tile b{display:block;font-size:20px} .bad b{color:#c0392b} .ok b{color:#27ae60}
table{border-collapse:collapse;font-size:13px;margin:8px 0 16px}td,th{border-bottom:1px solid #ddd;padding:4px 8px;
text-align:left} .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px}.card.drifted{border-color:#c0392b;background:#fff6f4}
.card h3{font-size:14px;margin:0 0 4px}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""


def _bars(labels: list[str], base: list[float], current: list[float]) -> str:
    """Two bar series (shares) on one SVG."""
    n = max(len(labels), 1)
    top = max([*base, *current, 1e-9])
    slot = (WIDTH - 2 * PAD) / n
    parts = [f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg">']
    for i, label in enumerate(labels):
        x = PAD + i * slot
        for j, (value, colour) in enumerate(((base[i], BASE_COLOUR), (current[i], CURRENT_COLOUR))):
            h = (HEIGHT - 2 * PAD) * value / top
            parts.append(
                f'<rect x="{x + j * slot / 2:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{max(slot / 2 - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{html.escape(label)}: {value:.3f}</title></rect>'
            )
        if n <= 6 or i % 2 == 0:  # ten numeric buckets: every other label, so they do not overlap
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - 8}" font-size="9" text-anchor="middle">'
                f"{html.escape(label[:9])}</text>"
            )
    parts.append(f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/></svg>')
    return "".join(parts)


def _shares(counts: list[float]) -> list[float]:
    total = sum(counts) or 1.0
    return [c / total for c in counts]


def numeric_plot(base_feature: dict[str, Any], current_feature: dict[str, Any]) -> str:
    base_kll = base_feature["numerical_statistics"]["distribution"]["kll"]
    edges = [b["lower_bound"] for b in base_kll["buckets"]] + [base_kll["buckets"][-1]["upper_bound"]]
    current = sketch_sample(current_feature["numerical_statistics"]["distribution"]["kll"]["sketch"])
    base = sketch_sample(base_kll["sketch"])
    # Values outside the baseline's range land in its first or last bucket, so a shift still shows.
    bins = np.array(edges, dtype=float)
    base_counts = np.histogram(np.clip(base, bins[0], bins[-1]), bins)[0].tolist()
    current_counts = np.histogram(np.clip(current, bins[0], bins[-1]), bins)[0].tolist()
    labels = [f"{edges[i]:.3g}" for i in range(len(edges) - 1)]  # each bucket's lower bound
    return _bars(labels, _shares(base_counts), _shares(current_counts))


def categorical_plot(base_feature: dict[str, Any], current_feature: dict[str, Any]) -> str:
    base, current = categorical_shares(base_feature), categorical_shares(current_feature)
    keys = sorted(set(base) | set(current), key=lambda k: -(base.get(k, 0) + current.get(k, 0)))[:TOP_CATEGORIES]
    base_total, current_total = sum(base.values()) or 1.0, sum(current.values()) or 1.0
    return _bars(keys, [base.get(k, 0) / base_total for k in keys], [current.get(k, 0) / current_total for k in keys])


def _plot(base_feature: dict[str, Any] | None, current_feature: dict[str, Any] | None) -> str:
    if base_feature is None or current_feature is None:
        return '<p class="muted">no distribution to compare</p>'
    try:
        if "string_statistics" in base_feature and "string_statistics" in current_feature:
            return categorical_plot(base_feature, current_feature)
        numeric = "numerical_statistics" in base_feature and "numerical_statistics" in current_feature
        if numeric and current_feature["numerical_statistics"]["common"]["num_present"]:
            return numeric_plot(base_feature, current_feature)
    except (KeyError, IndexError, ValueError):
        pass
    return '<p class="muted">no distribution to compare</p>'


def _fmt(value: Any, digits: str = ".3f") -> str:
    return "n/a" if value is None else format(value, digits)


def render_report(
    summary: dict[str, Any],
    baseline_stats: dict[str, Any],
    current_stats: dict[str, Any],
    captures: str,
    window: dict[str, str | None],
) -> str:
    """The whole page as a string."""
    base, current = baseline_features(baseline_stats), baseline_features(current_stats)
    violations = summary.get("violation_list", [])
    n_violations = int(summary["violations"])
    esc = html.escape
    tiles = [
        ("rows", summary["rows"], ""),
        ("requests", summary["requests"], ""),
        ("malformed lines", summary["malformed_lines"], "bad" if summary["malformed_lines"] else "ok"),
        ("violations", n_violations, "bad" if n_violations else "ok"),
        ("drifted features", len(summary["drifted_features"]), "bad" if summary["drifted_features"] else "ok"),
    ]
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>kubesage drift report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Drift report: captured traffic against the training baseline</h1>",
        f"<div class='muted'>captures {esc(captures)}; window {esc(str(window.get('start') or 'any'))} to "
        f"{esc(str(window.get('end') or 'any'))}; statistics and violations in SageMaker Model Monitor's format</div>",
        "<div class='summary'>",
        *(f"<div class='tile {cls}'><b>{value}</b>{esc(label)}</div>" for label, value, cls in tiles),
        "</div>",
    ]
    if violations:
        out.append("<h2>Violations</h2><table><tr><th>feature</th><th>check</th><th>description</th></tr>")
        out += [
            f"<tr><td>{esc(v['feature_name'])}</td><td>{esc(v['constraint_check_type'])}</td>"
            f"<td>{esc(v['description'])}</td></tr>"
            for v in violations
        ]
        out.append("</table>")
    if summary["malformed"]:
        out.append(f"<h2>Malformed capture lines ({summary['malformed_lines']})</h2><table>")
        out += [
            f"<tr><td>{esc(m['source'])}:{m['line']}</td><td>{esc(m['reason'])}</td></tr>" for m in summary["malformed"]
        ]
        out.append("</table>")
    out.append(
        "<h2>Features</h2><div class='legend muted'>"
        f"<span style='background:{BASE_COLOUR}'></span>baseline (training split)"
        f"<span style='background:{CURRENT_COLOUR}'></span>captured</div><div class='grid'>"
    )
    # Drifted features first (stable otherwise): what a person opens the report for.
    for feature in sorted(summary["features"], key=lambda f: not f["drifted"]):
        name = feature["name"]
        cls = "card drifted" if feature["drifted"] else "card"
        out.append(
            f"<div class='{cls}' data-feature='{esc(name)}'><h3>{esc(name)} <span class='muted'>"
            f"{esc(feature['inferred_type'])}</span></h3><div class='muted'>{esc(feature['method'])} distance "
            f"{_fmt(feature['distance'])}, p-value {_fmt(feature['p_value'], '.2g')}, PSI {_fmt(feature['psi'])}"
            f"{' - drifted' if feature['drifted'] else ''}</div>{_plot(base.get(name), current.get(name))}</div>"
        )
    out.append("</div></body></html>")
    return "\n".join(out)
