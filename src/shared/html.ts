/**
 * The one place values are made safe for HTML, for the landing page and the emails alike. Every
 * value is escaped, numbers included: a quantity or an amount read back from a record is only as
 * trustworthy as whatever wrote it.
 */

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for an HTML element or a quoted attribute: `&`, `<`, `>`, `"` and `'` escaped; anything else through `String`. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (char) => HTML_ESCAPES[char]!);
}

const SCRIPT_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/**
 * A JavaScript literal for inside a `<script>` element: JSON, with `<`, `>` and `&` escaped so no
 * value can close the element (`</script>`) or open a comment, and U+2028 and U+2029 escaped for
 * older engines that end a string at them. What JSON cannot hold (`undefined`) becomes `null`.
 */
export function scriptLiteral(value: unknown): string {
  return (JSON.stringify(value) ?? 'null').replace(/[<>&\u2028\u2029]/g, (char) => SCRIPT_ESCAPES[char]!);
}
