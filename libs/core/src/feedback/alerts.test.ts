import { AlertBook, type AlertCondition } from './alerts';

const breach = (value: number): AlertCondition => ({
  alert: 'SloMissed',
  labels: { slo: 'urgent-ttft', tenant: 'acme' },
  severity: 'page',
  forMs: 60_000,
  summary: `acme at ${value}`,
  value,
});

describe('AlertBook', () => {
  it('goes pending, fires after its for: duration, and resolves when the condition stops holding', () => {
    const book = new AlertBook();
    expect(book.evaluate(0, [breach(0.9)]).map((a) => a.state)).toEqual(['pending']);
    expect(book.evaluate(30_000, [breach(0.8)])).toEqual([]);
    expect(book.current()[0]).toMatchObject({ state: 'pending', summary: 'acme at 0.8' });
    const fired = book.evaluate(60_000, [breach(0.7)]);
    expect(fired).toEqual([expect.objectContaining({ state: 'firing', activeSinceMs: 0, firedAtMs: 60_000 })]);
    const resolved = book.evaluate(90_000, []);
    expect(resolved).toEqual([expect.objectContaining({ state: 'resolved', firedAtMs: 60_000, resolvedAtMs: 90_000 })]);
    expect(book.current()).toEqual([]);
    expect(book.recentlyResolved()).toHaveLength(1);
  });

  it('drops a pending alert silently when the condition stops before it fires', () => {
    const book = new AlertBook();
    book.evaluate(0, [breach(0.9)]);
    expect(book.evaluate(10_000, [])).toEqual([]);
    expect(book.current()).toEqual([]);
    // Holding again starts the for: clock afresh.
    book.evaluate(20_000, [breach(0.9)]);
    expect(book.evaluate(70_000, [breach(0.9)])).toEqual([]);
    expect(book.evaluate(80_000, [breach(0.9)]).map((a) => a.state)).toEqual(['firing']);
  });

  it('tells instances apart by labels and fires at once with for: 0', () => {
    const book = new AlertBook();
    const other = { ...breach(0.5), labels: { slo: 'urgent-ttft', tenant: 'globex' }, forMs: 0 };
    const changes = book.evaluate(0, [breach(0.9), other]);
    expect(changes.map((a) => [a.labels.tenant, a.state])).toEqual([
      ['acme', 'pending'],
      ['globex', 'firing'],
    ]);
    expect(book.current().map((a) => a.labels.tenant)).toEqual(['globex', 'acme']);
  });
});
