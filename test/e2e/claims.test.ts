import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { AutoglmClient, AutoglmError, startMesh, type Mesh, type MessageInit } from '@autoglm/client';
import { timestampToMillis } from '@autoglm/core';
import { PriorityClass, TaskState, type SubmitTaskRequest, type Task, type TaskEvent } from '@autoglm/proto';
import { tempDir } from '../support/temp-dir';
import { until, untilFinished } from '../support/until';

/**
 * The claim model through the public API, on the mesh as processes: four
 * simulated 8-GPU hosts, a command agent running real processes on this
 * machine's cores (it has no GPU), and an operator's model catalog.
 */
describe('claims, preemption, CPU hosts and a custom catalog, end to end', () => {
  const data = tempDir('e2e-claims');
  const work = tempDir('e2e-claims-files');
  const catalog = path.join(work.dir, 'models.yaml');
  /** Simulated work runs this much faster than real time. */
  const TIME_SCALE = 10;
  let mesh: Mesh;
  let client: AutoglmClient;

  /** A simulated batch job of `seconds` (simulated) on `gpus` whole GPUs. */
  const gpuJob = (gpus: number, seconds: number, over: MessageInit<SubmitTaskRequest> = {}): MessageInit<SubmitTaskRequest> => ({
    payload: { $case: 'batch', batch: { expectedDuration: { seconds, nanos: 0 } } },
    resources: { gpuCount: gpus },
    ...over,
  });

  /** A real process (`sh -c script`) on the command agent's cores (no GPU). */
  const shellJob = (script: string, cores: number, over: MessageInit<SubmitTaskRequest> = {}, env: Record<string, string> = {}): MessageInit<SubmitTaskRequest> => ({
    payload: { $case: 'batch', batch: { command: ['/bin/sh', '-c', script], env } },
    resources: { gpuCount: 0, cpuCores: cores },
    ...over,
  });

  const events = async (id: string): Promise<TaskEvent[]> => {
    const out: TaskEvent[] = [];
    const stop = new AbortController();
    // Live tasks never end their watch: read what is there, then stop.
    const timer = setTimeout(() => stop.abort(), 1000);
    try {
      for await (const e of client.watch(id, 0, { signal: stop.signal })) out.push(e);
    } catch (err) {
      if (!stop.signal.aborted) throw err;
    } finally {
      clearTimeout(timer);
    }
    return out;
  };

  const cancelAll = async (tasks: Task[]) => {
    await Promise.all(tasks.map((t) => client.cancel(t.id, 'test over').catch(() => undefined)));
  };

  beforeAll(async () => {
    writeFileSync(
      catalog,
      [
        'mode: extend',
        'models:',
        '  # A fine-tune of GLM-4-9B, as an operator would list it.',
        '  - name: acme/glm-4-9b-support',
        '    family: glm',
        '    parameters: 9399951360',
        '    layers: 40',
        '    headDim: 128',
        '    kvHeads: 2',
        '    contextLength: 8192',
        '    defaultMaxTokens: 256',
        '',
      ].join('\n'),
    );
    mesh = await startMesh({
      dataDir: data.dir,
      ports: 'ephemeral',
      agents: 4,
      gpusPerAgent: 8,
      timeScale: TIME_SCALE,
      logLevel: 'warn',
      commandAllow: ['/bin/sh'],
      env: { AUTOGLM_MODEL_CATALOG: catalog },
    });
    client = new AutoglmClient({ address: mesh.publicAddress, tenant: 'e2e-claims', token: mesh.adminToken, ca: mesh.ca });
    await until(async () => ((await client.listNodes()).nodes.length === 5 ? true : undefined), 30_000, 'four sim agents and the command agent to register');
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await mesh?.stop();
    data.remove();
    work.remove();
  }, 60_000);

  it('never runs more GPU claims than GPUs: 24 jobs of 8 GPUs on four 8-GPU hosts run four at a time, one per host', async () => {
    const jobs = (await Promise.all(Array.from({ length: 24 }, () => client.submit(gpuJob(8, 20))))).map((r) => r.task!);
    let most = 0;
    const done = await until(
      async () => {
        const [running, nodes] = await Promise.all([client.list({ states: [TaskState.ASSIGNED, TaskState.RUNNING], pageSize: 1000 }), client.listNodes()]);
        // As a user sees it: no GPU of any host is given to two running jobs.
        const taken = new Set<string>();
        for (const t of running.tasks) {
          for (const gpu of t.gpuIndices) {
            const key = `${t.nodeId}/${gpu}`;
            expect(taken.has(key)).toBe(false);
            taken.add(key);
          }
        }
        expect(taken.size).toBeLessThanOrEqual(32);
        // And decision's own books agree: each GPU is held by at most one task.
        for (const node of nodes.nodes) expect(node.gpuClaims.filter((c) => c.taskId !== '').length).toBeLessThanOrEqual(node.gpus.length);
        most = Math.max(most, running.tasks.length);
        const finished = await Promise.all(jobs.map((j) => client.get(j.id)));
        return finished.every((t) => t.finishedAt) ? finished : undefined;
      },
      90_000,
      'the 24 jobs to finish',
    );
    expect(done.map((t) => TaskState[t.state])).toEqual(Array.from({ length: 24 }, () => 'SUCCEEDED'));
    expect(most).toBe(4);
  }, 120_000);

  it('starts an urgent job on a fleet full of preemptible work within the urgent preemption delay plus one second', async () => {
    // 40 one-GPU background jobs of 10 minutes (a minute of wall time): 32 run, 8 wait.
    const background = (await Promise.all(Array.from({ length: 40 }, () => client.submit(gpuJob(1, 600, { priorityClass: PriorityClass.BACKGROUND, preemptible: true }))))).map((r) => r.task!);
    try {
      await until(async () => ((await client.list({ states: [TaskState.RUNNING], pageSize: 100 })).tasks.length === 32 ? true : undefined), 30_000, '32 background jobs running');
      const { task: urgent } = await client.submit(gpuJob(1, 5, { priorityClass: PriorityClass.URGENT }));
      const running = await until(async () => {
        const t = await client.get(urgent!.id);
        return t.startedAt ? t : undefined;
      }, 10_000, 'the urgent job to start');
      // decision's default urgent preemption delay is 250 ms; the rest is slack for a loaded machine.
      expect(timestampToMillis(running.startedAt!) - timestampToMillis(running.createdAt!)).toBeLessThanOrEqual(1000 + 1000);
      // One background job made room: stopped, recorded PREEMPTED, queued again without using a retry.
      const victims = (await Promise.all(background.map((t) => client.get(t.id)))).filter((t) => t.attempt > 1);
      expect(victims).toHaveLength(1);
      expect(victims[0]!.failures).toBe(0);
      const history = (await events(victims[0]!.id)).map((e) => [TaskState[e.state], e.reason]);
      expect(history.find(([state]) => state === 'PREEMPTED')?.[1]).toMatch(new RegExp(`^preempted by ${urgent!.id} after [0-9.]+ s \\([0-9.]+ GPU-s of work lost unless it checkpoints\\)$`));
      expect(await untilFinished(client, urgent!.id)).toMatchObject({ state: TaskState.SUCCEEDED });
      expect((await client.queueStats()).preempted).toBeGreaterThanOrEqual(1);
    } finally {
      await cancelAll(background);
    }
  }, 90_000);

  it('runs real processes on a command agent without GPUs: no GPU visible to them, the host’s cores held', async () => {
    const nodes = (await client.listNodes()).nodes;
    const host = nodes.find((n) => n.nodeId === 'command-1')!;
    expect(host.gpus).toHaveLength(0);
    expect(host.cpuMillis).toBe(availableParallelism() * 1000);
    const { task } = await client.submit(shellJob('echo "pid=$$ cuda=[$CUDA_VISIBLE_DEVICES]"', 1));
    const done = await untilFinished(client, task!.id);
    expect(done.state).toBe(TaskState.SUCCEEDED);
    expect(done.nodeId).toBe('command-1');
    expect(done.result?.output).toMatch(/^pid=\d+ cuda=\[\]$/m);
  }, 60_000);

  it('stops a preempted command job with SIGTERM first, then gives its cores to the urgent job', async () => {
    const cores = availableParallelism();
    const marker = path.join(work.dir, 'sigterm.txt');
    // A job that checkpoints on SIGTERM (for a second, then writes the marker) and otherwise runs for ever, on every core.
    const victim = (
      await client.submit(
        shellJob(`trap 'sleep 1; echo got-sigterm > "$MARKER"; exit 0' TERM; while :; do sleep 0.05; done`, cores, { priorityClass: PriorityClass.BACKGROUND, preemptible: true }, { MARKER: marker }),
      )
    ).task!;
    try {
      await until(async () => ((await client.get(victim.id)).state === TaskState.RUNNING ? true : undefined), 20_000, 'the background job to run');
      const { task: urgent } = await client.submit(shellJob('echo urgent-ran', cores, { priorityClass: PriorityClass.URGENT }));
      const done = await untilFinished(client, urgent!.id, 30_000);
      expect(done.state).toBe(TaskState.SUCCEEDED);
      expect(done.result?.output).toBe('urgent-ran\n');
      expect(readFileSync(marker, 'utf8')).toBe('got-sigterm\n');
      const history = await events(victim.id);
      const preempted = history.find((e) => e.state === TaskState.PREEMPTED)!;
      expect(preempted.reason).toMatch(new RegExp(`^preempted by ${urgent!.id} after `));
      // The victim stayed RUNNING while it checkpointed, and was PREEMPTED (then queued again) only
      // once it had stopped: it never ran twice at once.
      const states = history.map((e) => e.state);
      expect(states.slice(states.indexOf(TaskState.RUNNING), states.indexOf(TaskState.RUNNING) + 3)).toEqual([TaskState.RUNNING, TaskState.PREEMPTED, TaskState.QUEUED]);
      expect(timestampToMillis(preempted.time!)).toBeGreaterThanOrEqual(Math.floor(statSync(marker).mtimeMs));
      // The urgent job started only once the victim had stopped: the cores were the victim's until
      // then, through its wait to preempt (250 ms) and the victim's second of checkpointing.
      expect(timestampToMillis(done.startedAt!)).toBeGreaterThanOrEqual(timestampToMillis(preempted.time!));
      expect(timestampToMillis(done.startedAt!) - timestampToMillis(done.createdAt!)).toBeGreaterThanOrEqual(1000);
    } finally {
      await cancelAll([victim]);
    }
  }, 60_000);

  it('keeps a cancelled job’s cores claimed until its process has exited: the next job never runs beside it', async () => {
    const cores = availableParallelism();
    const marker = path.join(work.dir, 'cancelled.txt');
    // On SIGTERM it takes a second to exit (the agent's kill grace is 5 s), holding every core meanwhile.
    const slow = (
      await client.submit(shellJob(`trap 'sleep 1; echo exiting > "$MARKER"; exit 0' TERM; while :; do sleep 0.05; done`, cores, {}, { MARKER: marker }))
    ).task!;
    await until(async () => ((await client.get(slow.id)).state === TaskState.RUNNING ? true : undefined), 20_000, 'the job to run');
    const cancelled = await client.cancel(slow.id, 'not needed');
    expect(cancelled.state).toBe(TaskState.CANCELLED);
    const { task: next } = await client.submit(shellJob('cat "$MARKER"', cores, {}, { MARKER: marker }));
    const done = await untilFinished(client, next!.id, 30_000);
    // It ran only once the cancelled process had written its marker and exited.
    expect(done.state).toBe(TaskState.SUCCEEDED);
    expect(done.attempt).toBe(1);
    expect(done.result?.output).toBe('exiting\n');
  }, 60_000);

  it("serves a model an operator's catalog file adds, and refuses one nobody serves, naming the fix", async () => {
    let done;
    for await (const m of client.infer({ model: 'acme/glm-4-9b-support', input: { prompt: 'Hello from the fine-tune', params: { maxTokens: 16 } } })) {
      if (m.kind?.$case === 'done') done = m.kind.done;
    }
    expect(done).toMatchObject({ finishReason: 'length', usage: { completionTokens: 16 } });
    const replicas = (await client.listNodes()).nodes.flatMap((n) => n.replicas);
    expect(replicas.some((r) => r.model === 'acme/glm-4-9b-support')).toBe(true);
    const refused = await client.submit({ model: 'acme/unknown', payload: { $case: 'inference', inference: { prompt: 'hi' } } }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AutoglmError);
    expect((refused as AutoglmError).code).toBe('INVALID_ARGUMENT');
    expect((refused as AutoglmError).message).toMatch(/"acme\/unknown" is not in the catalog and no connected agent serves it.*AUTOGLM_MODEL_CATALOG/);
  }, 60_000);
});
