"""One self-contained HTML page: the catalogue with filters, sorting, links and BibTeX, the coverage heatmap, the axes.

No network: CSS and JavaScript are inline, the data is embedded as JSON (``<script id="taxonomy-data">``, the same
document as the JSON export, so the page round-trips). The table is rendered here, so the page reads without
JavaScript; the script only hides rows. Filters are mirrored in the URL fragment, so a filtered view can be linked:
``speech-taxonomy.html#aspect=prosody&exclude=human_judges``. Keys: ``aspect``, ``capability``, ``protocol``,
``model``, ``kind``, ``exclude`` (comma-separated protocol values), ``from`` and ``to`` (years), ``language``,
``task``, ``q`` (text), ``sort`` (``key``, ``name`` or ``year``; ``-year`` descending). The heatmap and the BibTeX
block follow the filters; the table is sortable; below 760 px the rows become cards.
"""

from __future__ import annotations

import json
from html import escape

from .catalogue import Taxonomy
from .match import coverage_matrix, sorted_evaluations

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1400px;
  padding:0 1em;color:#1d2330;overflow-wrap:break-word}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em}
.sub{color:#555;margin-top:0}
#filters{display:flex;flex-wrap:wrap;gap:.6em 1.2em;align-items:flex-end;background:#f4f6fa;padding:.8em;
  border-radius:6px}
