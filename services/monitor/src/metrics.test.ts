import { Event, PriorityClass, TaskState } from '@autoglm/proto';
import { MonitorMetrics } from './metrics';

describe('MonitorMetrics', () => {
  it('keeps each instance\'s series to itself', async () => {
    const a = new MonitorMetrics();
    const b = new MonitorMetrics();
    a.observe(Event.fromPartial({ kind: { $case: 'policy', policy: { version: 3 } } }));
    expect(await a.render()).toContain('autoglm_policy_version 3');
    expect(await b.render()).toContain('autoglm_policy_version 0');
  });

  it('exports the process\'s own metrics when asked', async () => {
    const text = await new MonitorMetrics({ processMetrics: true }).render();
    expect(text).toContain('autoglm_monitor_process_cpu_user_seconds_total');
    expect(await new MonitorMetrics().render()).not.toContain('process_cpu_user_seconds_total');
  });

  it('gives the first maxTenants tenants series of their own and counts the rest as "_other"', async () => {
    const metrics = new MonitorMetrics({ maxTenants: 2 });
    const queued = (taskId: string, tenant: string) =>
      Event.fromPartial({ kind: { $case: 'task', task: { taskId, state: TaskState.QUEUED, sequence: 1, task: { id: taskId, tenant, spec: { priorityClass: PriorityClass.NORMAL } } } } });
    for (let i = 0; i < 50; i++) metrics.observe(queued(`t${i}`, `tenant-${i}`));
    const text = await metrics.render();
    const pending = text.split('\n').filter((l) => l.startsWith('autoglm_tasks_pending{'));
    expect(pending).toHaveLength(3);
    expect(pending.find((l) => l.includes('tenant="_other"'))).toMatch(/ 48$/);
  });

  it('ignores an event without a kind', async () => {
    const metrics = new MonitorMetrics();
    metrics.observe(Event.fromPartial({}));
    expect(await metrics.render()).toContain('autoglm_events_received_total{kind="task"} 0');
  });
});
