// Both report pages in a real headless Chromium, opened from disk: the charts and thumbnails render, nothing is
// fetched, nothing logs an error, and a hostile prompt stays text. Needs Debian's `chromium` at /usr/bin/chromium
// (never a downloaded browser); without it the suite is skipped with a message saying so.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { runAudit } from '../../src/report/audit.ts';
import { runEval } from '../../src/report/eval.ts';
import { HOSTILE_PROMPT, writeAuditFixture, writeGenerationsFixture, type GenerationSpec } from '../support/report-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (install Debian's chromium package: apt-get install -y chromium)`;

let root: string;
let context: BrowserContext;
const pages: Record<'audit' | 'eval', string> = { audit: '', eval: '' };

function generations(model: string, shift: number): GenerationSpec {
  const images = [0, 1, 2].flatMap((prompt) =>
    [0, 1].map((seed) => ({ prompt, seed, scores: { pick: 20 + prompt + seed * shift, clip: 0.3 - 0.01 * prompt * shift } })),
  );
  return { model, images };
}

describe('report pages in headless Chromium', { skip }, () => {
  before(async () => {
    root = await makeTempDir('bdpo-browser-');
    const audit = await writeAuditFixture(join(root, 'audit-data'));
    pages.audit = (await runAudit(audit.dir, { out: join(root, 'audit') })).files.html;
    await writeGenerationsFixture(join(root, 'gen-a'), generations('model-a', 1));
    await writeGenerationsFixture(join(root, 'gen-b'), generations('model-b', -1));
    pages.eval = (await runEval(join(root, 'gen-a'), join(root, 'gen-b'), { out: join(root, 'eval'), resamples: 200 })).files.html;
    context = await chromium.launchPersistentContext(join(root, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1280, height: 900 },
    });
  });

  after(async () => {
    await context?.close();
    if (root) await removeDir(root);
  });

  /** Opens a page from disk, recording every request, console error and page error. */
  async function open(path: string): Promise<{ page: Page; url: string; requests: string[]; errors: string[] }> {
    const page = await context.newPage();
    const url = pathToFileURL(path).href;
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith('data:')) requests.push(request.url());
    });
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(url, { waitUntil: 'load' });
    return { page, url, requests, errors };
  }

  async function checkHostilePrompt(page: Page): Promise<void> {
    const pwned = await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned);
    assert.equal(pwned, undefined, 'the hostile prompt ran script');
    assert.equal(await page.locator('script').count(), 0);
    assert.equal(await page.locator('img[src="x"]').count(), 0);
    const prompt = page.locator('.prompt', { hasText: 'onerror=' }).first();
    assert.ok(await prompt.isVisible());
    assert.equal(await prompt.textContent(), HOSTILE_PROMPT);
  }

  async function checkImages(page: Page, expected: number): Promise<void> {
    const sources = await page.locator('img').evaluateAll((images) =>
      images.map((img) => ({
        src: (img as HTMLImageElement).src,
        loaded: (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0,
      })),
    );
    assert.equal(sources.length, expected);
    for (const image of sources) {
      assert.ok(image.src.startsWith('data:image/jpeg;base64,'), image.src.slice(0, 40));
      assert.ok(image.loaded, 'a thumbnail did not decode');
    }
  }

  test('audit page: charts, thumbnails, no request, no error, hostile prompt inert', async () => {
    const { page, url, requests, errors } = await open(pages.audit);
    // κ heat map, accuracy bars, 4 histograms, 5 reliability curves.
    assert.ok((await page.locator('svg').count()) >= 11);
    assert.ok(await page.locator('svg rect').first().isVisible());
    // 9 contested cards (every pair where the metrics split; top 24) + 2 mismatches, two images each.
    await checkImages(page, 22);
    await checkHostilePrompt(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window`);
    await page.screenshot({ path: '/tmp/bdpo-audit-report.png', fullPage: true });
    assert.deepEqual(requests, [url]);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('eval page: win-rate chart with whiskers, gallery, no request, no error, hostile prompt inert', async () => {
    const { page, url, requests, errors } = await open(pages.eval);
    assert.ok((await page.locator('svg .whisker').count()) >= 3);
    await checkImages(page, 6);
    await checkHostilePrompt(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window`);
    await page.screenshot({ path: '/tmp/bdpo-eval-report.png', fullPage: true });
    assert.deepEqual(requests, [url]);
    assert.deepEqual(errors, []);
    await page.close();
  });
});
