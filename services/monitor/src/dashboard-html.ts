/**
 * The live dashboard: one self-contained page (no external assets, so it works
 * on an air-gapped cluster) that polls `api/summary` every second. Data is
 * written with textContent only, so a tenant or node name cannot inject markup.
 * The path is relative so the page also works behind a proxy that mounts the
 * monitor under a prefix.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AutoGLM monitor</title>
<style>
  :root { color-scheme: light dark; --bar: #3b82f6; --hot: #ef4444; --muted: #888; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; max-width: 70rem; }
  h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
  #status { color: var(--muted); }
  #status.error { color: var(--hot); }
  .node { display: grid; grid-template-columns: 12rem 1fr 14rem; gap: .75rem; align-items: center; margin: .3rem 0; }
  .track { background: rgba(127,127,127,.2); border-radius: 3px; height: 1.1rem; position: relative; overflow: hidden; }
  .fill { background: var(--bar); height: 100%; transition: width .4s; }
  .fill.hot { background: var(--hot); }
  .pct { position: absolute; right: .4rem; top: 0; font-size: .8rem; line-height: 1.1rem; }
  .mem { color: var(--muted); font-variant-numeric: tabular-nums; }
  table { border-collapse: collapse; min-width: 40rem; }
  th, td { padding: .3rem .8rem; border-bottom: 1px solid rgba(127,127,127,.3); text-align: right; font-variant-numeric: tabular-nums; }
  th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
  .empty { color: var(--muted); }
</style>
</head>
<body>
<h1>AutoGLM monitor</h1>
<div id="status">connecting…</div>
<h2>GPU utilisation by node</h2>
<div id="nodes"><p class="empty">No node telemetry yet.</p></div>
<h2>Outcomes by tenant and class</h2>
<table>
  <thead><tr><th>Tenant</th><th>Class</th><th>Succeeded</th><th>Failed</th><th>Success rate</th><th>Mean queue wait</th></tr></thead>
  <tbody id="outcomes"><tr><td class="empty" colspan="6">No finished tasks yet.</td></tr></tbody>
</table>
<script>
(function () {
  'use strict';
  var GIB = 1024 * 1024 * 1024;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function seconds(value) {
    if (value < 1) return (value * 1000).toFixed(0) + ' ms';
    if (value < 120) return value.toFixed(2) + ' s';
    return (value / 60).toFixed(1) + ' min';
  }

  function renderNodes(nodes) {
    var box = document.getElementById('nodes');
    box.replaceChildren();
    if (nodes.length === 0) { box.appendChild(el('p', 'empty', 'No node telemetry yet.')); return; }
    nodes.forEach(function (n) {
      var pct = Math.max(0, Math.min(1, n.gpuUtilization)) * 100;
      var row = el('div', 'node');
      row.appendChild(el('div', '', n.nodeId));
      var track = el('div', 'track');
      var fill = el('div', pct >= 90 ? 'fill hot' : 'fill');
      fill.style.width = pct.toFixed(1) + '%';
      track.appendChild(fill);
      track.appendChild(el('span', 'pct', pct.toFixed(0) + '%'));
      row.appendChild(track);
      row.appendChild(el('div', 'mem',
        (n.gpuMemoryUsedBytes / GIB).toFixed(1) + ' / ' + (n.gpuMemoryTotalBytes / GIB).toFixed(1) + ' GiB'));
      box.appendChild(row);
    });
  }

  function renderOutcomes(outcomes) {
    var body = document.getElementById('outcomes');
    body.replaceChildren();
    if (outcomes.length === 0) {
      var td = el('td', 'empty', 'No finished tasks yet.');
      td.colSpan = 6;
      var empty = el('tr');
      empty.appendChild(td);
      body.appendChild(empty);
      return;
    }
    outcomes.forEach(function (o) {
      var total = o.succeeded + o.failed;
      var tr = el('tr');
      [o.tenant, o.priorityClass, String(o.succeeded), String(o.failed),
       total === 0 ? '–' : (100 * o.succeeded / total).toFixed(1) + '%',
       seconds(o.meanQueueSeconds)].forEach(function (text) { tr.appendChild(el('td', '', text)); });
      body.appendChild(tr);
    });
  }

  function poll() {
    var status = document.getElementById('status');
    fetch('api/summary', { cache: 'no-store' })
      .then(function (res) {
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.json();
      })
      .then(function (s) {
        renderNodes(s.nodes);
        renderOutcomes(s.outcomes);
        var since = s.since ? new Date(s.since.seconds * 1000).toLocaleString() : '?';
        status.className = '';
        status.textContent = s.eventsReceived + ' task events since ' + since +
          ' · updated ' + new Date().toLocaleTimeString();
      })
      .catch(function (err) {
        status.className = 'error';
        status.textContent = 'monitor unreachable (' + err.message + '); retrying…';
      })
      .then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
</script>
</body>
</html>
`;
