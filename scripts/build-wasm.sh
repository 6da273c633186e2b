#!/usr/bin/env bash
# Rebuilds the WebAssembly of the resampler and of the Parquet writer's snappy from their text sources (Debian:
# apt-get install wabt; SIMD and bulk memory are on by default from wabt 1.0.30). The .wasm files are committed, so
# neither npm ci nor a run needs wabt; tests check that each committed binary is what its source builds to.
set -euo pipefail
cd "$(dirname "$0")/.."
wat2wasm src/models/wasm/resample.wat -o src/models/wasm/resample.wasm
wat2wasm src/io/wasm/snappy.wat -o src/io/wasm/snappy.wasm
