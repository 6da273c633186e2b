// `eval` over two hand-made generation folders: three prompts × two seeds, two metrics scored on both sides with the
// scores below (A vs B), one metric scored on A only and one scored with different versions (both left out).
//
//            seed  pick (A, B)        clip (A, B)
//   prompt 0   0   2 > 1  win         .3 > .1  win
//   prompt 0   1   1 = 1  tie         .3 > .2  win
//   prompt 1   0   0 < 1  loss        .3 > .1  win
//   prompt 1   1   0 < 2  loss        .1 < .3  loss
//   prompt 2   0   3 > 1  win         .2 = .2  tie
//   prompt 2   1   3 > 2  win         .2 = .2  tie
//
// Per prompt (mean over seeds): pick .75, 0, 1 → 7/12; clip 1, .5, .5 → 2/3; average 5/8.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runEval } from '../../src/report/eval.ts';
import { buildEvalReport } from '../../src/report/eval/build.ts';
import { EvalCoverageError } from '../../src/report/eval/sides.ts';
import type { EvalReport, EvalResult } from '../../src/report/model.ts';
import { WinRateAccumulator, type CategoryWinRate } from '../../src/report/winrate.ts';
import { escapeHtml } from '../../src/report/pages/markup.ts';
import { evalCommand } from '../../src/cli/report.ts';
import { EVAL_PROMPTS, HOSTILE_PROMPT, writeGenerationsFixture, type GenerationSpec } from '../support/report-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const close = (actual: number | undefined, expected: number, tol = 1e-12): void =>
  assert.ok(actual !== undefined && Math.abs(actual - expected) <= tol, `${actual} is not within ${tol} of ${expected}`);

const PICK: [number, number][] = [
  [2, 1],
  [1, 1],
  [0, 1],
  [0, 2],
  [3, 1],
  [3, 2],
];
const CLIP: [number, number][] = [
  [0.3, 0.1],
  [0.3, 0.2],
  [0.3, 0.1],
  [0.1, 0.3],
  [0.2, 0.2],
  [0.2, 0.2],
];
const KEYS = [
  [0, 0],
  [0, 1],
  [1, 0],
  [1, 1],
  [2, 0],
  [2, 1],
] as const;

function side(model: string, which: 0 | 1, keys: readonly (readonly [number, number])[] = KEYS): GenerationSpec {
  return {
    model,
    images: keys.map(([prompt, seed]) => {
      const k = KEYS.findIndex(([p, s]) => p === prompt && s === seed);
      const scores: Record<string, number> = { pick: PICK[k]?.[which] ?? 0, clip: CLIP[k]?.[which] ?? 0, hps: 0.25 };
      if (which === 0) scores.aes = 5;
      return { prompt, seed, scores };
    }),
    versions: { hps: which === 0 ? 'v2.0' : 'v2.1' },
  };
}

let root: string;
let dirA: string;
let dirB: string;
let result: EvalResult;
let report: EvalReport;

before(async () => {
  root = await makeTempDir('bdpo-eval-');
  dirA = join(root, 'model-a');
  dirB = join(root, 'model-b');
  await writeGenerationsFixture(dirA, side('model-a', 0));
  // B's images are written in another order: pairing is by (prompt, seed), not by position.
  await writeGenerationsFixture(dirB, { ...side('model-b', 1), images: [...side('model-b', 1).images].reverse() });
  result = await runEval(dirA, dirB, { out: join(root, 'report'), resamples: 500, top: 3 });
  report = result.report;
});

after(async () => {
  if (root) await removeDir(root);
});

