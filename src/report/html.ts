// The report pages' public face: the two page renderers and the markup primitives, re-exported from pages/ so that
// callers need one import. Nothing inside src/report imports this file; the pages import each other directly.
export { CONTENT_SECURITY_POLICY, escapeHtml, html, SafeHtml, type HtmlValue } from './pages/markup.ts';
export { renderAuditPage } from './pages/audit-page.ts';
export { renderEvalPage } from './pages/eval-page.ts';
