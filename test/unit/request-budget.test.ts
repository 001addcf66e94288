import { openDatabase, type Database } from '../../src/store';
import {
  DEFAULT_REQUESTS_PER_SECOND,
  gatedRequestBudget,
  localRequestBudget,
  RequestBudgetExhausted,
  shareOut,
  sharedRequestBudget,
  STRIPE_LIMITS,
  type RequestBudget,
} from '../../src/stripe/request-budget';

// Stripe counts requests, not activities: every process takes its turn from one budget.

describe('the in-process gate', () => {
  beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => jest.useRealTimers());

  const settled = async (promise: Promise<void>) => {
    let done = false;
    void promise.then(() => (done = true));
    await jest.advanceTimersByTimeAsync(0);
    return done;
  };

  test('when a burst asks for more requests than a quarter second holds, then the rest wait for their share of the second, in order', async () => {
    const budget = localRequestBudget('test', 20, { now: Date.now }); // holds 5
    const first = Array.from({ length: 5 }, () => budget.take());
    for (const take of first) expect(await settled(take)).toBe(true);

    const sixth = budget.take();
    const seventh = budget.take();
    expect(await settled(sixth)).toBe(false);
    await jest.advanceTimersByTimeAsync(50); // one token every 50 ms at 20 a second
    expect(await settled(sixth)).toBe(true);
    expect(await settled(seventh)).toBe(false);
    await jest.advanceTimersByTimeAsync(50);
    expect(await settled(seventh)).toBe(true);
  });

  test('when the budget is idle, then it never holds more than a quarter second of requests', async () => {
    const budget = localRequestBudget('test', 40, { now: Date.now }); // holds 10
    await jest.advanceTimersByTimeAsync(60_000);
    const takes = Array.from({ length: 11 }, () => budget.take());
    const done = await Promise.all(takes.map(settled));
    expect(done.filter(Boolean)).toHaveLength(10);
  });

  test('when a request would wait longer than its most, then it is refused at once (Temporal retries the activity) and takes nothing from the budget', async () => {
    const budget = localRequestBudget('test', 4, { now: Date.now, maxWaitMs: 600 }); // one every 250 ms, holds 1
    await budget.take();
    const waiting = [budget.take(), budget.take()]; // at 250 and 500 ms
    await expect(budget.take()).rejects.toThrow(RequestBudgetExhausted); // would be at 750 ms
    await jest.advanceTimersByTimeAsync(500);
    await Promise.all(waiting);
    const later = budget.take(); // asked at 500 ms: goes at 750, within its most
    await jest.advanceTimersByTimeAsync(250);
    await expect(later).resolves.toBeUndefined();
  });
});

describe('the shares of the budget', () => {
  test.each([
    ['a test key', DEFAULT_REQUESTS_PER_SECOND.test, STRIPE_LIMITS.test],
    ['a live key', DEFAULT_REQUESTS_PER_SECOND.live, STRIPE_LIMITS.live],
  ])('when the budget is the default for %s, then both shares together stay under Stripe\'s limit for that mode', (_mode, perSecond, limit) => {
    const shares = shareOut(perSecond);
    expect(shares.visitorsPerSecond + shares.fulfillmentPerSecond).toBeCloseTo(perSecond);
    expect(perSecond).toBeLessThanOrEqual(limit * 0.8);
    // Visitors read the same endpoint the workers read sessions with: a fifth of that endpoint's headroom at most.
    expect(shares.visitorsPerSecond).toBeLessThanOrEqual((STRIPE_LIMITS.perEndpoint * 0.8) / 5);
    expect(shares.visitorsPerSecond).toBeLessThanOrEqual(perSecond / 5);
  });

  test('when the budget is small, then visitors still get a fifth of it and fulfillment the rest', () => {
    expect(shareOut(10)).toEqual({ perSecond: 10, visitorsPerSecond: 2, fulfillmentPerSecond: 8 });
  });
});

