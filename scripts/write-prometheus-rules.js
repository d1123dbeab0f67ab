#!/usr/bin/env node
// Writes deploy/prometheus/autoglm-rules.yml: the monitor's default SLO and
// alert rules as a Prometheus rules file, from the built @autoglm/core (run
// `npx tsc -b tsconfig.build.json` first). test/deploy/prometheus-rules.test.ts
// fails when the committed file differs from what this writes.
//   node scripts/write-prometheus-rules.js
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'libs/core/dist/index.js');
if (!fs.existsSync(dist)) {
  process.stderr.write(`${path.relative(root, dist)} is missing: run \`npx tsc -b tsconfig.build.json\` first\n`);
  process.exit(1);
}
const { prometheusRules, DEFAULT_SLOS, DEFAULT_BACKLOG_RULES } = require(dist);

const out = path.join(root, 'deploy/prometheus/autoglm-rules.yml');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, prometheusRules(DEFAULT_SLOS, DEFAULT_BACKLOG_RULES));
process.stdout.write(`wrote ${path.relative(root, out)}\n`);
