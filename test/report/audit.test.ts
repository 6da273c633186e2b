// The audit over a hand-made dataset (test/support/report-fixture.ts) whose every vote is known: the votes of the
// four metrics, the majority consensus and the humans per pair are
//
//   pair split  category  aes clip hps pick | consensus | human
//    1   train  animal     +   +    +   +   |  a        |  a
//    2   train  animal     +   +    +   −   |  a        |  a
//    3   train  animal     +   +    −   −   |  tie      |  b
//    4   train  vehicle    −   −    −   −   |  b        |  b
//    5   train  vehicle    +   −    −   −   |  b        |  a
//    6   train  –          0   +    +   −   |  a        |  tie
//    7   test   –          −   −    +   +   |  tie      |  none
//    8   test   –          +   +    +   −   |  a        |  b
//    9   test   – (HPD)    +   −    +   0   |  a        |  a
//   10   test   – (HPD)    +   −    −   +   |  tie      |  a
//   11   test   – (HPD)    +   −    −   +   |  tie      |  a
//   12   train  animal     ∅   +    +   +   |  a        |  a      (∅: aes has no score)
//
// and the expected numbers below are worked out by hand from this table.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { runAudit } from '../../src/report/audit.ts';
import { buildAuditReport } from '../../src/report/audit/build.ts';
import { ranksFromPairs } from '../../src/report/audit/ranked-groups.ts';
import type { AuditReport, AuditResult, SliceReport } from '../../src/report/model.ts';
import { escapeHtml, html, CONTENT_SECURITY_POLICY } from '../../src/report/pages/markup.ts';
import { TopN } from '../../src/report/top-n.ts';
import { auditCommand } from '../../src/cli/report.ts';
import { HOSTILE_PROMPT, pairId, writeAuditFixture, type AuditFixture } from '../support/report-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const close = (actual: number | null | undefined, expected: number, tol = 1e-12): void =>
  assert.ok(actual !== null && actual !== undefined && Math.abs(actual - expected) <= tol, `${actual} is not within ${tol} of ${expected}`);

let root: string;
let fixture: AuditFixture;
let result: AuditResult;
let report: AuditReport;

before(async () => {
  root = await makeTempDir('bdpo-audit-');
  fixture = await writeAuditFixture(join(root, 'data'));
  result = await runAudit(fixture.dir, { out: join(root, 'report'), top: 4 });
  report = result.report;
});

after(async () => {
  if (root) await removeDir(root);
});

const kappa = (slice: SliceReport, x: string, y: string) => slice.agreement.find((p) => p.x === x && p.y === y)!;
const accuracy = (slice: SliceReport, rater: string) => slice.accuracy.find((a) => a.rater === rater)!;

