import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { ConfigError, hostPort, loadConfig } from './config';

const schema = z.object({
  listen: hostPort.default('127.0.0.1:50051'),
  timeScale: z.coerce.number().positive().default(1),
});
const names = { listen: 'AUTOGLM_TEST_LISTEN', timeScale: 'AUTOGLM_TEST_TIME_SCALE' };

describe('loadConfig', () => {
  it('takes defaults, then the file section, then the environment', () => {
    expect(loadConfig('svc', schema, names, {})).toEqual({ listen: '127.0.0.1:50051', timeScale: 1 });
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-')), 'autoglm.json');
    fs.writeFileSync(file, JSON.stringify({ svc: { listen: '0.0.0.0:9000', timeScale: 5 } }));
    expect(loadConfig('svc', schema, names, { AUTOGLM_CONFIG: file })).toEqual({ listen: '0.0.0.0:9000', timeScale: 5 });
    expect(loadConfig('svc', schema, names, { AUTOGLM_CONFIG: file, AUTOGLM_TEST_TIME_SCALE: '20' })).toEqual({ listen: '0.0.0.0:9000', timeScale: 20 });
  });

  it('refuses an invalid value with a message naming the variable', () => {
    expect(() => loadConfig('svc', schema, names, { AUTOGLM_TEST_TIME_SCALE: 'fast' })).toThrow(ConfigError);
    expect(() => loadConfig('svc', schema, names, { AUTOGLM_TEST_TIME_SCALE: 'fast' })).toThrow(/AUTOGLM_TEST_TIME_SCALE.*"fast"/);
    expect(() => loadConfig('svc', schema, names, { AUTOGLM_TEST_LISTEN: 'localhost' })).toThrow(/AUTOGLM_TEST_LISTEN: expected host:port/);
  });

  it('names the file when it cannot be read or parsed', () => {
    expect(() => loadConfig('svc', schema, names, { AUTOGLM_CONFIG: '/nonexistent/autoglm.json' })).toThrow(/AUTOGLM_CONFIG: cannot read/);
  });
});
