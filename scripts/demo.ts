// `npm run demo`: the main job on the bundled samples, through the same library calls the CLI makes.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ingestPickapic } from '../src/ingest/pickapic.ts';
import { ingestHpd } from '../src/ingest/hpd.ts';
import { ingestParti } from '../src/ingest/parti.ts';
import { ingestGenerations } from '../src/ingest/generations.ts';
import { formatIngestSummary } from '../src/cli/ingest.ts';
import { inspectDataset } from '../src/inspect/inspect.ts';
import { formatDatasetSummary } from '../src/cli/inspect.ts';
import { runLabel } from '../src/label/run.ts';
import { runCalibrate, runConsensus } from '../src/consensus/run.ts';
import { formatConsensusSummary } from '../src/cli/label.ts';
import { runAudit } from '../src/report/audit.ts';
import { runEval } from '../src/report/eval.ts';
import { formatAuditSummary, formatEvalSummary } from '../src/cli/report-summary.ts';
import { runEncode } from '../src/encode/encode.ts';
import { formatEncodeSummary } from '../src/cli/train-data.ts';
import { readTrainConfig } from '../src/train/config.ts';
import { runTrain } from '../src/train/run.ts';
import { formatTrainSummary } from '../src/cli/train.ts';
import { runExport } from '../src/export/export.ts';

const METRICS = ['pickscore', 'hps', 'clip', 'aesthetic'].map((name) => `data/metrics/${name}.json`);

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

step('label: four DEMO metrics (tiny random ONNX models in the real export contract; their scores mean nothing)');
for (const name of ['pickapic', 'hpd', 'gen-model-a', 'gen-model-b']) {
  const summary = await runLabel(join(OUT, name), { metrics: METRICS });
  const perMetric = summary.metrics.map((m) => `${m.name} ${m.scored}`).join(', ');
  console.log(
    `${name}: ${summary.counts.taken} images scored (${perMetric}) in ${summary.seconds.toFixed(1)} s ` +
      `on ${summary.metrics[0]!.provider.split(' ')[0]}`,
  );
}

step('calibrate: temperatures fitted against the human labels of the Pick-a-Pic sample');
for (const [name, fit] of Object.entries((await runCalibrate(join(OUT, 'pickapic'))).metrics)) {
  const gain = fit.gainPerPair === null ? fit.note : `+${fit.gainPerPair.toFixed(3)} nats/pair`;
  console.log(`${name}: ${fit.status}, n=${fit.n}, τ ${fit.defaultTau} → ${fit.tau ?? 'kept'}, ${gain}`);
}

step('consensus: BalancedDPO majority vote, the mean-prob and vanilla baselines, and a tie-break by PickScore');
for (const [rule, ties] of [
  ['majority', 'drop'],
  ['mean-prob', 'drop'],
  ['vanilla', 'drop'],
  ['majority', 'pickscore'],
] as const) {
  console.log(formatConsensusSummary(await runConsensus(join(OUT, 'pickapic'), { rule, ties })));
}
console.log(formatConsensusSummary(await runConsensus(join(OUT, 'hpd'), { rule: 'majority', ties: 'half' })));

step('audit: where the metrics disagree, with each other and with humans (report.html + report.json)');
console.log(formatAuditSummary(await runAudit(join(OUT, 'pickapic'), { rule: 'majority', out: join(OUT, 'reports/audit-pickapic') })));
console.log(formatAuditSummary(await runAudit(join(OUT, 'hpd'), { rule: 'majority.ties-half', out: join(OUT, 'reports/audit-hpd') })));

step('eval: win rate of model-a over model-b per metric, bootstrap 95% intervals over prompts');
console.log(formatEvalSummary(await runEval(join(OUT, 'gen-model-a'), join(OUT, 'gen-model-b'), { out: join(OUT, 'reports/eval') })));

step('encode: VAE latents and text-encoder states of the majority-rule pairs (DEMO SD encoders: random weights)');
const pickapic = join(OUT, 'pickapic');
console.log(
  formatEncodeSummary(
    await runEncode(pickapic, {
      vae: 'data/models/demo-sd-vae-encoder.onnx',
      text: 'data/models/demo-sd-text-encoder.onnx',
      rule: 'majority',
    }),
  ),
);

step('train: Diffusion-DPO of a tiny DiT on the majority labels (data/train/tiny.json: 100 MSE pre-training steps, then 20 DPO steps)');
const trained = await runTrain(pickapic, {
  rule: 'majority',
  out: join(OUT, 'runs/tiny-majority'),
  config: await readTrainConfig('data/train/tiny.json'),
  steps: 20,
  log: (line) => console.log(line),
});
console.log(formatTrainSummary(trained));
const fixed = (x: unknown, digits: number): string => (typeof x === 'number' ? x.toFixed(digits) : 'n/a');
console.log('metrics.jsonl (DPO and validation lines):');
for (const line of (await readFile(trained.metrics, 'utf8')).trim().split('\n')) {
  const r = JSON.parse(line) as Record<string, unknown>;
  if (r.phase === 'train') {
    console.log(
      `  step ${String(r.step).padStart(3)} train      loss ${fixed(r.loss, 4)}  implicit acc ${fixed(r.implicitAccuracy, 3)}  ` +
        `margin ${fixed(r.rewardMargin, 2)}  MSE model ${fixed(r.modelMse, 4)} / reference ${fixed(r.referenceMse, 4)}  ` +
        `|g| ${fixed(r.gradNorm, 1)}  ${fixed(r.samplesPerSecond, 0)} pairs/s`,
    );
  } else if (r.phase === 'validation') {
    console.log(
      `  step ${String(r.step).padStart(3)} held-out   loss ${fixed(r.loss, 4)}  implicit acc ${fixed(r.implicitAccuracy, 3)}  ` +
        `margin ${fixed(r.rewardMargin, 2)}  MSE model ${fixed(r.modelMse, 4)} / start ${fixed(r.startMse, 4)}  (${String(r.pairs)} pairs)`,
    );
  }
}

step('export: the majority labels in the column layout of the PyTorch Diffusion-DPO trainers');
const exported = await runExport(pickapic, { rule: 'majority', out: join(OUT, 'exports/pickapic-majority') });
console.log(
  `${exported.pairs} pairs (label_0: ${Object.entries(exported.byLabel)
    .map(([k, n]) => `${k} ×${n}`)
    .join(', ')}) → ${exported.out} (${exported.files.length} file(s), ${(exported.imageBytes / 1e6).toFixed(1)} MB of images)`,
);

step('inspect');
for (const name of ['pickapic', 'hpd', 'parti']) {
  console.log(formatDatasetSummary(await inspectDataset(join(OUT, name))));
}
console.log(`\ndemo outputs are in ${OUT}/`);