describe('audit statistics against the hand-computed table', () => {
  test('header: rule, tie policy, metrics, consensus tie rate', () => {
    assert.equal(report.rule, 'majority');
    assert.equal(report.ties, 'drop');
    assert.deepEqual(report.metrics, ['aes', 'clip', 'hps', 'pick']);
    const o = report.overall;
    assert.equal(o.pairs, 12);
    assert.equal(o.humanLabelled, 11);
    // Ties: pairs 3, 7, 10, 11 of 12 voted pairs.
    assert.equal(o.consensusTies, 4);
    close(o.tieRate, 1 / 3);
    assert.equal(fixture.consensus.tiesCount, 4);
  });

  test("Cohen's κ and raw agreement between raters", () => {
    const o = report.overall;
    // aes vs human, 10 pairs (7: no human, 12: no aes). aes a/b/tie = 8/1/1, human 6/3/1, diagonal 6 + 1 + 1.
    // p_o = 0.8, p_e = .8·.6 + .1·.3 + .1·.1 = .52, κ = .28/.48 = 7/12.
    const ah = kappa(o, 'aes', 'human');
    assert.equal(ah.n, 10);
    assert.equal(ah.skipped, 2);
    close(ah.agreement, 0.8);
    close(ah.expected, 0.52);
    close(ah.kappa, 7 / 12);
    // pick vs human, 11 pairs: p_o = 7/11, p_e = 47/121, κ = 15/37.
    const ph = kappa(o, 'pick', 'human');
    assert.equal(ph.n, 11);
    close(ph.agreement, 7 / 11);
    close(ph.kappa, 15 / 37);
    // aes vs clip, 11 pairs: p_o = 6/11, p_e = 52/121, κ = 14/69.
    close(kappa(o, 'aes', 'clip').kappa, 14 / 69);
    // clip vs hps, all 12: p_o = 3/4, p_e = 1/2, κ = 1/2.
    close(kappa(o, 'clip', 'hps').agreement, 0.75);
    close(kappa(o, 'clip', 'hps').kappa, 0.5);
    // consensus (tie when the rule tied) vs human: p_o = 5/11, p_e = 51/121, κ = 2/35.
    close(kappa(o, 'consensus', 'human').kappa, 2 / 35);
    // κ with humans of aes, clip, hps, pick: 7/12, −13/64, 9/64, 15/37; their mean 1645/7104.
    close(kappa(o, 'clip', 'human').kappa, -13 / 64);
    close(kappa(o, 'hps', 'human').kappa, 9 / 64);
    close(o.meanKappaVsHuman, 1645 / 7104);
  });

  test("Fleiss' κ across the four metrics (pair 12, with a missing score, left out)", () => {
    const f = report.overall.fleiss!;
    assert.equal(f.items, 11);
    assert.equal(f.skipped, 1);
    // P̄ = 31/66, P̄_e = 447/968, κ = 23/1563.
    close(f.observed, 31 / 66);
    close(f.expected, 447 / 968);
    close(f.kappa, 23 / 1563);
  });

  test('tie-aware accuracy against humans, ½ when exactly one side is a tie', () => {
    const o = report.overall;
    // aes: 8 of 10 credit (pair 6 is a tie on both sides: 1).
    close(accuracy(o, 'aes').accuracy, 4 / 5);
    assert.equal(accuracy(o, 'aes').bothTie, 1);
    close(accuracy(o, 'clip').accuracy, 9 / 22);
    close(accuracy(o, 'hps').accuracy, 13 / 22);
    close(accuracy(o, 'pick').accuracy, 8 / 11);
    // consensus: agree on 1, 2, 4, 9, 12; ½ on 3, 10, 11 (rule tie) and 6 (human tie); 0 on 5, 8 → 7/11.
    const c = accuracy(o, 'consensus');
    assert.deepEqual([c.n, c.agree, c.disagree, c.predictedTie, c.humanTie], [11, 5, 2, 3, 1]);
    close(c.accuracy, 7 / 11);
  });

  test('tie rates per rater', () => {
    const ties = Object.fromEntries(report.overall.tieRates.map((t) => [t.rater, [t.votes, t.ties]]));
    assert.deepEqual(ties, { aes: [11, 1], clip: [12, 0], hps: [12, 0], pick: [12, 1], consensus: [12, 4], human: [11, 1] });
  });

  test('per split and per category', () => {
    const split = (name: string) => report.bySplit.find((s) => s.name === name)!;
    assert.deepEqual(
      report.bySplit.map((s) => [s.name, s.pairs]),
      [
        ['test', 5],
        ['train', 7],
      ],
    );
    close(split('train').tieRate, 1 / 7);
    close(split('test').tieRate, 3 / 5);
    close(split('train').fleiss!.kappa, 7 / 31);
    close(split('test').fleiss!.kappa, -79 / 321);
    close(accuracy(split('train'), 'consensus').accuracy, 5 / 7);
    close(accuracy(split('test'), 'pick').accuracy, 7 / 8);
    close(kappa(split('train'), 'aes', 'human').kappa, 5 / 7);
    close(kappa(split('test'), 'consensus', 'human').kappa, -1 / 5);

    const category = (name: string) => report.byCategory.find((s) => s.name === name)!;
    assert.deepEqual(
      report.byCategory.map((s) => [s.name, s.pairs]),
      [
        ['animal', 4],
        ['vehicle', 2],
        ['(none)', 6],
      ],
    );
    close(category('animal').fleiss!.kappa, -1 / 27);
    close(accuracy(category('animal'), 'consensus').accuracy, 7 / 8);
    close(kappa(category('animal'), 'consensus', 'human').kappa, 3 / 7);
    // aes and clip agree on all 3 animal pairs with both, each always voting a: κ is 0/0.
    assert.ok(Number.isNaN(kappa(category('animal'), 'aes', 'clip').kappa));
    close(category('vehicle').fleiss!.kappa, -1 / 7);
    close(kappa(category('vehicle'), 'aes', 'human').kappa, 1);
  });

  test("Kendall's τ within the ranked group, ranks rebuilt from its pairs", () => {
    assert.deepEqual(report.rankedGroups, { groups: 1, incomplete: 0, pairs: 3 });
    const tau = Object.fromEntries(report.overall.kendall!.map((k) => [k.metric, k.mean]));
    // Humans: x ≻ y ≻ z. aes 3,2,1 → +1; clip 1,2,3 → −1; hps 2,1,3: (x,y) concordant, (x,z), (y,z) discordant →
    // −1/3; pick 1,1,0: one tie in the scores, 2 concordant → 2/√(2·3).
    close(tau.aes, 1);
    close(tau.clip, -1);
    close(tau.hps, -1 / 3);
    close(tau.pick, 2 / Math.sqrt(6));
    assert.equal(report.bySplit.find((s) => s.name === 'train')!.kendall, null);
    close(report.bySplit.find((s) => s.name === 'test')!.kendall![0]!.mean, 1);
  });

  test('vote patterns (folded coalitions) and which side the humans took', () => {
    const patterns = Object.fromEntries(
      report.overall.patterns.map((p) => [p.key, [p.count, p.human.left, p.human.right, p.human.tie, p.human.unlabelled]]),
    );
    assert.deepEqual(patterns, {
      'aes+clip+hps+pick vs —': [2, 2, 0, 0, 0], // 1 (all a), 4 (all b, folded)
      'aes+clip+hps vs pick': [2, 1, 1, 0, 0], // 2, 8
      'aes+clip vs hps+pick': [2, 0, 1, 0, 1], // 3, 7 (7 unlabelled, folded)
      'aes+pick vs clip+hps': [2, 2, 0, 0, 0], // 10, 11
      'aes vs clip+hps+pick': [1, 1, 0, 0, 0], // 5
      'clip+hps vs pick (tie: aes)': [1, 0, 0, 1, 0], // 6
      'aes+hps vs clip (tie: pick)': [1, 1, 0, 0, 0], // 9
      'clip+hps+pick vs — (missing: aes)': [1, 1, 0, 0, 0], // 12
    });
    assert.equal(report.overall.distinctPatterns, 8);
    close(report.overall.patterns.find((p) => p.key === 'aes+clip+hps vs pick')!.humanSidesWithLeft, 0.5);
  });

  test('contested pairs: highest disagreement, then the widest spread of p', () => {
    // Entropy 1 (2–2) for pairs 3, 7, 10, 11; spreads σ(3)−σ(−3), σ(.5)−σ(−.5), σ(2)−σ(−2), σ(1)−σ(−2).
    assert.deepEqual(
      report.contested.byDisagreement.map((p) => p.pairId),
      [3, 10, 11, 7].map(pairId),
    );
    const s = (x: number) => 1 / (1 + Math.exp(-x));
    close(report.contested.byDisagreement[0]!.spread, s(3) - s(-3));
    close(report.contested.byDisagreement[2]!.spread, s(1) - s(-2));
    close(report.contested.byDisagreement[0]!.disagreement!, 1);
    const first = report.contested.byDisagreement[0]!;
    assert.equal(first.prompt, 'a cat sleeping on a windowsill');
    assert.deepEqual(
      first.metrics.map((m) => m.vote),
      [1, 1, -1, -1],
    );
    close(first.metrics[0]!.p!, s(3));
  });

  test('unanimous pairs are never contested', async () => {
    const all = await buildAuditReport(fixture.dir, { top: 24 });
    // Pairs 1 (4–0), 4 (0–4) and 12 (3–0, aes missing) have disagreement 0 and are left out. After the four 2–2
    // splits come the 2–1 splits 6 and 9 (0.918 bits), then the 3–1 splits 2, 5, 8 (0.811 bits); within each, the
    // spreads are all σ(1) − σ(−1), so pair ids decide.
    assert.deepEqual(
      all.contested.byDisagreement.map((p) => p.pairId),
      [3, 10, 11, 7, 6, 9, 2, 5, 8].map(pairId),
    );
    close(all.contested.byDisagreement[4]!.disagreement!, -(2 / 3) * Math.log2(2 / 3) - (1 / 3) * Math.log2(1 / 3));
  });

  test('consensus ≠ human: decided on both sides and opposite', () => {
    // Both decided: 1, 2, 4, 5, 8, 9, 12; opposite: 5 and 8.
    assert.equal(report.contested.mismatchCompared, 7);
    assert.equal(report.contested.mismatchCount, 2);
    assert.deepEqual(report.contested.mismatches.map((p) => p.pairId).sort(), [pairId(5), pairId(8)]);
    assert.equal(report.contested.mismatches.find((p) => p.pairId === pairId(5))!.prompt, HOSTILE_PROMPT);
  });

  test('score histograms and calibration inputs', () => {
    const scores = Object.fromEntries(report.scores.map((s) => [s.metric, s]));
    // 9 ordinary pairs × 2 images + 3 group images; aes lacks one.
    assert.equal(scores.aes!.count, 20);
    assert.equal(scores.pick!.count, 21);
    assert.equal(
      scores.pick!.histogram.counts.reduce((a, b) => a + b, 0),
      21,
    );
    // pick's scores: a-images 1, −1, −3, −1, −1, −1, 0.5, −1, 1; group 1, 1, 0; b-images 0 → sum −3.5.
    close(scores.pick!.mean, -3.5 / 21);
    close(scores.pick!.min, -3);
    close(scores.pick!.max, 1);
    const calibration = Object.fromEntries(report.calibration.map((c) => [c.rater, c.reliability]));
    assert.equal(calibration.aes!.count, 10);
    assert.equal(calibration.pick!.count, 11);
    // The consensus soft label is the vote share (½ on a 2–2 tie, never null here): the 11 labelled pairs.
    assert.equal(calibration.consensus!.count, 11);
  });
});

