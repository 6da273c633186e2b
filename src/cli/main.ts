// The `bdpo` entry point: a thin shell over the library. Each command parses its arguments and calls the API; errors
// a user can fix are one line and a non-zero exit (2: bad arguments, 1: unreadable or invalid input).
import { BdpoError } from '../core/errors.ts';
import * as help from './help.ts';
import { TOOL_VERSION } from '../core/version.ts';
import { setLockNoticeListener } from '../io/lock.ts';
import { removeHeldSync } from '../io/leftovers.ts';
import { constants } from 'node:os';

type Command = (argv: string[]) => Promise<number>;

// Each command's modules load only when it runs, and not for its --help: `bdpo --help`, `bdpo label --help` and
// `bdpo inspect` need not load ONNX Runtime or TensorFlow.js.
const COMMANDS: Record<string, { load: () => Promise<Command>; summary: string; help: string }> = {
  ingest: {
    load: async () => (await import('./ingest.ts')).ingestCommand,
    summary: 'Pick-a-Pic v2, HPDv2, PartiPrompts or generated images → dataset directory',
    help: help.INGEST_USAGE,
  },
  inspect: {
    load: async () => (await import('./inspect.ts')).inspectCommand,
    summary: 'counts, rejects by reason, human-label balance and tie rate of a dataset',
    help: help.INSPECT_USAGE,
  },
  compact: {
    load: async () => (await import('./compact.ts')).compactCommand,
    summary: 'rewrite the ingest parts without the rows another part holds first (after a sharded ingest)',
    help: help.COMPACT_USAGE,
  },
  label: {
    load: async () => (await import('./label.ts')).labelCommand,
    summary: 'score every image with every metric (ONNX) into scores/<metric>/',
    help: help.LABEL_USAGE,
  },
  calibrate: {
    load: async () => (await import('./label.ts')).calibrateCommand,
    summary: "fit each metric's temperature against the human labels",
    help: help.CALIBRATE_USAGE,
  },
  consensus: {
    load: async () => (await import('./label.ts')).consensusCommand,
    summary: 'per-metric preferences and a consensus label per pair, from cached scores',
    help: help.CONSENSUS_USAGE,
  },
  audit: {
    load: async () => (await import('./report.ts')).auditCommand,
    summary: 'agreement of the metrics with each other and with humans → report.html + report.json',
    help: help.AUDIT_USAGE,
  },
  tables: {
    load: async () => (await import('./tables.ts')).tablesCommand,
    summary: 'Parquet copies of the Arrow tables (prompts, pairs, rejects, images) for SQL engines',
    help: help.TABLES_USAGE,
  },
  encode: {
    load: async () => (await import('./train-data.ts')).encodeCommand,
    summary: 'cache VAE latents and text-encoder states of the kept pairs, for training',
    help: help.ENCODE_USAGE,
  },
  train: {
    load: async () => (await import('./train.ts')).trainCommand,
    summary: 'Diffusion-DPO of a DiT on cached latents and consensus labels (resumable)',
    help: help.TRAIN_USAGE,
  },
  export: {
    load: async () => (await import('./train-data.ts')).exportCommand,
    summary: 'consensus labels in the column layout the PyTorch Diffusion-DPO trainers read',
    help: help.EXPORT_USAGE,
  },
  eval: {
    load: async () => (await import('./report.ts')).evalCommand,
    summary: 'win rate of model A over model B per metric, with bootstrap intervals → report.html + report.json',
    help: help.EVAL_USAGE,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  return [
    `bdpo ${TOOL_VERSION} — multi-metric preference labelling of text-to-image data`,
    '',
    'usage: bdpo <command> [options]   (bdpo <command> --help for details)',
    '',
    ...Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  if (name === '--version' || name === '-V') {
    console.log(TOOL_VERSION);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`bdpo: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  const options = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (options.includes('--help') || options.includes('-h')) {
    console.log(command.help);
    return 0;
  }
  // A wait for another process's lock, or a lock broken, is said at once: it would otherwise look like a hang.
  setLockNoticeListener((message) => console.error(`bdpo ${name}: ${message}`));
  try {
    return await (await command.load())(rest);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`bdpo ${name}: ${message}`);
    const userError = isUserError(error);
    if (error instanceof Error && (!userError || process.env.BDPO_DEBUG)) console.error(error.stack);
    return exitCode(error);
  }
}

/** A fault of the input or the command line: one line on stderr; anything else is a defect and shows its stack. */
function isUserError(error: unknown): boolean {
  return error instanceof BdpoError;
}

/** Exit 2 for the command line, 1 for an input; the CLI turns a library's option error into its usage error. */
function exitCode(error: unknown): number {
  return error instanceof BdpoError ? error.exitCode : 1;
}

/**
 * On SIGINT, SIGTERM or SIGHUP: remove this process's temporary files, staging folders and locks, then exit as the
 * signal would have (128 + its number). Image workers are threads and end with the process. Finished units are
 * recorded, so a re-run continues from the first unfinished one. For the CLI process only: a library caller owns its
 * process's signals.
 */
export function stopCleanlyOnSignals(): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      removeHeldSync();
      process.exit(128 + constants.signals[signal]);
    });
  }
}
