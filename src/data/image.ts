// Image decoding through sharp (libvips): work runs on libuv's thread pool, off the main thread.
import sharp from 'sharp';

/** One decoded image: 8-bit RGB, HWC, row-major. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
}

// 'truncated' rejects cut-off files but accepts the benign libjpeg warnings that real photo
// collections are full of (PIL accepts those too).
export const SHARP_INPUT: sharp.SharpOptions = { failOn: 'truncated' };

/** The message part of anything thrown. */
export function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The error every decode failure becomes: "<what>: cannot decode image: <reason>". */
export function decodeError(what: string, err: unknown): Error {
  return new Error(`${what}: cannot decode image: ${reason(err)}`, { cause: err });
}

/**
 * Decodes JPEG, PNG, WebP, GIF (first frame) or TIFF from a path or an encoded buffer into 8-bit
 * RGB, like PIL's `Image.open(f).convert('RGB')` after EXIF transposition: the EXIF orientation
 * is applied, greyscale becomes RGB, alpha is dropped (not composited), 16-bit becomes 8-bit.
 * `what` names the input in errors (default: the path).
 */
export async function decodeImage(input: string | Buffer, what?: string): Promise<RawImage> {
  const name = what ?? (typeof input === 'string' ? input : 'image buffer');
  if (typeof input !== 'string' && !Buffer.isBuffer(input)) {
    throw new TypeError(`decodeImage: input must be a file path or a Buffer, got ${typeof input}`);
  }
  try {
    const { data, info } = await sharp(input, SHARP_INPUT)
      .autoOrient()
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after conversion to RGB, got ${info.channels}`);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw decodeError(name, err);
  }
}

/** Checks that a dataset's load() result is a well-formed RGB image. */
export function checkRawImage(img: unknown, what: string): RawImage {
  const r = img as RawImage;
  if (
    !r || !(r.data instanceof Uint8Array) || !Number.isInteger(r.width) || !Number.isInteger(r.height) ||
    r.width < 1 || r.height < 1 || r.data.length !== r.width * r.height * 3
  ) {
    const shape = r && typeof r === 'object' ? `${r.width}x${r.height} with ${r.data?.length} bytes` : String(r);
    throw new Error(`${what}: load() must return 8-bit RGB { data, width, height } with width*height*3 bytes, got ${shape}`);
  }
  return r;
}
