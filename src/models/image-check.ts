// Accepting an image: its size is read from the header and bounded before any pixel is decoded (a pixel bomb is a
// reject, not an out-of-memory), then it is decoded for real (shrunk on load, which is cheap for JPEG) so that
// truncated or corrupt files are rejected here and not in the middle of a label run.
import sharp, { type Metadata } from 'sharp';
import type { RejectReason } from '../core/schema.ts';

/** PIL's default decompression-bomb limit, so what the Python tools open, we take. */
export const DEFAULT_MAX_PIXELS = 89_478_485;
/** An image file larger than this is a reject and is never read (no real image comes near it): not a memory spike. */
export const MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024;

const MIME_BY_FORMAT: Record<string, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
};

export type ImageCheck = { ok: true; mime: string; width: number; height: number } | { ok: false; reason: RejectReason; detail: string };

export interface ImageCheckOptions {
  maxPixels?: number;
  /** false: trust the header (fast); true (default): decode to prove the pixels are there. */
  decode?: boolean;
}

export async function checkImage(bytes: Uint8Array | null | undefined, options: ImageCheckOptions = {}): Promise<ImageCheck> {
  if (!bytes || bytes.byteLength === 0) return { ok: false, reason: 'empty_image', detail: 'no bytes' };
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    return { ok: false, reason: 'bad_image', detail: HEADER_UNREADABLE };
  }
  const { width, height, format } = meta;
  if (!width || !height) return { ok: false, reason: 'bad_image', detail: 'no dimensions in the header' };
  if (width * height > maxPixels) {
    return { ok: false, reason: 'too_many_pixels', detail: `${width}×${height} > ${maxPixels} pixels` };
  }
  const mime = format ? MIME_BY_FORMAT[format] : undefined;
  if (!mime) return { ok: false, reason: 'unsupported_format', detail: `format ${format ?? 'unknown'}` };
  if (options.decode !== false) {
    try {
      await sharp(bytes, { failOn: 'truncated', limitInputPixels: maxPixels })
        .resize(64, 64, { fit: 'inside', fastShrinkOnLoad: true })
        .raw()
        .toBuffer();
    } catch {
      return { ok: false, reason: 'bad_image', detail: PIXELS_UNREADABLE };
    }
  }
  return { ok: true, mime, width, height };
}

// libvips keeps one error buffer per process: with several images in flight a failure can carry another image's
// message. Reject details are outputs that must be byte-identical run to run, so they name the failing step only.
export const HEADER_UNREADABLE = 'header unreadable: not an image, or a format libvips does not read';
export const PIXELS_UNREADABLE = 'pixels do not decode: truncated or corrupt image data';
