// CLIP's BPE tokenizer, for every CLIP-family text tower (OpenAI CLIP, open_clip ViT-H/14 behind PickScore and HPS).
//
// The BPE itself is @huggingface/tokenizers reading the model's tokenizer.json: its normalizer (NFC, collapse
// whitespace, lowercase), split regex, byte-level alphabet and `</w>` suffix reproduce the reference ids as they
// are. What the library does not do is CLIP's fixed-length framing, so that lives here: special tokens are added
// by us (not by the file's post-processor, which some exports omit), the sequence is cut to `maxLength` keeping
// `<|endoftext|>` last (as open_clip and HF's truncation both do), and padded with a configurable id (HF CLIP pads
// with `<|endoftext|>`, open_clip with 0; SD 2's tokenizer pads with "!", which is also 0).
//
// Not reproduced: the original OpenAI/open_clip tokenizers first run ftfy.fix_text and html.unescape; HF's fast
// CLIP tokenizer (and thus tokenizer.json) does not. They differ only on prompts with HTML entities or mojibake.
import { readFile, access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { JsonFileError, readJsonFile } from '../io/json-file.ts';
import { InputError } from '../core/errors.ts';

export const CLIP_CONTEXT_LENGTH = 77;
export const CLIP_BOS_TOKEN = '<|startoftext|>';
export const CLIP_EOS_TOKEN = '<|endoftext|>';

export interface ClipTokenizerOptions {
  /** Padding id; overrides the pad token of tokenizer.json / tokenizer_config.json. */
  padId?: number;
  /** Default sequence length; overrides tokenizer_config's model_max_length. */
  maxLength?: number;
  /**
   * tokenizer_config.json to read (pad token, model_max_length). Default: the one beside the vocabulary file if
   * it exists; `false` reads none.
   */
  configPath?: string | false;
}

export interface ClipEncoding {
  /** `<|startoftext|>`, BPE ids, `<|endoftext|>`; at most maxLength long; not padded. */
  ids: number[];
  /**
   * Length before truncation, special tokens included (> maxLength means the prompt was cut). Exact up to 4096
   * characters; past that only the start of a long prompt is tokenized, and a cut prompt's length is a lower bound.
   */
  untruncatedLength: number;
}

export interface ClipBatch {
  /** Row-major [n, maxLength] int64, padded with padId. */
  inputIds: BigInt64Array;
  /** 1 over the real tokens, 0 over padding. */
  attentionMask: BigInt64Array;
  shape: [number, number];
  /** Per text, the length before truncation (special tokens included; a lower bound for cut prompts, see encode). */
  untruncatedLengths: number[];
}

/** The fields of tokenizer_config.json that we read. Tokens may be strings or serialised AddedTokens. */
interface TokenizerConfig {
  pad_token?: unknown;
  bos_token?: unknown;
  eos_token?: unknown;
  model_max_length?: unknown;
  [key: string]: unknown;
}

export class ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly maxLength: number;
  readonly #inner: Tokenizer;

  private constructor(inner: Tokenizer, bosId: number, eosId: number, padId: number, maxLength: number) {
    this.#inner = inner;
    this.bosId = bosId;
    this.eosId = eosId;
    this.padId = padId;
    this.maxLength = maxLength;
  }

  /** From a parsed tokenizer.json (and optionally tokenizer_config.json). */
  static fromJson(tokenizerJson: Record<string, unknown>, config: TokenizerConfig = {}, options: ClipTokenizerOptions = {}): ClipTokenizer {
    const inner = new Tokenizer(tokenizerJson, config);
    const idOf = (token: unknown, fallback: string): number => {
      const content = tokenContent(token) ?? fallback;
      const id = inner.token_to_id(content);
      if (id === undefined) throw new InputError(`tokenizer: token ${JSON.stringify(content)} is not in the vocabulary`);
      return id;
    };
    const bosId = idOf(config.bos_token, CLIP_BOS_TOKEN);
    const eosId = idOf(config.eos_token, CLIP_EOS_TOKEN);
    const padId =
      options.padId ?? filePadId(tokenizerJson) ?? (tokenContent(config.pad_token) !== undefined ? idOf(config.pad_token, '') : eosId);
    const maxLength = options.maxLength ?? configMaxLength(config) ?? CLIP_CONTEXT_LENGTH;
    checkLength(maxLength);
    if (!Number.isInteger(padId) || padId < 0) throw new InputError(`tokenizer: pad id must be a non-negative integer, got ${padId}`);
    return new ClipTokenizer(inner, bosId, eosId, padId, maxLength);
  }

  /** From a model's tokenizer.json (HF one-file layout); reads tokenizer_config.json beside it if present. */
  static async fromFile(tokenizerJsonPath: string, options: ClipTokenizerOptions = {}): Promise<ClipTokenizer> {
    const json = await readJsonObject(tokenizerJsonPath);
    const config = await readConfig(options.configPath, dirname(tokenizerJsonPath));
    return fromLoaded(tokenizerJsonPath, () => ClipTokenizer.fromJson(json, config, options));
  }

  /**
   * From the two-file layout (vocab.json + merges.txt) of HF's CLIPTokenizer: builds the tokenizer.json that HF's
   * converter makes from them, so both layouts go through the same code.
   */
  static async fromVocabMerges(vocabPath: string, mergesPath: string, options: ClipTokenizerOptions = {}): Promise<ClipTokenizer> {
    const vocab = (await readJsonObject(vocabPath)) as Record<string, number>;
    const merges = (await readFile(mergesPath, 'utf8'))
      .split('\n')
      .map((line) => line.replace(/\r$/, ''))
      .filter((line, i) => line.length > 0 && !(i === 0 && line.startsWith('#version')));
    const config = await readConfig(options.configPath, dirname(vocabPath));
    return fromLoaded(`${vocabPath} + ${mergesPath}`, () => ClipTokenizer.fromJson(clipTokenizerJson(vocab, merges), config, options));
  }

  /** From a model directory: tokenizer.json if present, else vocab.json + merges.txt. */
  static async fromDirectory(dir: string, options: ClipTokenizerOptions = {}): Promise<ClipTokenizer> {
    const oneFile = join(dir, 'tokenizer.json');
    if (await exists(oneFile)) return ClipTokenizer.fromFile(oneFile, options);
    const vocab = join(dir, 'vocab.json');
    const merges = join(dir, 'merges.txt');
    if ((await exists(vocab)) && (await exists(merges))) return ClipTokenizer.fromVocabMerges(vocab, merges, options);
    throw new InputError(`tokenizer: ${dir} has neither tokenizer.json nor vocab.json + merges.txt`);
  }

  /** The BPE ids of `text`, without special tokens or truncation. */
  tokenIds(text: string): number[] {
    return this.#inner.encode(text, { add_special_tokens: false }).ids;
  }

  encode(text: string, { maxLength = this.maxLength }: { maxLength?: number } = {}): ClipEncoding {
    checkLength(maxLength);
    const body = this.leadingTokenIds(text, maxLength - 2);
    const kept = body.length > maxLength - 2 ? body.slice(0, maxLength - 2) : body;
    return { ids: [this.bosId, ...kept, this.eosId], untruncatedLength: body.length + 2 };
  }

  /**
   * The BPE ids of the start of `text`: all of them, or more than `wanted` of them, which are then exactly the
   * first ids of the whole text. Only as much text is tokenized as can reach the context (a 1 MB caption costs what
   * a 4 kB one does), growing the prefix until it holds more than `wanted` tokens.
   *
   * A prefix is cut only just after an ASCII whitespace character or just before an ASCII digit: no step of the
   * pipeline looks across such a point. NFC composes only a starter with the marks after it (space and digits take
   * none); the whitespace collapse and the split regex never join the two sides; BPE runs within one pre-token;
   * lowercasing's one context rule (final sigma) reads neither whitespace nor a digit as part of a word; the special
   * tokens hold neither.
   */
  private leadingTokenIds(text: string, wanted: number): number[] {
    for (let budget = PREFIX_CHARS; ; budget *= 2) {
      const end = text.length <= budget ? text.length : safeCut(text, budget);
      const ids = this.tokenIds(end === text.length ? text : text.slice(0, end));
      if (end === text.length || ids.length > wanted) return ids;
    }
  }

  encodeBatch(texts: readonly string[], maxLength: number = this.maxLength): ClipBatch {
    checkLength(maxLength);
    const n = texts.length;
    const inputIds = new BigInt64Array(n * maxLength).fill(BigInt(this.padId));
    const attentionMask = new BigInt64Array(n * maxLength);
    const untruncatedLengths: number[] = [];
    texts.forEach((text, row) => {
      const { ids, untruncatedLength } = this.encode(text, { maxLength });
      const offset = row * maxLength;
      for (let j = 0; j < ids.length; j++) {
        inputIds[offset + j] = BigInt(ids[j]!);
        attentionMask[offset + j] = 1n;
      }
      untruncatedLengths.push(untruncatedLength);
    });
    return { inputIds, attentionMask, shape: [n, maxLength], untruncatedLengths };
  }
}

