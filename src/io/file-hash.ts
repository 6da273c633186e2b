// The sha256 of a file, read in large chunks: the stream's default 64 KiB chunk is a round trip to the thread pool
// each. Those reads and the Parquet reader's own 64 KiB slices together left the audit at 1M pairs idle for 11 of
// its 30 profiled seconds.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

const CHUNK = 4 * 1024 * 1024;

export async function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).byteLength;
  }
  return { sha256: hash.digest('hex'), bytes };
}

export async function sha256OfFile(path: string): Promise<string> {
  return (await hashFile(path)).sha256;
}
