// The galleries of the report pages: cards of two thumbnails (data URIs) with their numbers, the audit's contested
// pairs and the eval's largest gaps.
import { fmt, fmtScore } from '../../core/format.ts';
import type { ContestedPair, EvalReport, GalleryItem } from '../model.ts';
import { metricColour } from './colours.ts';
import { html, type SafeHtml, joinHtml } from './markup.ts';

export function thumb(uri: string | undefined, caption: string, win: boolean): SafeHtml {
  return joinHtml(
    html`<figure class="${win ? 'win' : ''}">`,
    html`${uri === undefined ? html`<span class="missing">no image</span>` : html`<img src="${uri}" alt="${caption}">`}`,
    html`<figcaption>${caption}</figcaption></figure>`,
  );
}

function voteText(vote: number | null): SafeHtml {
  if (vote === null) return html`<span class="vote-tie">missing</span>`;
  if (vote > 0) return html`<span class="vote-a">a</span>`;
  if (vote < 0) return html`<span class="vote-b">b</span>`;
  return html`<span class="vote-tie">abstain</span>`;
}

function labelText(pref: number | null): string {
  if (pref === null || !Number.isFinite(pref)) return 'none';
  return pref > 0.5 ? 'a' : pref < 0.5 ? 'b' : 'tie';
}

export function contestedCard(pair: ContestedPair, report: { metrics: readonly string[] }, thumbs: ReadonlyMap<string, string>): SafeHtml {
  const label = pair.tie ? 'tie' : labelText(pair.label);
  const rows = pair.metrics.map((m) =>
    joinHtml(
      html`<tr><td><span class="swatch" style="background:${metricColour(report, m.metric)}"></span> ${m.metric}</td>`,
      html`<td class="num">${fmt(m.p)}</td><td>${voteText(m.vote)}</td></tr>`,
    ),
  );
  const human = labelText(pair.human);
  const winner = pair.tie ? null : labelText(pair.label);
  return joinHtml(
    html`<article class="card"><div class="pics">${thumb(thumbs.get(pair.imageA), 'a', winner === 'a')}`,
    html`${thumb(thumbs.get(pair.imageB), 'b', winner === 'b')}</div>
<div class="body"><p class="prompt">${pair.prompt ?? '(prompt not found)'}</p>
<div class="facts">`,
    html`<span class="tag">${pair.split ?? 'no split'}</span>`,
    html`${pair.category === null ? null : html`<span class="tag">${pair.category}</span>`}`,
    html`votes ${pair.votesA}–${pair.votesB} · disagreement ${fmt(pair.disagreement, 2)} bits · spread of p ${fmt(pair.spread, 2)}`,
    html`</div>
<table><thead><tr><th>metric</th><th class="num">p(a ≻ b)</th><th>vote</th></tr></thead><tbody>${rows}
<tr class="strong"><td>consensus</td><td class="num">${fmt(pair.soft)}</td><td>${label}</td></tr>
<tr class="strong"><td>human</td><td class="num">${fmt(pair.human, 1)}</td>`,
    html`<td class="${(human === 'a' || human === 'b') && (label === 'a' || label === 'b') && human !== label ? `vote-${human}` : ''}">`,
    html`${human}</td></tr></tbody></table>
<div class="facts" style="margin-top:6px">pair ${pair.pairId.slice(0, 12)}</div></div></article>`,
  );
}

export function galleryCard(
  item: GalleryItem,
  report: EvalReport,
  thumbs: { a: ReadonlyMap<string, string>; b: ReadonlyMap<string, string> },
): SafeHtml {
  const rows = item.scores.map((s) =>
    joinHtml(
      html`<tr><td><span class="swatch" style="background:${metricColour(report, s.metric)}"></span> ${s.metric}</td>`,
      html`<td class="num">${fmtScore(s.a)}</td><td class="num">${fmtScore(s.b)}</td>`,
      html`<td class="num">${fmt(s.z, 2)}</td></tr>`,
    ),
  );
  return joinHtml(
    html`<article class="card"><div class="pics">`,
    html`${thumb(thumbs.a.get(item.imageA), `A · ${report.a.label}`, item.gap > 0)}`,
    html`${thumb(thumbs.b.get(item.imageB), `B · ${report.b.label}`, item.gap < 0)}</div>
<div class="body">`,
    html`<p class="prompt">${item.text}</p>
<div class="facts">`,
    html`${item.promptIndex === null ? null : html`<span class="tag">#${item.promptIndex}</span>`}`,
    html`${item.category === null ? null : html`<span class="tag">${item.category}</span>`}`,
    html`${item.challenge === null ? null : html`<span class="tag">${item.challenge}</span>`}`,
    html`seed ${item.seed ?? '–'} · gap ${fmt(item.gap, 2)} sd (${item.gap >= 0 ? 'A' : 'B'} ahead)`,
    html`</div>
<table><thead><tr><th>metric</th><th class="num">A</th><th class="num">B</th><th class="num">(A−B)/sd</th>`,
    html`</tr></thead><tbody>${rows}</tbody></table></div></article>`,
  );
}
