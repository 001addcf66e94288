import type { FulfilledItem, SessionSummary } from '../../workflows/definitions';
import { formatAmount } from '../shared/money';

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Everything that came from a customer or a merchant's catalogue goes through this before it reaches HTML. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char]!);
}

function money(amount: number | null, currency: string | null): string {
  return amount === null || !currency ? '-' : formatAmount(amount, currency);
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body style="font-family: system-ui, sans-serif; color: #1a1a1a; max-width: 560px; margin: 0 auto; padding: 24px">
${body}
</body></html>`;
}

export function renderReceipt(session: SessionSummary, fulfilled: FulfilledItem[], merchantName: string): RenderedEmail {
  const greeting = session.customerName ? `Hi ${session.customerName},` : 'Hi,';
  const delivered = new Set(fulfilled.map((item) => item.lineItemId));
  const rows = session.lineItems.map((item) => ({
    description: item.description,
    quantity: item.quantity,
    total: money(item.amountTotal, item.currency),
    delivered: delivered.has(item.id),
  }));
  const subject = `Your ${merchantName} receipt`;
  const text = [
    greeting,
    '',
    `Thank you for your purchase. Here is your receipt for order ${session.id}.`,
    '',
    ...rows.map((row) => `  ${row.quantity} × ${row.description}  ${row.total}`),
    '',
    session.amountSubtotal !== null && session.amountSubtotal !== session.amountTotal
      ? `Subtotal: ${money(session.amountSubtotal, session.currency)}\n`
      : '',
    `Total paid: ${money(session.amountTotal, session.currency)}`,
    '',
    `— ${merchantName}`,
    '',
  ].join('\n');
  const html = layout(
    subject,
    `<p>${escapeHtml(greeting)}</p>
<p>Thank you for your purchase. Here is your receipt for order <code>${escapeHtml(session.id)}</code>.</p>
<table style="width: 100%; border-collapse: collapse">
<thead><tr><th align="left">Item</th><th align="right">Qty</th><th align="right">Amount</th></tr></thead>
<tbody>
${rows
  .map(
    (row) =>
      `<tr><td>${escapeHtml(row.description)}</td><td align="right">${row.quantity}</td><td align="right">${escapeHtml(row.total)}</td></tr>`,
  )
  .join('\n')}
</tbody>
<tfoot><tr><th align="left" colspan="2">Total paid</th><th align="right">${escapeHtml(money(session.amountTotal, session.currency))}</th></tr></tfoot>
</table>
<p>— ${escapeHtml(merchantName)}</p>`,
  );
  return { subject, text, html };
}

export function renderPaymentFailed(session: SessionSummary, merchantName: string): RenderedEmail {
  const greeting = session.customerName ? `Hi ${session.customerName},` : 'Hi,';
  const subject = `Your ${merchantName} payment did not go through`;
  const amount = money(session.amountTotal, session.currency);
  const text = [
    greeting,
    '',
    `The payment of ${amount} for order ${session.id} did not go through, so the order has not been fulfilled.`,
    'No money has been taken. You are welcome to place the order again with another payment method.',
    '',
    `— ${merchantName}`,
    '',
  ].join('\n');
  const html = layout(
    subject,
    `<p>${escapeHtml(greeting)}</p>
<p>The payment of <strong>${escapeHtml(amount)}</strong> for order <code>${escapeHtml(session.id)}</code> did not go through, so the order has not been fulfilled.</p>
<p>No money has been taken. You are welcome to place the order again with another payment method.</p>
<p>— ${escapeHtml(merchantName)}</p>`,
  );
  return { subject, text, html };
}
