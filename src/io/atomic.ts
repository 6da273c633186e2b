// Every file a stage writes appears whole or not at all: write beside the target, fsync, rename.
import { open, rename, rm, mkdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes the chunks to a temporary file in the target's folder, then renames it over the target. */
export async function writeFileAtomic(target: string, chunks: Uint8Array | Iterable<Uint8Array>): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const temp = tempPathFor(target);
  const handle = await open(temp, 'w');
  try {
    const list = chunks instanceof Uint8Array ? [chunks] : chunks;
    for (const chunk of list) {
      let offset = 0;
      while (offset < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
        offset += bytesWritten;
      }
    }
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temp, target);
}