describe('the budget every process shares, in the database', () => {
  let db: Database;
  beforeAll(async () => {
    db = await openDatabase({});
  });
  afterAll(async () => {
    await db?.close();
  });

  /** Takes `count` turns at once from the budgets in rotation; resolves to when each was granted (ms), refusals left out. */
  async function grantTimes(budgets: RequestBudget[], count: number): Promise<{ granted: number[]; refused: number }> {
    const granted: number[] = [];
    let refused = 0;
    await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        try {
          await budgets[i % budgets.length]!.take();
          granted.push(performance.now());
        } catch (err) {
          if (!(err instanceof RequestBudgetExhausted)) throw err;
          refused++;
        }
      }),
    );
    return { granted: granted.sort((a, b) => a - b), refused };
  }

  /** The most turns granted in any window of `ms`. */
  function peakIn(times: number[], ms: number): number {
    let peak = 0;
    for (let start = 0, end = 0; end < times.length; end++) {
      while (times[end]! - times[start]! >= ms) start++;
      peak = Math.max(peak, end - start + 1);
    }
    return peak;
  }

  test('when two processes take turns from one budget at once, then together they stay within its rate', async () => {
    // Two processes' budgets: the same row, the same rate (40/s, a burst of 10).
    const processes = [sharedRequestBudget(db, 'two-processes', 40), sharedRequestBudget(db, 'two-processes', 40)];
    const started = performance.now();
    const { granted, refused } = await grantTimes(processes, 90);

    expect(refused).toBe(0);
    // 90 turns at 40/s with 10 at once: the last one no sooner than (90 - 10) / 40 = 2 s in.
    expect(granted.at(-1)! - started).toBeGreaterThanOrEqual(1900);
    // Any second: at most a second's worth and the burst, and a quarter second's worth more for
    // answers the database was slow to send (a turn goes late, never early). Two budgets of their
    // own would grant about 100 in the first second.
    expect(peakIn(granted, 1000)).toBeLessThanOrEqual(40 + 10 + 10);
  });

  test('when processes are gated in memory too, then the gate grants nothing the shared budget would refuse', async () => {
    const processes = [gatedRequestBudget(db, 'gated', 40), gatedRequestBudget(db, 'gated', 40)];
    const { granted, refused } = await grantTimes(processes, 70);
    expect(refused).toBe(0);
    expect(peakIn(granted, 1000)).toBeLessThanOrEqual(40 + 10 + 10);
  });

  test('when a turn would be further off than the most a caller waits, then it is refused at once and takes nothing', async () => {
    const budget = sharedRequestBudget(db, 'short-wait', 10, { maxWaitMs: 500 }); // one every 100 ms, a burst of 250 ms
    const { granted, refused } = await grantTimes([budget], 20);
    // Granted: the burst and the turns up to 500 ms away (7), and one or two more as the 20 statements
    // run one after another; the rest refused without waiting.
    expect(granted.length).toBeGreaterThanOrEqual(7);
    expect(granted.length).toBeLessThanOrEqual(10);
    expect(refused).toBe(20 - granted.length);
    // The refusals took nothing: a second later the budget has turns again.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await expect(budget.take()).resolves.toBeUndefined();
  });

  test('when visitors flood their share, then fulfillment\'s share is served at its own rate all the same', async () => {
    const shares = shareOut(20); // visitors 4/s, fulfillment 16/s
    const visitors = [0, 1].map(() => gatedRequestBudget(db, 'flood:visitors', shares.visitorsPerSecond, { maxWaitMs: 1000 }));
    const fulfillment = [0, 1].map(() => gatedRequestBudget(db, 'flood:fulfillment', shares.fulfillmentPerSecond));

    const started = performance.now();
    const [flood, served] = await Promise.all([grantTimes(visitors, 400), grantTimes(fulfillment, 36)]);

    // Fulfillment: 36 turns at 16/s with 4 at once, none refused: the last one about (36 - 4) / 16 = 2 s in, not later.
    expect(served.refused).toBe(0);
    expect(served.granted.at(-1)! - started).toBeLessThan(2000 + 1000);
    // Visitors: their own share only (a second's worth plus their burst of 1 within the 1 s they may wait); the rest refused.
    expect(flood.granted.length).toBeLessThanOrEqual(Math.ceil(shares.visitorsPerSecond * 1) + 1 + 1);
    expect(flood.refused).toBe(400 - flood.granted.length);
  });
});
