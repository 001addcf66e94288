import { singleRecipient } from '../../src/email/recipient';

describe('singleRecipient', () => {
  test.each([
    'jenny@example.com',
    'Jenny.Rosen@Example.COM',
    'jenny+receipts@example.com',
    "o'brien@example.ie",
    'first.last-name_1@mail.sub.example.co.uk',
    'user@xn--bcher-kva.example', // an internationalised domain, as Punycode
    'a@b.io',
    `${'a'.repeat(64)}@example.com`,
  ])('when the email is %j, then it is the one recipient', (address) => {
    expect(singleRecipient(address)).toBe(address);
  });

  test.each([
    ['a list (the attack)', 'victim@example.com, attacker@evil.example'],
    ['a list without a space', 'victim@example.com,attacker@evil.example'],
    ['a semicolon list', 'victim@example.com;attacker@evil.example'],
    ['a display name with an address', 'Jenny <jenny@example.com>'],
    ['a quoted display name hiding a second address', '"victim@example.com" <attacker@evil.example>'],
    ['an address in angle brackets', '<jenny@example.com>'],
    ['a group', 'friends: victim@example.com, attacker@evil.example;'],
    ['a CRLF header injection', 'jenny@example.com\r\nBcc: attacker@evil.example'],
    ['a bare LF', 'jenny@example.com\nattacker@evil.example'],
    ['a space inside', 'jenny rosen@example.com'],
    ['leading whitespace', ' jenny@example.com'],
    ['trailing whitespace', 'jenny@example.com '],
    ['a tab', 'jenny@example.com\t'],
    ['a comment', 'jenny@example.com (Jenny)'],
    ['a quoted local part', '"jenny rosen"@example.com'],
    ['two @', 'jenny@attacker@example.com'],
    ['no @', 'jenny.example.com'],
    ['nothing before the @', '@example.com'],
    ['nothing after the @', 'jenny@'],
    ['a domain without a dot', 'jenny@localhost'],
    ['an IP literal', 'jenny@[127.0.0.1]'],
    ['an IP address as the domain', 'jenny@127.0.0.1'],
    ['a leading dot', '.jenny@example.com'],
    ['a double dot', 'jenny..rosen@example.com'],
    ['a trailing dot before the @', 'jenny.@example.com'],
    ['an empty domain label', 'jenny@example..com'],
    ['a domain ending in a dot', 'jenny@example.com.'],
    ['a label starting with a hyphen', 'jenny@-example.com'],
    ['a label ending with a hyphen', 'jenny@example-.com'],
    ['a NUL byte', 'jenny@example.com\u0000'],
    ['non-ASCII letters', 'jénny@example.com'],
    ['a local part over 64 characters', `${'a'.repeat(65)}@example.com`],
    ['an address over 254 characters', `jenny@${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.com`],
    ['an empty string', ''],
  ])('when the email is %s, then there is no recipient', (_name, address) => {
    expect(singleRecipient(address)).toBeNull();
  });

  test.each([null, undefined])('when there is no email (%p), then there is no recipient', (missing) => {
    expect(singleRecipient(missing)).toBeNull();
  });
});
