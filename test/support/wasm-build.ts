// The check every committed WebAssembly binary gets: it is what its text source builds to (scripts/build-wasm.sh).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'node:test';

const hasWat2wasm = spawnSync('wat2wasm', ['--version']).status === 0;

/** A test that rebuilds `source` (a .wat path) and compares the result with the committed .wasm beside it. */
export function testCommittedWasm(source: string): void {
  const committed = source.replace(/\.wat$/, '.wasm');
  test(`the committed ${basename(committed)} is what ${basename(source)} builds to`, {
    skip: hasWat2wasm ? false : 'wat2wasm (Debian: wabt) is not installed',
  }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'bdpo-wasm-'));
    try {
      const built = join(dir, basename(committed));
      const run = spawnSync('wat2wasm', [source, '-o', built], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      assert.ok(readFileSync(built).equals(readFileSync(committed)), 'run scripts/build-wasm.sh and commit the result');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
