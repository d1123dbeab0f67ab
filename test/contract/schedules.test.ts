import { AutoglmError, runCli } from '@autoglm/client';
import { DeadlinePolicy, EnqueueRequest, PriorityClass, ScheduleState, type Schedule } from '@autoglm/proto';
import { timestampToMillis } from '@autoglm/core';
import { FaultyEngine, parseFaultSpec, ScheduleStore } from '@autoglm/store';
import type { StartDecisionOptions } from '@autoglm/decision';
import { captureIo } from '../support/cli-io';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { until } from '../support/until';

const MINUTE = 60_000;
const UNKNOWN_ID = '6f1d2c1e-0000-4000-8000-000000000000';

/** The clock decision fires schedules by: a minute past a five-minute mark, moved by the tests. */
let clockMs = Math.floor(Date.now() / (5 * MINUTE)) * 5 * MINUTE + MINUTE;
const clock = () => clockMs;
const seams: StartDecisionOptions = { scheduleClock: clock, schedulePollMs: 50 };
const fireTimes = (s: Schedule) => ({ next: s.nextFireAt ? timestampToMillis(s.nextFireAt) : undefined, last: s.lastFireAt ? timestampToMillis(s.lastFireAt) : undefined });

/** Runs the autoglm CLI against the mesh; its exit code and output. */
async function cli(mesh: InProcessMesh, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  const code = await runCli(['node', 'autoglm', '--address', mesh.parser.grpcAddress, '--token', mesh.adminToken, '--tenant', 'cli', ...args], io);
  return { code, out: io.out, err: io.err };
}

