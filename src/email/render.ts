import type { FulfilledItem, RefundSummary, SessionSummary } from '../../workflows/definitions';
import type { CustomerContact } from '../stripe/sessions';
import { escapeHtml } from '../shared/html';
import { formatAmount } from '../shared/money';

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

/** A line item's quantity as customers read it; metered prices have none (billed by usage). */
export function formatQuantity(quantity: number | null): string {
  return quantity === null ? 'metered' : String(quantity);
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

/** Greeting and sign-off around a message's own text and HTML, so every email reads the same. */
function letter(
  subject: string,
  contact: CustomerContact,
  merchantName: string,
  body: { text: string[]; html: string },
): RenderedEmail {
  const greeting = contact.name ? `Hi ${contact.name},` : 'Hi,';
  const text = [greeting, '', ...body.text, '', `— ${merchantName}`, ''].join('\n');
  const html = layout(subject, `<p>${escapeHtml(greeting)}</p>\n${body.html}\n<p>— ${escapeHtml(merchantName)}</p>`);
  return { subject, text, html };
}

export function renderReceipt(session: SessionSummary, contact: CustomerContact, fulfilled: FulfilledItem[], merchantName: string): RenderedEmail {
  const rows = session.lineItems.map((item) => ({
    description: item.description,
    quantity: formatQuantity(item.quantity),
    total: money(item.amountTotal, item.currency),
  }));
  const total = money(session.amountTotal, session.currency);
  const discounted = session.amountSubtotal !== null && session.amountSubtotal !== session.amountTotal;
  const delivered = fulfilled.length === session.lineItems.length ? [] : [`${fulfilled.length} of ${session.lineItems.length} items delivered so far.`];
  return letter(`Your ${merchantName} receipt`, contact, merchantName, {
    text: [
      `Thank you for your purchase. Here is your receipt for order ${session.id}.`,
      '',
      ...rows.map((row) => `  ${row.quantity} × ${row.description}  ${row.total}`),
      '',
      ...(discounted ? [`Subtotal: ${money(session.amountSubtotal, session.currency)}`] : []),
      `Total paid: ${total}`,
      ...delivered,
    ],
    html: `<p>Thank you for your purchase. Here is your receipt for order <code>${escapeHtml(session.id)}</code>.</p>
<table style="width: 100%; border-collapse: collapse">
<thead><tr><th align="left">Item</th><th align="right">Qty</th><th align="right">Amount</th></tr></thead>
<tbody>
${rows
  .map(
    (row) =>
      `<tr><td>${escapeHtml(row.description)}</td><td align="right">${escapeHtml(row.quantity)}</td><td align="right">${escapeHtml(row.total)}</td></tr>`,
  )
  .join('\n')}
</tbody>
<tfoot><tr><th align="left" colspan="2">Total paid</th><th align="right">${escapeHtml(total)}</th></tr></tfoot>
</table>${delivered.map((line) => `\n<p>${escapeHtml(line)}</p>`).join('')}`,
  });
}

export function renderPaymentFailed(session: SessionSummary, contact: CustomerContact, merchantName: string): RenderedEmail {
  const amount = money(session.amountTotal, session.currency);
  return letter(`Your ${merchantName} payment did not go through`, contact, merchantName, {
    text: [
      `The payment of ${amount} for order ${session.id} did not go through, so the order has not been fulfilled.`,
      'No money has been taken. You are welcome to place the order again with another payment method.',
    ],
    html: `<p>The payment of <strong>${escapeHtml(amount)}</strong> for order <code>${escapeHtml(session.id)}</code> did not go through, so the order has not been fulfilled.</p>
<p>No money has been taken. You are welcome to place the order again with another payment method.</p>`,
  });
}

/** One refund: how much, of which order, and what it covers when that is known. */
export function renderRefund(
  order: { sessionId: string; refund: RefundSummary; reversed: FulfilledItem[] | null },
  contact: CustomerContact,
  merchantName: string,
): RenderedEmail {
  const { sessionId, refund, reversed } = order;
  const amount = formatAmount(refund.amount, refund.currency);
  const covers = reversed && reversed.length > 0 ? reversed.map((item) => `${item.quantity === null ? '' : `${item.quantity} × `}${item.description}`) : [];
  return letter(`Your ${merchantName} refund of ${amount}`, contact, merchantName, {
    text: [
      `We have refunded ${amount} for order ${sessionId}.`,
      ...(covers.length > 0 ? ['', 'It covers:', ...covers.map((line) => `  ${line}`)] : []),
      '',
      'Depending on your bank, it takes 5 to 10 business days to show on your statement.',
    ],
    html: `<p>We have refunded <strong>${escapeHtml(amount)}</strong> for order <code>${escapeHtml(sessionId)}</code>.</p>${
      covers.length > 0 ? `\n<p>It covers:</p>\n<ul>\n${covers.map((line) => `<li>${escapeHtml(line)}</li>`).join('\n')}\n</ul>` : ''
    }
<p>Depending on your bank, it takes 5 to 10 business days to show on your statement.</p>`,
  });
}

/** An order paid by PaymentIntent that could not be fulfilled: nothing was charged, the hold is released. */
export function renderOrderCanceled(order: Pick<SessionSummary, 'id' | 'amountTotal' | 'currency'>, contact: CustomerContact, merchantName: string): RenderedEmail {
  const amount = money(order.amountTotal, order.currency);
  return letter(`Your ${merchantName} order was canceled`, contact, merchantName, {
    text: [
      `We are sorry: we could not fulfill order ${order.id}, so we have canceled it.`,
      `Your payment of ${amount} was not taken. The hold on your card is released; depending on your bank, it disappears within a few days.`,
    ],
    html: `<p>We are sorry: we could not fulfill order <code>${escapeHtml(order.id)}</code>, so we have canceled it.</p>
<p>Your payment of <strong>${escapeHtml(amount)}</strong> was not taken. The hold on your card is released; depending on your bank, it disappears within a few days.</p>`,
  });
}
