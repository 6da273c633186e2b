// One progress style for every long run: a bar on stderr when it is a terminal, nothing otherwise (logs and CI stay
// clean, and --json output on stdout is never interleaved with it).
import { SingleBar, Presets } from 'cli-progress';

export interface Progress {
  /** `total` may be learnt late (units are known once inputs are opened). */
  update(done: number, extra?: { total?: number; rows?: number; bytes?: number; unit?: string; note?: string }): void;
  stop(): void;
}

export function createProgress(label: string, total: number, options: { enabled?: boolean } = {}): Progress {
  const enabled = options.enabled ?? Boolean(process.stderr.isTTY);
  if (!enabled) return { update: () => {}, stop: () => {} };
  const started = Date.now();
  const bar = new SingleBar(
    {
      format: `${label} |{bar}| {percentage}% {value}/{total} | {rate} | ETA {eta_formatted}`,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 20,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0, { rate: '' });
  return {
    update(done, extra = {}) {
      const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
      const parts: string[] = [];
      if (extra.total !== undefined && extra.total !== bar.getTotal()) bar.setTotal(extra.total);
      if (extra.rows !== undefined) parts.push(`${Math.round(extra.rows / seconds)} ${extra.unit ?? 'rows'}/s`);
      if (extra.bytes !== undefined) parts.push(`${(extra.bytes / seconds / 1e6).toFixed(1)} MB/s`);
      if (extra.note !== undefined) parts.push(extra.note);
      bar.update(done, { rate: parts.join(' ') });
    },
    stop() {
      bar.stop();
    },
  };
}
