// The page shell shared by the report pages: one self-contained HTML file (inline styles, no script), its
// stylesheet, and the furniture every page uses (header chips, summary tiles, sections).
import { CONTENT_SECURITY_POLICY, html, SafeHtml, type HtmlValue } from './markup.ts';

const STYLE =
  `
:root { --ink: #1f2328; --muted: #667085; --line: #e6e6e1; --panel: #ffffff; --bg: #f6f6f3; --accent: #2666aa; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); ` +
  `font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { background: #1f2a37; color: #f5f7fa; padding: 28px 0 22px; }
.wrap { max-width: 1180px; margin: 0 auto; padding: 0 28px; }
header.top h1 { margin: 0 0 4px; font-size: 26px; font-weight: 650; letter-spacing: -0.01em; }
header.top .sub { color: #b8c2cf; font-size: 14px; word-break: break-all; }
.chips { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 14px; }
.chip { background: rgba(255,255,255,0.09); border: 1px solid rgba(255,255,255,0.16); ` +
  `border-radius: 999px; padding: 3px 12px; font-size: 13px; }
.chip b { font-weight: 650; color: #ffffff; }
nav.toc { display: flex; flex-wrap: wrap; gap: 16px; margin-top: 16px; font-size: 13px; }
nav.toc a { color: #d4dde8; text-decoration: none; border-bottom: 1px dotted #7f8ea3; }
main { padding: 10px 0 40px; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 20px 24px; margin: 18px 0; }
h2 { font-size: 19px; margin: 0 0 4px; letter-spacing: -0.005em; }
h3 { font-size: 15px; margin: 18px 0 8px; color: #344054; }
p.lead { color: var(--muted); margin: 0 0 14px; font-size: 14px; max-width: 880px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
.tile { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: #fcfcfb; }
.tile .v { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile .k { color: var(--muted); font-size: 12.5px; }
table { border-collapse: collapse; font-size: 13.5px; margin: 6px 0 4px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #eeeeea; text-align: left; vertical-align: middle; }
th { font-weight: 600; color: #475467; background: #fafaf8; border-bottom: 1px solid var(--line); white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.strong td { font-weight: 650; }
.scroll { overflow-x: auto; }
.two { display: grid; grid-template-columns: minmax(0, auto) minmax(0, 1fr); gap: 28px; align-items: start; }
@media (max-width: 900px) { .two { grid-template-columns: 1fr; } }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 14px; }
.grid.narrow { grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); }
.panel { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: #fdfdfc; }
.panel h4 { margin: 0 0 4px; font-size: 14px; display: flex; align-items: center; gap: 8px; }
.panel .meta { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
.swatch { width: 10px; height: 10px; border-radius: 2px; display: inline-block; }
svg.chart { max-width: 100%; height: auto; display: block; font-family: inherit; }
svg.chart.small, svg.chart.square { width: 100%; }
svg .label { font-size: 12.5px; fill: #344054; }
svg .label.strong { font-weight: 700; }
svg .note { font-size: 12px; fill: #475467; font-variant-numeric: tabular-nums; }
svg .tick { font-size: 10.5px; fill: #8a94a6; }
svg .cell { font-size: 12.5px; fill: #1f2328; font-variant-numeric: tabular-nums; }
svg .cell.light { fill: #ffffff; }
svg .grid { stroke: #efefeb; }
svg .axis { stroke: #c9c9c3; }
svg .reference { stroke: #8a94a6; stroke-dasharray: 4 3; stroke-width: 1.2; }
svg .whisker line { stroke: #1f2328; stroke-width: 1.4; }
.bar { background: #eef2f7; border-radius: 3px; height: 8px; min-width: 90px; position: relative; }
.bar span { position: absolute; left: 0; top: 0; bottom: 0; background: var(--accent); border-radius: 3px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 10px; overflow: hidden; background: #ffffff; display: flex; flex-direction: column; }
.card .pics { display: grid; grid-template-columns: 1fr 1fr; gap: 2px; background: #e9e9e4; }
.card figure { margin: 0; position: relative; background: #f2f2ee; aspect-ratio: 1 / 1; ` +
  `display: flex; align-items: center; justify-content: center; }
.card figure img { width: 100%; height: 100%; object-fit: cover; display: block; }
.card figure figcaption { position: absolute; left: 6px; top: 6px; background: rgba(17,24,39,0.72); ` +
  `color: #fff; font-size: 11.5px; padding: 1px 7px; border-radius: 999px; }
.card figure.win figcaption { background: #2666aa; }
.card .missing { color: var(--muted); font-size: 12px; }
.card .body { padding: 10px 14px 12px; }
.card .prompt { font-size: 14px; margin: 0 0 6px; overflow-wrap: anywhere; }
.card .facts { color: var(--muted); font-size: 12px; margin-bottom: 6px; }
.card table { width: 100%; font-size: 12.5px; margin: 0; }
.card td, .card th { padding: 3px 6px; }
.vote-a { color: #2666aa; font-weight: 600; }
.vote-b { color: #b5473a; font-weight: 600; }
.vote-tie { color: var(--muted); }
.tag { display: inline-block; border-radius: 4px; padding: 0 6px; font-size: 12px; background: #eef2f7; color: #344054; margin-right: 4px; }
.tag.bad { background: #fbe9e7; color: #9b2c1f; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 10px 0 30px; }
`;

export function pageShell(title: string, header: SafeHtml, body: SafeHtml): string {
  return `<!DOCTYPE html>\n${
    html`<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<style>${new SafeHtml(STYLE)}</style>
</head>
<body>
<header class="top"><div class="wrap">${header}</div></header>
<main><div class="wrap">${body}</div></main>
<footer>balanced-dpo · self-contained report: no script, no network</footer>
</body>
</html>
`.markup
  }`;
}

export function chip(key: string, value: string): SafeHtml {
  return html`<span class="chip">${key} <b>${value}</b></span>`;
}

export function tile(value: string, key: string): SafeHtml {
  return html`<div class="tile"><div class="v">${value}</div><div class="k">${key}</div></div>`;
}

export function section(id: string, title: string, lead: string | SafeHtml | null, content: HtmlValue): SafeHtml {
  return html`<section id="${id}"><h2>${title}</h2>${lead === null ? null : html`<p class="lead">${lead}</p>`}${content}</section>`;
}
