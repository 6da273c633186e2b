#!/usr/bin/env node
// Kept for scripts that call bin/bdpo.js: the entry is bin/bdpo.cjs, which sizes libuv's thread pool before it
// starts (here it has already started, so the pool keeps its default size unless UV_THREADPOOL_SIZE is set).
import './bdpo.cjs';
