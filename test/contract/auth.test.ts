import { statSync } from 'node:fs';
import { AutoglmClient, AutoglmError, runCli } from '@autoglm/client';
import { Role, TaskState } from '@autoglm/proto';
import { captureIo } from '../support/cli-io';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';

/** The status name a call failed with (fails the test if it succeeded). */
async function refusal(call: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await call;
  } catch (err) {
    if (err instanceof AutoglmError) return { code: err.code, message: err.details };
    throw err;
  }
  throw new Error('the call was accepted');
}

const batch = { $case: 'batch' as const, batch: { command: ['train'], expectedDuration: { seconds: 60, nanos: 0 } } };

describe('authentication and tenant isolation on the public API', () => {
  let mesh: InProcessMesh;
  const clients: AutoglmClient[] = [];
  /** A client with its own token (no tenant of its own: the token's). */
  const as = (token: string, tenant?: string) => {
    const client = new AutoglmClient({ address: mesh.parser.grpcAddress, token, tenant, retry: { maxAttempts: 1 } });
    clients.push(client);
    return client;
  };
  const admin = () => as(mesh.adminToken);
  let alpha: AutoglmClient;
  let alphaViewer: AutoglmClient;
  let beta: AutoglmClient;
  let alphaTokenId: string;
  let alphaSecret: string;

  beforeAll(async () => {
    mesh = await startInProcessMesh();
    const make = async (tenant: string, role: Role, name: string) => (await admin().createToken({ tenant, role, name }));
    const a = await make('alpha', Role.SUBMITTER, 'alpha pipeline');
    alphaTokenId = a.token!.id;
    alphaSecret = a.secret;
    alpha = as(a.secret);
    alphaViewer = as((await make('alpha', Role.VIEWER, 'alpha dashboard')).secret);
    beta = as((await make('beta', Role.SUBMITTER, 'beta pipeline')).secret);
  }, 60_000);
  afterEach(() => mesh.expectNoLeakedStreams());
  afterAll(async () => {
    for (const c of clients) c.close();
    await mesh?.stop();
  }, 30_000);

  it('refuses a call without a credential, or with one it does not know, as UNAUTHENTICATED saying what to send', async () => {
    const anonymous = new AutoglmClient({ address: mesh.parser.grpcAddress, tenant: 'alpha', token: '', retry: { maxAttempts: 1 } });
    clients.push(anonymous);
    const none = await refusal(anonymous.list({}));
    expect(none).toEqual({ code: 'UNAUTHENTICATED', message: expect.stringContaining('authorization: Bearer <token>') });
    expect((await refusal(anonymous.submit({ model: 'glm-4-9b', payload: batch }))).code).toBe('UNAUTHENTICATED');
    expect((await refusal(as('not-a-token').listNodes())).code).toBe('UNAUTHENTICATED');
    const forged = await refusal(as(`agl_${'A'.repeat(43)}`).queueStats());
    expect(forged).toEqual({ code: 'UNAUTHENTICATED', message: expect.stringContaining('not known here') });
  });

  it("takes the tenant from the token, and refuses a submission naming another tenant", async () => {
    const { task } = await alpha.submit({ model: 'glm-4-9b', payload: batch });
    expect(task!.tenant).toBe('alpha');
    const other = await refusal(alpha.submit({ tenant: 'beta', model: 'glm-4-9b', payload: batch }));
    expect(other).toEqual({ code: 'PERMISSION_DENIED', message: expect.stringContaining('acts for tenant "alpha", not "beta"') });
    // The tenant metadata counts as naming one too.
    expect((await refusal(as(alphaSecret, 'beta').submit({ model: 'glm-4-9b', payload: batch }))).code).toBe('PERMISSION_DENIED');
  });

  it("answers another tenant's task as not found, for every call that names it", async () => {
    const { task } = await alpha.submit({ model: 'glm-4-9b', payload: batch });
    const id = task!.id;
    const notFound = { code: 'NOT_FOUND', message: `task ${id} does not exist` };
    expect(await refusal(beta.get(id))).toEqual(notFound);
    expect(await refusal(beta.explain(id))).toEqual(notFound);
    expect(await refusal(beta.cancel(id, 'not yours'))).toEqual(notFound);
    expect(await refusal((async () => { for await (const _ of beta.watch(id)) break; })())).toEqual(notFound);
    // Untouched: still the owner's, still not cancelled.
    const mine = await alpha.get(id);
    expect(mine.state).not.toBe(TaskState.CANCELLED);
    expect((await admin().get(id)).tenant).toBe('alpha');
  });

  it('lists only the caller’s tenant unless the caller is an admin', async () => {
    await beta.submit({ model: 'glm-4-9b', payload: batch });
    const betas = await beta.list({});
    expect(betas.tasks.length).toBeGreaterThan(0);
    expect(new Set(betas.tasks.map((t) => t.tenant))).toEqual(new Set(['beta']));
    expect((await refusal(beta.list({ tenant: 'alpha' }))).code).toBe('PERMISSION_DENIED');
    const all = await admin().list({ pageSize: 1000 });
    expect(all.tasks.some((t) => t.tenant === 'alpha') && all.tasks.some((t) => t.tenant === 'beta')).toBe(true);
    // The queue: each sees its own tenant's line; the fleet: no task ids but for an admin.
    const stats = await beta.queueStats();
    expect(stats.tenants.map((t) => t.tenant)).toEqual(['beta']);
    const nodes = await beta.listNodes();
    expect(nodes.nodes.flatMap((n) => n.gpuClaims).every((c) => c.taskId === '' && c.heldFor === '')).toBe(true);
  });

  it('lets a viewer read but not submit, cancel or manage tokens', async () => {
    const { task } = await alpha.submit({ model: 'glm-4-9b', payload: batch });
    expect((await alphaViewer.get(task!.id)).id).toBe(task!.id);
    const submit = await refusal(alphaViewer.submit({ model: 'glm-4-9b', payload: batch }));
    expect(submit).toEqual({ code: 'PERMISSION_DENIED', message: 'SubmitTask needs a submitter token; this one is viewer for tenant "alpha"' });
    expect((await refusal(alphaViewer.cancel(task!.id, 'no'))).code).toBe('PERMISSION_DENIED');
    expect((await refusal(alphaViewer.purgeDeadLetters({ all: true }))).code).toBe('PERMISSION_DENIED');
    expect((await refusal(alpha.createToken({ tenant: 'alpha', role: Role.ADMIN }))).code).toBe('PERMISSION_DENIED');
    expect((await refusal(alpha.listTokens())).code).toBe('PERMISSION_DENIED');
    expect(await alphaViewer.whoAmI()).toMatchObject({ tenant: 'alpha', role: Role.VIEWER, authentication: true });
  });

  it("keeps schedules and dead letters to their tenant", async () => {
    const { schedule } = await alpha.createSchedule({ cron: '0 3 * * *', timeZone: 'UTC', template: { model: 'glm-4-9b', payload: batch } });
    expect(schedule!.tenant).toBe('alpha');
    expect(await refusal(beta.getSchedule(schedule!.id))).toEqual({ code: 'NOT_FOUND', message: `schedule ${schedule!.id} does not exist` });
    expect((await refusal(beta.deleteSchedule(schedule!.id))).code).toBe('NOT_FOUND');
    expect((await beta.listSchedules({})).schedules.every((s) => s.tenant === 'beta')).toBe(true);
    expect((await refusal(beta.purgeDeadLetters({ tenant: 'alpha', all: true }))).code).toBe('PERMISSION_DENIED');
    expect((await alpha.getSchedule(schedule!.id)).id).toBe(schedule!.id);
  });

  it('refuses a viewer Infer stream with PERMISSION_DENIED', async () => {
    const stream = alphaViewer.infer({ model: 'glm-4-9b', input: { prompt: 'hi', params: { maxTokens: 4 } } });
    expect(await refusal((async () => { for await (const _ of stream) { /* nothing comes */ } })())).toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('validates token requests, never lists secrets, and refuses a revoked token at once', async () => {
    expect(await refusal(admin().createToken({ tenant: 'bad tenant!', role: Role.VIEWER }))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^tenant: /) });
    expect(await refusal(admin().createToken({ tenant: 'alpha' }))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^role: /) });
    const made = await admin().createToken({ tenant: 'gamma', role: Role.SUBMITTER, name: 'short-lived', ttl: { seconds: 3600, nanos: 0 } });
    expect(made.secret).toMatch(/^agl_[A-Za-z0-9_-]{43}$/);
    expect(made.token!.expiresAt).toBeDefined();
    const listed = await admin().listTokens({ tenant: 'gamma' });
    expect(listed.tokens.map((t) => t.id)).toEqual([made.token!.id]);
    expect(JSON.stringify(listed)).not.toContain(made.secret);
    expect(listed.tokens[0]!.prefix).toBe(made.secret.slice(0, 10));

    await admin().revokeToken(alphaTokenId);
    expect(await refusal(alpha.list({}))).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('revoked') });
    expect((await admin().listTokens({ tenant: 'alpha', includeInactive: true })).tokens.find((t) => t.id === alphaTokenId)?.revokedAt).toBeDefined();
    expect((await admin().listTokens({ tenant: 'alpha' })).tokens.some((t) => t.id === alphaTokenId)).toBe(false);
  });

  it('keeps the bootstrap admin token in a file only its owner can read', () => {
    expect(statSync(mesh.adminTokenFile).mode & 0o777).toBe(0o600);
  });

  it('manages tokens from the CLI: create prints the secret once, list and revoke by id', async () => {
    const cli = async (...args: string[]) => {
      const io = captureIo();
      const code = await runCli(['node', 'autoglm', '--address', mesh.parser.grpcAddress, '--token', mesh.adminToken, ...args], io);
      return { code, out: io.out, err: io.err };
    };
    const created = await cli('--tenant', 'delta', 'tokens', 'create', '--role', 'viewer', '--name', 'grafana');
    expect(created.code).toBe(0);
    const secret = created.out.trim();
    expect(secret).toMatch(/^agl_/);
    expect(created.err).toContain('viewer of tenant delta');
    const listed = await cli('--tenant', 'delta', 'tokens', 'list');
    expect(listed.out).toMatch(/delta\s+viewer\s+active\s+agl_/);
    expect(listed.out).not.toContain(secret);
    const id = /^([0-9a-f-]{36})/m.exec(listed.out.split('\n')[1] ?? '')?.[1];
    expect((await cli('tokens', 'revoke', id!)).out).toContain('revoked');
    const who = captureIo();
    expect(await runCli(['node', 'autoglm', '--address', mesh.parser.grpcAddress, '--token', secret, 'whoami'], who)).toBe(1);
    expect(who.err).toMatch(/UNAUTHENTICATED.*revoked/);
  });
});
