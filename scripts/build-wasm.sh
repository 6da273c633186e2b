#!/usr/bin/env bash
# Rebuilds the WebAssembly the resampler runs from its text source (Debian: apt-get install wabt; SIMD is on by
# default from wabt 1.0.30). The .wasm is committed, so neither npm ci nor a run needs wabt; a test checks that the
# committed binary is what the source builds to.
set -euo pipefail
cd "$(dirname "$0")/.."
wat2wasm src/models/wasm/resample.wat -o src/models/wasm/resample.wasm
