/**
 * Stripe amounts are integers in the currency's minor unit. Stripe's own lists decide how many
 * decimals a currency has (they differ from ISO 4217 in places), so they are written out here.
 * Side-effect free: the workflow uses it for its readable summary, the email for receipts.
 */

// https://docs.stripe.com/currencies#zero-decimal
const ZERO_DECIMAL = new Set([
  'bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf',
]);
// https://docs.stripe.com/currencies#three-decimal
const THREE_DECIMAL = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd']);

export function minorUnitDigits(currency: string): number {
  const code = currency.toLowerCase();
  if (ZERO_DECIMAL.has(code)) return 0;
  if (THREE_DECIMAL.has(code)) return 3;
  return 2;
}

/** `formatAmount(1999, 'usd')` → `$19.99`; `formatAmount(500, 'jpy')` → `¥500`; `formatAmount(1500, 'kwd')` → `KWD 1.500`. */
export function formatAmount(minorUnits: number, currency: string, locale = 'en-US'): string {
  const digits = minorUnitDigits(currency);
  const major = minorUnits / 10 ** digits;
  try {
    return new Intl.NumberFormat(locale, {
      style: 'currency',
      currency: currency.toUpperCase(),
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).format(major);
  } catch {
    // An ISO code Intl does not know: still show the amount correctly.
    return `${major.toFixed(digits)} ${currency.toUpperCase()}`;
  }
}
