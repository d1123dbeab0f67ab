/**
 * The live dashboard's page. Everything it loads is served by the monitor
 * itself (uPlot included: it works on an air-gapped cluster), by relative
 * paths (it also works behind a proxy that mounts the monitor under a
 * prefix). Its script, /assets/dashboard.js, follows `api/events` and writes
 * data with textContent only, so a tenant or node name cannot inject markup.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AutoGLM fleet</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/uplot.min.css">
<link rel="stylesheet" href="assets/dashboard.css">
<script src="assets/uplot.min.js" defer></script>
<script src="assets/dashboard.js" defer></script>
</head>
<body>
<header>
  <h1>AutoGLM <span>fleet</span></h1>
  <div class="kpis">
    <div class="kpi"><b id="kpi-nodes">–</b><small>nodes ready</small></div>
    <div class="kpi"><b id="kpi-gpu">–</b><small>GPU busy</small></div>
    <div class="kpi"><b id="kpi-pending">–</b><small>pending</small></div>
    <div class="kpi"><b id="kpi-running">–</b><small>running</small></div>
    <div class="kpi"><b id="kpi-rate">–</b><small>finished / s</small></div>
    <div class="kpi" id="kpi-alerts-box"><b id="kpi-alerts">–</b><small>alerts firing</small></div>
  </div>
  <div id="status" class="status">connecting…</div>
</header>
<main>
  <section class="panel w8" aria-labelledby="fleet-title">
    <h2 id="fleet-title">Fleet <span class="aside scale" aria-label="GPU utilisation scale">0%<i class="h0"></i><i class="h1"></i><i class="h2"></i><i class="h3"></i><i class="h4"></i><i class="h5"></i>100%</span></h2>
    <div id="fleet" class="fleet"><p class="empty">No node has reported yet.</p></div>
  </section>
  <section class="panel w4" aria-labelledby="alerts-title">
    <h2 id="alerts-title">Alerts <span class="aside" id="alerts-count"></span></h2>
    <ul id="alerts" class="alerts"><li class="empty">No alerts.</li></ul>
  </section>

  <section class="panel w3"><h2>Queue by class</h2><div id="chart-class" class="chart"></div></section>
  <section class="panel w3"><h2>Queue by tenant</h2><div id="chart-tenant" class="chart"></div></section>
  <section class="panel w3"><h2>Latency <span class="aside">last 60 s, seconds</span></h2><div id="chart-latency" class="chart"></div></section>
  <section class="panel w3"><h2>Throughput <span class="aside">per second</span></h2><div id="chart-throughput" class="chart"></div></section>

  <section class="panel w3" aria-labelledby="queues-title">
    <h2 id="queues-title">Queues now</h2>
    <table id="queue-class"><thead><tr><th>Class</th><th class="num">Pending</th><th class="num">Running</th></tr></thead><tbody></tbody></table>
    <table id="queue-tenant"><thead><tr><th>Tenant</th><th class="num">Pending</th><th class="num">Running</th></tr></thead><tbody></tbody></table>
  </section>
  <section class="panel w5" aria-labelledby="slos-title">
    <h2 id="slos-title">SLO attainment</h2>
    <table id="slos"><thead><tr><th>SLO</th><th>Tenant</th><th>Attainment</th><th class="num">Events</th><th class="num">Burn</th><th>Status</th></tr></thead><tbody><tr><td colspan="6" class="empty">No SLO has been judged yet.</td></tr></tbody></table>
  </section>
  <section class="panel w4" aria-labelledby="feedback-title">
    <h2 id="feedback-title">Feedback loop <span class="aside" id="feedback-enabled"></span></h2>
    <ul id="actions" class="actions"><li class="empty">No changes yet.</li></ul>
    <h3>Scale recommendations</h3>
    <table id="recommendations"><thead><tr><th>Kind</th><th>Name</th><th class="num">Now</th><th class="num">Wanted</th></tr></thead><tbody></tbody></table>
  </section>

  <section class="panel w8" aria-labelledby="task-title">
    <h2 id="task-title">Task</h2>
    <form id="task-form" class="search" role="search">
      <input id="task-id" name="id" placeholder="task id (UUID)" autocomplete="off" spellcheck="false" aria-label="task id">
      <button type="submit">Look up</button>
    </form>
    <div id="task-detail"><p class="empty">Look a task up by its id, or pick one of the recent tasks.</p></div>
  </section>
  <section class="panel w4" aria-labelledby="recent-title">
    <h2 id="recent-title">Recent tasks</h2>
    <table id="recent"><thead><tr><th>Task</th><th>Tenant</th><th>Class</th><th>State</th></tr></thead><tbody></tbody></table>
  </section>
</main>
</body>
</html>
`;
