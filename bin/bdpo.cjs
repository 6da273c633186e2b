#!/usr/bin/env node
// The CLI's entry. The CLI is TypeScript run through tsx, so there is no build step between a checkout and `npx bdpo`.
//
// It is CommonJS on purpose: libuv reads UV_THREADPOOL_SIZE once, when its thread pool starts, and loading an ES
// module entry already starts it. sharp decodes on that pool, so with its default of 4 threads no more than 4 images
// decode at once however many image workers run: the pool is sized here, before anything asynchronous happens.
'use strict';
const { libuvThreadsFor } = require('./threads.cjs');

const argv = process.argv.slice(2);
if (process.env.UV_THREADPOOL_SIZE === undefined) process.env.UV_THREADPOOL_SIZE = String(libuvThreadsFor(argv));
import('tsx/esm/api')
  .then(({ register }) => {
    register();
    return import('../src/cli/main.ts');
  })
  .then(async ({ main, stopCleanlyOnSignals }) => {
    stopCleanlyOnSignals();
    process.exitCode = await main(argv);
  });
