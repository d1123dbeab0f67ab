import { AlertState, NodeState, type Alert, type FeedbackAction, type Node, type QueueStats, type ScaleRecommendation, type SloStatus } from '@autoglm/proto';
import { age, table, truncate } from './format';
import { className, nodeStateName } from './names';

/** What one frame of `autoglm top` shows: the parser's views always, the monitor's when it answered. */
export interface TopSnapshot {
  /** When it was taken, ms since the epoch. */
  time: number;
  nodes: readonly Node[];
  stats: QueueStats;
  /** Each monitor view; undefined when its call failed (see monitorError). */
  alerts?: readonly Alert[];
  slos?: readonly SloStatus[];
  scale?: readonly ScaleRecommendation[];
  feedback?: readonly FeedbackAction[];
  /** Whether the feedback loop applies its changes; undefined when unknown. */
  feedbackEnabled?: boolean;
  /** Why a monitor view is missing ("UNAVAILABLE: ..."), shown as one line. */
  monitorError?: string;
}

/** How to draw a frame. */
export interface FrameOptions {
  /** Columns: every line is cut to this. */
  width: number;
  /** Rows: when set and the frame is taller, the node list is cut to fit. */
  height?: number;
  /** ANSI colours (a terminal only). */
  color: boolean;
}

type Tone = 'red' | 'yellow' | 'bold' | 'dim';
interface Line {
  text: string;
  tone?: Tone;
}

const SGR: Record<Tone, string> = { red: '\x1b[31m', yellow: '\x1b[33m', bold: '\x1b[1m', dim: '\x1b[2m' };
const RESET = '\x1b[0m';

/** Eight levels of utilisation, low to high; an idle GPU (0%) is a dot so it stands apart from a barely busy one. */
const LEVELS = '▁▂▃▄▅▆▇█';
const IDLE = '·';

/** Feedback changes and tenants shown at most. */
const FEEDBACK_SHOWN = 5;
const TENANTS_SHOWN = 5;
/** A met SLO series counts as near once it has spent this share of its error budget in the window. */
const NEAR_BUDGET_SPENT = 0.5;

/** One character per GPU, by its utilisation. */
export function heatStrip(utilizations: readonly number[]): string {
  return utilizations
    .map((u) => {
      if (!(u > 0)) return IDLE;
      const level = Math.min(LEVELS.length - 1, Math.floor(Math.min(1, u) * LEVELS.length));
      return LEVELS.charAt(level);
    })
    .join('');
}

/** The whole screen of `autoglm top`, lines joined by '\n' (no trailing newline, no cursor movement). */
export function renderTopFrame(snapshot: TopSnapshot, options: FrameOptions): string {
  const nodes = [...snapshot.nodes].sort((a, b) => a.nodeId.localeCompare(b.nodeId, undefined, { numeric: true }));
  const top = [headerLine(snapshot, nodes)];
  const bottom = [...queueLines(snapshot.stats), ...monitorLines(snapshot)];
  let nodeLines = nodeTable(nodes);
  if (options.height !== undefined) {
    // Header, the blank lines around the node table, and the rest must fit; nodes take what is left.
    const room = options.height - top.length - bottom.length - 2;
    if (nodeLines.length > room) {
      const kept = Math.max(1, room - 1);
      const hidden = nodeLines.length - kept;
      nodeLines = [...nodeLines.slice(0, kept), { text: `… ${hidden} more node${hidden === 1 ? '' : 's'} (autoglm nodes lists them all)`, tone: 'dim' }];
    }
  }
  const lines = [...top, { text: '' }, ...nodeLines, { text: '' }, ...bottom];
  return lines.map((line) => paint(truncate(line.text, options.width), line.tone, options.color)).join('\n');
}

function paint(text: string, tone: Tone | undefined, color: boolean): string {
  return color && tone !== undefined && text !== '' ? `${SGR[tone]}${text}${RESET}` : text;
}

function headerLine(snapshot: TopSnapshot, nodes: readonly Node[]): Line {
  const ready = nodes.filter((n) => n.state === NodeState.READY).length;
  const gpus = nodes.reduce((sum, n) => sum + n.gpus.length, 0);
  const busy = nodes.reduce((sum, n) => sum + n.gpuClaims.filter(isHeld).length, 0);
  const utilSum = nodes.reduce((sum, n) => sum + n.gpus.reduce((s, g) => s + g.utilization, 0), 0);
  const util = gpus === 0 ? '-' : `${Math.round((utilSum / gpus) * 100)}%`;
  const time = new Date(snapshot.time).toTimeString().slice(0, 8);
  const { queued, running } = snapshot.stats;
  return { text: `autoglm top  ${time}  nodes ${ready}/${nodes.length} ready  GPUs ${busy}/${gpus} busy  util ${util}  queued ${queued}  running ${running}`, tone: 'bold' };
}

/** A claim with a job or a replica on it holds its GPU; one only held *for* a task does not yet. */
function isHeld(claim: Node['gpuClaims'][number]): boolean {
  return claim.taskId !== '' || claim.replicaId !== '';
}

