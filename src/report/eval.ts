// `bdpo eval`, the runner: computes the eval (eval/build.ts), renders its page (pages/eval-page.ts) and writes
// report.html and report.json into the folder the user named. It also re-exports the eval's public names, so the
// CLI and callers have one entry point.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { buildEvalReport, type EvalOptions } from './eval/build.ts';
import { reportJson, type EvalResult } from './model.ts';
import { renderEvalPage } from './pages/eval-page.ts';
import { collectThumbnails, type ThumbnailOptions } from './thumbnails.ts';

export { buildEvalReport, type EvalOptions } from './eval/build.ts';
export { EvalCoverageError, EvalInputError, type GenerationKey } from './eval/sides.ts';
export type { EvalReport, EvalResult, GalleryItem, SideInfo } from './model.ts';

export interface RunEvalOptions extends EvalOptions {
  out: string;
  thumbnails?: ThumbnailOptions;
}

/** The evaluation of A against B into `options.out`/report.html and report.json. */
export async function runEval(dirA: string, dirB: string, options: RunEvalOptions): Promise<EvalResult> {
  const report = await buildEvalReport(dirA, dirB, options);
  const [thumbsA, thumbsB] = await Promise.all([
    collectThumbnails(
      dirA,
      report.gallery.map((g) => g.imageA),
      options.thumbnails,
    ),
    collectThumbnails(
      dirB,
      report.gallery.map((g) => g.imageB),
      options.thumbnails,
    ),
  ]);
  const page = renderEvalPage(report, { a: thumbsA, b: thumbsB });
  await mkdir(options.out, { recursive: true });
  const files = { html: join(options.out, 'report.html'), json: join(options.out, 'report.json') };
  const bytes = Buffer.from(page, 'utf8');
  await writeFileAtomic(files.html, bytes);
  await writeFileAtomic(files.json, Buffer.from(reportJson(report), 'utf8'));
  return { report, files, thumbnails: thumbsA.size + thumbsB.size, htmlBytes: bytes.byteLength };
}