describe('eval win rates against the hand-computed table', () => {
  test('only metrics scored on both sides with the same version', () => {
    assert.deepEqual(report.metrics, ['clip', 'pick']);
    assert.deepEqual(report.ignoredMetrics, [
      { metric: 'aes', reason: 'scored on A only' },
      { metric: 'hps', reason: 'versions differ (A v2.0, B v2.1): not comparable' },
    ]);
    assert.equal(report.a.label, 'model-a');
    assert.equal(report.b.label, 'model-b');
    assert.equal(report.comparisons, 6);
    assert.deepEqual(report.seeds, { min: 2, max: 2 });
    assert.equal(report.ties, 3);
  });

  test('per metric: mean over prompts of the mean credit over seeds, ½ for equal scores', () => {
    const w = report.winRate;
    assert.equal(w.prompts, 3);
    const pick = w.metrics.find((m) => m.metric === 'pick')!;
    const clip = w.metrics.find((m) => m.metric === 'clip')!;
    close(pick.winRate, 7 / 12);
    assert.deepEqual([pick.wins, pick.ties, pick.losses], [3, 1, 2]);
    close(clip.winRate, 2 / 3);
    assert.deepEqual([clip.wins, clip.ties, clip.losses], [3, 2, 1]);
    close(w.average.winRate, 5 / 8);
    for (const e of [pick, clip, w.average]) assert.ok(e.lo <= e.winRate && e.winRate <= e.hi && e.lo >= 0 && e.hi <= 1 && e.lo < e.hi);
  });

  test('intervals: the bootstrap over prompts, the same as the win-rate accumulator fed by hand', () => {
    const reference = new WinRateAccumulator(['clip', 'pick']);
    KEYS.forEach(([prompt, seed], k) => {
      void seed;
      reference.add(`gen-prompt-${prompt}`, 'pick', PICK[k]![0], PICK[k]![1], EVAL_PROMPTS[prompt]!.category);
      reference.add(`gen-prompt-${prompt}`, 'clip', CLIP[k]![0], CLIP[k]![1], EVAL_PROMPTS[prompt]!.category);
    });
    const expected = reference.result({ resamples: 500 });
    assert.deepEqual(report.winRate.metrics, expected.metrics);
    assert.deepEqual(report.winRate.average, expected.average);
  });

  test('per category and per challenge', () => {
    const cat: Record<string, CategoryWinRate> = Object.fromEntries(report.winRate.byCategory.map((c) => [c.category, c]));
    close(cat.Animals!.metrics.find((m) => m.metric === 'pick')!.winRate, 0.375);
    close(cat.Animals!.metrics.find((m) => m.metric === 'clip')!.winRate, 0.75);
    close(cat.Vehicles!.metrics.find((m) => m.metric === 'pick')!.winRate, 1);
    close(cat.Vehicles!.average.winRate, 0.75);
    // One prompt: every resample is that prompt.
    assert.deepEqual([cat.Vehicles!.average.lo, cat.Vehicles!.average.hi], [0.75, 0.75]);
    const challenge: Record<string, CategoryWinRate> = Object.fromEntries(report.byChallenge.map((c) => [c.category, c]));
    assert.deepEqual(Object.keys(challenge), ['Basic', 'Complex']);
    close(challenge.Basic!.metrics.find((m) => m.metric === 'pick')!.winRate, 0.875);
    close(challenge.Complex!.metrics.find((m) => m.metric === 'pick')!.winRate, 0);
    close(challenge.Complex!.average.winRate, 0.25);
  });

  test('gallery: one entry per prompt, largest |gap| first, gap in pooled standard deviations', () => {
    assert.equal(report.gallery.length, 3);
    const gaps = report.gallery.map((g) => Math.abs(g.gap));
    assert.deepEqual(
      gaps,
      [...gaps].sort((x, y) => y - x),
    );
    // Pooled over the 12 images: pick scores 2,1,0,0,3,3 | 1,1,1,2,1,2; clip .3,.3,.3,.1,.2,.2 | .1,.2,.1,.3,.2,.2.
    const sd = (xs: number[]) => {
      const m = xs.reduce((a, b) => a + b, 0) / xs.length;
      return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
    };
    const sdPick = sd(PICK.flat());
    const sdClip = sd(CLIP.flat());
    // Prompt 2: seed 0 gap ((3−1)/sdPick + 0)/2 beats seed 1 ((3−2)/sdPick)/2.
    const p2 = report.gallery.find((g) => g.promptIndex === 2)!;
    assert.equal(p2.seed, 0);
    close(p2.gap, 2 / sdPick / 2, 1e-9);
    // Prompt 1: seed 0 (−1/sdPick + .2/sdClip)/2 vs seed 1 (−2/sdPick − .2/sdClip)/2: seed 1 is larger.
    const p1 = report.gallery.find((g) => g.promptIndex === 1)!;
    assert.equal(p1.seed, 1);
    close(p1.gap, (-2 / sdPick - 0.2 / sdClip) / 2, 1e-9);
    assert.equal(p1.text, HOSTILE_PROMPT);
  });
});

