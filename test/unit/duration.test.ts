import { durationMs } from '../../src/shared/duration';

describe('durationMs', () => {
  test.each([
    ['7 days', 7 * 86_400_000],
    ['36 hours', 36 * 3_600_000],
    ['1 day', 86_400_000],
    ['90 minutes', 90 * 60_000],
    ['30s', 30_000],
    ['250ms', 250],
    ['2 weeks', 14 * 86_400_000],
    [1500, 1500],
  ])('when it is %j, then it is %i ms', (value, ms) => {
    expect(durationMs(value)).toBe(ms);
  });

  test.each(['', 'soon', '7', 'days', '-1 day', '1 fortnight'])('when it is %j, then it is refused', (value) => {
    expect(() => durationMs(value)).toThrow(/not a duration/);
  });
});
