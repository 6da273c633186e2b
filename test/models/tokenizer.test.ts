import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClipTokenizer } from '../../src/models/tokenizer.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const clipDir = resolve(repoRoot, 'test', 'fixtures', 'clip');
const BOS = 49406;
const EOS = 49407;

interface Reference {
  index: number;
  prompt: string;
  ids: number[];
  untruncated_length: number;
}

const references: Reference[] = readFileSync(resolve(clipDir, 'parti-token-ids.jsonl'), 'utf8')
  .split('\n')
  .filter((line) => line.trim().length > 0)
  .map((line) => JSON.parse(line) as Reference);
// The longest reference prompts, space-joined, make prompts longer than 77 tokens (none in the file is).
const longest = [...references].sort((a, b) => b.ids.length - a.ids.length).slice(0, 4);
const vocab = JSON.parse(readFileSync(resolve(clipDir, 'vocab.json'), 'utf8')) as Record<string, number>;

const fromJson = await ClipTokenizer.fromFile(resolve(clipDir, 'tokenizer.json'));
const fromPair = await ClipTokenizer.fromVocabMerges(resolve(clipDir, 'vocab.json'), resolve(clipDir, 'merges.txt'));

function mismatches(tok: ClipTokenizer): string[] {
  const bad: string[] = [];
  for (const ref of references) {
    const { ids, untruncatedLength } = tok.encode(ref.prompt);
    if (JSON.stringify(ids) !== JSON.stringify(ref.ids) || untruncatedLength !== ref.untruncated_length) {
      bad.push(`#${ref.index} ${JSON.stringify(ref.prompt)}`);
    }
  }
  return bad;
}

test('reference ids file is what we think it is', () => {
  assert.equal(references.length, 808);
  assert.equal(Object.keys(vocab).length, 49408);
  assert.equal(vocab['<|startoftext|>'], BOS);
  assert.equal(vocab['<|endoftext|>'], EOS);
});

test('tokenizer.json reproduces every reference line', () => {
  const bad = mismatches(fromJson);
  console.log(`tokenizer.json: ${references.length - bad.length} of ${references.length} reference lines match`);
  assert.deepEqual(bad, []);
});

test('vocab.json + merges.txt reproduces every reference line', () => {
  const bad = mismatches(fromPair);
  console.log(`vocab.json + merges.txt: ${references.length - bad.length} of ${references.length} reference lines match`);
  assert.deepEqual(bad, []);
});

test('long prompts are cut to 77 with <|endoftext|> last', () => {
  // BPE never crosses whitespace, so a space-joined run of reference prompts tokenizes as the concatenation of their
  // reference bodies: an independent reference for prompts longer than any in the file.
  const parts = longest;
  const text = parts.map((r) => r.prompt).join(' ');
  const body = parts.flatMap((r) => r.ids.slice(1, -1));
  assert.ok(body.length + 2 > 77, `need a long prompt, got ${body.length + 2} tokens`);
  for (const tok of [fromJson, fromPair]) {
    const { ids, untruncatedLength } = tok.encode(text);
    assert.equal(untruncatedLength, body.length + 2);
    assert.equal(ids.length, 77);
    assert.deepEqual(ids, [BOS, ...body.slice(0, 75), EOS]);
    assert.deepEqual(tok.tokenIds(text), body);
  }
  // A prompt exactly maxLength long is not cut; with one token less room, the last BPE id goes.
  const exact = references.find((r) => r.ids.length >= 10)!;
  const short = fromJson.encode(exact.prompt, { maxLength: exact.ids.length });
  assert.deepEqual(short.ids, exact.ids);
  const cut = fromJson.encode(exact.prompt, { maxLength: exact.ids.length - 1 });
  assert.deepEqual(cut.ids, [...exact.ids.slice(0, -2), EOS]);
  assert.equal(cut.untruncatedLength, exact.ids.length);
  assert.deepEqual(fromJson.encode(exact.prompt, { maxLength: 2 }).ids, [BOS, EOS]);
  assert.throws(() => fromJson.encode('x', { maxLength: 1 }), /maxLength/);
});

