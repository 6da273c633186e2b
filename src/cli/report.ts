// `bdpo audit` and `bdpo eval`: argument parsing over the report library.
import { runAudit, runEval } from '../report/index.ts';
import { formatAuditSummary, formatEvalSummary } from './report-summary.ts';
import { integerOption, parseCommand, requireOption, SEED, stringOption, UsageError, type IntegerRange } from './args.ts';
import { AUDIT_USAGE, EVAL_USAGE } from './help.ts';

// Galleries of more pairs than this, or finer histograms, make a page nobody can read.
const TOP: IntegerRange = { min: 0, max: 10_000 };
const BINS: IntegerRange = { min: 1, max: 10_000 };
const RESAMPLES: IntegerRange = { min: 1, max: 1_000_000 };

export async function auditCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, {
    rule: { type: 'string' },
    out: { type: 'string' },
    top: { type: 'string' },
    bins: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (parsed === 'help') {
    console.log(AUDIT_USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new UsageError(AUDIT_USAGE.split('\n')[0]!);
  const out = requireOption(parsed, 'out', AUDIT_USAGE);
  const top = integerOption(parsed, 'top', TOP);
  const bins = integerOption(parsed, 'bins', BINS);
  const rule = stringOption(parsed, 'rule');
  const result = await runAudit(parsed.positionals[0]!, {
    out,
    ...(rule === undefined ? {} : { rule }),
    ...(top === undefined ? {} : { top }),
    ...(bins === undefined ? {} : { bins }),
  });
  console.log(parsed.values.json ? JSON.stringify(result.report, null, 2) : formatAuditSummary(result));
  return 0;
}

export async function evalCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, {
    a: { type: 'string' },
    b: { type: 'string' },
    out: { type: 'string' },
    top: { type: 'string' },
    resamples: { type: 'string' },
    seed: { type: 'string' },
    'model-a': { type: 'string' },
    'model-b': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (parsed === 'help') {
    console.log(EVAL_USAGE);
    return 0;
  }
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}" (see --help)`);
  const a = requireOption(parsed, 'a', EVAL_USAGE);
  const b = requireOption(parsed, 'b', EVAL_USAGE);
  const out = requireOption(parsed, 'out', EVAL_USAGE);
  const top = integerOption(parsed, 'top', TOP);
  const resamples = integerOption(parsed, 'resamples', RESAMPLES);
  const seed = integerOption(parsed, 'seed', SEED);
  const modelA = stringOption(parsed, 'model-a');
  const modelB = stringOption(parsed, 'model-b');
  const result = await runEval(a, b, {
    out,
    ...(top === undefined ? {} : { top }),
    ...(resamples === undefined ? {} : { resamples }),
    ...(seed === undefined ? {} : { seed }),
    ...(modelA === undefined ? {} : { modelA }),
    ...(modelB === undefined ? {} : { modelB }),
  });
  console.log(parsed.values.json ? JSON.stringify(result.report, null, 2) : formatEvalSummary(result));
  return 0;
}
