import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DASHBOARD_SCRIPT } from './dashboard-script';
import { DASHBOARD_STYLE } from './dashboard-style';

/** One file the dashboard loads. */
export interface DashboardAsset {
  readonly contentType: string;
  readonly body: Buffer;
  /** A strong validator: the page revalidates, and a 304 costs no body. */
  readonly etag: string;
}

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

/**
 * The dashboard's files by path: uPlot (read once from its npm package, so
 * the monitor serves it itself and works air-gapped) and the page's own
 * script and stylesheet.
 */
export function loadDashboardAssets(): ReadonlyMap<string, DashboardAsset> {
  const files: Array<[string, string, Buffer]> = [
    ['/assets/uplot.min.js', JS, readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'))],
    ['/assets/uplot.min.css', CSS, readFileSync(require.resolve('uplot/dist/uPlot.min.css'))],
    ['/assets/dashboard.js', JS, Buffer.from(DASHBOARD_SCRIPT)],
    ['/assets/dashboard.css', CSS, Buffer.from(DASHBOARD_STYLE)],
  ];
  return new Map(
    files.map(([path, contentType, body]) => [path, { contentType, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` }]),
  );
}
