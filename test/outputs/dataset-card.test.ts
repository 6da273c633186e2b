// The dataset directory's card: HF datasets reads its configs block instead of guessing splits from part names.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { CARD_MARKER } from '../../src/core/dataset-card.ts';
import { ingestHpd } from '../../src/ingest/hpd.ts';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { runConsensus } from '../../src/consensus/run.ts';
import { runLabel } from '../../src/label/run.ts';
import { writeMetricsFixture } from '../support/metrics-fixture.ts';
import { tempDir } from '../support/tmp.ts';

/** config name → path glob, from the card's YAML front matter (the subset of YAML the card writes). */
function configsOf(card: string): Map<string, string> {
  const yaml = card.split('---\n')[1] ?? '';
  const configs = new Map<string, string>();
  let name = '';
  for (const line of yaml.split('\n')) {
    const config = /^- config_name: (.*)$/.exec(line);
    if (config) name = JSON.parse(config[1]!) as string;
    const path = /^ {4}path: (.*)$/.exec(line);
    if (path) configs.set(name, JSON.parse(path[1]!) as string);
  }
  return configs;
}

async function matching(dir: string, glob: string): Promise<string[]> {
  const [prefix, suffix] = glob.slice(glob.lastIndexOf('/') + 1).split('*') as [string, string];
  const names = await readdir(join(dir, dirname(glob)));
  return names.filter((n) => n.startsWith(prefix) && n.endsWith(suffix)).sort();
}

test('every table of a dataset directory is a config of its card, whose glob matches exactly its part files', async (t) => {
  const root = await tempDir(t);
  const dir = join(root, 'ds');
  await ingestPickapic([new URL('../../data/pickapic', import.meta.url).pathname], { out: dir });
  const models = await writeMetricsFixture(join(root, 'models'));
  await runLabel(dir, { device: 'cpu', intraOpNumThreads: 1, metrics: [models.metrics.pickscore, models.metrics.clip] });
  await runConsensus(dir, { rule: 'majority' });
  const card = await readFile(join(dir, 'README.md'), 'utf8');
  assert.ok(card.startsWith('---\nconfigs:\n'), 'the YAML front matter opens the file, where HF reads it');
  assert.ok(card.includes(CARD_MARKER));
  const configs = configsOf(card);
  // One builder serves every config of a folder in HF datasets: the YAML lists the Parquet tables, the text the rest.
  assert.deepEqual([...configs.keys()], ['scores_clip', 'scores_pickscore', 'consensus_majority']);
  for (const table of ['pairs', 'prompts', 'images', 'rejects']) assert.ok(card.includes(`\`${table}/part-*.arrow\``), table);
  for (const [name, glob] of configs) {
    const folder = join(dir, dirname(glob));
    const parts = (await readdir(folder)).filter((n) => n.startsWith('part-')).sort();
    assert.ok(parts.length > 0, name);
    assert.deepEqual(await matching(dir, glob), parts, `${name}: the glob takes every part, whatever split word its name holds`);
  }
  assert.match(card, /- config_name: "scores_clip"\n {2}default: true/);
});

test('a README.md the user wrote is never replaced', async (t) => {
  const dir = join(await tempDir(t), 'hpd');
  await ingestHpd(new URL('../../data/hpd', import.meta.url).pathname, { out: dir });
  await writeFile(join(dir, 'README.md'), '# my notes\n');
  await ingestHpd(new URL('../../data/hpd', import.meta.url).pathname, { out: dir });
  assert.equal(await readFile(join(dir, 'README.md'), 'utf8'), '# my notes\n');
});

test('after bdpo tables the Parquet copies are configs too, and the pairs copy is the default', async (t) => {
  const { runTables } = await import('../../src/tables/tables.ts');
  const dir = join(await tempDir(t), 'ds');
  await ingestPickapic([new URL('../../data/pickapic', import.meta.url).pathname], { out: dir });
  await runTables(dir, {});
  const card = await readFile(join(dir, 'README.md'), 'utf8');
  const configs = configsOf(card);
  assert.deepEqual([...configs.keys()].sort(), ['tables_images', 'tables_pairs', 'tables_prompts', 'tables_rejects']);
  assert.match(card, /- config_name: "tables_pairs"\n {2}default: true/);
  for (const [name, glob] of configs) assert.ok((await matching(dir, glob)).length > 0, name);
});

test('before any Parquet table exists, the Arrow tables are the configs, pairs the default', async (t) => {
  const dir = join(await tempDir(t), 'ds');
  await ingestPickapic([new URL('../../data/pickapic', import.meta.url).pathname], { out: dir });
  const card = await readFile(join(dir, 'README.md'), 'utf8');
  const configs = configsOf(card);
  assert.deepEqual([...configs.keys()], ['pairs', 'prompts', 'images', 'rejects']);
  assert.match(card, /- config_name: "pairs"\n {2}default: true/);
  for (const [name, glob] of configs) assert.ok((await matching(dir, glob)).length > 0, name);
});

test('a folder without a manifest is not a dataset directory: no card is written into it', async (t) => {
  const { runTables } = await import('../../src/tables/tables.ts');
  const dir = await tempDir(t);
  await runTables(dir, {});
  assert.deepEqual(await readdir(dir), []);
});
