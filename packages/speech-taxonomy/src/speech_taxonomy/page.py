"""One self-contained HTML page: the catalogue table with filters by axis, the coverage heatmap, the axes.

No network: CSS and JavaScript are inline, the data is embedded as JSON (``<script id="taxonomy-data">``, the same
document as the JSON export, so the page round-trips). The table is rendered here, so the page reads without
JavaScript; the script only hides rows. Filters are mirrored in the URL fragment, so a filtered view can be linked:
``speech-taxonomy.html#aspect=prosody&exclude=human_judges``. Keys: ``aspect``, ``capability``, ``protocol``,
``model``, ``kind``, ``exclude`` (comma-separated protocol values), ``q`` (text).
"""

from __future__ import annotations

import json
from html import escape

from .catalogue import Taxonomy
from .match import coverage_matrix, sorted_evaluations

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1400px;
  padding:0 1em;color:#1d2330}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em}
.sub{color:#555;margin-top:0}
#filters{display:flex;flex-wrap:wrap;gap:.6em 1.2em;align-items:flex-end;background:#f4f6fa;padding:.8em;
  border-radius:6px}
#filters label{display:flex;flex-direction:column;font-size:.85em;color:#444}
#filters select,#filters input[type=search]{font-size:1em;padding:.2em;min-width:11em}
fieldset{border:1px solid #ccd;border-radius:4px;padding:.2em .6em;font-size:.85em}
fieldset label{display:inline-block!important;margin-right:.6em}
table{border-collapse:collapse;width:100%;margin-top:.6em}
th,td{border-bottom:1px solid #e2e5ec;padding:.3em .4em;text-align:left;vertical-align:top}
th{background:#eef1f6;position:sticky;top:0}
td.k{font-family:ui-monospace,Menlo,monospace;font-size:.85em}
.tag{display:inline-block;background:#e8eefc;border-radius:3px;padding:0 .3em;margin:1px;font-size:.82em}
.tag.c{background:#e6f5ea}.tag.p{background:#fbeee3}
#count{font-weight:600}
table.heat td{text-align:center;min-width:4.5em;font-variant-numeric:tabular-nums}
table.heat td.a{text-align:left;font-family:ui-monospace,Menlo,monospace;font-size:.85em}
table.heat tr.parent td{background:#f4f6fa;font-weight:600;text-align:left}
dl.axis dt{font-family:ui-monospace,Menlo,monospace;font-weight:600} dl.axis dd{margin:0 0 .4em 1.5em}
"""

JS = r"""
(function(){
  const rows = Array.from(document.querySelectorAll('#catalogue tbody tr.ev'));
  const models = JSON.parse(document.getElementById('models-data').textContent);
  const $ = id => document.getElementById(id);
  const sels = {aspect:'f-aspect', capability:'f-capability', protocol:'f-protocol', model:'f-model', kind:'f-kind'};
  function words(s){ return s ? s.split(' ').filter(Boolean) : []; }
  function fitsCaps(row, caps){
    if (!words(row.dataset.caps).every(c => caps.includes(c))) return false;
    const groups = row.dataset.anyof ? row.dataset.anyof.split(';') : [];
    return groups.every(g => g.split('|').some(c => caps.includes(c)));
  }
  function state(){
    const s = {};
    for (const [k, id] of Object.entries(sels)) s[k] = $(id).value;
    s.exclude = Array.from(document.querySelectorAll('#f-exclude input:checked')).map(i => i.value);
    s.q = $('f-q').value.trim().toLowerCase();
    return s;
  }
  function apply(){
    const s = state();
    let n = 0;
    for (const row of rows){
      const prot = words(row.dataset.protocol);
      let ok = (!s.aspect || words(row.dataset.aspects).includes(s.aspect))
        && (!s.capability || words(row.dataset.caps + ' ' + row.dataset.anyof.replace(/[|;]/g, ' ')).includes(s.capability))
        && (!s.protocol || prot.includes(s.protocol))
        && (!s.kind || row.dataset.kind === s.kind)
        && !s.exclude.some(p => prot.includes(p))
        && (!s.model || fitsCaps(row, models[s.model] || []))
        && (!s.q || row.dataset.text.includes(s.q));
      row.hidden = !ok;
      if (ok) n++;
    }
    $('count').textContent = n;
    return s;
  }
  function writeHash(s){
    const p = new URLSearchParams();
    for (const k of Object.keys(sels)) if (s[k]) p.set(k, s[k]);
    if (s.exclude.length) p.set('exclude', s.exclude.join(','));
    if (s.q) p.set('q', s.q);
    const h = p.toString();
    if (h !== location.hash.slice(1)) history.replaceState(null, '', h ? '#' + h : location.pathname + location.search);
  }
  function readHash(){
    const p = new URLSearchParams(location.hash.slice(1));
    for (const [k, id] of Object.entries(sels)){
      const v = p.get(k) || '', el = $(id);
      el.value = Array.from(el.options).some(o => o.value === v) ? v : '';
    }
    const ex = (p.get('exclude') || '').split(',');
    document.querySelectorAll('#f-exclude input').forEach(i => { i.checked = ex.includes(i.value); });
    $('f-q').value = p.get('q') || '';
  }
  document.getElementById('filters').addEventListener('input', () => writeHash(apply()));
  $('f-reset').addEventListener('click', () => { history.replaceState(null, '', location.pathname); readHash(); apply(); });
  window.addEventListener('hashchange', () => { readHash(); apply(); });
  readHash();
  apply();
  document.body.dataset.ready = '1';
})();
"""


def _tags(values, cls: str = "") -> str:
    return " ".join(f'<span class="tag {cls}">{escape(v)}</span>' for v in values)


def _options(values: list[tuple[str, str]], blank: str) -> str:
    return f'<option value="">{escape(blank)}</option>' + "".join(
        f'<option value="{escape(v)}">{escape(label)}</option>' for v, label in values
    )


def _heat_color(v: int, vmax: int) -> str:
    if v == 0:
        return "#ffffff"
    t = v / vmax
    # white -> deep blue
    r, g, b = (int(255 - t * (255 - c)) for c in (33, 102, 172))
    return f"#{r:02x}{g:02x}{b:02x}"


def to_html(tax: Taxonomy) -> str:
    m = tax.vocabulary.meta
    evs = sorted_evaluations(tax)
    aspect_opts = []
    for p in tax.parents:
        aspect_opts.append(
            f'<optgroup label="{escape(p)}"><option value="{escape(p)}">{escape(p)} (all)</option>'
        )
        aspect_opts += [f'<option value="{escape(x)}">{escape(x)}</option>' for x in tax.children[p]]
        aspect_opts.append("</optgroup>")
    aspect_opts += [
        f'<option value="{escape(x)}">{escape(x)}</option>' for x in tax.leaves if not tax.parent_of[x]
    ]
    caps = [(c.id, c.id) for c in tax.vocabulary.capability]
    prots = [(p.id, p.id) for p in tax.vocabulary.protocol]
    models = [(k, f"{k}: {mm.name}") for k, mm in tax.models.items()]
    exclude = "".join(
        f'<label><input type="checkbox" value="{escape(p.id)}"> {escape(p.id)}</label>'
        for p in tax.vocabulary.protocol
    )

    body_rows = []
    for ev in evs:
        aspects = set(ev.aspects) | {tax.parent_of[a] for a in ev.aspects if tax.parent_of[a]}
        c = ev.citation
        link = (
            f' <a href="https://arxiv.org/abs/{escape(c.arxiv)}">arXiv:{escape(c.arxiv)}</a>'
            if c.arxiv
            else ""
        )
        caps_text = list(ev.capabilities_required) + [" or ".join(g) for g in ev.capabilities_any_of]
        text = " ".join([ev.key, ev.name, c.title, *ev.metrics, *ev.tasks]).lower()
        body_rows.append(
            f'<tr class="ev" id="ev-{escape(ev.key)}" data-key="{escape(ev.key)}" '
            f'data-aspects="{escape(" ".join(sorted(aspects)))}" '
            f'data-caps="{escape(" ".join(ev.capabilities_required))}" '
            f'data-anyof="{escape(";".join("|".join(g) for g in ev.capabilities_any_of))}" '
            f'data-protocol="{escape(" ".join(ev.protocol))}" data-kind="{escape(ev.kind)}" '
            f'data-text="{escape(text)}">'
            f'<td class="k">{escape(ev.key)}</td><td>{escape(ev.name)}<br><small>{escape(ev.kind)}</small></td>'
            f"<td>{ev.year}</td><td>{_tags(ev.aspects)}</td><td>{_tags(caps_text, 'c')}</td>"
            f"<td>{_tags(ev.protocol, 'p')}</td>"
            f"<td>{escape(' + '.join(ev.input))} &rarr; {escape(' / '.join(ev.output))}</td>"
            f"<td>{escape('; '.join(ev.metrics))}</td>"
            f"<td>{escape(c.title)} ({c.year}){link}</td></tr>"
        )

    rows, cols, matrix = coverage_matrix(tax)
    vmax = max(max(r) for r in matrix) or 1
    heat = ["<tr><th>aspect</th>" + "".join(f"<th>{escape(c)}</th>" for c in cols) + "</tr>"]
    current = None
    for leaf, counts in zip(rows, matrix):
        parent = tax.parent_of[leaf]
        if parent and parent != current:
            heat.append(f'<tr class="parent"><td colspan="{len(cols) + 1}">{escape(parent)}</td></tr>')
            current = parent
        cells = "".join(
            f'<td style="background:{_heat_color(v, vmax)};color:{"#fff" if v > vmax * 0.6 else "#000"}">{v}</td>'
            for v in counts
        )
        heat.append(f'<tr><td class="a">{escape(leaf)}</td>{cells}</tr>')

    axes_html = []
    for axis, title in (
        ("aspect", "Axis 1: evaluation aspect"),
        ("capability", "Axis 2: model capabilities required"),
        ("protocol", "Axis 3: task or protocol requirements"),
    ):
        items = []
        for v in getattr(tax.vocabulary, axis):
            name = f"{v.parent} / {v.id}" if v.parent else v.id
            paper = f' (paper: "{escape(v.paper_term)}")' if v.paper_term else ""
            items.append(f"<dt>{escape(name)}</dt><dd>{escape(v.definition)} [{v.provenance}]{paper}</dd>")
        axes_html.append(f'<h3>{escape(title)}</h3><dl class="axis">{"".join(items)}</dl>')

    data_json = json.dumps(tax.to_dict(), ensure_ascii=False).replace("</", "<\\/")
    models_json = json.dumps({k: list(mm.capabilities) for k, mm in tax.models.items()}).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Which evaluation for which speech model?</title>
<style>{CSS}</style></head>
<body>
<h1>Which evaluation for which speech model?</h1>
<p class="sub">The three-axis taxonomy of <i>{escape(m.paper)}</i> ({escape(m.authors)}, {m.year},
arXiv {escape(m.arxiv)}): {len(evs)} evaluations classified by the aspect they measure, the model capabilities they
require and their protocol requirements. Values marked [recon] are reconstructions; see the package README.</p>
<h2>Catalogue</h2>
<form id="filters" onsubmit="return false">
<label>aspect<select id="f-aspect"><option value="">any aspect</option>{"".join(aspect_opts)}</select></label>
<label>requires capability<select id="f-capability">{_options(caps, "any capability")}</select></label>
<label>uses protocol<select id="f-protocol">{_options(prots, "any protocol")}</select></label>
<label>fits model profile<select id="f-model">{_options(models, "any model")}</select></label>
<label>kind<select id="f-kind">{_options([(k, k) for k in ("benchmark", "metric", "protocol")], "any kind")}</select></label>
<label>search<input type="search" id="f-q" placeholder="name, metric, task"></label>
<fieldset id="f-exclude"><legend>budget: exclude evaluations that need</legend>{exclude}</fieldset>
<button type="button" id="f-reset">reset</button>
</form>
<p><span id="count">{len(evs)}</span> of {len(evs)} evaluations shown.</p>
<table id="catalogue"><thead><tr><th>key</th><th>name</th><th>year</th><th>aspects (axis 1)</th>
<th>capabilities required (axis 2)</th><th>protocol (axis 3)</th><th>input &rarr; output</th><th>metrics</th>
<th>citation</th></tr></thead>
<tbody>
{chr(10).join(body_rows)}
</tbody></table>
<h2>Coverage heatmap</h2>
<p>Evaluations per aspect leaf: all of them, and those each model profile can take directly.</p>
<table class="heat" id="heatmap">{"".join(heat)}</table>
<h2>The axes</h2>
{"".join(axes_html)}
<script type="application/json" id="taxonomy-data">{data_json}</script>
<script type="application/json" id="models-data">{models_json}</script>
<script>{JS}</script>
</body></html>
"""


def read_html_data(text: str) -> dict:
    """The embedded JSON document of a page made by :func:`to_html` (for round trips)."""
    start = text.index('<script type="application/json" id="taxonomy-data">')
    start = text.index(">", start) + 1
    end = text.index("</script>", start)
    return json.loads(text[start:end].replace("<\\/", "</"))
