/**
 * The one address a message to a customer goes to. The customer types their email at Stripe, and
 * nodemailer reads a `to` string as an address list: `victim@example.com, attacker@evil.example`
 * would send the receipt to both. So only a plain address passes, in the dot-atom form of RFC 5322
 * (no display name, no quoting, no comments, no list), with a domain of DNS labels.
 */

// RFC 5322 atext: none of these is an address-list separator or delimiter (`,` `;` `<` `>` `"` `(` `:` space).
const ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const LOCAL_PART = new RegExp(`^${ATOM}(?:\\.${ATOM})*$`);
const DOMAIN_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
// RFC 5321's limits: 64 octets before the `@`, 254 in all (what fits in a path of 256).
const MAX_LOCAL_PART = 64;
const MAX_ADDRESS = 254;

/** `raw` when it is exactly one syntactically valid address, else null (treated as no email at all). */
export function singleRecipient(raw: string | null | undefined): string | null {
  if (typeof raw !== 'string' || raw.length > MAX_ADDRESS) return null;
  const parts = raw.split('@');
  if (parts.length !== 2) return null;
  const [local, domain] = parts as [string, string];
  if (local.length > MAX_LOCAL_PART || !LOCAL_PART.test(local)) return null;
  const labels = domain.split('.');
  // A host name with a top-level domain: `user@localhost` or `user@[10.0.0.1]` is no customer's address.
  if (labels.length < 2 || !labels.every((label) => DOMAIN_LABEL.test(label))) return null;
  if (!/[A-Za-z]/.test(labels[labels.length - 1]!)) return null; // `user@10.0.0.1`
  return raw;
}
