import { PriorityClass } from '@autoglm/proto';
import { DeadlineOutcomes, unmeetableDeadline, WaitPredictor } from './deadlines';

describe('deadlines', () => {
  it('learns a class’s wait from its placements, and predicts none when the task would be placed at once', () => {
    const waits = new WaitPredictor();
    expect(waits.predict(PriorityClass.NORMAL, false)).toBe(0);
    waits.observe(PriorityClass.NORMAL, 10_000);
    for (let i = 0; i < 50; i++) waits.observe(PriorityClass.NORMAL, 2_000);
    expect(waits.predict(PriorityClass.NORMAL, false)).toBeGreaterThan(2_000);
    expect(waits.predict(PriorityClass.NORMAL, false)).toBeLessThan(2_100);
    expect(waits.predict(PriorityClass.NORMAL, true)).toBe(0);
    expect(waits.predict(PriorityClass.URGENT, false)).toBe(0);
  });

  it('calls a deadline unmeetable when the wait plus the run ends past it', () => {
    expect(unmeetableDeadline(0, 10_000, 3_000, 7_000)).toBeUndefined();
    expect(unmeetableDeadline(0, 10_000, 3_000, 7_500)).toEqual({ finishMs: 10_500, lateMs: 500 });
  });

  it('counts met, missed and refused per tenant and class; an early failure is no miss', () => {
    const outcomes = new DeadlineOutcomes();
    const record = (tenant: string, pc: PriorityClass, succeeded: boolean, finishedMs: number) => {
      const o = DeadlineOutcomes.of(succeeded, finishedMs, 1000);
      if (o) outcomes.record(tenant, pc, o);
    };
    record('b', PriorityClass.URGENT, true, 999);
    record('b', PriorityClass.URGENT, true, 1001);
    record('b', PriorityClass.URGENT, false, 2000);
    record('b', PriorityClass.URGENT, false, 500);
    record('a', PriorityClass.NORMAL, true, 10);
    outcomes.record('a', PriorityClass.NORMAL, 'refused');
    expect(outcomes.all()).toEqual([
      { tenant: 'a', priorityClass: PriorityClass.NORMAL, met: 1, missed: 0, refused: 1 },
      { tenant: 'b', priorityClass: PriorityClass.URGENT, met: 1, missed: 2, refused: 0 },
    ]);
  });
});
