// Markup and escaping for the report pages. Markup is built only through the `html` template, which escapes every
// interpolated value unless it is already markup: escaping is the default, not something to remember. The pages
// carry no script and a Content-Security-Policy that forbids every fetch but data: images, so a hostile prompt
// stays text.

/** No script, no fetch: images only from data: URIs, styles only inline. */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/** Markup that is already safe; everything else that reaches a page goes through `escapeHtml`. */
export class SafeHtml {
  constructor(readonly markup: string) {}
  toString(): string {
    return this.markup;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text → HTML text or attribute value (quoted), for element content and attributes alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false || value === true) return '';
  if (value instanceof SafeHtml) return value.markup;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/** Tagged template: the literal parts are markup, every `${value}` is escaped (arrays are joined, SafeHtml kept). */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let out = strings[0]!;
  values.forEach((value, i) => {
    out += render(value) + strings[i + 1]!;
  });
  return new SafeHtml(out);
}

/** Markup pieces one after another: lets a long template be written as several shorter ones, to the same bytes. */
export function joinHtml(...parts: SafeHtml[]): SafeHtml {
  return new SafeHtml(parts.map((part) => part.markup).join(''));
}
