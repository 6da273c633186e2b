// CLI conventions, through real `bdpo` processes: exit 2 and one line naming the flag for every bad option value,
// exit 1 for bad input files, help and version with exit 0, one key convention in --json summaries, and help texts
// that print without loading the heavy native or numeric modules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeAuditFixture } from '../support/report-fixture.ts';
import { tempDir } from '../support/tmp.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = join(ROOT, 'bin/bdpo.cjs');
const COMMANDS = ['ingest', 'inspect', 'label', 'calibrate', 'consensus', 'audit', 'encode', 'train', 'export', 'eval'];
const HEAVY_MODULES = ['onnxruntime-node', 'sharp', '@tensorflow', 'apache-arrow'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function bdpo(args: string[], nodeArgs: string[] = []): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BDPO_DEBUG: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const stderrLines = (run: Run) => run.stderr.split('\n').filter((line) => line !== '');

function assertOneLine(run: Run, code: number, pattern: RegExp, what: string): void {
  assert.equal(run.code, code, `${what}: exit ${run.code}\n${run.stderr}`);
  assert.equal(stderrLines(run).length, 1, `${what}: one line expected\n${run.stderr}`);
  assert.match(run.stderr, pattern, what);
  assert.doesNotMatch(run.stderr, /\n\s+at /, `${what}: stack trace`);
}

test('bad consensus option values are usage errors (exit 2) naming the flag; a missing --rule lists the rules', async (t) => {
  const dir = join(await tempDir(t), 'ds');
  await writeAuditFixture(dir);
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown tie policy', ['--rule', 'majority', '--ties', 'bogus'], /--ties.*bogus/],
    ['unknown rule', ['--rule', 'bogus'], /--rule.*bogus/],
    ['unknown single metric', ['--rule', 'single:nope'], /--rule.*nope/],
    ['weights of a missing metric', ['--rule', 'majority', '--weights', 'nope=2'], /--weights.*nope/],
    ['weights with a rule that takes none', ['--rule', 'vanilla', '--weights', 'aes=2'], /--weights/],
    ['bad folder name', ['--rule', 'majority', '--name', '../x'], /--name/],
    ['no --rule', [], /--rule is required.*majority.*mean-prob.*single:<metric>/],
  ];
  const runs = await Promise.all(cases.map(([, args]) => bdpo(['consensus', dir, ...args])));
  runs.forEach((run, i) => assertOneLine(run, 2, cases[i]![2], cases[i]![0]));
  // The bad input file stays exit 1.
  const noScores = await bdpo(['consensus', join(dir, 'nope'), '--rule', 'majority']);
  assertOneLine(noScores, 1, /no scores/, 'dataset without scores');
});

test('consensus --json: every key of the summary is camelCase (tiesCount, not ties_count)', async (t) => {
  const dir = join(await tempDir(t), 'ds');
  await writeAuditFixture(dir);
  const run = await bdpo(['consensus', dir, '--rule', 'majority', '--ties', 'half', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const summary = JSON.parse(run.stdout) as Record<string, unknown>;
  assert.deepEqual(
    Object.keys(summary).filter((key) => key.includes('_')),
    [],
  );
  assert.equal(typeof summary.tiesCount, 'number');
  assert.ok((summary.tiesCount as number) > 0);
  const text = await bdpo(['consensus', dir, '--rule', 'majority', '--ties', 'half']);
  assert.match(text.stdout, new RegExp(`\\(${summary.tiesCount as number} ties\\)`));
});

test('encode checks the model files the user named first, in order, naming the flag and path', async (t) => {
  const root = await tempDir(t);
  const dir = join(root, 'ds');
  await writeAuditFixture(dir);
  const text = join(root, 'text.onnx');
  await writeFile(text, 'not read: --vae is checked first');
  const runs = await Promise.all([
    bdpo(['encode', dir, '--vae', join(root, 'missing.onnx'), '--text', join(root, 'missing2.onnx')]),
    bdpo(['encode', dir, '--vae', text, '--text', join(root, 'missing2.onnx')]),
    bdpo(['encode', dir, '--vae', text, '--text', text, '--tokenizer', join(root, 'missing.json')]),
  ]);
  assertOneLine(runs[0]!, 1, new RegExp(`--vae ${join(root, 'missing.onnx')}: no such file`), 'missing --vae');
  assertOneLine(runs[1]!, 1, new RegExp(`--text ${join(root, 'missing2.onnx')}: no such file`), 'missing --text');
  assertOneLine(runs[2]!, 1, new RegExp(`--tokenizer ${join(root, 'missing.json')}: no such file`), 'missing --tokenizer');
  for (const run of runs) assert.doesNotMatch(run.stderr, /tokenizer\.json or vocab\.json/);
});

test('bdpo alone prints help with exit 0; --version and -V print the version; an unknown command is exit 2', async () => {
  const packageJson = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const [alone, version, short, unknown] = await Promise.all([bdpo([]), bdpo(['--version']), bdpo(['-V']), bdpo(['bogus'])]);
  assert.equal(alone.code, 0, alone.stderr);
  assert.match(alone.stdout, /usage: bdpo <command>/);
  for (const run of [version, short]) {
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${packageJson.version}\n`);
  }
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "bogus"/);
});

test('every `bdpo <command> --help` prints without loading ONNX Runtime, sharp, TensorFlow.js or Arrow', async (t) => {
  const root = await tempDir(t);
  const log = join(root, 'loaded.txt');
  // A resolve hook that writes every module URL the process resolves: proof of what was loaded, not a timing.
  const hook = join(root, 'record-loads.mjs');
  const resolver = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(${JSON.stringify(log)}, result.url + '\\n');
  return result;
}`;
  await writeFile(
    hook,
    `import { register } from 'node:module';\nregister(${JSON.stringify(`data:text/javascript,${encodeURIComponent(resolver)}`)});\n`,
  );
  for (const command of COMMANDS) {
    await writeFile(log, '');
    const run = await bdpo([command, '--help'], ['--import', pathToFileURL(hook).href]);
    assert.equal(run.code, 0, `${command}: ${run.stderr}`);
    assert.match(run.stdout, new RegExp(`usage: bdpo ${command}`), command);
    const loaded = (await readFile(log, 'utf8')).split('\n');
    assert.ok(
      loaded.some((url) => url.includes('/src/cli/')),
      `${command}: the hook saw the CLI load`,
    );
    const heavy = loaded.filter((url) => HEAVY_MODULES.some((name) => url.includes(`/node_modules/${name}`)));
    assert.deepEqual(heavy, [], `${command} --help loaded heavy modules`);
  }
});

test("encode --help states the library's default --scaling-factor", async () => {
  const [{ ENCODE_USAGE }, { SD_SCALING_FACTOR }] = await Promise.all([
    import('../../src/cli/help.ts'),
    import('../../src/encode/encode.ts'),
  ]);
  assert.ok(ENCODE_USAGE.includes(`(default ${SD_SCALING_FACTOR}, SD 1.x/2.x)`));
});
