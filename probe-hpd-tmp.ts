import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { indexJsonArray, readChunk } from './src/ingest/hpd.ts';
const dir = await mkdtemp(join(tmpdir(), 'bdpo-hpdscale-'));
const path = join(dir, 'train.json');
const out = createWriteStream(path);
out.write('[');
const all: unknown[] = [];
for (let i = 0; i < 800_000; i++) {
  const e = { human_preference: [i % 2, 1 - (i % 2)], prompt: `a detailed prompt number ${i} with some words about a cat, a dog and \"quotes\" ünïcode ${i % 7 === 0 ? 'back\\\\slash \\"q\\" ]},[' : ''}`, file_path: [`${String(2*i).padStart(8,'0')}.jpg`, `${String(2*i+1).padStart(8,'0')}.jpg`], user_hash: 'abcdef0123456789' };
  if (i % 1000 === 0) all.push(e);
  if (!out.write((i ? ',\n' : '') + JSON.stringify(e))) await new Promise(r => out.once('drain', r));
}
out.end(']'); await new Promise(r => out.on('finish', r));
console.log('MB', (await stat(path)).size / 1e6);
let t = performance.now();
const file = await indexJsonArray(path, 'train.json', 512);
console.log('index ms', Math.round(performance.now() - t), file.count, file.chunks.length);
t = performance.now();
const got: unknown[] = []; let n = 0;
for (const c of file.chunks) { const e = await readChunk(file, c); for (let k = 0; k < e.length; k++) { if ((c.first + k) % 1000 === 0) got.push(e[k]); } n += e.length; }
console.log('parse all chunks ms', Math.round(performance.now() - t), n, 'sampled equal', JSON.stringify(got) === JSON.stringify(all), 'rss MB', Math.round(process.memoryUsage().rss / 1e6));
await rm(dir, { recursive: true });