/** Characters of a caption tokenized at first; CLIP's 77 tokens are rarely more than 400 characters. */
const PREFIX_CHARS = 4096;

/** The first index ≥ `from` where `text` may be cut (see leadingTokenIds), or its length. */
function safeCut(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x30 && code <= 0x39) return i;
    const previous = text.charCodeAt(i - 1);
    if (previous === 0x20 || (previous >= 0x09 && previous <= 0x0d)) return i;
  }
  return text.length;
}

/** tokenizer.json as HF's CLIP converter writes it, for a vocab.json + merges.txt pair. */
function clipTokenizerJson(vocab: Record<string, number>, merges: string[]): Record<string, unknown> {
  const special = (content: string) => {
    const id = vocab[content];
    if (id === undefined) throw new InputError(`tokenizer: vocab.json has no ${content}`);
    return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true };
  };
  const bos = special(CLIP_BOS_TOKEN);
  const eos = special(CLIP_EOS_TOKEN);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [bos, eos],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: {
            Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
          },
          behavior: 'Removed',
          invert: true,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'RobertaProcessing',
      sep: [CLIP_EOS_TOKEN, eos.id],
      cls: [CLIP_BOS_TOKEN, bos.id],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: CLIP_EOS_TOKEN,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

function tokenContent(token: unknown): string | undefined {
  if (typeof token === 'string') return token;
  if (token && typeof token === 'object' && typeof (token as { content?: unknown }).content === 'string') {
    return (token as { content: string }).content;
  }
  return undefined;
}

