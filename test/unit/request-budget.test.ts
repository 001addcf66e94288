import { requestBudget } from '../../src/stripe/request-budget';

// Stripe counts requests, not activities: each process holds its requests to the budget.
beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
afterEach(() => jest.useRealTimers());

const settled = async (promise: Promise<void>) => {
  let done = false;
  void promise.then(() => (done = true));
  await jest.advanceTimersByTimeAsync(0);
  return done;
};

test('when a burst asks for more requests than a quarter second holds, then the rest wait for their share of the second, in order', async () => {
  const budget = requestBudget(20, { now: Date.now }); // holds 5
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
  const budget = requestBudget(40, { now: Date.now }); // holds 10
  await jest.advanceTimersByTimeAsync(60_000);
  const takes = Array.from({ length: 11 }, () => budget.take());
  const done = await Promise.all(takes.map(settled));
  expect(done.filter(Boolean)).toHaveLength(10);
});

test('when a request would wait longer than its most, then it is refused at once (Temporal retries the activity) and takes nothing from the budget', async () => {
  const budget = requestBudget(4, { now: Date.now, maxWaitMs: 600 }); // one every 250 ms, holds 1
  await budget.take();
  const waiting = [budget.take(), budget.take()]; // at 250 and 500 ms
  await expect(budget.take()).rejects.toThrow(/budget of 4\/s exhausted/); // would be at 750 ms
  await jest.advanceTimersByTimeAsync(500);
  await Promise.all(waiting);
  const later = budget.take(); // asked at 500 ms: goes at 750, within its most
  await jest.advanceTimersByTimeAsync(250);
  await expect(later).resolves.toBeUndefined();
});