function nodeTable(nodes: readonly Node[]): Line[] {
  if (nodes.length === 0) return [{ text: 'no nodes have registered', tone: 'yellow' }];
  const withReason = nodes.some((n) => n.stateReason !== '');
  const rows = nodes.map((node) => {
    const gpus = [...node.gpus].sort((a, b) => a.index - b.index);
    const meanUtil = gpus.length === 0 ? undefined : gpus.reduce((s, g) => s + g.utilization, 0) / gpus.length;
    const row = [
      node.nodeId,
      gpus.length === 0 ? '-' : heatStrip(gpus.map((g) => g.utilization)),
      meanUtil === undefined ? '-' : `${Math.round(meanUtil * 100)}%`,
      nodeStateName(node.state),
      replicaSummary(node),
      String(node.runningTasks),
    ];
    if (withReason) row.push(node.stateReason);
    return row;
  });
  const header = ['NODE', 'GPUS', 'UTIL', 'STATE', 'REPLICAS', 'RUNNING', ...(withReason ? ['WHY'] : [])];
  const [head = '', ...body] = table(header, rows, [false, false, true, false, false, true, false]).split('\n');
  return [{ text: head, tone: 'dim' }, ...body.map((text, i) => ({ text, tone: nodeTone(nodes[i]?.state) }))];
}

function nodeTone(state: NodeState | undefined): Tone | undefined {
  if (state === NodeState.LOST || state === NodeState.DISCONNECTED) return 'red';
  if (state === NodeState.QUARANTINED || state === NodeState.DRAINING) return 'yellow';
  return undefined;
}

/** "glm-4-9b×2, qwen×1". */
function replicaSummary(node: Node): string {
  const counts = new Map<string, number>();
  for (const r of node.replicas) counts.set(r.model, (counts.get(r.model) ?? 0) + 1);
  return counts.size === 0 ? '-' : [...counts].map(([model, n]) => `${model}×${n}`).join(', ');
}

function queueLines(stats: QueueStats): Line[] {
  const classes = stats.classes.map((c) => `${className(c.priorityClass)} ${c.queued}/${c.running}${c.queued > 0 ? ` (oldest ${c.oldestWaitSeconds.toFixed(0)}s)` : ''}`);
  const tenants = [...stats.tenants]
    .sort((a, b) => b.queued + b.running - (a.queued + a.running) || a.tenant.localeCompare(b.tenant))
    .slice(0, TENANTS_SHOWN)
    .map((t) => `${t.tenant} ${t.queued}/${t.running}`);
  const more = stats.tenants.length > TENANTS_SHOWN ? ` … +${stats.tenants.length - TENANTS_SHOWN}` : '';
  return [
    { text: `queues   (queued/running)  ${classes.length === 0 ? 'empty' : classes.join('  ')}` },
    { text: `tenants  ${tenants.length === 0 ? '-' : tenants.join('  ') + more}` },
  ];
}

function monitorLines(snapshot: TopSnapshot): Line[] {
  const lines: Line[] = [];
  if (snapshot.monitorError !== undefined) lines.push({ text: `monitor unavailable: ${snapshot.monitorError}`, tone: 'yellow' });
  if (snapshot.alerts !== undefined) lines.push(...alertLines(snapshot.alerts));
  if (snapshot.slos !== undefined) lines.push(...sloLines(snapshot.slos));
  if (snapshot.scale !== undefined && snapshot.scale.length > 0) {
    lines.push({ text: `scale    ${snapshot.scale.map((r) => `${r.name} ${r.current}→${r.desired}`).join('  ')}` });
  }
  if (snapshot.feedback !== undefined) lines.push(...feedbackLines(snapshot.feedback, snapshot.feedbackEnabled, snapshot.time));
  return lines;
}

function alertLines(alerts: readonly Alert[]): Line[] {
  const live = alerts.filter((a) => a.state === AlertState.FIRING || a.state === AlertState.PENDING);
  if (live.length === 0) return [{ text: 'alerts   none firing or pending' }];
  const rows = live.map((a) => [a.state === AlertState.FIRING ? 'FIRING' : 'pending', a.name, labelText(a.labels), a.summary]);
  return [{ text: 'alerts' }, ...indented(rows).map((text, i) => ({ text, tone: live[i]?.state === AlertState.FIRING ? 'red' : 'yellow' }) as Line)];
}

function sloLines(slos: readonly SloStatus[]): Line[] {
  const shown = slos.filter((s) => s.status === 'missed' || isNear(s));
  if (shown.length === 0) return [{ text: `SLOs     ${slos.length === 0 ? 'no events in their windows yet' : `all ${slos.length} series met`}` }];
  const rows = shown.map((s) => [
    s.status === 'missed' ? 'MISSED' : 'near',
    s.slo,
    [s.tenant, s.priorityClass].filter((v) => v !== '*').join('/') || 'all',
    `${percent(s.attainment)} vs ${percent(s.objective)}`,
    `burn ${s.burnRate.toFixed(1)}`,
  ]);
  return [{ text: 'SLOs' }, ...indented(rows).map((text, i) => ({ text, tone: shown[i]?.status === 'missed' ? 'red' : 'yellow' }) as Line)];
}

function isNear(s: SloStatus): boolean {
  if (s.status !== 'met' || s.objective >= 1) return false;
  return (1 - s.attainment) / (1 - s.objective) >= NEAR_BUDGET_SPENT;
}

function feedbackLines(actions: readonly FeedbackAction[], enabled: boolean | undefined, now: number): Line[] {
  const off = enabled === false ? ' (loop off: not applied)' : '';
  if (actions.length === 0) return [{ text: `feedback none yet${off}` }];
  const rows = actions.slice(0, FEEDBACK_SHOWN).map((a) => [age(a.time, now), a.kind, a.target, `${number(a.from)}→${number(a.to)}`, a.reason]);
  return [{ text: `feedback${off}` }, ...indented(rows).map((text) => ({ text }))];
}

/** Rows as aligned columns under a section title, indented by two. */
function indented(rows: string[][]): string[] {
  const width = rows[0]?.length ?? 0;
  return table(new Array<string>(width).fill(''), rows)
    .split('\n')
    .slice(1)
    .map((line) => `  ${line}`);
}

function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .filter(([, v]) => v !== '*')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

function number(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}
