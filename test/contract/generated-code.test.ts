import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from '../support/temp-dir';

const root = path.resolve(__dirname, '../..');

function listFiles(dir: string, base = dir): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listFiles(p, base) : [path.relative(base, p)];
  });
}

describe('the contract', () => {
  it('passes buf lint', () => {
    expect(() => execFileSync(path.join(root, 'node_modules/.bin/buf'), ['lint'], { cwd: root, stdio: 'pipe' })).not.toThrow();
  });

  it('has committed generated code identical to a fresh `npm run generate`', () => {
    const out = tempDir('gen');
    try {
      execFileSync('node', [path.join(root, 'scripts/generate-proto.js'), '--out', out.dir], { cwd: root, stdio: 'pipe' });
      const fresh = path.join(out.dir, 'libs/proto/src');
      const committed = path.join(root, 'libs/proto/src');
      const generated = listFiles(fresh).sort();
      expect(generated).toContain('index.ts');
      for (const file of generated) {
        const now = fs.readFileSync(path.join(fresh, file), 'utf8');
        const was = fs.existsSync(path.join(committed, file)) ? fs.readFileSync(path.join(committed, file), 'utf8') : '<missing>';
        if (now !== was) throw new Error(`libs/proto/src/${file} is stale: run \`npm run generate\` and commit the result`);
      }
      const stale = listFiles(path.join(committed, 'gen')).filter((f) => !generated.includes(path.join('gen', f)));
      expect(stale).toEqual([]);
    } finally {
      out.remove();
    }
  }, 60_000);
});
