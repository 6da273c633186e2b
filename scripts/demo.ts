// `npm run demo`: the main job on the bundled samples, through the same library calls the CLI makes.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ingestPickapic } from '../src/ingest/pickapic.ts';
import { ingestHpd } from '../src/ingest/hpd.ts';
import { ingestParti } from '../src/ingest/parti.ts';
import { ingestGenerations } from '../src/ingest/generations.ts';
import { formatIngestSummary } from '../src/cli/ingest.ts';
import { formatDatasetSummary, inspectDataset } from '../src/inspect.ts';

const OUT = process.env.BDPO_DEMO_OUT ?? 'demo-out';
const step = (title: string): void => console.log(`\n== ${title}`);

await rm(OUT, { recursive: true, force: true });

step('ingest: Pick-a-Pic v2 sample shards (DuckDB-written Parquet, real photographs)');
console.log(formatIngestSummary(await ingestPickapic(['data/pickapic'], { out: join(OUT, 'pickapic') })));

step('ingest: HPDv2 sample folder (train pairs, ranked test groups, benchmark lists)');
console.log(formatIngestSummary(await ingestHpd('data/hpd', { out: join(OUT, 'hpd') })));

step('ingest: PartiPrompts (the real 1632-prompt file)');
console.log(formatIngestSummary(await ingestParti('data/parti/PartiPrompts.tsv', { out: join(OUT, 'parti') })));

step('ingest: generations of two models over eight PartiPrompts prompts, two seeds each');
for (const model of ['model-a', 'model-b']) {
  const summary = await ingestGenerations(join('data/generations', model), {
    out: join(OUT, `gen-${model}`),
    prompts: 'data/generations/prompts.tsv',
    model,
  });
  console.log(formatIngestSummary(summary));
}

step('inspect');
for (const name of ['pickapic', 'hpd', 'parti', 'gen-model-a']) {
  console.log(formatDatasetSummary(await inspectDataset(join(OUT, name))));
}
console.log(`\ndemo outputs are in ${OUT}/`);
