// The package entry (`import … from 'balanced-dpo'`) exposes every stage's run function; the CLI loads one stage at a
// time through the stage entry modules, never deep paths.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = new URL('../..', import.meta.url).pathname;

test('the package entry exports one run function per stage and the error classes', async () => {
  const api = await import('balanced-dpo');
  const functions = [
    'ingestPickapic',
    'ingestHpd',
    'ingestParti',
    'ingestGenerations',
    'inspectDataset',
    'runLabel',
    'runCalibrate',
    'runConsensus',
    'runAudit',
    'runEval',
    'runEncode',
    'runTrain',
    'runExport',
    'runTables',
  ];
  for (const name of functions) assert.equal(typeof (api as Record<string, unknown>)[name], 'function', name);
  assert.equal(new api.UsageError('x').exitCode, 2);
  assert.equal(new api.InputError('x').exitCode, 1);
});

test('the CLI imports stages only through their entry modules', async () => {
  const cli = join(ROOT, 'src', 'cli');
  const deep: string[] = [];
  for (const name of await readdir(cli)) {
    const text = await readFile(join(cli, name), 'utf8');
    for (const match of text.matchAll(/from '\.\.\/(ingest|label|consensus|report|encode|export|inspect|tables|train)\/([^']+)'/g)) {
      if (match[2] !== 'index.ts') deep.push(`${name}: ${match[0]}`);
    }
  }
  assert.deepEqual(deep, []);
});
