// Thumbnails for the report pages: a few chosen images, shrunk to small JPEG data URIs so that one HTML file holds
// them and opens offline. Only the images a page shows are decoded, found by streaming the images parts.
import sharp from 'sharp';
import { listParts, readPart } from '../io/arrow-table.ts';

export interface ThumbnailOptions {
  /** Longest side in pixels (default 192). */
  maxSide?: number;
  /** Upper bound on the encoded JPEG (default 10 000 bytes); quality, then size, step down until it fits. */
  maxBytes?: number;
  /** Images above this many pixels are not decoded (default 64 Mpx): the ingest bound, checked again here. */
  maxInputPixels?: number;
}

const QUALITIES = [74, 60, 48, 36];

/**
 * A `data:image/jpeg;base64,…` URI of the image shrunk to fit `maxSide`, or null when the bytes do not decode.
 * Transparent images are flattened on white, EXIF orientation is applied.
 */
export async function makeThumbnail(bytes: Uint8Array, options: ThumbnailOptions = {}): Promise<string | null> {
  const maxBytes = options.maxBytes ?? 10_000;
  let side = options.maxSide ?? 192;
  try {
    for (let attempt = 0; attempt < 4; attempt++) {
      for (const quality of QUALITIES) {
        const jpeg = await sharp(bytes, { limitInputPixels: options.maxInputPixels ?? 64_000_000, failOn: 'error' })
          .rotate()
          .resize(side, side, { fit: 'inside', withoutEnlargement: true })
          .flatten({ background: '#ffffff' })
          .jpeg({ quality, mozjpeg: true })
          .toBuffer();
        if (jpeg.byteLength <= maxBytes) return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
      }
      side = Math.max(16, Math.round(side * 0.75));
    }
  } catch {
    return null;
  }
  return null;
}

/**
 * Thumbnails of the wanted images of a dataset directory, keyed by image_id. Parts are read one at a time and only
 * the wanted rows are decoded; an image that is absent or does not decode has no entry (the page shows a
 * placeholder).
 */
export async function collectThumbnails(
  dir: string,
  imageIds: Iterable<string>,
  options: ThumbnailOptions = {},
): Promise<Map<string, string>> {
  const wanted = new Set(imageIds);
  const found = new Map<string, string>();
  if (wanted.size === 0) return found;
  for (const file of await listParts(dir, 'images')) {
    const part = await readPart(dir, file);
    const ids = part.getChild('image_id')!;
    const bytes = part.getChild('bytes')!;
    for (let i = 0; i < part.numRows; i++) {
      const id = ids.get(i) as string;
      if (!wanted.has(id) || found.has(id)) continue;
      const uri = await makeThumbnail(bytes.get(i) as Uint8Array, options);
      if (uri !== null) found.set(id, uri);
    }
    if (found.size === wanted.size) break;
  }
  return found;
}