describe('eval coverage and inputs', () => {
  test('different (prompt, seed)s: an error naming the missing ones, never a subset', async () => {
    const partial = join(root, 'partial');
    // B lacks prompt 1 seed 1 and has prompt 2 seed 7 that A lacks.
    await writeGenerationsFixture(
      partial,
      side('model-b', 1, [
        [0, 0],
        [0, 1],
        [1, 0],
        [2, 0],
        [2, 1],
        [2, 7],
      ]),
    );
    await assert.rejects(buildEvalReport(dirA, partial), (error: unknown) => {
      assert.ok(error instanceof EvalCoverageError);
      assert.match(error.message, /do not cover the same \(prompt, seed\)s/);
      assert.match(error.message, /1 in A are missing from B: #1 "a red car <img src=x onerror=\\"window\.__…" seed 1/);
      assert.match(error.message, /1 in B are missing from A: #2 "a blue bicycle leaning on a wall" seed 7/);
      assert.deepEqual(
        error.missingFromB.map((k) => [k.promptIndex, k.seed]),
        [[1, 1]],
      );
      assert.deepEqual(
        error.missingFromA.map((k) => [k.promptIndex, k.seed]),
        [[2, 7]],
      );
      return true;
    });
    const few = join(root, 'few');
    await writeGenerationsFixture(few, side('model-b', 1, [[0, 0]]));
    await assert.rejects(
      buildEvalReport(dirA, few),
      /5 in A are missing from B: #0 "a corgi wearing a party hat" seed 1; #1 .* seed 0; #1 .* seed 1; #2 .* seed 0; #2 .* seed 1$/,
    );
    await assert.rejects(buildEvalReport(few, dirA), /5 in B are missing from A/);
    // More than five: the first five in prompt-list order, then the count of the rest.
    const wide = join(root, 'wide');
    await writeGenerationsFixture(
      wide,
      side(
        'model-b',
        1,
        [0, 1, 2].flatMap((p) => [0, 1, 2, 3].map((s) => [p, s] as const)),
      ),
    );
    await assert.rejects(
      buildEvalReport(dirA, wide),
      /A \(.*\) and B \(.*\) do not cover the same \(prompt, seed\)s:\n {2}6 in B are missing from A: #0 "a corgi wearing a party hat" seed 2; #0 .* seed 3; #1 .* seed 2; #1 .* seed 3; #2 .* seed 2; … 1 more$/,
    );
  });

  test('two images for one (prompt, seed), or two models in one folder, are refused', async () => {
    const twice = join(root, 'twice');
    await writeGenerationsFixture(twice, side('model-b', 1, [...KEYS, [0, 0]]));
    await assert.rejects(
      buildEvalReport(dirA, twice),
      /1 \(prompt, seed\)s have more than one image: #0 "a corgi wearing a party hat" seed 0/,
    );
  });

  test('--model-a / --model-b pick one model of a directory; an absent model is an error naming those present', async () => {
    const self = await buildEvalReport(dirA, dirA, { modelA: 'model-a', modelB: 'model-a', resamples: 50 });
    assert.equal(self.a.label, 'model-a');
    assert.ok(self.winRate.metrics.length > 0);
    for (const metric of self.winRate.metrics) assert.equal(metric.winRate, 0.5, metric.metric);
    await assert.rejects(buildEvalReport(dirA, dirB, { modelA: 'nope' }), /no images of model "nope" \(models: model-a\)/);
  });

  test('no common metric is an error that lists both sides', async () => {
    const other = join(root, 'other-metrics');
    await writeGenerationsFixture(other, { model: 'm', images: KEYS.map(([prompt, seed]) => ({ prompt, seed, scores: { x: 1 } })) });
    await assert.rejects(buildEvalReport(dirA, other), /no metric is scored on both sides \(A: aes, clip, hps, pick; B: x\)/);
  });

  test('outputs: the page escapes the prompts and embeds the thumbnails; report.json has the numbers', async () => {
    const page = await readFile(result.files.html, 'utf8');
    assert.ok(!/<script/i.test(page));
    assert.ok(page.includes(escapeHtml(HOSTILE_PROMPT)));
    assert.ok(!page.includes('<img src=x'));
    assert.equal((page.match(/<img src="data:image\/jpeg;base64,/g) ?? []).length, 6);
    assert.equal(result.thumbnails, 6);
    assert.ok(page.includes('58.3%') && page.includes('62.5%'));
    const json = JSON.parse(await readFile(result.files.json, 'utf8')) as EvalReport;
    assert.deepEqual(json.winRate.average, report.winRate.average);
  });

  test('CLI: summary on stdout, usage errors', async (t) => {
    const lines: string[] = [];
    t.mock.method(console, 'log', (line: string) => lines.push(line));
    assert.equal(await evalCommand(['--a', dirA, '--b', dirB, '--out', join(root, 'cli'), '--resamples', '200']), 0);
    const text = lines.join('\n');
    assert.match(text, /3 prompts × 2 seeds = 6 comparisons/);
    assert.match(text, /pick\s+A wins 58\.3%/);
    assert.match(text, /not compared: aes \(scored on A only\)/);
    await assert.rejects(evalCommand(['--a', dirA, '--out', join(root, 'cli')]), /--b is required/);
    await assert.rejects(
      evalCommand(['--a', dirA, '--b', dirB, '--out', join(root, 'cli'), '--resamples', '0']),
      /--resamples must be an integer in 1\.\.1000000, got "0"/,
    );
  });
});
