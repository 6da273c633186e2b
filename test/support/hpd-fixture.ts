// Small HPDv2 folders for tests: real JSON files, real images, and the hostile files a published dataset could hold.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';

export type FixtureFile = Uint8Array | string | { symlink: string };

export interface HpdFolderSpec {
  /** Written as JSON (any value, so tests can write the wrong shape); a string is written as it is. */
  train?: unknown;
  test?: unknown;
  /** benchmark/<name>.json for each key. */
  benchmark?: Record<string, unknown>;
  /** Path relative to the root → bytes, text, or a symlink to the given target. */
  files?: Record<string, FixtureFile>;
}

const made: string[] = [];

/** A fresh folder under the system temp folder, removed by `removeTempDirs`. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `bdpo-${prefix}-`));
  made.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
}

export async function writeHpdFolder(root: string, spec: HpdFolderSpec): Promise<string> {
  await mkdir(root, { recursive: true });
  const json = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value, null, 1));
  if (spec.train !== undefined) await writeFile(join(root, 'train.json'), json(spec.train));
  if (spec.test !== undefined) await writeFile(join(root, 'test.json'), json(spec.test));
  for (const [name, list] of Object.entries(spec.benchmark ?? {})) {
    await mkdir(join(root, 'benchmark'), { recursive: true });
    await writeFile(join(root, 'benchmark', `${name}.json`), json(list));
  }
  for (const [path, content] of Object.entries(spec.files ?? {})) {
    const target = join(root, path);
    await mkdir(dirname(target), { recursive: true });
    if (typeof content === 'object' && 'symlink' in content) await symlink(content.symlink, target);
    else await writeFile(target, content);
  }
  return root;
}

/**
 * Image number `n`: its width (8 + n) makes its bytes differ from every other number's whatever the codec does to
 * colours; its colour makes it look different.
 */
export async function testImage(n: number, format: 'jpeg' | 'png' = 'jpeg'): Promise<Buffer> {
  const background = { r: (n * 67) % 256, g: (n * 131 + 50) % 256, b: (n * 197 + 100) % 256 };
  const image = sharp({ create: { width: 8 + n, height: 8, channels: 3, background } });
  return format === 'jpeg' ? image.jpeg().toBuffer() : image.png().toBuffer();
}

/** A JPEG of incompressible noise, for a file that must be larger than a few KB. */
export async function noiseJpeg(size: number): Promise<Buffer> {
  const pixels = Buffer.alloc(size * size * 3);
  let state = 12345;
  for (let i = 0; i < pixels.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    pixels[i] = state >>> 24;
  }
  return sharp(pixels, { raw: { width: size, height: size, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 as PNG chunks use it (ISO 3309). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.byteLength);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/**
 * A PNG whose IHDR claims width × height (8-bit RGB) but whose one IDAT holds a single zero byte: a decompression
 * bomb's header without its pixels (image readers need an IDAT before they report the size). Decoding it fails at
 * any size, so only a header check can call it too large.
 */
export function pngHeaderOnly(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  ihdr[10] = 0; // compression
  ihdr[11] = 0; // filter
  ihdr[12] = 0; // interlace
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const idat = pngChunk('IDAT', deflateSync(Buffer.alloc(1)));
  return Buffer.concat([signature, pngChunk('IHDR', ihdr), idat, pngChunk('IEND', new Uint8Array(0))]);
}
