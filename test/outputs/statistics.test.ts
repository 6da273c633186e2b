// Statistics that are computed right but read wrong: each test builds a real dataset directory (Arrow parts, score
// Parquet, consensus files written by runConsensus) and checks what is printed or recorded, not only the number.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { writeParquetPart } from '../../src/io/parquet.ts';
import { CALIBRATION_FILE, runCalibrate, runConsensus } from '../../src/consensus/run.ts';
import { loadScoreTable } from '../../src/core/score-table.ts';
import { formatCalibrationSummary } from '../../src/cli/label.ts';
import { buildAuditReport, runAudit } from '../../src/report/audit.ts';
import { formatAuditSummary } from '../../src/cli/report-summary.ts';
import { renderAuditPage } from '../../src/report/html.ts';
import { intervalWarnings, WinRateAccumulator } from '../../src/report/winrate.ts';
import { SCORE_SPECS } from '../../src/core/schema.ts';
import { pairId, writeAuditFixture } from '../support/report-fixture.ts';
import { tempDir } from '../support/tmp.ts';

async function fixture(t: TestContext): Promise<string> {
  const dir = join(await tempDir(t, 'bdpo-stats-'), 'data');
  await writeAuditFixture(dir);
  return dir;
}

test('calibrate prints and records a likelihood gain only for metrics whose fitted τ is used', async (t) => {
  const dir = await fixture(t);
  const summary = await runCalibrate(dir, { splits: ['train', 'test'] });
  const recorded = JSON.parse(await readFile(join(dir, CALIBRATION_FILE), 'utf8')) as {
    metrics: Record<string, { status: string; gainPerPair: number | null; tauUsed: boolean; note: string | null }>;
  };
  const statuses = Object.values(recorded.metrics).map((m) => m.status);
  assert.ok(
    statuses.some((s) => s !== 'ok'),
    `the fixture needs a metric whose τ is not used: ${statuses.join(', ')}`,
  );
  const text = formatCalibrationSummary(summary);
  for (const [name, fit] of Object.entries(recorded.metrics)) {
    const line = text.split('\n').find((l) => l.trim().startsWith(`${name} `))!;
    if (fit.status === 'ok') {
      assert.equal(fit.tauUsed, true);
      assert.equal(typeof fit.gainPerPair, 'number');
      assert.match(line, /nats\/pair/);
    } else {
      assert.equal(fit.tauUsed, false, name);
      assert.equal(fit.gainPerPair, null, name);
      assert.match(fit.note ?? '', /not used/);
      assert.doesNotMatch(line, /nats\/pair/, line);
      assert.match(line, /not used/, line);
    }
  }
});

test('consensus agreement with humans under --ties human leaves out the ties the human label resolved', async (t) => {
  const dir = await fixture(t);
  const dropped = await runConsensus(dir, { rule: 'majority', calibrated: false });
  const human = await runConsensus(dir, { rule: 'majority', ties: 'human', calibrated: false });
  // Pairs 3, 10 and 11 tie; their label is the human label, which would agree by construction.
  assert.equal(human.byReason['tie-human'], 3);
  assert.equal(human.humanAgreementExcluded, 3);
  assert.equal(human.humanAgreement, dropped.humanAgreement);
  assert.equal(dropped.humanAgreementExcluded, 0);
});

test("the audit's consensus rater follows the consensus folder's tie policy", async (t) => {
  const dir = await fixture(t);
  await runConsensus(dir, { rule: 'majority', ties: 'pick', calibrated: false });
  const report = await buildAuditReport(dir, { rule: 'majority.ties-pick' });
  assert.equal(report.ties, 'pick');
  // The rule ties on pairs 3, 7, 10, 11; pick resolves 3 (b), 7 (a), 10 and 11 (a).
  assert.equal(report.overall.consensusTies, 4);
  const consensusTies = report.overall.tieRates.find((r) => r.rater === 'consensus')!;
  assert.equal(consensusTies.ties, 0);
  const accuracy = report.overall.accuracy.find((a) => a.rater === 'consensus')!;
  // Decided by the rule: 1 ✓ 2 ✓ 4 ✓ 5 ✗ 8 ✗ 12 ✓ 9 ✓; resolved by pick: 3 ✓ 10 ✓ 11 ✓ (6 is a human tie).
  assert.equal(accuracy.agree, 8);
  assert.equal(accuracy.disagree, 2);
});

