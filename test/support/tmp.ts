// Temporary folders for tests: each under the OS temp dir, removed when the test (or suite) that made it ends.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Anything with an `after` hook: a node:test TestContext or SuiteContext. */
export interface HasAfter {
  after(fn: () => Promise<void> | void): void;
}

export async function makeTempDir(prefix = 'bdpo-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** A fresh folder that is removed after `context` finishes. */
export async function tempDir(context: HasAfter, prefix?: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  context.after(() => removeDir(dir));
  return dir;
}
