// The reports read what other stages wrote: a side file that is missing is reported as missing, one that is there
// but damaged is an error naming it — never silently treated as absent.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runAudit } from '../../src/report/audit.ts';
import { runEval } from '../../src/report/eval.ts';
import { writeAuditFixture, writeGenerationsFixture } from '../support/report-fixture.ts';
import { tempDir } from '../support/tmp.ts';

test('audit: a damaged meta/consensus/<rule>.json is an error naming it', async (t) => {
  const root = await tempDir(t);
  const { dir } = await writeAuditFixture(join(root, 'ds'));
  const options = join(dir, 'meta', 'consensus', 'majority.json');
  await writeFile(options, '{"rule": "majority", "ties":');
  await assert.rejects(runAudit(dir, { out: join(root, 'report'), top: 2 }), (error: Error) => error.message.includes(options));
});

test('eval: a damaged meta/scores/<metric>.json is an error naming it', async (t) => {
  const root = await tempDir(t);
  const images = [0, 1, 2].map((prompt) => ({ prompt, seed: 1, scores: { clip: prompt, pick: -prompt } }));
  await writeGenerationsFixture(join(root, 'a'), { model: 'a', images });
  await writeGenerationsFixture(join(root, 'b'), { model: 'b', images });
  const metric = join(root, 'b', 'meta', 'scores', 'clip.json');
  await writeFile(metric, 'not json');
  await assert.rejects(runEval(join(root, 'a'), join(root, 'b'), { out: join(root, 'report'), resamples: 50, top: 1 }), (error: Error) =>
    error.message.includes(metric),
  );
});
