import { formatAmount, minorUnitDigits } from '../../src/shared/money';

// Intl separates a currency code from the amount with a no-break space.
const format = (amount: number, currency: string) => formatAmount(amount, currency).replace(/\u00a0/g, ' ');

describe('formatAmount', () => {
  test.each([
    [1999, 'usd', '$19.99'],
    [1999, 'USD', '$19.99'],
    [5, 'eur', '€0.05'],
    [500, 'jpy', '¥500'],
    [1500000, 'krw', '₩1,500,000'],
    [1500, 'kwd', 'KWD 1.500'],
    [12345, 'bhd', 'BHD 12.345'],
    [0, 'usd', '$0.00'],
  ])('when %i minor units of %s are formatted, then it shows %s', (amount, currency, expected) => {
    expect(format(amount, currency)).toBe(expected);
  });

  test('when the currency code is one Intl rejects, then the amount is still right', () => {
    expect(format(1234, 'xyz')).toBe('XYZ 12.34');
    expect(format(1234, 'us')).toBe('12.34 US');
  });

  test('when Stripe calls a currency zero- or three-decimal, then that decides the minor units', () => {
    expect(minorUnitDigits('jpy')).toBe(0);
    expect(minorUnitDigits('ugx')).toBe(0);
    expect(minorUnitDigits('tnd')).toBe(3);
    expect(minorUnitDigits('gbp')).toBe(2);
  });
});
