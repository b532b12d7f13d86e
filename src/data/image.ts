// Image decoding through sharp (libvips): work runs on libuv's thread pool, off the main thread.
import sharp from 'sharp';
import { INPUT_LIMITS, InputFileError, formatCount, readRegularFileAsync } from '../io/read.js';

/** One decoded image: 8-bit RGB, HWC, row-major. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
}

// 'truncated' rejects cut-off files but accepts the benign libjpeg warnings that real photo
// collections are full of (PIL accepts those too). libvips refuses, from the header alone, an
// image of more than INPUT_LIMITS.imagePixels pixels (width × height) before decoding it.
export const SHARP_INPUT: sharp.SharpOptions = { failOn: 'truncated', limitInputPixels: INPUT_LIMITS.imagePixels };

/** The message part of anything thrown. */
export function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** sharp's refusal of an image over limitInputPixels, anywhere in err's cause chain. */
function isPixelLimit(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (/exceeds pixel limit/.test(e.message)) return true;
  }
  return false;
}

function pixelLimitReason(width?: number, height?: number): string {
  const limit = `the limit of ${formatCount(INPUT_LIMITS.imagePixels)} pixels (width × height, INPUT_LIMITS.imagePixels)`;
  return width && height ? `it is ${width}×${height} = ${formatCount(width * height)} pixels, more than ${limit}` : `it has more pixels than ${limit}`;
}

/** reason(err), without the leading path of an InputFileError about `what` itself. */
function detail(err: unknown, what: string): string {
  return err instanceof InputFileError && err.path === what ? err.detail : reason(err);
}

/** The error every decode failure becomes: "<what>: cannot decode image: <reason>". */
export function decodeError(what: string, err: unknown): Error {
  const why = isPixelLimit(err) ? pixelLimitReason() : detail(err, what);
  return new Error(`${what}: cannot decode image: ${why}`, { cause: err });
}

/**
 * `err` (from decoding `encoded`) with the image's size in its message when it was refused for
 * its pixel count: the header is read again without the limit (the header only, no pixels).
 */
export async function withPixelCount(err: Error, encoded: Buffer, what: string): Promise<Error> {
  if (!isPixelLimit(err)) return err;
  try {
    const meta = await sharp(encoded, { ...SHARP_INPUT, limitInputPixels: false }).metadata();
    return new Error(`${what}: cannot decode image: ${pixelLimitReason(meta.width, meta.height)}`, { cause: err });
  } catch {
    return err;
  }
}

/**
 * The bytes of an image file, read only if it is a regular file of at most INPUT_LIMITS.imageBytes
 * (a FIFO, /dev/zero or a directory, also behind a symlink, is refused at once). Rejects with
 * "<what>: cannot read image file: <reason>" (`what` defaults to the path).
 */
export async function readImageFile(path: string, what = path): Promise<Buffer> {
  try {
    return await readImageBytes(path);
  } catch (err) {
    throw new Error(`${what}: cannot read image file: ${detail(err, what)}`, { cause: err });
  }
}

function readImageBytes(path: string): Promise<Buffer> {
  return readRegularFileAsync(path, { maxBytes: INPUT_LIMITS.imageBytes, what: 'image file' });
}

/**
 * Decodes JPEG, PNG, WebP, GIF (first frame) or TIFF from a path or an encoded buffer into 8-bit
 * RGB, like PIL's `Image.open(f).convert('RGB')` after EXIF transposition: the EXIF orientation
 * is applied, greyscale becomes RGB, alpha is dropped (not composited), 16-bit becomes 8-bit.
 * `what` names the input in errors (default: the path). A path is read as readImageFile reads it;
 * an image of more than INPUT_LIMITS.imagePixels pixels is refused before it is decoded.
 */
export async function decodeImage(input: string | Buffer, what?: string): Promise<RawImage> {
  const name = what ?? (typeof input === 'string' ? input : 'image buffer');
  if (typeof input !== 'string' && !Buffer.isBuffer(input)) {
    throw new TypeError(`decodeImage: input must be a file path or a Buffer, got ${typeof input}`);
  }
  let bytes: Buffer;
  try {
    bytes = typeof input === 'string' ? await readImageBytes(input) : input;
  } catch (err) {
    throw decodeError(name, err);
  }
  try {
    const { data, info } = await sharp(bytes, SHARP_INPUT)
      .autoOrient()
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after conversion to RGB, got ${info.channels}`);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw await withPixelCount(decodeError(name, err), bytes, name);
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