test('calibrate fits on the train split by default, --split chooses; the audit says whether it is in-sample', async (t) => {
  const dir = await fixture(t);
  const byDefault = await runCalibrate(dir);
  assert.deepEqual(byDefault.splits, ['train']);
  // Labelled train pairs: 1, 2, 3, 4, 5, 6, 12 (pick has every score).
  assert.equal(byDefault.metrics.pick!.n, 7);
  const recorded = JSON.parse(await readFile(join(dir, CALIBRATION_FILE), 'utf8')) as { splits: string[] };
  assert.deepEqual(recorded.splits, ['train']);
  assert.match(formatCalibrationSummary(byDefault), /fitted on split train/);

  const onTest = await runCalibrate(dir, { splits: ['test'] });
  assert.equal(onTest.metrics.pick!.n, 4);
  await assert.rejects(runCalibrate(dir, { splits: ['valid'] }), /split "valid".*test, train/);

  await runCalibrate(dir);
  await runConsensus(dir, { rule: 'majority' });
  const report = await buildAuditReport(dir, {});
  assert.ok(report.temperatures && Object.values(report.temperatures).some((x) => x.source === 'calibrated'));
  assert.deepEqual(report.calibrationFit.fittedOn, ['train']);
  // Human-labelled pairs: 7 train (in-sample) and 4 test.
  assert.equal(report.calibrationFit.inSamplePairs, 7);
  assert.equal(report.calibrationFit.labelledPairs, 11);
  const out = join(dir, '..', 'audit');
  assert.match(formatAuditSummary(await runAudit(dir, { out })), /in-sample/);
});

test('a degenerate bootstrap interval is flagged; the average interval uses only prompts every metric has', () => {
  const one = new WinRateAccumulator(['clip']);
  one.add('p1', 'clip', 1, 0);
  one.add('p1', 'clip', 2, 0);
  const single = one.result({ resamples: 50 });
  assert.equal(single.metrics[0]!.degenerate, 'one prompt');
  assert.equal(single.average.degenerate, 'one prompt');
  assert.match(intervalWarnings(single).join('\n'), /clip: the 95% interval has zero width \(one prompt\)/);

  const always = new WinRateAccumulator(['clip']);
  for (const p of ['p1', 'p2', 'p3']) always.add(p, 'clip', 1, 0);
  assert.equal(always.result({ resamples: 50 }).metrics[0]!.degenerate, 'same value on every prompt');

  const mixed = new WinRateAccumulator(['clip', 'hps']);
  // clip on four prompts (A wins 2, loses 2), hps only on p1 and p2 where both metrics say A wins.
  mixed.add('p1', 'clip', 1, 0);
  mixed.add('p2', 'clip', 1, 0);
  mixed.add('p3', 'clip', 0, 1);
  mixed.add('p4', 'clip', 0, 1);
  mixed.add('p1', 'hps', 1, 0);
  mixed.add('p2', 'hps', 1, 0);
  const result = mixed.result({ resamples: 200 });
  assert.equal(result.average.prompts, 2);
  // Over p1 and p2 every metric says A wins: the average's interval is [1, 1] (and flagged), not a mix.
  assert.equal(result.average.lo, 1);
  assert.equal(result.average.hi, 1);
  assert.equal(result.metrics[0]!.degenerate, undefined);
  assert.match(intervalWarnings(result).join('\n'), /only the 2 of 4 prompts every metric has/);
});

test('an image scored twice under one prompt counts once in the z-score statistics and the histograms', async (t) => {
  const dir = await fixture(t);
  const before = await loadScoreTable(dir);
  const audited = await buildAuditReport(dir, {});
  // A second scores part repeats two rows of aes (as when an image sits in two splits).
  await writeParquetPart(dir, 'scores/aes/part-zdup.parquet', SCORE_SPECS, {
    image_id: ['img-1a', 'img-2a'],
    prompt_id: ['prompt-animal', 'prompt-animal'],
    score: [1, 1],
    metric_version: ['aes-1', 'aes-1'],
  });
  const after = await loadScoreTable(dir);
  assert.deepEqual(after.stats.aes, before.stats.aes);
  const report = await buildAuditReport(dir, {});
  const aes = (r: typeof report) => r.scores.find((s) => s.metric === 'aes')!;
  assert.equal(aes(report).count, aes(audited).count);
  assert.deepEqual(aes(report).histogram, aes(audited).histogram);
});

test('the human vote that disagrees with the consensus is coloured by the side the human took', async (t) => {
  const dir = await fixture(t);
  const report = await buildAuditReport(dir, {});
  const page = renderAuditPage(report, new Map());
  const card = (n: number): string => {
    const cards = page.split('<article class="card">').filter((c) => c.includes(`pair ${pairId(n).slice(0, 12)}<`));
    assert.ok(cards.length > 0, `no card for ${pairId(n)}`);
    return cards[0]!;
  };
  const humanCell = (n: number): string => /<td>human<\/td><td class="num">[^<]*<\/td><td class="([^"]*)">/.exec(card(n))![1]!;
  // Pair 5: consensus b, human a. Pair 8: consensus a, human b.
  assert.equal(humanCell(5), 'vote-a');
  assert.equal(humanCell(8), 'vote-b');
});