describe('recurring tasks through the public API', () => {
  let mesh: InProcessMesh;
  beforeAll(async () => {
    mesh = await startInProcessMesh({ decisionOptions: seams });
  }, 60_000);
  afterEach(() => mesh.expectNoLeakedStreams());
  afterAll(() => mesh?.stop(), 30_000);

  /** Moves the clock and waits for decision's timer to have fired the schedule `fires` times in all. */
  async function advanceUntilFired(id: string, toMs: number, fires: number): Promise<Schedule> {
    clockMs = toMs;
    return until(async () => {
      const s = await mesh.client.getSchedule(id);
      return s.fireCount === fires && fireTimes(s).next! > clockMs ? s : undefined;
    }, 10_000, `schedule ${id} to have fired ${fires} times`);
  }

  it('creates a schedule, fires its template at each fire time, pauses, resumes and deletes it', async () => {
    const { schedule, created } = await mesh.client.createSchedule({
      requestId: 'every-5',
      cron: '*/5 * * * *',
      timeZone: 'europe/berlin',
      description: 'sweep',
      template: {
        model: 'glm-4-9b',
        priorityClass: PriorityClass.BACKGROUND,
        labels: { team: 'search' },
        payload: { $case: 'batch', batch: { expectedDuration: { seconds: 0, nanos: 0 } } },
      },
    });
    expect(created).toBe(true);
    expect(schedule).toMatchObject({ tenant: 'contract', cron: '*/5 * * * *', timeZone: 'Europe/Berlin', state: ScheduleState.ACTIVE, fireCount: 0, description: 'sweep' });
    // Sized by the parser as SubmitTask sizes it.
    expect(schedule!.spec!.gpuMemoryBytes).toBeGreaterThan(16 * 1024 ** 3);
    const id = schedule!.id;
    const firstFire = clockMs + 4 * MINUTE;
    expect(fireTimes(schedule!).next).toBe(firstFire);
    const again = await mesh.client.createSchedule({ requestId: 'every-5', cron: '@daily', template: { payload: { $case: 'batch', batch: {} } } });
    expect(again).toMatchObject({ created: false, schedule: { id } });

    // The first fire submits the template, labelled, under the fire's request id.
    let s = await advanceUntilFired(id, firstFire, 1);
    expect(fireTimes(s)).toEqual({ last: firstFire, next: firstFire + 5 * MINUTE });
    const task = await mesh.client.get(s.lastTaskId);
    expect(task).toMatchObject({ tenant: 'contract', requestId: `schedule:${id}:${firstFire}` });
    expect(task.spec).toMatchObject({ model: 'glm-4-9b', priorityClass: PriorityClass.BACKGROUND, labels: { team: 'search', 'autoglm.schedule_id': id } });

    // Twelve minutes pass unseen: one catch-up fire, for the latest fire time.
    s = await advanceUntilFired(id, firstFire + 12 * MINUTE, 2);
    expect(fireTimes(s)).toEqual({ last: firstFire + 10 * MINUTE, next: firstFire + 15 * MINUTE });

    // A fire time whose task already exists (a restart between submitting and recording) finds it. Clients
    // may not use the schedule: request ids, so the task is made as decision's own fire makes it.
    const { task: early } = await mesh.decision.scheduler.enqueue(
      EnqueueRequest.fromPartial({ requestId: `schedule:${id}:${firstFire + 15 * MINUTE}`, tenant: 'contract', spec: task.spec }),
    );
    s = await advanceUntilFired(id, firstFire + 15 * MINUTE, 3);
    expect(s.lastTaskId).toBe(early!.id);

    // Paused: no fire, however much time passes.
    const paused = await mesh.client.pauseSchedule(id);
    expect(paused).toMatchObject({ state: ScheduleState.PAUSED, nextFireAt: undefined });
    expect((await mesh.client.pauseSchedule(id)).state).toBe(ScheduleState.PAUSED);
    clockMs = firstFire + 60 * MINUTE;
    expect(await mesh.decision.recurring.fireDue()).toBe(0);
    expect((await mesh.client.getSchedule(id)).fireCount).toBe(3);

    // Resumed: from the next fire time after now; the paused hour is not made up.
    const resumed = await mesh.client.resumeSchedule(id);
    expect(resumed.state).toBe(ScheduleState.ACTIVE);
    expect(fireTimes(resumed).next).toBe(firstFire + 65 * MINUTE);
    s = await advanceUntilFired(id, firstFire + 65 * MINUTE, 4);
    expect(fireTimes(s).last).toBe(firstFire + 65 * MINUTE);

    const { schedules } = await mesh.client.listSchedules();
    expect(schedules.map((x) => x.id)).toContain(id);
    expect((await mesh.client.listSchedules({ tenant: 'somebody-else' })).schedules).toEqual([]);

    const deleted = await mesh.client.deleteSchedule(id);
    expect(deleted.schedule?.id).toBe(id);
    await expect(mesh.client.getSchedule(id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    clockMs = firstFire + 120 * MINUTE;
    expect(await mesh.decision.recurring.fireDue()).toBe(0);
    // Its tasks stay.
    expect((await mesh.client.get(s.lastTaskId)).id).toBe(s.lastTaskId);
  }, 60_000);

  it('keeps schedules across a decision restart and fires the one missed fire time', async () => {
    const { schedule } = await mesh.client.createSchedule({ cron: '0 * * * *', timeZone: 'America/New_York', template: { payload: { $case: 'batch', batch: {} } } });
    const id = schedule!.id;
    const next = fireTimes(schedule!).next!;
    await mesh.restartDecision();
    const back = await until(async () => mesh.client.getSchedule(id), 10_000, 'decision to serve again');
    expect(back).toMatchObject({ id, cron: '0 * * * *', timeZone: 'America/New_York', state: ScheduleState.ACTIVE });
    // Down through three fire times: one fire, for the latest.
    const s = await advanceUntilFired(id, next + 2 * 60 * MINUTE + 5 * MINUTE, 1);
    expect(fireTimes(s)).toEqual({ last: next + 2 * 60 * MINUTE, next: next + 3 * 60 * MINUTE });
    await mesh.client.deleteSchedule(id);
    await until(async () => ((await mesh.client.listNodes()).nodes.length === 1 ? true : undefined), 10_000, 'the agent to reconnect');
  }, 60_000);

  it('fires once when decision restarts after submitting a fire and before recording it', async () => {
    const { schedule } = await mesh.client.createSchedule({ cron: '*/5 * * * *', template: { payload: { $case: 'batch', batch: {} } } });
    const id = schedule!.id;
    const fireAt = fireTimes(schedule!).next!;
    const requestId = `schedule:${id}:${fireAt}`;
    // Every write to the schedules fails: the fire submits its task, then cannot record it (nor that it will try again).
    const faulty = await mesh.restartDecision({ ...seams, scheduleStore: (engine) => new ScheduleStore(new FaultyEngine(engine, parseFaultSpec('transient=1'))) });
    clockMs = fireAt;
    const submitted = await until(async () => faulty.store.byRequestId('contract', requestId), 10_000, 'the fire to submit its task');
    expect(await until(async () => mesh.client.getSchedule(id), 10_000, 'decision to serve again')).toMatchObject({ fireCount: 0, lastTaskId: '' });

    await mesh.restartDecision();
    const s = await until(
      async () => {
        const now = await mesh.client.getSchedule(id);
        return now.fireCount > 0 ? now : undefined;
      },
      10_000,
      'the fire to be recorded after the restart',
    );
    expect(s).toMatchObject({ fireCount: 1, lastTaskId: submitted.id, lastError: '', pendingFireAt: undefined });
    expect(fireTimes(s)).toEqual({ last: fireAt, next: fireAt + 5 * MINUTE });
    const { rows } = await mesh.decision.store.engine.query<{ n: number }>('SELECT count(*)::int AS n FROM tasks WHERE tenant = $1 AND request_id = $2', ['contract', requestId]);
    expect(rows[0]!.n).toBe(1);
    await mesh.client.deleteSchedule(id);
    await until(async () => ((await mesh.client.listNodes()).nodes.length === 1 ? true : undefined), 10_000, 'the agent to reconnect');
  }, 60_000);

  it('refuses bad input with INVALID_ARGUMENT naming the field, and unknown ids with NOT_FOUND', async () => {
    const batch = { payload: { $case: 'batch' as const, batch: {} } };
    const refused = async (request: Parameters<InProcessMesh['client']['createSchedule']>[0]) => {
      const err = await mesh.client.createSchedule(request).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AutoglmError);
      expect((err as AutoglmError).code).toBe('INVALID_ARGUMENT');
      return (err as AutoglmError).details;
    };
    expect(await refused({ cron: '61 * * * *', template: batch })).toBe(
      'cron: minute 61 is out of range 0-59; write a number 0-59, a range, a list or a step, e.g. 0, 30, */15 or 0-29',
    );
    expect(await refused({ cron: '* * * *', template: batch })).toContain('cron: "* * * *" has 4 fields; write 5 fields');
    expect(await refused({ cron: '@daily', timeZone: 'Mars/Olympus_Mons', template: batch })).toBe(
      'time_zone: "Mars/Olympus_Mons" is not a time zone this server knows; use an IANA time zone such as "Europe/Berlin", "America/New_York" or "UTC"',
    );
    expect(await refused({ cron: '@daily' })).toContain('template: required');
    expect(await refused({ cron: '@daily', template: { model: 'gpt-5', payload: { $case: 'inference', inference: { prompt: 'hi' } } } })).toContain(
      'template.model: "gpt-5" is not in the catalog',
    );
    expect(await refused({ cron: '@daily', template: { ...batch, deadline: { seconds: 4_000_000_000, nanos: 0 } } })).toContain('template.deadline: must be empty');
    expect(await refused({ cron: '@daily', template: { ...batch, dependsOn: [UNKNOWN_ID] } })).toContain('template.depends_on: must be empty');
    expect(await refused({ cron: '@daily', template: batch, deadlineAfter: { seconds: -5, nanos: 0 } })).toContain('deadline_after: is negative');
    expect(await refused({ cron: '@daily', template: { ...batch, deadlinePolicy: DeadlinePolicy.REFUSE_UNMEETABLE } })).toContain(
      'template.deadline_policy: REFUSE_UNMEETABLE needs a deadline: set deadline_after',
    );

    // The schedule: request ids name the tasks schedules submit: a client may not take one.
    for (const submit of [
      () => mesh.client.submit({ ...batch, requestId: 'schedule:6f1d2c1e-0000-4000-8000-000000000000:1714557900000' }),
      () => mesh.client.submitWorkflow({ requestId: 'schedule:nightly', steps: [{ name: 'a', task: batch }] }),
      () => mesh.client.createSchedule({ requestId: 'schedule:nightly', cron: '@daily', template: batch }),
    ]) {
      await expect(submit()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: expect.stringMatching(/^request_id: must not start with "schedule:"/) });
    }

    for (const call of [
      () => mesh.client.getSchedule(UNKNOWN_ID),
      () => mesh.client.pauseSchedule(UNKNOWN_ID),
      () => mesh.client.resumeSchedule(UNKNOWN_ID),
      () => mesh.client.deleteSchedule(UNKNOWN_ID),
    ]) {
      await expect(call()).rejects.toMatchObject({ code: 'NOT_FOUND', details: `schedule ${UNKNOWN_ID} does not exist` });
    }
    await expect(mesh.client.getSchedule('nightly')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: expect.stringContaining('schedule_id: "nightly" is not a schedule id') });
    await expect(mesh.client.listSchedules({ pageToken: 'garbage' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('is driven by the autoglm CLI', async () => {
    const created = await cli(mesh, 'schedule', 'create', '--cron', '0 9 * * MON-FRI', '--tz', 'Europe/Berlin', '--duration', '2s', '--class', 'background', '--deadline-after', '30m');
    expect(created).toMatchObject({ code: 0 });
    const id = created.out.trim();
    expect(created.err).toMatch(/^next fire \d{4}-\d\d-\d\d 09:00 Europe\/Berlin\n$/);

    const listed = await cli(mesh, 'schedule', 'list');
    expect(listed.out).toContain(id);
    expect(listed.out).toMatch(/ACTIVE\s+0 9 \* \* MON-FRI\s+Europe\/Berlin/);
    const json = JSON.parse((await cli(mesh, '--json', 'schedule', 'get', id)).out) as Record<string, unknown>;
    expect(json).toMatchObject({ id, tenant: 'cli', state: 'ACTIVE', kind: 'BATCH', priorityClass: 'BACKGROUND', deadlineAfterMs: 30 * MINUTE, fireCount: 0 });

    expect((await cli(mesh, 'schedule', 'pause', id)).out).toBe(`${id}  PAUSED\n`);
    expect((await cli(mesh, 'schedule', 'resume', id)).out).toMatch(new RegExp(`^${id}  ACTIVE  next fire .* 09:00 Europe/Berlin\\n$`));
    expect((await cli(mesh, 'schedule', 'delete', id)).out).toBe(`${id}  DELETED\n`);
    expect(await cli(mesh, 'schedule', 'delete', id)).toMatchObject({ code: 1, err: `error: NOT_FOUND: schedule ${id} does not exist\n` });
    const refusing = await cli(mesh, 'schedule', 'create', '--cron', '@daily', '--duration', '1s', '--deadline-after', '10m', '--refuse-late');
    expect(refusing).toMatchObject({ code: 0 });
    expect((await mesh.client.getSchedule(refusing.out.trim())).spec!.deadlinePolicy).toBe(DeadlinePolicy.REFUSE_UNMEETABLE);
    expect(await cli(mesh, 'schedule', 'create', '--cron', '* * * * * *', '--duration', '1s')).toMatchObject({
      code: 1,
      err: expect.stringContaining('error: INVALID_ARGUMENT: cron: "* * * * * *" has 6 fields (a seconds field is not supported'),
    });
    expect(await cli(mesh, 'schedule', 'create', '--cron', '@hourly', '--tz', 'Berlin', '--duration', '1s')).toMatchObject({
      code: 1,
      err: expect.stringContaining('error: INVALID_ARGUMENT: time_zone: "Berlin" is not a time zone'),
    });
  });
});
