// The committed WebAssembly modules (scripts/build-wasm.sh builds them from their .wat sources), instantiated once
// per thread on first use: each thread has its own memory.
import { readFileSync } from 'node:fs';

export function instantiateWasm<Exports>(url: URL): Exports {
  return new WebAssembly.Instance(new WebAssembly.Module(readFileSync(url)), {}).exports as unknown as Exports;
}
