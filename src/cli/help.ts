// Every command's --help text, in a module that loads nothing heavy: `bdpo <command> --help` prints from here
// without importing the command (and with it ONNX Runtime, sharp, TensorFlow.js or Arrow).
import { RUN_OPTIONS_HELP } from './args.ts';

// The default of encode's --scaling-factor (src/train/encode.ts SD_SCALING_FACTOR; a test keeps the two equal).
const SD_SCALING_FACTOR = 0.18215;

export const INGEST_COMMON_HELP = `  --out, -o DIR       dataset directory to write (created if needed; re-runs skip finished parts)
  --shard i/n         ingest shard i of n (0-based): every n-th unit (row group, chunk), read by this shard
                      only; defaults from JOB_COMPLETION_INDEX (+ --shards n) or a Slurm array
                      (SLURM_ARRAY_TASK_ID, _COUNT, _MIN, _MAX, _STEP: --array=0-63:2 works)
  --max-pixels N      reject images larger than N pixels, read from the header (default 89478485, as PIL)
  --no-decode         trust image headers instead of decoding every image (faster, misses truncated files)
  --workers N         image verification worker threads (default or 0: all cores)
  --json              print the summary as JSON on stdout`;

export const INGEST_USAGE = `usage: bdpo ingest <pickapic|hpd|parti|images> … --out DIR

  bdpo ingest pickapic <shard.parquet|folder>… --out DIR [--split NAME]
  bdpo ingest hpd <HPDv2 root> --out DIR
  bdpo ingest parti <PartiPrompts.tsv> --out DIR
  bdpo ingest images <folder> --prompts <list.tsv|list.json> [--model NAME] --out DIR

Pick-a-Pic v2 Parquet shards are read row group by row group; the split comes from the file name
(train-00000-of-00645.parquet, validation_unique-…). HPDv2: train.json pairs, test.json ranked groups, benchmark
prompt lists. Generated images are named by 0-based prompt index, optionally _seed: 00012.jpg, 12_3.png.

${INGEST_COMMON_HELP}`;

export const INSPECT_USAGE = `usage: bdpo inspect DIR [--json]

Counts by source and split, images by format, rejects by reason, the balance of human labels and the tie rate,
and what every stage run read, took and rejected (read = taken + rejected).`;

export const COMPACT_USAGE = `usage: bdpo compact DIR [--json]

Rewrites the ingest parts of DIR without the rows that another unit's part holds first: every reader of the
dataset already reads each prompt, image and pair once (a repeated pair as a duplicate_pair reject); after compact
the raw parts say the same, for engines that read them directly (DuckDB, Spark). Run it once every ingest shard has
finished. Atomic per unit, and resumable: run it again after an interruption.`;

export const LABEL_USAGE = `usage: bdpo label DIR --metrics <metric.json>… [--batch-size 16] [--device auto|cpu|cuda] [--shard i/n] [--json]

Scores every (image, prompt) of DIR once with every metric into scores/<metric>/part-*.parquet. A metric is a JSON
file beside its ONNX model(s) (see data/metrics/). Re-runs skip finished parts; a new metric scores only itself.
  --metrics a.json b.json …   metric files (repeat the flag or list them after it)
  --batch-size N              images per ONNX batch (default 16)
${RUN_OPTIONS_HELP}`;

export const CONSENSUS_USAGE =
  'usage: bdpo consensus DIR --rule <rule> [--ties drop|half|human|<metric>] [--margin δ] [--weights m=w,…] [--seed n] ' +
  `[--metrics a,b] [--uncalibrated] [--json]

Rules: majority (BalancedDPO), mean-prob, vanilla (sum of raw scores), normalized (sum of z-scores), random (one
metric per pair, seeded), single:<metric>, human. Writes consensus/<rule>/part-*.parquet from the cached scores
(options other than the defaults are appended to the folder name, e.g. majority.ties-half; --name NAME overrides);
uses temperatures fitted by \`bdpo calibrate\` when DIR has them (--uncalibrated: the metric JSONs' τ).`;

export const CALIBRATE_USAGE = `usage: bdpo calibrate DIR [--metrics a,b] [--split NAME]… [--json]

Fits each metric's temperature τ of p = σ((s_a − s_b)/τ) by maximum likelihood against the human labels in DIR and
writes calibration.json, which \`bdpo consensus\` then uses.
  --split NAME   fit on the pairs of these splits only (repeat the flag or list them: train,validation); default
                 the train split(s) when DIR has one, else every split`;

export const AUDIT_USAGE = `usage: bdpo audit DIR [--rule majority] --out report/ [--top 24] [--bins 30] [--json]

Where the metrics disagree, with each other and with the human labels, from DIR's consensus/<rule>/ files: raw
agreement and Cohen's κ between every two raters, Fleiss' κ across the metrics, tie-aware accuracy against humans,
Kendall's τ within HPD's ranked groups, tie rates and vote patterns, per split and per category; score histograms,
reliability curves, and the most contested pairs as pictures. Writes OUT/report.html (one self-contained page,
works offline) and OUT/report.json (every number of the page).
  --rule R     the consensus files read: a rule (default majority) or a folder under consensus/, e.g. majority.ties-half
  --top N      contested pairs shown, and pairs where consensus and humans differ (default 24 each)
  --bins N     histogram bins of the score distributions (default 30)
  --json       print report.json's content instead of the text summary`;

