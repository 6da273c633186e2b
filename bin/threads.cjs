// How many threads libuv's pool gets for a command line: one decode lane per image worker (sharp runs each decode
// on this pool, one libvips thread per image), plus libuv's default four for file I/O, so that decodes never queue
// behind reads and reads never queue behind decodes. Workers come from --workers N (0 or absent: one per core,
// as src/models/image-pool.ts resolves them).
'use strict';
const { availableParallelism } = require('node:os');

const FILE_IO_THREADS = 4;
// libuv's own ceiling.
const MAX_THREADS = 1024;

function workersIn(argv) {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = arg === '--workers' ? argv[i + 1] : arg.startsWith('--workers=') ? arg.slice('--workers='.length) : undefined;
    if (value === undefined) continue;
    const workers = Number(value);
    // A bad value is the option parser's to report; size for the default meanwhile.
    return Number.isSafeInteger(workers) && workers > 0 ? workers : 0;
  }
  return 0;
}

function libuvThreadsFor(argv, cores = availableParallelism()) {
  const workers = workersIn(argv) || cores;
  return Math.min(MAX_THREADS, workers + FILE_IO_THREADS);
}

module.exports = { libuvThreadsFor };