describe('audit outputs', () => {
  test('report.json holds the same numbers, NaN written as null', async () => {
    const json = JSON.parse(await readFile(result.files.json, 'utf8')) as AuditReport;
    assert.equal(json.overall.fleiss!.kappa, report.overall.fleiss!.kappa);
    assert.equal(json.byCategory.find((s) => s.name === 'animal')!.agreement.find((p) => p.x === 'aes' && p.y === 'clip')!.kappa, null);
    assert.deepEqual(
      json.contested.byDisagreement.map((p) => p.pairId),
      report.contested.byDisagreement.map((p) => p.pairId),
    );
  });

  test('the page: CSP, no script, escaped prompts, inline SVG, small data-URI thumbnails', async () => {
    const page = await readFile(result.files.html, 'utf8');
    assert.ok(page.includes(`<meta http-equiv="Content-Security-Policy" content="${escapeHtml(CONTENT_SECURITY_POLICY)}">`));
    assert.ok(!/<script/i.test(page), 'no script element');
    assert.ok(!page.includes('<img src=x'), 'the hostile prompt is not markup');
    assert.ok(page.includes(escapeHtml(HOSTILE_PROMPT)));
    assert.ok(!/(src|href)="(?!data:|#)/.test(page), 'every src/href is a data: URI or an in-page anchor');
    assert.ok((page.match(/<svg/g) ?? []).length >= 10);
    assert.ok(page.includes('33.3%'), 'tie rate in the header');
    const uris = [...page.matchAll(/<img src="(data:image\/jpeg;base64,[^"]+)"/g)].map((m) => m[1]!);
    // 4 contested + 2 mismatch cards, two images each.
    assert.equal(uris.length, 12);
    // Distinct images: pairs 10 and 11 share the group's image z.
    assert.equal(result.thumbnails, 11);
    assert.equal(new Set(uris).size, 11);
    for (const uri of uris) {
      const bytes = Buffer.from(uri.slice(uri.indexOf(',') + 1), 'base64');
      assert.ok(bytes.byteLength <= 10_000);
      const meta = await sharp(bytes).metadata();
      assert.equal(meta.format, 'jpeg');
      assert.ok(meta.width! <= 192 && meta.height! <= 192);
    }
  });

  test('the same inputs give the same files', async () => {
    const again = await runAudit(fixture.dir, { out: join(root, 'report-again'), top: 4 });
    assert.equal(await readFile(again.files.html, 'utf8'), await readFile(result.files.html, 'utf8'));
    assert.equal(await readFile(again.files.json, 'utf8'), await readFile(result.files.json, 'utf8'));
  });

  test('CLI: exit code, missing consensus named, bad --top refused', async (t) => {
    const lines: string[] = [];
    t.mock.method(console, 'log', (line: string) => lines.push(line));
    assert.equal(await auditCommand([fixture.dir, '--out', join(root, 'cli'), '--top', '2']), 0);
    assert.match(lines.join('\n'), /tie rate 33\.3%/);
    assert.match(lines.join('\n'), /consensus ≠ human on 2 of 7 decided pairs/);
    await assert.rejects(
      auditCommand([fixture.dir, '--out', join(root, 'cli'), '--rule', 'mean-prob']),
      /no consensus\/mean-prob\/part-\*\.parquet \(run bdpo consensus .* --rule mean-prob first; consensus folders here: majority\)/,
    );
    await assert.rejects(
      auditCommand([fixture.dir, '--out', join(root, 'cli'), '--top=-1']),
      /--top must be an integer in 0\.\.10000, got "-1"/,
    );
    await assert.rejects(auditCommand([fixture.dir]), /--out is required/);
  });
});

describe('audit building blocks', () => {
  test('ranks from pairs: ties share a rank; an absent or unlabelled pair gives null', () => {
    assert.deepEqual(
      ranksFromPairs(
        [0, 1, 2],
        [
          { i: 0, j: 1, pref: 1 },
          { i: 0, j: 2, pref: 1 },
          { i: 1, j: 2, pref: 1 },
        ],
      ),
      [1, 2, 3],
    );
    assert.deepEqual(
      ranksFromPairs(
        [0, 1, 2],
        [
          { i: 0, j: 1, pref: 0 },
          { i: 0, j: 2, pref: 0.5 },
          { i: 1, j: 2, pref: 1 },
        ],
      ),
      [2, 1, 2],
    );
    assert.equal(
      ranksFromPairs(
        [0, 1, 2],
        [
          { i: 0, j: 1, pref: 1 },
          { i: 1, j: 2, pref: 1 },
        ],
      ),
      null,
    );
    assert.equal(ranksFromPairs([0, 1], [{ i: 0, j: 1, pref: null }]), null);
  });

  test('TopN keeps the best n in order whatever the insertion order', () => {
    const values = [5, 1, 9, 3, 7, 8, 2, 6, 4, 0];
    for (const order of [values, [...values].reverse(), [...values].sort()]) {
      const top = new TopN<number>(4, (x, y) => x > y);
      order.forEach((v) => top.push(v));
      assert.deepEqual(top.sorted(), [9, 8, 7, 6]);
    }
    const none = new TopN<number>(0, (x, y) => x > y);
    none.push(1);
    assert.deepEqual(none.sorted(), []);
  });

  test('escapeHtml and the html template escape every interpolation', () => {
    assert.equal(escapeHtml(`<a href="x" title='y'>&</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
    const markup = html`<p title="${'" onmouseover="x'}">${'<b>'}${[1, '<i>']}${html`<em>kept</em>`}${null}</p>`.markup;
    assert.equal(markup, '<p title="&quot; onmouseover=&quot;x">&lt;b&gt;1&lt;i&gt;<em>kept</em></p>');
  });

  test('buildAuditReport without writing: the same numbers as runAudit', async () => {
    const again = await buildAuditReport(fixture.dir, { top: 4 });
    assert.deepEqual(again.overall, report.overall);
  });
});
