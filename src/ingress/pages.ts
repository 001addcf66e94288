import type { FulfillmentView } from '../../workflows/definitions';
import { formatQuantity } from '../email/render';
import { escapeHtml, scriptLiteral } from '../shared/html';
import { formatAmount } from '../shared/money';

/** Statuses the landing page keeps polling on: the outcome is still being decided. */
export const PENDING_STATUSES = new Set(['received', 'awaiting_checkout', 'fulfilling', 'paused']);

export const POLL_INTERVAL_MS = 2000;
export const MAX_POLLS = 15;

function page(title: string, body: string, script = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  body { font-family: system-ui, sans-serif; color: #1a1a1a; max-width: 560px; margin: 48px auto; padding: 0 16px; }
  h1 { font-size: 1.5rem; }
  table { width: 100%; border-collapse: collapse; margin: 16px 0; }
  td, th { padding: 6px 0; border-bottom: 1px solid #eee; text-align: left; }
  td.num, th.num { text-align: right; }
  .muted { color: #666; font-size: 0.9rem; }
</style>
</head>
<body>
${body}
${script}
</body>
</html>`;
}

function itemsTable(view: FulfillmentView): string {
  const rows = view.lineItems
    .map(
      (item) =>
        `<tr><td>${escapeHtml(item.description)}</td><td class="num">${escapeHtml(formatQuantity(item.quantity))}</td><td class="num">${
          view.currency ? escapeHtml(formatAmount(item.amountTotal, view.currency)) : ''
        }</td></tr>`,
    )
    .join('\n');
  const total = view.amountTotal !== null && view.currency ? escapeHtml(formatAmount(view.amountTotal, view.currency)) : '';
  return `<table>
<thead><tr><th>Item</th><th class="num">Qty</th><th class="num">Amount</th></tr></thead>
<tbody>
${rows}
</tbody>
<tfoot><tr><th colspan="2">Total</th><th class="num">${total}</th></tr></tfoot>
</table>`;
}

function reference(view: FulfillmentView): string {
  return `<p class="muted">Order reference: <code>${escapeHtml(view.sessionId)}</code></p>`;
}

/** The landing page (success or return URL) for a session, by its status. */
export function renderLandingPage(view: FulfillmentView, options: { nonce: string; statusUrl: string }): string {
  switch (view.status) {
    case 'fulfilled': {
      if (view.mode === 'setup') {
        return page(
          'Thank you: your payment details are saved',
          `<h1>Thank you! Your payment details are saved.</h1>
<p>Nothing was charged today.</p>
${reference(view)}`,
        );
      }
      const delivered = view.fulfilled
        .map((item) => `<li>${item.quantity === null ? '' : `${escapeHtml(item.quantity)} × `}${escapeHtml(item.description)}</li>`)
        .join('\n');
      return page(
        'Thank you: your order is complete',
        `<h1>Thank you! Your order is complete.</h1>
<p>Everything you paid for is now yours:</p>
<ul>
${delivered}
</ul>
${itemsTable(view)}
<p>${view.receiptSent ? 'A receipt is on its way to your inbox.' : 'Your receipt will follow by email.'}</p>
${reference(view)}`,
      );
    }
    case 'awaiting_payment':
      return page(
        'Order received: awaiting payment confirmation',
        `<h1>Order received, awaiting payment confirmation</h1>
<p>Your payment method takes a few days to confirm. We will email you as soon as the payment clears and your order is fulfilled. There is nothing more you need to do.</p>
${itemsTable(view)}
${reference(view)}`,
      );
    case 'payment_failed':
      return page(
        'Payment failed',
        `<h1>Your payment did not go through</h1>
<p>We could not collect the payment for this order, so nothing has been fulfilled and nothing was charged. You are welcome to place the order again with another payment method.</p>
${reference(view)}`,
      );
    case 'expired':
      return page(
        'Checkout expired',
        `<h1>This checkout expired</h1>
<p>The checkout session expired before payment was completed, so no order was placed and nothing was charged.</p>
${reference(view)}`,
      );
    case 'partially_refunded':
    case 'refunded': {
      const refunded = (view.refunds ?? []).reduce((sum, refund) => sum + refund.amount, 0);
      const amount = view.currency ? formatAmount(refunded, view.currency) : '';
      const whole = view.status === 'refunded';
      return page(
        whole ? 'Your order was refunded' : 'Part of your order was refunded',
        `<h1>${whole ? 'Your order was refunded' : 'Part of your order was refunded'}</h1>
<p>We refunded ${escapeHtml(amount)}${whole ? ', the whole payment' : ''}. Depending on your bank, it takes 5 to 10 business days to show on your statement; a confirmation is in your inbox.</p>
${itemsTable(view)}
${reference(view)}`,
      );
    }
    case 'disputed':
    case 'dispute_lost':
      return page(
        'This payment is disputed',
        `<h1>This payment is disputed</h1>
<p>Your bank has told us you dispute this payment. If that is a mistake, please contact your bank and us with the reference below.</p>
${reference(view)}`,
      );
    case 'canceled':
      return page(
        'This order was canceled',
        `<h1>This order was canceled</h1>
<p>We could not fulfill it, so your payment was not taken: the hold on your card is released.</p>
${reference(view)}`,
      );
    case 'failed':
      return page(
        'We could not process this order',
        `<h1>We could not process this order</h1>
<p>Something went wrong on our side. Nothing will be charged twice; please contact us with the reference below.</p>
${reference(view)}`,
      );
    default:
      return page(
        'Processing your order',
        `<h1>We are processing your order</h1>
<p id="status-message">This usually takes a few seconds. This page updates by itself.</p>
${view.lineItems.length > 0 ? itemsTable(view) : ''}
${reference(view)}`,
        // Polls the status API a bounded number of times, then stops with the pending message.
        `<script nonce="${escapeHtml(options.nonce)}">
(function () {
  var url = ${scriptLiteral(options.statusUrl)};
  var pending = ${scriptLiteral([...PENDING_STATUSES])};
  var polls = 0;
  function poll() {
    polls += 1;
    fetch(url, { headers: { accept: 'application/json' } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (body && pending.indexOf(body.status) === -1) { window.location.reload(); return; }
        if (polls < ${MAX_POLLS}) { setTimeout(poll, ${POLL_INTERVAL_MS}); return; }
        document.getElementById('status-message').textContent =
          'Your order is still being processed. We will email you as soon as it is complete.';
      })
      .catch(function () { if (polls < ${MAX_POLLS}) setTimeout(poll, ${POLL_INTERVAL_MS}); });
  }
  setTimeout(poll, ${POLL_INTERVAL_MS});
})();
</script>`,
      );
  }
}

export function renderErrorPage(title: string, message: string): string {
  return page(title, `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(message)}</p>`);
}