test('batch: int64 [n, 77], padded with the configured pad id, mask over real tokens', () => {
  // tokenizer_config.json says pad_token <|endoftext|>, as HF CLIP pads.
  assert.equal(fromJson.padId, EOS);
  assert.equal(fromJson.maxLength, 77);
  const long = longest.map((r) => r.prompt).join(' ');
  const texts = [references[0]!.prompt, '', long];
  const batch = fromJson.encodeBatch(texts);
  assert.deepEqual(batch.shape, [3, 77]);
  assert.ok(batch.inputIds instanceof BigInt64Array, 'input ids are int64');
  assert.ok(batch.attentionMask instanceof BigInt64Array, 'mask is int64');
  assert.equal(batch.inputIds.length, 3 * 77);
  const row = (a: BigInt64Array, i: number) => Array.from(a.subarray(i * 77, (i + 1) * 77), Number);
  // Row 0: "bond" → [BOS, 6826, EOS] then 74 × pad.
  assert.deepEqual(row(batch.inputIds, 0), [BOS, 6826, EOS, ...new Array(74).fill(EOS)]);
  assert.deepEqual(row(batch.attentionMask, 0), [1, 1, 1, ...new Array(74).fill(0)]);
  // Row 1: the empty prompt is just the two special tokens.
  assert.deepEqual(row(batch.inputIds, 1).slice(0, 3), [BOS, EOS, EOS]);
  assert.equal(
    row(batch.attentionMask, 1).reduce((s, x) => s + x, 0),
    2,
  );
  // Row 2: cut, full mask, end token last.
  assert.equal(row(batch.inputIds, 2)[76], EOS);
  assert.equal(
    row(batch.attentionMask, 2).reduce((s, x) => s + x, 0),
    77,
  );
  assert.deepEqual(batch.untruncatedLengths.slice(0, 2), [3, 2]);
  assert.ok(batch.untruncatedLengths[2]! > 77, 'row 2 was longer than 77');

  // open_clip pads with 0: the override wins over the file.
  const zeroPad = fromJson.encodeBatch(texts.slice(0, 1), 10);
  assert.deepEqual(zeroPad.shape, [1, 10]);
  const openclip = ClipTokenizer.fromJson(
    JSON.parse(readFileSync(resolve(clipDir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>,
    {},
    { padId: 0 },
  );
  assert.deepEqual(Array.from(openclip.encodeBatch(['bond'], 6).inputIds, Number), [BOS, 6826, EOS, 0, 0, 0]);
  assert.deepEqual(fromJson.encodeBatch([]).shape, [0, 77]);
});

test('pad token is read from tokenizer_config, or from the padding block of tokenizer.json', () => {
  const json = JSON.parse(readFileSync(resolve(clipDir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  // SD 2 style config: pad "!" (id 0), as an AddedToken object.
  assert.equal(ClipTokenizer.fromJson(json, { pad_token: { content: '!' } }).padId, 0);
  assert.equal(ClipTokenizer.fromJson(json, { pad_token: '!' }).padId, vocab['!']);
  assert.equal(ClipTokenizer.fromJson({ ...json, padding: { pad_id: 7 } }, { pad_token: '!' }).padId, 7);
  // No config at all: HF CLIPTokenizer's default pad, <|endoftext|>.
  assert.equal(ClipTokenizer.fromJson(json, {}).padId, EOS);
  assert.equal(ClipTokenizer.fromJson(json, { model_max_length: 1e30 }).maxLength, 77);
});

test('normalisation: case, whitespace, NFC', () => {
  const a = fromJson.encode('  A   Red\tCAR\n on\u00a0a street ').ids;
  assert.deepEqual(a, fromJson.encode('a red car on a street').ids);
  // "e" + combining acute composes to "é" before BPE.
  assert.deepEqual(fromJson.encode('cafe\u0301').ids, fromJson.encode('caf\u00e9').ids);
});

test('unicode, emoji and markup prompts tokenize without crashing, byte-level', () => {
  // U+1F600 is bytes F0 9F 98 80, which the byte-level alphabet writes as "ðŁĺĢ"; CLIP's vocabulary has it as a word.
  const emojiId = vocab['ðŁĺĢ</w>'];
  assert.equal(typeof emojiId, 'number');
  assert.deepEqual(fromJson.encode('😀').ids, [BOS, emojiId, EOS]);
  assert.deepEqual(fromPair.encode('😀').ids, [BOS, emojiId, EOS]);
  const odd = [
    '<b>bold</b> &amp; <script>alert(1)</script>',
    '東京タワーの夜景、水彩画',
    'مرحبا بالعالم',
    '\u0000\u0007\ufffd\ud83d',
    '👩‍👩‍👧‍👦🏳️‍🌈'.repeat(40),
    "it's <|endoftext|> done",
    '',
  ];
  for (const text of odd) {
    for (const tok of [fromJson, fromPair]) {
      const { ids } = tok.encode(text);
      assert.ok(ids.length >= 2 && ids.length <= 77, text);
      assert.equal(ids[0], BOS);
      assert.equal(ids[ids.length - 1], EOS);
      assert.ok(
        ids.every((id) => Number.isInteger(id) && id >= 0 && id < 49408),
        text,
      );
    }
    assert.deepEqual(fromJson.encode(text).ids, fromPair.encode(text).ids);
  }
});
