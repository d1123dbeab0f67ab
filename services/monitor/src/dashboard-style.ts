/**
 * The dashboard's stylesheet, served as /assets/dashboard.css. Dark by
 * default, light when the system asks for it; the charts read their colours
 * from these variables.
 */
export const DASHBOARD_STYLE = String.raw`
:root {
  color-scheme: dark light;
  --bg: #0f1419; --panel: #171d24; --panel-2: #1e252e; --line: #2a323c;
  --text: #e6e9ec; --muted: #8b96a3; --accent: #5fa8f5;
  --ok: #3fb97a; --warn: #e8a33d; --bad: #ef5a5a; --off: #6b7682;
  --urgent: #f26d6d; --normal: #5fa8f5; --background: #a48be8;
  --heat-0: #1f3040; --heat-1: #1f6f8b; --heat-2: #2fa37a; --heat-3: #d7b13a; --heat-4: #e8743d; --heat-5: #e04848;
}
@media (prefers-color-scheme: light) {
  :root {
    --bg: #f3f5f7; --panel: #ffffff; --panel-2: #f6f8fa; --line: #dde2e7;
    --text: #1c232b; --muted: #5f6b78; --accent: #1f6fd1;
    --heat-0: #dde6ee;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1rem; border-bottom: 1px solid var(--line); background: var(--panel); position: sticky; top: 0; z-index: 2; }
h1 { font-size: 1.05rem; margin: 0; white-space: nowrap; letter-spacing: .02em; }
h1 span { color: var(--muted); font-weight: 400; }
h2 { font-size: .78rem; margin: 0 0 .55rem; text-transform: uppercase; letter-spacing: .08em; color: var(--muted); font-weight: 600; display: flex; align-items: center; gap: .5rem; }
h2 .aside { margin-left: auto; text-transform: none; letter-spacing: 0; font-weight: 400; }
h3 { font-size: .85rem; margin: .8rem 0 .35rem; }
.kpis { display: flex; gap: 1.4rem; flex: 1; }
.kpi { display: flex; flex-direction: column; min-width: 4.5rem; }
.kpi b { font-size: 1.15rem; font-variant-numeric: tabular-nums; }
.kpi small { color: var(--muted); font-size: .7rem; text-transform: uppercase; letter-spacing: .06em; }
.kpi.alarm b { color: var(--bad); }
.status { color: var(--muted); white-space: nowrap; font-size: .78rem; }
.status::before { content: ""; display: inline-block; width: .55rem; height: .55rem; border-radius: 50%; background: var(--off); margin-right: .4rem; }
.status.live::before { background: var(--ok); box-shadow: 0 0 6px var(--ok); }
.status.error { color: var(--bad); }
.status.error::before { background: var(--bad); }
main { display: grid; grid-template-columns: repeat(12, minmax(0, 1fr)); gap: .75rem; padding: .75rem 1rem 1.5rem; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: .7rem .8rem; min-width: 0; }
.w3 { grid-column: span 3; } .w4 { grid-column: span 4; } .w5 { grid-column: span 5; } .w6 { grid-column: span 6; } .w8 { grid-column: span 8; } .w12 { grid-column: span 12; }
@media (max-width: 1000px) { .w3, .w4, .w5, .w6, .w8 { grid-column: span 12; } }
.empty { color: var(--muted); font-style: italic; margin: .2rem 0; }
.pill { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .7rem; font-weight: 600; letter-spacing: .03em; text-transform: uppercase; line-height: 1.35rem; background: var(--panel-2); color: var(--muted); border: 1px solid var(--line); white-space: nowrap; }
.pill.ok { color: var(--ok); border-color: color-mix(in srgb, var(--ok) 45%, transparent); }
.pill.warn { color: var(--warn); border-color: color-mix(in srgb, var(--warn) 45%, transparent); }
.pill.bad { color: #fff; background: var(--bad); border-color: var(--bad); }
.pill.off { color: var(--off); }
table { border-collapse: collapse; width: 100%; }
th, td { padding: .28rem .4rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { color: var(--muted); font-weight: 500; font-size: .72rem; text-transform: uppercase; letter-spacing: .05em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:last-child td { border-bottom: 0; }
.muted { color: var(--muted); }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .78rem; }

/* Fleet heat map */
.fleet { display: grid; grid-template-columns: repeat(auto-fill, minmax(22rem, 1fr)); gap: .6rem; }
.node { background: var(--panel-2); border: 1px solid var(--line); border-radius: 6px; padding: .5rem .55rem; }
.node.quarantined { border-color: var(--bad); }
.node-head { display: flex; align-items: center; gap: .5rem; margin-bottom: .45rem; }
.node-name { font-weight: 600; }
.node-meta { margin-left: auto; color: var(--muted); font-size: .75rem; }
.node-reason { color: var(--bad); font-size: .75rem; margin: -.2rem 0 .4rem; }
.gpus { display: grid; grid-template-columns: repeat(auto-fill, minmax(6.2rem, 1fr)); gap: .35rem; }
.gpu { border-radius: 5px; padding: .3rem .4rem .35rem; color: #fff; background: var(--heat-0); min-height: 4.6rem; display: flex; flex-direction: column; gap: .1rem; }
.gpu.h0 { background: var(--heat-0); color: var(--text); } .gpu.h1 { background: var(--heat-1); } .gpu.h2 { background: var(--heat-2); }
.gpu.h3 { background: var(--heat-3); color: #1b1b1b; } .gpu.h4 { background: var(--heat-4); } .gpu.h5 { background: var(--heat-5); }
.gpu-top { display: flex; justify-content: space-between; gap: .3rem; font-size: .68rem; opacity: .85; white-space: nowrap; }
.gpu-name { overflow: hidden; text-overflow: ellipsis; }
.gpu-util { font-size: 1.1rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.mem { height: .3rem; border-radius: 2px; background: rgba(0,0,0,.28); overflow: hidden; }
.mem-fill { height: 100%; background: rgba(255,255,255,.85); }
.gpu.h0 .mem-fill { background: var(--muted); }
.mem-text { font-size: .66rem; opacity: .85; font-variant-numeric: tabular-nums; }
.replicas { display: flex; flex-wrap: wrap; gap: .2rem; margin-top: .15rem; }
.replica { font-size: .64rem; padding: 0 .3rem; border-radius: 3px; background: rgba(0,0,0,.32); color: #fff; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 100%; }
.replica.loading { font-style: italic; opacity: .75; }
.scale { display: flex; align-items: center; gap: .3rem; font-size: .7rem; color: var(--muted); }
.scale i { display: inline-block; width: 1rem; height: .6rem; border-radius: 2px; }
.scale .h0 { background: var(--heat-0); } .scale .h1 { background: var(--heat-1); } .scale .h2 { background: var(--heat-2); }
.scale .h3 { background: var(--heat-3); } .scale .h4 { background: var(--heat-4); } .scale .h5 { background: var(--heat-5); }

/* Charts */
.chart { min-height: 12.5rem; }
.chart-legends { margin: -.2rem 0 .3rem; display: flex; flex-direction: column; gap: .1rem; min-height: 2.3rem; }
.chart-legend { flex-wrap: wrap; row-gap: .1rem; }
.legend-label { margin-right: .45rem; color: var(--text); }
.legend-label.muted { color: var(--muted); }
.scale i.stroke { width: 1.1rem; height: 0; border-radius: 0; border-top: 2px solid var(--muted); }
.scale i.stroke.dashed { border-top-style: dashed; }
.dot { display: inline-block; width: .55rem; height: .55rem; border-radius: 50%; margin-right: .4rem; }
.uplot { width: 100%; font-family: inherit; }
.u-legend { font-size: .72rem; color: var(--muted); }
.u-legend .u-marker { width: .8em; height: .8em; }
.u-series > * { padding: 1px 3px; }
.u-inline tr { margin-right: 8px; }
.u-select { background: rgba(127,127,127,.15); }

/* Alerts */
.alerts { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: .4rem; max-height: 19rem; overflow: auto; }
.alert { border-left: 3px solid var(--warn); background: var(--panel-2); border-radius: 4px; padding: .35rem .5rem; }
.alert.firing { border-left-color: var(--bad); }
.alert.resolved { border-left-color: var(--ok); opacity: .65; }
.alert-head { display: flex; gap: .4rem; align-items: center; flex-wrap: wrap; }
.alert-name { font-weight: 600; }
.alert-labels { color: var(--muted); font-size: .72rem; }
.alert-summary { font-size: .78rem; margin-top: .15rem; }

/* SLOs */
.attain { position: relative; height: .5rem; background: var(--panel-2); border-radius: 3px; min-width: 5rem; margin-top: .35rem; }
.attain-fill { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 3px; background: var(--ok); }
.attain-fill.missed { background: var(--bad); }
.attain-goal { position: absolute; top: -.15rem; bottom: -.15rem; width: 2px; background: var(--text); }

/* Feedback actions */
.actions { list-style: none; margin: 0; padding: 0; max-height: 14rem; overflow: auto; }
.actions li { padding: .3rem 0; border-bottom: 1px solid var(--line); }
.actions li:last-child { border-bottom: 0; }
.action-head { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; }
.action-target { white-space: nowrap; }
.action-reason { color: var(--muted); font-size: .75rem; }

/* Task search */
form.search { display: flex; gap: .4rem; margin-bottom: .6rem; }
form.search input { flex: 1; background: var(--panel-2); color: var(--text); border: 1px solid var(--line); border-radius: 5px; padding: .4rem .55rem; font: inherit; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
form.search input:focus { outline: 2px solid var(--accent); outline-offset: -1px; }
button { background: var(--accent); color: #fff; border: 0; border-radius: 5px; padding: .4rem .8rem; font: inherit; font-weight: 600; cursor: pointer; }
button.link { background: none; color: var(--accent); padding: 0; font-weight: 400; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .78rem; }
.task-grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, .9fr) minmax(0, 1.2fr); gap: 1rem; }
@media (max-width: 1000px) { .task-grid { grid-template-columns: 1fr; } }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem .7rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
ol.timeline { list-style: none; margin: 0; padding: 0 0 0 .9rem; border-left: 2px solid var(--line); }
ol.timeline li { position: relative; padding: 0 0 .45rem .2rem; }
ol.timeline li::before { content: ""; position: absolute; left: -1.28rem; top: .3rem; width: .6rem; height: .6rem; border-radius: 50%; background: var(--accent); }
ol.timeline li.final::before { background: var(--ok); }
ol.timeline li.bad::before { background: var(--bad); }
.tl-state { font-weight: 600; }
.tl-time { color: var(--muted); font-size: .72rem; font-variant-numeric: tabular-nums; margin-left: .3rem; }
.tl-reason { color: var(--muted); font-size: .75rem; }
.factor-bar { height: .3rem; background: var(--accent); border-radius: 2px; min-width: 1px; margin-top: .15rem; }
table.factors td, table.factors th { padding: .18rem .35rem; }
.message { padding: .4rem .55rem; border-radius: 5px; background: var(--panel-2); }
.message.error { color: var(--bad); }
`;
