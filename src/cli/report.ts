// `bdpo audit` and `bdpo eval`: argument parsing over the report library.
import { formatAuditSummary, runAudit } from '../report/audit.ts';
import { formatEvalSummary, runEval } from '../report/eval.ts';
import { integerOption, parseCommand, requireOption, SEED, stringOption, UsageError, type IntegerRange } from './args.ts';

const AUDIT_USAGE = `usage: bdpo audit DIR [--rule majority] --out report/ [--top 24] [--bins 30] [--json]

Where the metrics disagree, with each other and with the human labels, from DIR's consensus/<rule>/ files: raw
agreement and Cohen's κ between every two raters, Fleiss' κ across the metrics, tie-aware accuracy against humans,
Kendall's τ within HPD's ranked groups, tie rates and vote patterns, per split and per category; score histograms,
reliability curves, and the most contested pairs as pictures. Writes OUT/report.html (one self-contained page,
works offline) and OUT/report.json (every number of the page).
  --rule R     the consensus files read: a rule (default majority) or a folder under consensus/, e.g. majority.ties-half
  --top N      contested pairs shown, and pairs where consensus and humans differ (default 24 each)
  --bins N     histogram bins of the score distributions (default 30)
  --json       print report.json's content instead of the text summary`;

const EVAL_USAGE = `usage: bdpo eval --a DIR_A --b DIR_B --out report/ [--model-a M] [--model-b M] [--top 24] [--resamples 2000] [--seed 0] [--json]

Win rate of model A over model B per metric, from two dataset directories of generations (bdpo ingest images, then
bdpo label): images are paired by prompt and seed, equal scores count ½, 95% bootstrap intervals resample prompts;
the average over metrics; per category and per challenge. Only metrics scored (same version) on both sides. The
two sides must hold the same (prompt, seed)s. Writes OUT/report.html and OUT/report.json.
  --model-a M      only model M's images of DIR_A (a dataset holding several models, e.g. HPD's benchmark);
  --model-b M      likewise for DIR_B (DIR_A and DIR_B may then be the same directory)
  --top N          prompts in the gallery of largest score gaps (default 24)
  --resamples N    bootstrap resamples (default 2000)
  --seed N         bootstrap seed (default 0)
  --json           print report.json's content instead of the text summary`;

// Galleries of more pairs than this, or finer histograms, make a page nobody can read.
const TOP: IntegerRange = { min: 0, max: 10_000 };
const BINS: IntegerRange = { min: 1, max: 10_000 };
const RESAMPLES: IntegerRange = { min: 1, max: 1_000_000 };

export async function auditCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    { rule: { type: 'string' }, out: { type: 'string' }, top: { type: 'string' }, bins: { type: 'string' }, json: { type: 'boolean' } },
    AUDIT_USAGE,
  );
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
  const parsed = parseCommand(
    argv,
    {
      a: { type: 'string' },
      b: { type: 'string' },
      out: { type: 'string' },
      top: { type: 'string' },
      resamples: { type: 'string' },
      seed: { type: 'string' },
      'model-a': { type: 'string' },
      'model-b': { type: 'string' },
      json: { type: 'boolean' },
    },
    EVAL_USAGE,
  );
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
