import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ingestParti } from '../../src/ingest/parti.ts';
import { InputError } from '../../src/core/errors.ts';
import { readManifest } from '../../src/core/manifest.ts';
import { normalise, promptIdOf, tableRows } from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PARTI = resolve(REPO, 'data/parti/PartiPrompts.tsv');

test('the real PartiPrompts.tsv: 1632 prompts, 12 categories, 11 challenges, prompt_index 0..1631 in file order', async (t) => {
  const out = await tempDir(t);
  const text = await readFile(PARTI, 'utf8');
  // Independent parse of the file: header line, then Prompt \t Category \t Challenge \t Note.
  const lines = text.split('\n').filter((line) => line !== '');
  assert.equal(lines[0], 'Prompt\tCategory\tChallenge\tNote');
  const entries = lines.slice(1).map((line) => line.split('\t'));

  const summary = await ingestParti(PARTI, { out });
  assert.deepEqual(summary.counts, { read: 1632, taken: 1632, rejected: 0, byReason: {} });
  assert.deepEqual(summary.tables, { prompts: 1632, images: 0, pairs: 0, rejects: 0 });

  const prompts = await tableRows(out, 'prompts');
  assert.equal(prompts.length, 1632);
  assert.deepEqual(
    prompts.map((p) => p.prompt_index),
    Array.from({ length: 1632 }, (_, i) => i),
  );
  assert.equal(new Set(prompts.map((p) => p.category)).size, 12);
  assert.equal(new Set(prompts.map((p) => p.challenge)).size, 11);
  assert.equal(new Set(prompts.map((p) => p.prompt_id)).size, 1632, 'no two Parti prompts normalise alike');
  assert.equal(prompts.filter((p) => p.note !== null).length, 190);
  prompts.forEach((p, i) => {
    const [prompt, category, challenge, note] = entries[i]!;
    assert.deepEqual(
      p,
      {
        prompt_id: promptIdOf(prompt!),
        text: normalise(prompt!),
        source: 'parti',
        split: 'eval',
        category: category!,
        challenge: challenge!,
        note: note!.trim() === '' ? null : note!.trim(),
        prompt_index: i,
      },
      `line ${i + 2}`,
    );
  });
  assert.deepEqual(prompts[0], {
    prompt_id: promptIdOf('bond'),
    text: 'bond',
    source: 'parti',
    split: 'eval',
    category: 'Abstract',
    challenge: 'Basic',
    note: 'Biology-inspired concepts with multiple meanings',
    prompt_index: 0,
  });
  // Ten prompts carry stray spaces at an end: the stored text is the normalised one.
  assert.equal(entries.filter(([prompt]) => prompt !== prompt!.trim()).length, 10);

  const manifest = await readManifest(out);
  assert.equal(manifest.runs[0]!.inputs[0]!.bytes, Buffer.byteLength(text));
  assert.equal(manifest.runs[0]!.stage, 'ingest parti');
});

test('a copy with a byte-order mark and CRLF line endings gives the same prompt rows', async (t) => {
  const root = await tempDir(t);
  const text = await readFile(PARTI, 'utf8');
  await mkdir(join(root, 'windows'));
  const copy = join(root, 'windows', 'PartiPrompts.tsv');
  await writeFile(copy, `\uFEFF${text.replaceAll('\n', '\r\n')}`);
  await ingestParti(PARTI, { out: join(root, 'unix') });
  const summary = await ingestParti(copy, { out: join(root, 'crlf') });
  assert.equal(summary.counts.taken, 1632);
  const unix = await tableRows(join(root, 'unix'), 'prompts');
  const crlf = await tableRows(join(root, 'crlf'), 'prompts');
  assert.deepEqual(crlf, unix);
  assert.ok(crlf.every((p) => !/[\r\uFEFF]/.test(`${p.text}${p.category}${p.challenge}${p.note ?? ''}`)));
});

test('a TSV without a Prompt column, and a row with too many fields', async (t) => {
  const root = await tempDir(t);
  const noHeader = join(root, 'no-header.tsv');
  await writeFile(noHeader, 'a red cube\tArtifacts\na blue sphere\tArtifacts\n');
  await assert.rejects(ingestParti(noHeader, { out: join(root, 'a') }), (error: unknown) => {
    assert.ok(error instanceof InputError);
    assert.match(error.message, /no-header\.tsv: no "Prompt" column/);
    return true;
  });
  await assert.rejects(ingestParti(join(root, 'missing.tsv'), { out: join(root, 'b') }), /missing\.tsv: cannot read \(ENOENT\)/);

  // Extra fields: a reject that names the line, not a crash and not a silent drop; an empty prompt likewise.
  const ragged = join(root, 'ragged.tsv');
  await writeFile(ragged, 'Prompt\tCategory\na red cube\tArtifacts\ttoo\tmany\n\tArtifacts\na blue sphere\tArtifacts\n');
  const summary = await ingestParti(ragged, { out: join(root, 'c') });
  assert.deepEqual(summary.counts, { read: 3, taken: 1, rejected: 2, byReason: { malformed_entry: 1, missing_prompt: 1 } });
  const rejects = await tableRows(join(root, 'c'), 'rejects');
  assert.deepEqual(
    rejects.map((r) => [r.source_ref, r.reason]),
    [
      ['ragged.tsv:2', 'malformed_entry'],
      ['ragged.tsv:3', 'missing_prompt'],
    ],
  );
  const prompts = await tableRows(join(root, 'c'), 'prompts');
  assert.deepEqual(
    prompts.map((p) => [p.text, p.prompt_index]),
    [['a blue sphere', 2]],
  );
});