export const EVAL_USAGE =
  'usage: bdpo eval --a DIR_A --b DIR_B --out report/ [--model-a M] [--model-b M] [--top 24] [--resamples 2000] ' +
  `[--seed 0] [--json]

Win rate of model A over model B per metric, from two dataset directories of generations (bdpo ingest images, then
bdpo label): images are paired by prompt and seed, equal scores count ½, 95% bootstrap intervals resample prompts;
the average over metrics; per category and per challenge. Only metrics scored (same version) on both sides. The
two sides must hold the same (prompt, seed)s. Writes OUT/report.html and OUT/report.json.
  --model-a M      only model M's images of DIR_A (a dataset holding several models, e.g. HPD's benchmark);
  --model-b M      likewise for DIR_B (DIR_A and DIR_B may then be the same directory)
  --top N          prompts in the gallery of largest score gaps (default 24)
  --resamples N    bootstrap resamples (default 2000)
  --seed N         bootstrap seed (default 0)
  --json           print report.json's content instead of the text summary`;

export const TRAIN_USAGE =
  'usage: bdpo train DIR --rule R --config train.json --out RUN/ [--resume] [--steps N] ' +
  `[--backend auto|wasm|cpu|tensorflow|tensorflow-gpu] [--json]

Diffusion-DPO on the kept pairs of consensus/<R>, from the latents and text states cached by \`bdpo encode\`. Writes
RUN/metrics.jsonl (a JSON line every logEvery steps, and one per validation), RUN/checkpoint-<step>/ (model,
reference and optimizer safetensors, trainer.json, run.json) and RUN/latest, the newest complete checkpoint.
  --config FILE       training config (see data/train/tiny.json); optional with --resume (the run's own)
  --resume            continue RUN/ from RUN/latest (same seed → the same weights as an uninterrupted run)
  --steps N           DPO steps to reach (overrides the config's steps)
  --backend B         TensorFlow.js backend; auto: native GPU, native CPU, wasm, then the pure-JS cpu backend
Exit code 1 when the MSE guard stopped the run (the denoiser degraded; see the config's mseGuard).`;

export const ENCODE_USAGE =
  'usage: bdpo encode DIR --vae <vae-encoder.onnx> --text <text-encoder.onnx> [--rule R] [--resolution 64] ' +
  `[--tokenizer tokenizer.json] [--shard i/n] [--json]

Caches what training needs, so that it never touches an image or a text model: VAE latents of the images of the
kept pairs of consensus/<R> (of every pair without --rule) into latents/part-*.parquet, and text-encoder hidden
states of their prompts (plus the empty prompt) into text/part-*.parquet, float16. Re-runs skip finished parts.
  --vae FILE                  VAE encoder: pixel_values [n, 3, H, W] in [-1, 1] → latent_mean
  --text FILE                 text encoder: input_ids [n, 77] → last_hidden_state
  --tokenizer FILE            tokenizer.json or vocab.json (default: beside --text, or ../tokenizer/)
  --rule R                    folder under consensus/ (default: every pair in pairs/)
  --resolution N              short side resize + centre crop, a multiple of 8 (default 64)
  --scaling-factor X          latent scale (default ${SD_SCALING_FACTOR}, SD 1.x/2.x)
  --batch-size N              images per VAE batch (default 8)
${RUN_OPTIONS_HELP}`;

export const EXPORT_USAGE =
  'usage: bdpo export DIR --rule R --out <folder | file.parquet> [--format diffusers-dpo] [--split s,…] [--keep-ties] ' +
  `[--json]

Writes the kept pairs of consensus/<R> in Pick-a-Pic v2's layout, which the public Diffusion-DPO trainers read:
caption, jpg_0, jpg_1 (the original image bytes), label_0 (1: jpg_0 preferred, 0: jpg_1), label_1, model_0, model_1,
and the consensus columns (pair_id, split, soft, margin, disagreement, votes_a, votes_b, p_<metric>). --out is a
folder in HF datasets' layout: data/<split>-<k>-of-<n>.parquet (one split per file group, row groups of ≤ 256 rows,
bounded memory) and a dataset card README.md listing the splits; or one file of every split when it ends in
.parquet (built in memory: for small exports). An existing --out folder is replaced only when it is empty or an
earlier export; any other folder, or one holding the dataset, is refused.
  --split s,…                 only these splits (e.g. train)
  --keep-ties                 also export ties (label_0 = 0.5, from --ties half); the trainers train them as jpg_0 wins
                              (default: tied pairs are left out and counted)
  --rows-per-part N           pairs per part file (default 4096; a part also closes at 256 MiB of images)`;

export const TABLES_USAGE = `usage: bdpo tables DIR [--out DIR2] [--images-bytes] [--json]

Parquet copies of the Arrow IPC tables, for SQL engines (DuckDB, Spark) that read Parquet but not Arrow IPC:
DIR2/{prompts,pairs,rejects,images}/part-*.parquet, one per Arrow part, same columns (docs/schema.md).
  --out DIR2        where the copies go (default DIR/tables)
  --images-bytes    keep the image bytes in images/ (default: image_id, prompt_id, mime, width, height,
                    source_ref, model, seed)
A re-run rewrites only the parts whose Arrow source changed.`;
