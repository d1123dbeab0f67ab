import { ManualScheduler } from './scheduler';

describe('ManualScheduler', () => {
  it('fires timers in due order, ties in creation order, at their due time', () => {
    const s = new ManualScheduler(1000);
    const fired: Array<[string, number]> = [];
    s.setTimer(20, () => fired.push(['b', s.now()]));
    s.setTimer(10, () => fired.push(['a', s.now()]));
    s.setTimer(20, () => fired.push(['c', s.now()]));
    s.advance(15);
    expect(fired).toEqual([['a', 1010]]);
    expect(s.now()).toBe(1015);
    s.advance(5);
    expect(fired).toEqual([['a', 1010], ['b', 1020], ['c', 1020]]);
  });

  it('fires timers set while firing when they fall inside the advanced window', () => {
    const s = new ManualScheduler();
    const fired: number[] = [];
    s.setTimer(10, () => {
      fired.push(s.now());
      s.setTimer(10, () => fired.push(s.now()));
    });
    s.advance(25);
    expect(fired).toEqual([10, 20]);
    expect(s.pendingTimers).toBe(0);
  });

  it('does not fire a cancelled timer', () => {
    const s = new ManualScheduler();
    const fn = jest.fn();
    const cancel = s.setTimer(5, fn);
    cancel();
    s.runUntilIdle();
    expect(fn).not.toHaveBeenCalled();
    expect(s.nextTimerAt()).toBeUndefined();
  });

  it('runUntilIdle stops a timer loop that never ends', () => {
    const s = new ManualScheduler();
    const loop = (): void => {
      s.setTimer(1, loop);
    };
    loop();
    expect(() => s.runUntilIdle(100)).toThrow('still busy after 100 timers');
  });
});
