import { Event } from '@autoglm/proto';
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

  it('ignores an event without a kind', async () => {
    const metrics = new MonitorMetrics();
    metrics.observe(Event.fromPartial({}));
    expect(await metrics.render()).toContain('autoglm_events_received_total{kind="task"} 0');
  });
});
