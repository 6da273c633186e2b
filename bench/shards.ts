// `node --import tsx bench/shards.ts`: what one shard of n costs against the unsharded run on the same input, and
// what recording a unit costs as the run grows. For n = 2 and 4, the bytes read (/proc/self/io rchar of the child
// process that ingests) and CPU time (its resourceUsage) of every shard as a fraction of the unsharded child's
// (goal ≤ 1.2/n), raw and without the fixed cost of a process that is dealt no unit.
// Then UnitLedger commits after N synthetic units (default 10,000 and 50,000): time and bytes per commit, which must
// not grow with N, and under 1% of a unit's ingest CPU. Run it under the machine's bench lock (flock), as every
// benchmark here.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ingestPickapic } from '../src/ingest/pickapic.ts';
import { UnitLedger } from '../src/core/units.ts';
import { WHOLE } from '../src/core/shard.ts';
import { cleanRows, noiseImages, writePickapicShard } from '../test/support/pickapic-fixture.ts';

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    out: { type: 'string' },
    shard: { type: 'string' },
    files: { type: 'string', default: '16' },
    groups: { type: 'string', default: '4' },
    rows: { type: 'string', default: '70' },
    units: { type: 'string', default: '10000,50000' },
  },
});

if (values.child !== undefined) {
  // The measured process: one ingest, then its own counters.
  const [index, count] = (values.shard ?? '0/1').split('/').map(Number) as [number, number];
  await ingestPickapic([values.child], { out: values.out!, shard: { index, count } });
  const io = await readFile('/proc/self/io', 'utf8');
  const rchar = Number(/^rchar: (\d+)$/m.exec(io)![1]);
  const usage = process.resourceUsage();
  console.log(JSON.stringify({ rchar, cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6 }));
  process.exit(0);
}

const root = await mkdtemp(join(tmpdir(), 'bdpo-bench-shards-'));
try {
  const input = join(root, 'in');
  const pool = await noiseImages(96, 1, { width: 512, height: 512, quality: 90 });
  const files = Number(values.files);
  const perGroup = Number(values.rows);
  const groups = Number(values.groups);
  for (let f = 0; f < files; f++) {
    const rows = cleanRows(pool, perGroup * groups, 100 + f);
    await writePickapicShard(join(input, `train-${String(f).padStart(5, '0')}-of-${String(files).padStart(5, '0')}.parquet`), rows, {
      writer: 'hyparquet',
      rowGroupSize: perGroup,
    });
  }
  let inputBytes = 0;
  for (let f = 0; f < files; f++) {
    inputBytes += (await stat(join(input, `train-${String(f).padStart(5, '0')}-of-${String(files).padStart(5, '0')}.parquet`))).size;
  }
  const measure = (shard: string): { rchar: number; cpuSeconds: number } => {
    const out = join(root, `out-${shard.replace('/', 'of')}`);
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'bench/shards.ts', '--child', input, '--out', out, '--shard', shard], {
      encoding: 'utf8',
    });
    if (run.status !== 0) throw new Error(run.stderr);
    return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { rchar: number; cpuSeconds: number };
  };
  const units = files * groups;
  const unitKeys = Array.from({ length: files }, (_, f) =>
    Array.from(
      { length: groups },
      (_, g) => `ingest:pickapic:train-${String(f).padStart(5, '0')}-of-${String(files).padStart(5, '0')}-rg${String(g).padStart(4, '0')}`,
    ),
  ).flat();
  const whole = measure('0/1');
  // Shard `units` of `units + 1` is dealt no unit: what a shard costs before its first unit (node, tsx, the imports,
  // the footers of every input).
  const idle = measure(`${units}/${units + 1}`);
  console.log(
    `input: ${files} files × ${groups} row groups × ${perGroup} rows of 2 JPEGs 512² (${(inputBytes / 1e6).toFixed(0)} MB); ${units} units`,
  );
  console.log(`unsharded: ${(whole.rchar / 1e6).toFixed(1)} MB read, ${whole.cpuSeconds.toFixed(2)} s CPU`);
  console.log(`a shard that owns no unit (fixed cost): ${(idle.rchar / 1e6).toFixed(1)} MB read, ${idle.cpuSeconds.toFixed(2)} s CPU`);
  for (const n of [2, 4]) {
    for (let i = 0; i < n; i++) {
      const shard = measure(`${i}/${n}`);
      const owned = [...unitKeys].sort().filter((_k, position) => position % n === i).length;
      const bytes = shard.rchar / whole.rchar;
      const cpu = shard.cpuSeconds / whole.cpuSeconds;
      const net = (x: number, base: number, fixed: number) => (x - fixed) / (base - fixed);
      console.log(
        `shard ${i}/${n} (${owned} of ${units} units = ${(owned / units).toFixed(3)}): ` +
          `bytes read ${bytes.toFixed(3)} of unsharded, CPU ${cpu.toFixed(3)} (goal ≤ ${(1.2 / n).toFixed(3)}); ` +
          `without the fixed cost: bytes ${net(shard.rchar, whole.rchar, idle.rchar).toFixed(3)}, ` +
          `CPU ${net(shard.cpuSeconds, whole.cpuSeconds, idle.cpuSeconds).toFixed(3)}`,
      );
    }
  }
  const unitSeconds = (whole.cpuSeconds - idle.cpuSeconds) / units;

  // Bookkeeping: commit cost after N units already recorded.
  for (const n of values.units!.split(',').map(Number)) {
    const dir = join(root, `ledger-${n}`);
    const ledger = await UnitLedger.open(dir, 'synthetic', WHOLE);
    const outcome = { parts: [], counts: { read: 100, taken: 100, rejected: 0, byReason: {} } };
    for (let i = 0; i < n; i++) await ledger.commit({ key: `synthetic:unit-${String(i).padStart(7, '0')}` }, outcome);
    const samples = 200;
    const bytesBefore = ledger.recordBytes;
    const started = process.hrtime.bigint();
    for (let i = 0; i < samples; i++) await ledger.commit({ key: `synthetic:extra-${i}` }, outcome);
    const perCommit = Number(process.hrtime.bigint() - started) / 1e9 / samples;
    const bytes = (ledger.recordBytes - bytesBefore) / samples;
    console.log(
      `bookkeeping after ${n} units: ${(perCommit * 1e3).toFixed(2)} ms and ${bytes.toFixed(0)} bytes per unit commit = ` +
        `${((100 * perCommit) / unitSeconds).toFixed(2)}% of a unit's ingest CPU here (${(unitSeconds * 1e3).toFixed(0)} ms)`,
    );
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
