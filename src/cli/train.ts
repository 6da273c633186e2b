// `bdpo train`: argument parsing over the training run (src/train/run.ts).
import { readTrainConfig, runTrain, type BackendChoice, type TrainConfig, type TrainSummary } from '../train/index.ts';
import { createProgress, type Progress } from './progress.ts';
import { integerOption, parseCommand, requireOption, stringOption, UsageError } from './args.ts';
import { TRAIN_USAGE } from './help.ts';

const BACKENDS: readonly BackendChoice[] = ['auto', 'wasm', 'cpu', 'tensorflow', 'tensorflow-gpu'];

export async function trainCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, {
    rule: { type: 'string' },
    config: { type: 'string' },
    out: { type: 'string' },
    resume: { type: 'boolean' },
    steps: { type: 'string' },
    backend: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (parsed === 'help') {
    console.log(TRAIN_USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new UsageError(TRAIN_USAGE.split('\n')[0]!);
  const dir = parsed.positionals[0]!;
  const rule = requireOption(parsed, 'rule', TRAIN_USAGE);
  const out = requireOption(parsed, 'out', TRAIN_USAGE);
  const resume = parsed.values.resume === true;
  const configPath = stringOption(parsed, 'config');
  if (configPath === undefined && !resume)
    throw new UsageError(`--config is required (${TRAIN_USAGE.split('\n')[0]!.replace(/^usage: /, '')})`);
  const steps = integerOption(parsed, 'steps', { min: 0, max: 1_000_000_000 });
  const backend = stringOption(parsed, 'backend') ?? 'auto';
  if (!(BACKENDS as readonly string[]).includes(backend))
    throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}, got "${backend}"`);
  const config: TrainConfig | undefined = configPath === undefined ? undefined : await readTrainConfig(configPath);

  const json = parsed.values.json === true;
  const enabled = !json && Boolean(process.stderr.isTTY);
  const bars = new Map<string, { bar: Progress; first: number }>();
  let summary: TrainSummary;
  try {
    summary = await runTrain(dir, {
      rule,
      out,
      resume,
      backend: backend as BackendChoice,
      ...(config === undefined ? {} : { config }),
      ...(steps === undefined ? {} : { steps }),
      log: (line) => console.error(line),
      onProgress: (p) => {
        let entry = bars.get(p.phase);
        if (!entry) {
          for (const other of bars.values()) other.bar.stop();
          entry = {
            bar: createProgress(p.phase === 'pretrain' ? 'pretrain (MSE)' : 'train (DPO)', p.total, { enabled }),
            first: p.step - 1,
          };
          bars.set(p.phase, entry);
        }
        const accuracy = Number.isNaN(p.implicitAccuracy) ? '' : `, acc ${p.implicitAccuracy.toFixed(2)}`;
        // `note` is shown once the shared progress bar prints it; until then steps/s alone.
        const extra = { total: p.total, rows: p.step - entry.first, unit: 'steps', note: `loss ${p.loss.toFixed(4)}${accuracy}` };
        entry.bar.update(p.step, extra);
      },
    });
  } finally {
    for (const entry of bars.values()) entry.bar.stop();
  }
  console.log(
    json
      ? JSON.stringify(summary, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)
      : formatTrainSummary(summary),
  );
  return summary.stopped === null ? 0 : 1;
}

export function formatTrainSummary(s: TrainSummary): string {
  const num = (x: number | null | undefined, digits = 4): string =>
    x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
  const lines = [
    `train ${s.dir} consensus/${s.rule} → ${s.out} on ${s.backend} (${s.backendReason})`,
    `  steps ${s.steps}/${s.targetSteps}${s.resumedFrom === null ? '' : ` (resumed from ${s.resumedFrom})`}, ${s.stepsThisRun} this run` +
      `${s.pretrainSteps > 0 ? ` after ${s.pretrainSteps} MSE pre-training steps (MSE ${num(s.pretrainLoss)})` : ''}; ` +
      `${s.seconds.toFixed(1)} s, ${s.stepsPerSecond.toFixed(2)} steps/s; ${s.trainableParameters} of ${s.parameters} parameters trained`,
  ];
  if (s.final) {
    const f = s.final;
    lines.push(
      `  last steps: loss ${num(f.loss)}, implicit accuracy ${num(f.implicitAccuracy, 3)}, reward margin ${num(f.rewardMargin, 3)}, ` +
        `model MSE ${num(f.modelMse)} vs reference ${num(f.referenceMse)}`,
    );
  }
  if (s.validation) {
    const v = s.validation;
    lines.push(
      `  held-out (${v.splits.join(', ')}, ${v.pairs} pairs) at step ${v.step}: ` +
        `implicit accuracy ${num(v.implicitAccuracy, 3)}, reward margin ${num(v.rewardMargin, 3)}, ` +
        `model MSE ${num(v.modelMse)} vs start ${num(v.startMse)}`,
    );
  }
  if (s.validationNote) lines.push(`  ${s.validationNote}`);
  if (s.stopped) lines.push(`  STOPPED: ${s.stopped}`);
  lines.push(`  weights: ${s.weights ?? 'none written'}; metrics: ${s.metrics}`);
  return lines.join('\n');
}
