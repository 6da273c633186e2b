// Reading what the audit needs besides the consensus rows: Parquet cells as numbers and strings, the options the
// consensus run recorded, and which pairs belong to HPD ranked groups.
import { basename } from 'node:path';
import { consensusOptionsLocation, readMetaJson } from '../../core/dataset-meta.ts';
import { readPart } from '../../io/arrow-table.ts';
import { isMissingFile } from '../../io/json-file.ts';
import type { ParquetCell } from '../../io/parquet.ts';
import type { AuditReport } from '../model.ts';
import { RANKED_PAIR } from './ranked-groups.ts';

export const cellString = (x: ParquetCell): string | null => (x === null || x === undefined ? null : String(x));
export const cellNumber = (x: ParquetCell): number | null => {
  if (x === null || x === undefined) return null;
  const n = Number(x);
  return Number.isNaN(n) ? null : n;
};

export interface SavedConsensusOptions {
  rule?: string;
  ties?: string;
  margin?: number;
  temperatures?: AuditReport['temperatures'];
  /** The splits calibrate fitted the calibrated τ on (written by consensus when some τ is calibrated). */
  calibratedOn?: string[] | 'all';
}

export async function readConsensusOptions(dir: string, ruleFolderName: string): Promise<SavedConsensusOptions> {
  try {
    return (await readMetaJson(consensusOptionsLocation(dir, ruleFolderName))) as SavedConsensusOptions;
  } catch (error) {
    // A folder without its meta/consensus/<rule>.json (written by hand) has no recorded options; a damaged one is an error.
    if (isMissingFile(error)) return {};
    throw error;
  }
}

/** source_ref of the pairs of one pairs part that belong to ranked groups, by pair_id. */
export async function rankedRefs(dir: string, consensusFile: string): Promise<Map<string, string>> {
  const refs = new Map<string, string>();
  const pairsFile = `pairs/${basename(consensusFile).replace(/\.parquet$/, '.arrow')}`;
  let part;
  try {
    part = await readPart(dir, pairsFile);
  } catch (error) {
    if (isMissingFile(error)) return refs;
    throw error;
  }
  const ids = part.getChild('pair_id');
  const sourceRefs = part.getChild('source_ref');
  if (!ids || !sourceRefs) return refs;
  for (let i = 0; i < part.numRows; i++) {
    const ref = sourceRefs.get(i) as string;
    if (RANKED_PAIR.test(ref)) refs.set(ids.get(i) as string, ref);
  }
  return refs;
}
