/**
 * Every value that reaches HTML is escaped, numbers included: a quantity read back from a record
 * is only as trustworthy as whatever wrote it, so a hostile one is fed in here as if it were one.
 */
import { renderPaymentFailed, renderReceipt, renderRefund } from '../../src/email/render';
import { renderErrorPage, renderLandingPage } from '../../src/ingress/pages';
import { escapeHtml, scriptLiteral } from '../../src/shared/html';
import { receivedView, type FulfillmentView } from '../../workflows/definitions';
import { lineItem, session } from '../fixtures/sessions';

const HOSTILE = '<img src=x onerror=alert(1)>';
const ESCAPED = '&lt;img src=x onerror=alert(1)&gt;';
// What a record or a summary would hold if something upstream put text where a number belongs.
const hostileNumber = HOSTILE as unknown as number;

const view = (overrides: Partial<FulfillmentView>): FulfillmentView => ({
  ...receivedView('cs_test_escaping'),
  paymentStatus: 'paid',
  mode: 'payment',
  currency: 'usd',
  amountTotal: 2000,
  lineItems: [{ description: HOSTILE, quantity: hostileNumber, amountTotal: 2000 }],
  fulfilled: [{ lineItemId: 'li_1', description: HOSTILE, quantity: hostileNumber }],
  ...overrides,
});

const options = { nonce: 'nonce123', statusUrl: '/api/fulfillments/cs_test_escaping' };

function expectEscaped(html: string) {
  expect(html).not.toContain('<img');
  expect(html).toContain(ESCAPED);
}

describe('escapeHtml', () => {
  test.each([
    ['&<>"\'', '&amp;&lt;&gt;&quot;&#39;'],
    [HOSTILE, ESCAPED],
    [42, '42'],
    [null, 'null'],
    [undefined, 'undefined'],
    [{ toString: () => '<b>' }, '&lt;b&gt;'],
  ])('when %p is escaped, then it reads %p', (value, expected) => {
    expect(escapeHtml(value)).toBe(expected);
  });
});

describe('scriptLiteral', () => {
  test('when a value would close the script element, then the literal cannot, and still means the same value', () => {
    const value = { url: '</script><script>alert(1)</script>', note: '<!-- & \u2028\u2029' };
    const literal = scriptLiteral(value);
    expect(literal).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(literal)).toEqual(value);
  });

  test('when the value is undefined, then the literal is null', () => {
    expect(scriptLiteral(undefined)).toBe('null');
  });
});

describe('the landing page', () => {
  test('when a fulfilled order carries a hostile description and quantity, then both are escaped in the list and the table', () => {
    const html = renderLandingPage(view({ status: 'fulfilled', receiptSent: true }), options);
    expectEscaped(html);
    expect(html.split(ESCAPED).length - 1).toBe(4); // the delivered line's quantity and description, the table's two cells
  });

  test.each(['awaiting_payment', 'refunded', 'fulfilling'] as const)('when the order is %s and carries a hostile quantity, then its table escapes it', (status) => {
    expectEscaped(renderLandingPage(view({ status, refunds: [] }), options));
  });

  test('when the page polls, then its script embeds the status URL as a literal that cannot close the script', () => {
    const html = renderLandingPage(view({ status: 'fulfilling' }), { nonce: 'n"once', statusUrl: '/api/fulfillments/</script><script>alert(1)//' });
    expect(html).not.toContain('</script><script>');
    expect(html).toContain('var url = "/api/fulfillments/\\u003c/script\\u003e\\u003cscript\\u003ealert(1)//";');
    expect(html).toContain('<script nonce="n&quot;once">');
  });

  test('when an error page is rendered with hostile text, then it is escaped', () => {
    expectEscaped(renderErrorPage(HOSTILE, HOSTILE));
  });
});

describe('the emails', () => {
  const contact = { email: 'jenny@example.com', name: HOSTILE };

  test('when a receipt has a hostile customer name, description and quantity, then its HTML escapes each', () => {
    const paid = session({ lineItems: [lineItem({ description: HOSTILE, quantity: hostileNumber })] });
    const { html } = renderReceipt(paid, contact, [], 'Shop <b>&</b> Co');
    expectEscaped(html);
    expect(html).toContain(`Hi ${ESCAPED},`);
    expect(html).toContain(`<td align="right">${ESCAPED}</td>`); // the quantity cell
    expect(html).toContain('Shop &lt;b&gt;&amp;&lt;/b&gt; Co');
  });

  test('when a refund covers an item with a hostile quantity, then its HTML escapes it', () => {
    const { html } = renderRefund(
      {
        sessionId: 'cs_test_escaping',
        refund: { id: 're_1', amount: 500, currency: 'usd', status: 'succeeded', lineItems: null },
        reversed: [{ lineItemId: 'li_1', description: 'T-shirt', quantity: hostileNumber }],
      },
      contact,
      'Shop',
    );
    expectEscaped(html);
    expect(html).toContain(`<li>${ESCAPED} × T-shirt</li>`);
  });

  test('when a payment-failed email goes to a hostile name, then it is escaped', () => {
    expectEscaped(renderPaymentFailed(session(), contact, 'Shop').html);
  });
});