#filters label{display:flex;flex-direction:column;font-size:.85em;color:#444;min-width:0}
#filters select,#filters input{font-size:1em;padding:.2em;max-width:100%}
#filters select,#filters input[type=search]{min-width:11em}
#filters input[type=number]{width:6em}
fieldset{border:1px solid #ccd;border-radius:4px;padding:.2em .6em;font-size:.85em;min-width:0;max-width:100%}
fieldset label{display:inline-block!important;margin-right:.6em}
table{border-collapse:collapse;width:100%;margin-top:.6em}
th,td{border-bottom:1px solid #e2e5ec;padding:.3em .4em;text-align:left;vertical-align:top}
th{background:#eef1f6;position:sticky;top:0}
th[data-sort]{cursor:pointer;white-space:nowrap} th[data-sort]::after{content:" \\2195";color:#889}
th[aria-sort=ascending]::after{content:" \\2191";color:#000} th[aria-sort=descending]::after{content:" \\2193";color:#000}
td.k{font-family:ui-monospace,Menlo,monospace;font-size:.85em;overflow-wrap:anywhere}
.tag{display:inline-block;background:#e8eefc;border-radius:3px;padding:0 .3em;margin:1px;font-size:.82em;
  white-space:nowrap;overflow-wrap:normal}
.tag.c{background:#e6f5ea}.tag.p{background:#fbeee3}
.links a{margin-right:.5em;white-space:nowrap}
#count{font-weight:600}
#empty{background:#fff4d6;border:1px solid #e8c66a;padding:.6em;border-radius:4px}
.scroll{overflow-x:auto;max-width:100%}
table.heat td{text-align:center;min-width:3.2em;font-variant-numeric:tabular-nums}
table.heat th{font-size:.8em}
table.heat td.a{text-align:left;font-family:ui-monospace,Menlo,monospace;font-size:.85em}
table.heat tr.parent td{background:#f4f6fa;font-weight:600;text-align:left}
dl.axis dt{font-family:ui-monospace,Menlo,monospace;font-weight:600} dl.axis dd{margin:0 0 .4em 1.5em}
pre#bibtex{white-space:pre-wrap;background:#f7f7f9;padding:.6em;font-size:.8em;max-height:30em;overflow:auto}
@media (max-width:760px){
  body{margin:.6em auto;padding:0 .6em}
  #filters{gap:.5em}
  #filters label,#filters fieldset{flex:1 1 100%}
  #filters select,#filters input[type=search]{min-width:0;width:100%}
  #catalogue thead{display:none}
  #catalogue,#catalogue tbody,#catalogue tr,#catalogue td{display:block;width:100%}
  #catalogue tr.ev{border:1px solid #d5dae4;border-radius:6px;margin:.6em 0;padding:.3em .5em}
  #catalogue tr.ev[hidden]{display:none}
  #catalogue td{border:none;padding:.15em 0}
  #catalogue td[data-label]::before{content:attr(data-label) ": ";font-weight:600;color:#555;font-size:.85em}
  .tag{white-space:normal;overflow-wrap:anywhere}
  body{overflow-wrap:anywhere}
}
"""

JS = r"""
(function(){
  const tbody = document.querySelector('#catalogue tbody');
  const rows = Array.from(tbody.querySelectorAll('tr.ev'));
  const models = JSON.parse(document.getElementById('models-data').textContent);
  const bib = JSON.parse(document.getElementById('bibtex-data').textContent);
  const $ = id => document.getElementById(id);
  const sels = {aspect:'f-aspect', capability:'f-capability', protocol:'f-protocol', model:'f-model', kind:'f-kind'};
  const texts = {from:'f-from', to:'f-to', language:'f-language', task:'f-task', q:'f-q'};
  function words(s){ return s ? s.split(' ').filter(Boolean) : []; }
  function fitsCaps(row, caps){
    if (!words(row.dataset.caps).every(c => caps.includes(c))) return false;
    const groups = row.dataset.anyof ? row.dataset.anyof.split(';') : [];
    return groups.every(g => g.split('|').some(c => caps.includes(c)));
  }
  function esc(s){ return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }
  function langOk(row, q){
    if (!q) return true;
    const re = new RegExp('(^|[^a-z0-9])' + esc(q) + '($|[^a-z0-9])');
    return row.dataset.languages.split('|').some(x => x === 'any' || re.test(x));
  }
  function state(){
    const s = {};
    for (const [k, id] of Object.entries(sels)) s[k] = $(id).value;
    for (const [k, id] of Object.entries(texts)) s[k] = $(id).value.trim().toLowerCase();
    s.exclude = Array.from(document.querySelectorAll('#f-exclude input:checked')).map(i => i.value);
    return s;
  }
  function apply(){
    const s = state();
    let n = 0;
    const shown = [];
    for (const row of rows){
      const prot = words(row.dataset.protocol), year = +row.dataset.year;
      let ok = (!s.aspect || words(row.dataset.aspects).includes(s.aspect))
        && (!s.capability || words(row.dataset.caps + ' ' + row.dataset.anyof.replace(/[|;]/g, ' ')).includes(s.capability))
        && (!s.protocol || prot.includes(s.protocol))
        && (!s.kind || row.dataset.kind === s.kind)
        && !s.exclude.some(p => prot.includes(p))
        && (!s.model || fitsCaps(row, models[s.model] || []))
        && (!s.from || year >= +s.from) && (!s.to || year <= +s.to)
        && langOk(row, s.language)
        && (!s.task || row.dataset.tasks.includes(s.task))
        && (!s.q || row.dataset.text.includes(s.q));
      row.hidden = !ok;
      if (ok){ n++; shown.push(row); }
    }
    $('count').textContent = n;
    $('empty').hidden = n > 0;
    heat(shown);
    $('bibtex').textContent = shown.map(r => bib[r.dataset.key]).join('\n');
    return s;
  }
  function heat(shown){
    for (const cell of document.querySelectorAll('#heatmap td[data-leaf]')){
      const leaf = cell.dataset.leaf, col = cell.dataset.col;
      const caps = col === '' ? null : (models[col] || []);
      const v = shown.filter(r => words(r.dataset.leaves).includes(leaf) && (caps === null || fitsCaps(r, caps))).length;
      cell.textContent = v;
      cell.style.background = v ? 'rgba(33,102,172,' + Math.min(1, 0.15 + v / 12).toFixed(2) + ')' : '#fff';
      cell.style.color = v > 8 ? '#fff' : '#000';
    }
  }
  let sortKey = '', sortDir = 1;
  function sortBy(key){
    sortDir = key === sortKey ? -sortDir : 1; sortKey = key;
    const num = key === 'year';
    rows.sort((a, b) => {
      const x = a.dataset['s' + key], y = b.dataset['s' + key];
      const c = num ? (+x - +y) : x.localeCompare(y);
      return (c || a.dataset.order - b.dataset.order) * sortDir;
    });
    rows.forEach(r => tbody.appendChild(r));
    document.querySelectorAll('#catalogue th[data-sort]').forEach(th =>
      th.setAttribute('aria-sort', th.dataset.sort === key ? (sortDir > 0 ? 'ascending' : 'descending') : 'none'));
  }
  function writeHash(s){
    const p = new URLSearchParams();
    for (const k of [...Object.keys(sels), ...Object.keys(texts)]) if (s[k]) p.set(k, s[k]);
    if (s.exclude.length) p.set('exclude', s.exclude.join(','));
    if (sortKey) p.set('sort', (sortDir < 0 ? '-' : '') + sortKey);
    const h = p.toString();
    if (h !== location.hash.slice(1)) history.replaceState(null, '', h ? '#' + h : location.pathname + location.search);
  }
  function readHash(){
    const p = new URLSearchParams(location.hash.slice(1));
    for (const [k, id] of Object.entries(sels)){
      const v = p.get(k) || '', el = $(id);
      el.value = Array.from(el.options).some(o => o.value === v) ? v : '';
    }
    for (const [k, id] of Object.entries(texts)) $(id).value = p.get(k) || '';
    const ex = (p.get('exclude') || '').split(',');
    document.querySelectorAll('#f-exclude input').forEach(i => { i.checked = ex.includes(i.value); });
    const srt = p.get('sort');
    if (srt){ const key = srt.replace(/^-/, ''); sortKey = ''; sortBy(key); if (srt[0] === '-') sortBy(key); }
  }
  document.getElementById('filters').addEventListener('input', () => writeHash(apply()));
  document.querySelectorAll('#catalogue th[data-sort]').forEach(th =>
    th.addEventListener('click', () => { sortBy(th.dataset.sort); writeHash(state()); }));
  $('f-reset').addEventListener('click', () => { history.replaceState(null, '', location.pathname); readHash(); apply(); });
  window.addEventListener('hashchange', () => { readHash(); apply(); });
  readHash();
  apply();
  const over = document.documentElement.scrollWidth - window.innerWidth;
  document.body.dataset.overflow = over > 0 ? String(over) : '0';
  document.body.dataset.ready = '1';
})();
"""


def _tags(values, cls: str = "") -> str:
    return " ".join(f'<span class="tag {cls}">{escape(v)}</span>' for v in values)


def _options(values: list[tuple[str, str]], blank: str) -> str:
    return f'<option value="">{escape(blank)}</option>' + "".join(
        f'<option value="{escape(v)}">{escape(label)}</option>' for v, label in values
    )


def _heat_bg(v: int, vmax: int) -> str:
    """The cell colour the page's script computes too: deeper blue for more evaluations."""
    return f"rgba(33,102,172,{min(1, 0.15 + v / vmax):.2f})" if v else "#fff"


def _links(ev) -> str:
    return " ".join(f'<a href="{escape(url)}">{escape(name)}</a>' for name, url in ev.link_map().items())


def to_html(tax: Taxonomy) -> str:
    from .export import bibtex_entry

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
    years = [e.year for e in evs]

    body_rows = []
    for i, ev in enumerate(evs):
        aspects = set(ev.aspects) | {tax.parent_of[a] for a in ev.aspects if tax.parent_of[a]}
        c = ev.citation
        caps_text = list(ev.capabilities_required) + [" or ".join(g) for g in ev.capabilities_any_of]
        text = " ".join([ev.key, ev.name, c.title, *ev.metrics, *ev.tasks]).lower()
        tasks = " | ".join([ev.key, ev.name, *ev.tasks, *ev.metrics]).lower()
        body_rows.append(
            f'<tr class="ev" id="ev-{escape(ev.key)}" data-key="{escape(ev.key)}" data-order="{i}" '
            f'data-skey="{escape(ev.key)}" data-sname="{escape(ev.name.lower())}" data-syear="{ev.year}" '
            f'data-year="{ev.year}" data-aspects="{escape(" ".join(sorted(aspects)))}" '
            f'data-leaves="{escape(" ".join(ev.aspects))}" '
            f'data-caps="{escape(" ".join(ev.capabilities_required))}" '
            f'data-anyof="{escape(";".join("|".join(g) for g in ev.capabilities_any_of))}" '
            f'data-protocol="{escape(" ".join(ev.protocol))}" data-kind="{escape(ev.kind)}" '
            f'data-languages="{escape("|".join(x.lower() for x in ev.languages))}" '
            f'data-tasks="{escape(tasks)}" data-text="{escape(text)}">'
            f'<td class="k">{escape(ev.key)}</td>'
            f"<td>{escape(ev.name)}<br><small>{escape(ev.kind)}; {escape(', '.join(ev.languages))}</small></td>"
            f'<td data-label="year">{ev.year}</td><td data-label="aspects">{_tags(ev.aspects)}</td>'
            f'<td data-label="capabilities">{_tags(caps_text, "c")}</td>'
            f'<td data-label="protocol">{_tags(ev.protocol, "p")}</td>'
            f'<td class="io" data-label="in &rarr; out">{escape(" + ".join(ev.input))} &rarr; {escape(" / ".join(ev.output))}</td>'
            f'<td data-label="metrics">{escape("; ".join(ev.metrics))}</td>'
            f'<td data-label="paper">{escape(c.title)} ({c.year})<br><span class="links">{_links(ev)}</span></td></tr>'
        )

    rows, cols, matrix = coverage_matrix(tax)
    col_keys = [""] + list(tax.models)
    vmax = 12
    heat = [
        "<tr><th>aspect</th><th>shown</th>"
        + "".join(f"<th>{escape(c.replace('_like', ''))}</th>" for c in cols[1:])
        + "</tr>"
    ]
    current = None
    for leaf, counts in zip(rows, matrix):
        parent = tax.parent_of[leaf]
        if parent and parent != current:
            heat.append(f'<tr class="parent"><td colspan="{len(cols) + 1}">{escape(parent)}</td></tr>')
            current = parent
        cells = "".join(
            f'<td data-leaf="{escape(leaf)}" data-col="{escape(k)}" style="background:'
            f"{_heat_bg(v, vmax)};"
            f'color:{"#fff" if v > 8 else "#000"}">{v}</td>'
            for k, v in zip(col_keys, counts)
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
            kind = f" ({v.kind})" if v.kind else ""
            items.append(
                f"<dt>{escape(name)}{kind}</dt><dd>{escape(v.definition)} [{v.provenance}]{paper}</dd>"
            )
        axes_html.append(f'<h3>{escape(title)}</h3><dl class="axis">{"".join(items)}</dl>')

    def script_json(obj) -> str:
        return json.dumps(obj, ensure_ascii=False).replace("</", "<\\/")

    data_json = script_json(tax.to_dict())
    models_json = script_json({k: list(mm.capabilities) for k, mm in tax.models.items()})
    bib_json = script_json({ev.key: bibtex_entry(ev) for ev in evs})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Which evaluation for which speech model?</title>
<style>{CSS}</style></head>
<body>
<h1>Which evaluation for which speech model?</h1>
<p class="sub">The three-axis taxonomy of <i>{escape(m.paper)}</i> ({escape(m.authors)}, {m.year},
<a href="https://arxiv.org/abs/{escape(m.arxiv)}">arXiv {escape(m.arxiv)}</a>): {len(evs)} evaluations classified by
the aspect they measure, the model capabilities they require and their protocol requirements. Values marked [recon]
are reconstructions; see the package README.</p>
<h2>Catalogue</h2>
<form id="filters" onsubmit="return false">
<label>aspect<select id="f-aspect"><option value="">any aspect</option>{"".join(aspect_opts)}</select></label>
<label>requires capability<select id="f-capability">{_options(caps, "any capability")}</select></label>
<label>uses protocol<select id="f-protocol">{_options(prots, "any protocol")}</select></label>
<label>fits model profile<select id="f-model">{_options(models, "any model")}</select></label>
<label>kind<select id="f-kind">{_options([(k, k) for k in ("benchmark", "metric", "protocol")], "any kind")}</select></label>
<label>year from<input type="number" id="f-from" min="{min(years)}" max="{max(years)}" placeholder="{min(years)}"></label>
<label>year to<input type="number" id="f-to" min="{min(years)}" max="{max(years)}" placeholder="{max(years)}"></label>
<label>language<input type="search" id="f-language" placeholder="en, English, French"></label>
<label>task<input type="search" id="f-task" placeholder="ASR, translation, QA"></label>
<label>search<input type="search" id="f-q" placeholder="name, metric, task"></label>
<fieldset id="f-exclude"><legend>budget: exclude evaluations that need</legend>{exclude}</fieldset>
<button type="button" id="f-reset">reset</button>
</form>
<p><span id="count">{len(evs)}</span> of {len(evs)} evaluations shown. Click a column title (key, name, year) to sort.</p>
<p id="empty" hidden>No evaluation matches these filters. Loosen one (or press reset).</p>
<table id="catalogue"><thead><tr><th data-sort="key" aria-sort="none">key</th>
<th data-sort="name" aria-sort="none">name</th><th data-sort="year" aria-sort="none">year</th><th>aspects (axis 1)</th>
<th>capabilities required (axis 2)</th><th>protocol (axis 3)</th><th>input &rarr; output</th><th>metrics</th>
<th>paper and links</th></tr></thead>
<tbody>
{chr(10).join(body_rows)}
</tbody></table>
<details><summary>BibTeX of the evaluations shown</summary><pre id="bibtex"></pre></details>
<h2>Coverage heatmap</h2>
<p>Evaluations per aspect leaf among those shown, and among those each model profile can take directly. It follows
the filters above.</p>
<div class="scroll"><table class="heat" id="heatmap">{"".join(heat)}</table></div>
<h2>The axes</h2>
{"".join(axes_html)}
<script type="application/json" id="taxonomy-data">{data_json}</script>
<script type="application/json" id="models-data">{models_json}</script>
<script type="application/json" id="bibtex-data">{bib_json}</script>
<script>{JS}</script>
</body></html>
"""


def read_html_data(text: str) -> dict:
    """The embedded JSON document of a page made by :func:`to_html` (for round trips)."""
    start = text.index('<script type="application/json" id="taxonomy-data">')
    start = text.index(">", start) + 1
    end = text.index("</script>", start)
    return json.loads(text[start:end].replace("<\\/", "</"))
