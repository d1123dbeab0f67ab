/**
 * The dashboard's own script, served as /assets/dashboard.js (the page's CSP
 * runs no inline script). It follows `api/events` (a snapshot, then deltas),
 * draws with uPlot, and writes every value with textContent: tenant, node and
 * model names never become markup. Plain browser JavaScript, no build step.
 */
export const DASHBOARD_SCRIPT = String.raw`(function () {
  'use strict';
  var HISTORY = 900;
  var CHART_HEIGHT = 170;
  var CLASSES = ['urgent', 'normal', 'background'];
  var TENANT_COLORS = ['#5fa8f5', '#f2a65a', '#58c79a', '#c58af0', '#ef6f8f', '#e3d26f'];
  var GIB = 1073741824;
  var state = { samples: [], nodes: new Map(), current: null, feedback: null };
  var charts = {};
  var lookups = 0;

  function byId(id) { return document.getElementById(id); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function pill(text, tone) { return el('span', 'pill ' + (tone || ''), text); }
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function words(s) { return String(s).replace(/_/g, ' '); }

  function pct(x) { return (Math.max(0, x) * 100).toFixed(0) + '%'; }
  function seconds(v) {
    if (v === null || v === undefined) return '–';
    if (v === 0) return '0';
    if (v < 0.001) return (v * 1e6).toFixed(0) + ' µs';
    if (v < 1) return (v * 1000).toFixed(v < 0.01 ? 1 : 0) + ' ms';
    if (v < 120) return v.toFixed(v < 10 ? 2 : 1) + ' s';
    return (v / 60).toFixed(1) + ' min';
  }
  function gib(bytes) { var g = bytes / GIB; return g >= 10 ? g.toFixed(0) : g.toFixed(1); }
  function clock(ms) {
    if (ms === null || ms === undefined) return '–';
    var d = new Date(ms);
    return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
  }
  // Axis labels: as few digits as the value needs.
  function secondsTick(v) {
    if (v === 0) return '0';
    if (v < 1) return parseFloat((v * 1000).toPrecision(3)) + ' ms';
    return parseFloat(v.toPrecision(3)) + ' s';
  }
  function perSecond(x) { return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2); }
  function heat(u) {
    var steps = [0.05, 0.25, 0.5, 0.75, 0.9];
    var i = 0;
    while (i < steps.length && u >= steps[i]) i += 1;
    return 'h' + i;
  }
  // "NVIDIA H100 80GB HBM3" → "H100 80GB"; the tile's title has the full name.
  function shortGpuName(name) { return String(name || '').replace(/^(NVIDIA|Simulated)\s+/, '').split(/\s+/).slice(0, 2).join(' '); }
  function emptyRow(tbody, columns, text) {
    var td = el('td', 'empty', text);
    td.colSpan = columns;
    var tr = el('tr');
    tr.append(td);
    tbody.replaceChildren(tr);
  }

  // ---- header -------------------------------------------------------------
  function renderKpis() {
    var nodes = Array.from(state.nodes.values());
    var ready = nodes.filter(function (n) { return n.state === 'ready'; }).length;
    byId('kpi-nodes').textContent = ready + ' / ' + nodes.length;
    var gpus = [];
    nodes.forEach(function (n) { gpus = gpus.concat(n.gpus); });
    byId('kpi-gpu').textContent = gpus.length === 0 ? '–' : pct(gpus.reduce(function (a, g) { return a + g.utilization; }, 0) / gpus.length);
    var cur = state.current;
    if (cur) {
      byId('kpi-pending').textContent = cur.byClass.reduce(function (a, c) { return a + c.pending; }, 0);
      byId('kpi-running').textContent = cur.byClass.reduce(function (a, c) { return a + c.running; }, 0);
    }
    var last = state.samples[state.samples.length - 1];
    byId('kpi-rate').textContent = last ? perSecond(last.finished) : '–';
    var firing = state.feedback ? state.feedback.alerts.filter(function (a) { return a.state === 'firing'; }).length : 0;
    byId('kpi-alerts').textContent = state.feedback ? firing : '–';
    byId('kpi-alerts-box').className = firing > 0 ? 'kpi alarm' : 'kpi';
  }

  function setStatus(kind, text) {
    var status = byId('status');
    status.className = 'status ' + kind;
    status.textContent = text;
  }

  // ---- fleet heat map -------------------------------------------------------
  function renderFleet() {
    var box = byId('fleet');
    var nodes = Array.from(state.nodes.values()).sort(function (a, b) { return a.nodeId.localeCompare(b.nodeId); });
    if (nodes.length === 0) {
      box.replaceChildren(el('p', 'empty', 'No node has reported yet.'));
      return;
    }
    box.replaceChildren.apply(box, nodes.map(nodeCard));
  }

  function nodeCard(n) {
    var card = el('div', 'node ' + n.state);
    card.dataset.node = n.nodeId;
    var head = el('div', 'node-head');
    var tone = n.state === 'ready' ? 'ok' : n.state === 'quarantined' ? 'bad' : 'warn';
    head.append(el('span', 'node-name', n.nodeId), pill(words(n.state), tone),
      el('span', 'node-meta', n.runningTasks + ' running · ' + n.gpus.length + (n.gpus.length === 1 ? ' GPU' : ' GPUs')));
    card.append(head);
    if (n.stateReason) {
      card.append(el('div', 'node-reason', n.stateReason + (n.quarantinedUntilMs ? ' (until ' + clock(n.quarantinedUntilMs) + ')' : '')));
    }
    var gpus = el('div', 'gpus');
    n.gpus.forEach(function (g) {
      var tile = el('div', 'gpu ' + heat(g.utilization));
      tile.dataset.gpu = String(g.index);
      tile.title = g.name + ': ' + pct(g.utilization) + ' busy, ' + gib(g.memoryUsedBytes) + ' of ' + gib(g.memoryTotalBytes) + ' GiB';
      var top = el('div', 'gpu-top');
      top.append(el('span', 'gpu-index', 'GPU ' + g.index), el('span', 'gpu-name', shortGpuName(g.name)));
      var mem = el('div', 'mem');
      var fill = el('div', 'mem-fill');
      fill.style.width = (g.memoryTotalBytes > 0 ? (100 * g.memoryUsedBytes) / g.memoryTotalBytes : 0).toFixed(1) + '%';
      mem.append(fill);
      tile.append(top, el('div', 'gpu-util', pct(g.utilization)), mem, el('div', 'mem-text', gib(g.memoryUsedBytes) + ' / ' + gib(g.memoryTotalBytes) + ' GiB'));
      var replicas = n.replicas.filter(function (r) { return r.gpuIndices.indexOf(g.index) >= 0; });
      if (replicas.length > 0) {
        var box = el('div', 'replicas');
        replicas.forEach(function (r) {
          var badge = el('span', 'replica ' + r.state, r.model);
          badge.title = r.model + ' (' + r.state + ', ' + r.sequences + ' sequences)';
          box.append(badge);
        });
        tile.append(box);
      }
      gpus.append(tile);
    });
    card.append(gpus);
    return card;
  }

  // ---- charts ---------------------------------------------------------------
  function timeOfDay(u, splits) {
    return splits.map(function (t) { return new Date(t * 1000).toLocaleTimeString([], { hour12: false }); });
  }

  function axis(format) {
    var a = {
      stroke: cssVar('--muted'),
      grid: { stroke: cssVar('--line'), width: 1 },
      ticks: { stroke: cssVar('--line'), width: 1, size: 4 },
      font: '11px system-ui, sans-serif',
      gap: 4,
    };
    if (format) {
      a.size = 48;
      a.values = function (u, splits) { return splits.map(format); };
    } else {
      a.values = timeOfDay;
      a.space = 55;
    }
    return a;
  }

  function count(v) { return v === null ? '' : Math.abs(v) >= 1000 ? (v / 1000).toFixed(1) + 'k' : String(Math.round(v * 100) / 100); }

  // A custom legend: a colour per group, then what solid and dashed lines mean.
  function legend(items, styles) {
    var box = el('div', 'chart-legend scale');
    items.forEach(function (item) {
      var swatch = el('i');
      swatch.style.background = item.color;
      box.append(swatch, el('span', 'legend-label', item.label));
    });
    var both = el('div', 'chart-legends');
    both.append(box);
    if (!styles) return both;
    var key = el('div', 'scale');
    key.append(el('i', 'stroke'), el('span', 'legend-label muted', styles[0]), el('i', 'stroke dashed'), el('span', 'legend-label muted', styles[1]));
    both.append(key);
    return both;
  }

  function chart(id, key, series, format, legendBox) {
    var box = byId(id);
    var existing = charts[id];
    if (existing && existing.key === key) return existing.plot;
    if (existing) existing.plot.destroy();
    box.replaceChildren();
    if (typeof uPlot === 'undefined') {
      box.append(el('p', 'empty', 'Charts unavailable: uPlot did not load.'));
      return null;
    }
    box.append(legendBox);
    var plot = new uPlot({
      width: Math.max(200, box.clientWidth),
      height: CHART_HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 5 } },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.15 : 1]; } } },
      axes: [axis(null), axis(format)],
      series: [{}].concat(series),
    }, [[]].concat(series.map(function () { return []; })), box);
    charts[id] = { key: key, plot: plot };
    return plot;
  }

  function line(label, color, dashed) {
    return { label: label, stroke: color, width: dashed ? 1.5 : 2, dash: dashed ? [5, 4] : undefined, spanGaps: false, points: { show: false } };
  }

  function renderCharts() {
    var s = state.samples;
    var xs = s.map(function (p) { return p.t / 1000; });
    var classColors = CLASSES.map(function (c) { return cssVar('--' + c); });

    var classSeries = [];
    CLASSES.forEach(function (c, i) { classSeries.push(line(c + ' pending', classColors[i], false), line(c + ' running', classColors[i], true)); });
    var classChart = chart('chart-class', 'class', classSeries, count,
      legend(CLASSES.map(function (c, i) { return { label: c, color: classColors[i] }; }), ['pending', 'running']));
    if (classChart) {
      var classData = [xs];
      CLASSES.forEach(function (c, i) {
        classData.push(s.map(function (p) { return p.pending[i]; }), s.map(function (p) { return p.running[i]; }));
      });
      classChart.setData(classData);
    }

    // The busiest tenants over the window, by their peak of live tasks.
    var peak = new Map();
    s.forEach(function (p) {
      Object.keys(p.tenants).forEach(function (t) {
        var v = p.tenants[t][0] + p.tenants[t][1];
        peak.set(t, Math.max(peak.get(t) || 0, v));
      });
    });
    var tenants = Array.from(peak.keys()).sort(function (a, b) { return peak.get(b) - peak.get(a) || a.localeCompare(b); }).slice(0, TENANT_COLORS.length).sort();
    var tenantSeries = [];
    tenants.forEach(function (t, i) { tenantSeries.push(line(t + ' pending', TENANT_COLORS[i], false), line(t + ' running', TENANT_COLORS[i], true)); });
    var tenantLegend = tenants.length === 0
      ? legend([{ label: 'no tenant has had live tasks in the window', color: 'transparent' }])
      : legend(tenants.map(function (t, i) { return { label: t, color: TENANT_COLORS[i] }; }), ['pending', 'running']);
    var tenantChart = chart('chart-tenant', 'tenants:' + JSON.stringify(tenants), tenantSeries, count, tenantLegend);
    if (tenantChart) {
      var tenantData = [xs];
      tenants.forEach(function (t) {
        tenantData.push(
          s.map(function (p) { var v = p.tenants[t]; return v ? v[0] : 0; }),
          s.map(function (p) { var v = p.tenants[t]; return v ? v[1] : 0; }));
      });
      tenantChart.setData(tenantData);
    }

    var queueColor = cssVar('--accent');
    var ttftColor = cssVar('--warn');
    var latencyChart = chart('chart-latency', 'latency',
      [line('queue wait p50', queueColor, false), line('queue wait p99', queueColor, true), line('TTFT p50', ttftColor, false), line('TTFT p99', ttftColor, true)],
      secondsTick, legend([{ label: 'queue wait', color: queueColor }, { label: 'time to first token', color: ttftColor }], ['p50', 'p99']));
    if (latencyChart) {
      latencyChart.setData([xs,
        s.map(function (p) { return p.queueP50; }), s.map(function (p) { return p.queueP99; }),
        s.map(function (p) { return p.ttftP50; }), s.map(function (p) { return p.ttftP99; })]);
    }

    var submittedColor = cssVar('--background');
    var finishedColor = cssVar('--ok');
    var failedColor = cssVar('--bad');
    var throughputChart = chart('chart-throughput', 'throughput',
      [line('submitted', submittedColor, false), line('finished', finishedColor, false), line('failed', failedColor, false)],
      count, legend([{ label: 'submitted', color: submittedColor }, { label: 'finished', color: finishedColor }, { label: 'failed', color: failedColor }]));
    if (throughputChart) {
      throughputChart.setData([xs,
        s.map(function (p) { return p.submitted; }), s.map(function (p) { return p.finished; }), s.map(function (p) { return p.failed; })]);
    }
  }

  // ---- queues and recent tasks ----------------------------------------------
  function renderQueues() {
    var cur = state.current;
    if (!cur) return;
    var classBody = byId('queue-class').tBodies[0];
    classBody.replaceChildren.apply(classBody, cur.byClass.map(function (c) {
      var tr = el('tr');
      tr.dataset.class = c.name;
      var name = el('td');
      var dot = el('i', 'dot');
      dot.style.background = cssVar('--' + c.name);
      name.append(dot, document.createTextNode(c.name));
      tr.append(name, el('td', 'num pending', c.pending), el('td', 'num running', c.running));
      return tr;
    }));
    var tenantBody = byId('queue-tenant').tBodies[0];
    if (cur.byTenant.length === 0) emptyRow(tenantBody, 3, 'No live tasks.');
    else {
      tenantBody.replaceChildren.apply(tenantBody, cur.byTenant.map(function (t) {
        var tr = el('tr');
        tr.dataset.tenant = t.name;
        tr.append(el('td', '', t.name), el('td', 'num pending', t.pending), el('td', 'num running', t.running));
        return tr;
      }));
    }

    var recentBody = byId('recent').tBodies[0];
    if (cur.recentTasks.length === 0) emptyRow(recentBody, 4, 'No task has moved yet.');
    else {
      recentBody.replaceChildren.apply(recentBody, cur.recentTasks.map(function (t) {
        var tr = el('tr');
        tr.dataset.task = t.taskId;
        var open = el('button', 'link', t.taskId.slice(0, 8));
        open.type = 'button';
        open.title = 'Look up ' + t.taskId;
        open.addEventListener('click', function () { lookUp(t.taskId); });
        var idCell = el('td');
        idCell.append(open);
        tr.append(idCell, el('td', '', t.tenant), el('td', '', t.priorityClass), el('td', '', words(t.state)));
        return tr;
      }));
    }
  }

  // ---- feedback loop ---------------------------------------------------------
  var ALERT_ORDER = { firing: 0, pending: 1, resolved: 2 };
  function renderFeedback() {
    var fb = state.feedback;
    if (!fb) {
      byId('feedback-enabled').replaceChildren(pill('no feedback loop', 'off'));
      return;
    }
    var alerts = fb.alerts.slice().sort(function (a, b) { return (ALERT_ORDER[a.state] - ALERT_ORDER[b.state]) || (b.activeSinceMs - a.activeSinceMs); });
    var list = byId('alerts');
    if (alerts.length === 0) list.replaceChildren(el('li', 'empty', 'No alerts.'));
    else {
      list.replaceChildren.apply(list, alerts.map(function (a) {
        var li = el('li', 'alert ' + a.state);
        li.dataset.alert = a.name;
        li.dataset.state = a.state;
        var head = el('div', 'alert-head');
        head.append(pill(a.state, a.state === 'firing' ? 'bad' : a.state === 'pending' ? 'warn' : 'ok'), pill(a.severity, a.severity === 'page' ? 'warn' : ''), el('span', 'alert-name', a.name));
        var labels = Object.keys(a.labels).sort().map(function (k) { return k + '=' + a.labels[k]; }).join(' ');
        li.append(head, el('div', 'alert-labels', labels + ' · since ' + clock(a.activeSinceMs)), el('div', 'alert-summary', a.summary));
        return li;
      }));
    }
    var counts = { firing: 0, pending: 0 };
    alerts.forEach(function (a) { if (a.state in counts) counts[a.state] += 1; });
    byId('alerts-count').textContent = counts.firing + ' firing · ' + counts.pending + ' pending';

    var slos = byId('slos').tBodies[0];
    if (fb.slos.length === 0) emptyRow(slos, 6, 'No SLO has been judged yet.');
    else {
      slos.replaceChildren.apply(slos, fb.slos.map(function (s) {
        var tr = el('tr');
        tr.dataset.slo = s.slo;
        var name = el('td');
        name.append(el('div', '', s.slo), el('div', 'muted', words(s.indicator) + (s.priorityClass !== '*' ? ' · ' + s.priorityClass : '')));
        var attain = el('td');
        attain.append(el('div', '', (s.total > 0 ? (s.attainment * 100).toFixed(1) + '%' : '–') + ' of ' + (s.objective * 100).toFixed(1) + '%'));
        var bar = el('div', 'attain');
        var fill = el('div', 'attain-fill' + (s.status === 'missed' ? ' missed' : ''));
        fill.style.width = (Math.max(0, Math.min(1, s.attainment)) * 100).toFixed(1) + '%';
        var goal = el('div', 'attain-goal');
        goal.style.left = (s.objective * 100).toFixed(1) + '%';
        bar.append(fill, goal);
        attain.append(bar);
        var tone = s.status === 'met' ? 'ok' : s.status === 'missed' ? 'bad' : 'off';
        var status = el('td');
        status.append(pill(s.status, tone));
        tr.append(name, el('td', '', s.tenant), attain, el('td', 'num', s.good + '/' + s.total), el('td', 'num', s.burnRate.toFixed(1) + '×'), status);
        return tr;
      }));
    }

    byId('feedback-enabled').replaceChildren(fb.enabled ? pill('applying changes', 'ok') : pill('observing only', 'warn'));
    var actions = byId('actions');
    if (fb.actions.length === 0) actions.replaceChildren(el('li', 'empty', fb.enabled ? 'No changes yet.' : 'Nothing it would have changed yet.'));
    else {
      actions.replaceChildren.apply(actions, fb.actions.map(function (a) {
        var li = el('li');
        var head = el('div', 'action-head');
        head.append(el('span', 'muted', clock(a.timeMs)), pill(a.kind), el('b', 'action-target', a.target), el('span', '', a.from + ' → ' + a.to),
          a.applied ? pill('applied', 'ok') : pill('not applied', 'off'));
        li.append(head, el('div', 'action-reason', a.reason));
        return li;
      }));
    }
    var recs = byId('recommendations').tBodies[0];
    if (fb.recommendations.length === 0) emptyRow(recs, 4, 'No recommendation yet.');
    else {
      recs.replaceChildren.apply(recs, fb.recommendations.map(function (r) {
        var tr = el('tr');
        tr.title = r.reason;
        tr.append(el('td', '', r.kind), el('td', '', r.name), el('td', 'num', r.current), el('td', 'num', r.desired));
        return tr;
      }));
    }
  }

  // ---- task search ------------------------------------------------------------
  function fact(list, label, value, field) {
    var dd = el('dd', '', value);
    if (field) dd.dataset.field = field;
    list.append(el('dt', '', label), dd);
    return dd;
  }

  function renderTask(view) {
    var t = view.task;
    var detail = byId('task-detail');
    detail.dataset.taskId = t.id;
    var grid = el('div', 'task-grid');

    var facts = el('div');
    facts.append(el('h3', '', 'Task'));
    var dl = el('dl', 'facts');
    fact(dl, 'id', t.id, 'id').className = 'mono';
    var stateCell = fact(dl, 'state', '', 'state');
    stateCell.append(pill(words(t.state), t.state === 'succeeded' ? 'ok' : (t.state === 'failed' || t.state === 'dead_letter' || t.state === 'lost') ? 'bad' : 'warn'));
    fact(dl, 'tenant', t.tenant, 'tenant');
    fact(dl, 'class', t.priorityClass, 'class');
    fact(dl, 'model', t.model || '–', 'model');
    fact(dl, 'kind', t.kind || '–');
    fact(dl, 'node', t.nodeId ? t.nodeId + (t.gpuIndices.length ? ' (GPU ' + t.gpuIndices.join(', ') + ')' : '') : '–', 'node');
    fact(dl, 'attempt', t.attempt + (t.failures ? ' (' + t.failures + ' failed)' : ''));
    fact(dl, 'created', clock(t.createdAtMs));
    fact(dl, 'started', clock(t.startedAtMs));
    fact(dl, 'finished', clock(t.finishedAtMs));
    fact(dl, 'queue wait', seconds(t.queueSeconds));
    fact(dl, 'run time', seconds(t.runSeconds));
    if (t.ttftSeconds) fact(dl, 'first token', seconds(t.ttftSeconds));
    if (t.reason) fact(dl, 'reason', t.reason);
    facts.append(dl);

    var timeline = el('div');
    timeline.append(el('h3', '', 'Timeline'));
    if (view.timeline === null) timeline.append(el('p', 'message error', view.timelineError || 'The timeline could not be read.'));
    else {
      var ol = el('ol', 'timeline');
      ol.id = 'timeline';
      view.timeline.forEach(function (e) {
        var bad = e.state === 'failed' || e.state === 'lost' || e.state === 'dead_letter' || e.state === 'cancelled';
        var li = el('li', bad ? 'bad' : e.state === 'succeeded' ? 'final' : '');
        li.dataset.state = e.state;
        li.append(el('span', 'tl-state', words(e.state)), el('span', 'tl-time', clock(e.atMs)));
        if (e.reason) li.append(el('div', 'tl-reason', e.reason));
        ol.append(li);
      });
      timeline.append(ol);
    }

    var why = el('div');
    why.id = 'explanation';
    why.append(el('h3', '', 'Priority'));
    var x = view.explanation;
    if (x === null) why.append(el('p', 'message error', view.explanationError || 'No explanation.'));
    else {
      var xdl = el('dl', 'facts');
      fact(xdl, 'priority', x.priority.toFixed(1), 'priority');
      fact(xdl, 'position', x.queuePosition > 0 ? x.queuePosition + ' (' + x.tasksAhead + ' ahead)' : 'not queued');
      fact(xdl, 'waiting', x.waitingReason || (x.waitingCause !== 'unspecified' ? words(x.waitingCause) : 'not waiting'), 'waiting');
      fact(xdl, 'tenant usage', x.tenantUsageOverShare.toFixed(2) + '× its share');
      if (x.reservedNode) fact(xdl, 'reserved on', x.reservedNode);
      if (x.overdue) fact(xdl, 'overdue', 'yes: served ahead of priority order');
      why.append(xdl);
      var table = el('table', 'factors');
      var head = el('tr');
      head.append(el('th', '', 'factor'), el('th', 'num', 'value × weight'), el('th', '', 'contribution'));
      var thead = el('thead');
      thead.append(head);
      var tbody = el('tbody');
      var most = x.factors.reduce(function (m, f) { return Math.max(m, Math.abs(f.contribution)); }, 0) || 1;
      x.factors.forEach(function (f) {
        var tr = el('tr');
        tr.dataset.factor = f.name;
        var contribution = el('td');
        var bar = el('div', 'factor-bar');
        bar.style.width = ((100 * Math.abs(f.contribution)) / most).toFixed(1) + '%';
        contribution.append(el('span', '', f.contribution.toFixed(1)), bar);
        tr.append(el('td', '', f.name), el('td', 'num muted', f.value.toFixed(2) + ' × ' + f.weight.toFixed(0)), contribution);
        tbody.append(tr);
      });
      table.append(thead, tbody);
      why.append(table);
    }
    grid.append(facts, timeline, why);
    detail.replaceChildren(grid);
  }

  function lookUp(raw) {
    var id = String(raw).trim();
    var detail = byId('task-detail');
    byId('task-id').value = id;
    if (!id) return;
    var mine = ++lookups;
    delete detail.dataset.taskId;
    detail.replaceChildren(el('p', 'message', 'Looking up ' + id + '…'));
    fetch('api/tasks/' + encodeURIComponent(id), { cache: 'no-store' })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (body) { return { res: res, body: body }; });
      })
      .then(function (r) {
        if (mine !== lookups) return;
        if (r.res.status === 200) renderTask(r.body);
        else detail.replaceChildren(el('p', 'message error', r.body.error || 'The monitor answered HTTP ' + r.res.status + '.'));
      })
      .catch(function (err) {
        if (mine === lookups) detail.replaceChildren(el('p', 'message error', 'The monitor is unreachable (' + err.message + ').'));
      });
  }

  // ---- the stream ---------------------------------------------------------------
  function render() {
    renderKpis();
    renderFleet();
    renderQueues();
    renderFeedback();
    renderCharts();
    var cur = state.current;
    if (cur) setStatus('live', 'live · ' + cur.eventsReceived.toLocaleString() + ' task events since ' + new Date(cur.since).toLocaleTimeString([], { hour12: false }));
  }

  function apply(message) {
    state.current = { since: message.since, eventsReceived: message.eventsReceived, byClass: message.byClass, byTenant: message.byTenant, recentTasks: message.recentTasks };
    if ('feedback' in message) state.feedback = message.feedback;
  }

  function connect() {
    var source = new EventSource('api/events');
    source.addEventListener('snapshot', function (e) {
      var m = JSON.parse(e.data);
      state.samples = m.samples.slice(-HISTORY);
      state.nodes = new Map(m.nodes.map(function (n) { return [n.nodeId, n]; }));
      apply(m);
      render();
    });
    source.addEventListener('delta', function (e) {
      var m = JSON.parse(e.data);
      var last = state.samples.length > 0 ? state.samples[state.samples.length - 1].t : -Infinity;
      m.samples.forEach(function (s) {
        if (s.t > last) { state.samples.push(s); last = s.t; }
      });
      if (state.samples.length > HISTORY) state.samples.splice(0, state.samples.length - HISTORY);
      m.nodes.forEach(function (n) { state.nodes.set(n.nodeId, n); });
      m.removedNodes.forEach(function (id) { state.nodes.delete(id); });
      apply(m);
      render();
    });
    source.onerror = function () {
      // A refused stream (503: too many dashboards) is not retried by the browser: try again later.
      if (source.readyState === EventSource.CLOSED) {
        setStatus('error', 'monitor refused the stream; retrying in 5 s…');
        setTimeout(connect, 5000);
      } else {
        setStatus('error', 'monitor unreachable; reconnecting…');
      }
    };
  }

  byId('task-form').addEventListener('submit', function (e) {
    e.preventDefault();
    lookUp(byId('task-id').value);
  });
  if (typeof ResizeObserver !== 'undefined') {
    new ResizeObserver(function () {
      Object.keys(charts).forEach(function (id) {
        var box = byId(id);
        charts[id].plot.setSize({ width: Math.max(200, box.clientWidth), height: CHART_HEIGHT });
      });
    }).observe(document.querySelector('main'));
  }
  connect();
})();
`;
