// `bdpo audit`, the runner: computes the audit (audit/build.ts), renders its page (pages/audit-page.ts) and writes
// report.html and report.json into the folder the user named. It also re-exports the audit's public names, so the
// CLI and callers have one entry point.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { buildAuditReport, type AuditOptions } from './audit/build.ts';
import { reportJson, type AuditResult } from './model.ts';
import { renderAuditPage } from './pages/audit-page.ts';
import { collectThumbnails, type ThumbnailOptions } from './thumbnails.ts';

export { AuditInputError, buildAuditReport, type AuditOptions } from './audit/build.ts';
export { ranksFromPairs } from './audit/ranked-groups.ts';
export type { AuditReport, AuditResult, ContestedPair, PatternRow, RaterTies, ScoreDistribution, SliceReport } from './model.ts';

export interface RunAuditOptions extends AuditOptions {
  /** Folder that receives report.html and report.json (created if needed). */
  out: string;
  thumbnails?: ThumbnailOptions;
}

/** The audit of `dir` into `options.out`/report.html and report.json. */
export async function runAudit(dir: string, options: RunAuditOptions): Promise<AuditResult> {
  const report = await buildAuditReport(dir, options);
  const shown = [...report.contested.byDisagreement, ...report.contested.mismatches];
  const thumbs = await collectThumbnails(
    dir,
    shown.flatMap((x) => [x.imageA, x.imageB]),
    options.thumbnails,
  );
  const page = renderAuditPage(report, thumbs);
  await mkdir(options.out, { recursive: true });
  const files = { html: join(options.out, 'report.html'), json: join(options.out, 'report.json') };
  const bytes = Buffer.from(page, 'utf8');
  await writeFileAtomic(files.html, bytes);
  await writeFileAtomic(files.json, Buffer.from(reportJson(report), 'utf8'));
  return { report, files, thumbnails: thumbs.size, htmlBytes: bytes.byteLength };
}