function filePadId(json: Record<string, unknown>): number | undefined {
  const padding = json.padding as { pad_id?: unknown } | null | undefined;
  return padding && typeof padding.pad_id === 'number' ? padding.pad_id : undefined;
}

function configMaxLength(config: TokenizerConfig): number | undefined {
  const n = config.model_max_length;
  // HF writes a huge sentinel (1e30) when a model sets no limit.
  return typeof n === 'number' && Number.isInteger(n) && n >= 2 && n <= 1 << 20 ? n : undefined;
}

function checkLength(maxLength: number): void {
  if (!Number.isInteger(maxLength) || maxLength < 2) {
    throw new InputError(`tokenizer: maxLength must be an integer ≥ 2 (room for the start and end tokens), got ${maxLength}`);
  }
}

async function readConfig(configPath: string | false | undefined, besideDir: string): Promise<TokenizerConfig> {
  if (configPath === false) return {};
  const path = configPath ?? join(besideDir, 'tokenizer_config.json');
  if (configPath === undefined && !(await exists(path))) return {};
  return (await readJsonObject(path)) as TokenizerConfig;
}

/** A JSON file that must hold an object; errors name the file and never quote its content. */
async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  const value = await readJsonFile(path);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new JsonFileError(`${path}: not a tokenizer file (the top level is not a JSON object)`);
  }
  return value as Record<string, unknown>;
}

/**
 * Builds the tokenizer from files already parsed; the library's complaints about their content (a missing
 * "decoder", a vocabulary of the wrong type) are prefixed with the file they came from.
 */
function fromLoaded(source: string, build: () => ClipTokenizer): ClipTokenizer {
  try {
    return build();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // Messages of ours name the token; the library's may carry a piece of the file: keep them to one short line.
    const short = message.split('\n')[0]!.slice(0, 200);
    throw new JsonFileError(`${source}: not a usable tokenizer (${short})`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
