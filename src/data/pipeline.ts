// One sample's geometry and colour work in sharp, producing size×size 8-bit RGB (HWC). It runs
// on libuv's thread pool, so it overlaps with a synchronous libtorch step on the main thread.
import sharp from 'sharp';
import { type RawImage, SHARP_INPUT, decodeError } from './image.js';
import { type Rng } from './random.js';
import { type ResolvedTransform, composeColour, needsMean, resizeCenterCrop, sampleAugment } from './transforms.js';

// libvips' linear kernel is PIL's antialiased BILINEAR when shrinking (torchvision's default).
const KERNEL = sharp.kernel.linear;

/** Either an encoded file's bytes or an already decoded RGB image. */
export type SampleInput = { encoded: Buffer } | { raw: RawImage };

function open(input: SampleInput): sharp.Sharp {
  if ('encoded' in input) return sharp(input.encoded, SHARP_INPUT);
  const { data, width, height } = input.raw;
  return sharp(data, { raw: { width, height, channels: 3 } });
}

/**
 * Decodes (if needed), crops, resizes, flips and colour-jitters one sample as `t` says, drawing
 * its random choices from `rng`. Rejects with "<what>: cannot decode image: <reason>".
 */
export async function transformSample(input: SampleInput, t: ResolvedTransform, rng: Rng, what: string): Promise<Buffer> {
  try {
    let width: number;
    let height: number;
    if ('encoded' in input) {
      // Header only; crop boxes live in EXIF-oriented coordinates, as PIL after exif_transpose.
      const meta = await sharp(input.encoded, SHARP_INPUT).metadata();
      width = meta.autoOrient?.width ?? meta.width;
      height = meta.autoOrient?.height ?? meta.height;
      if (!width || !height) throw new Error('no image dimensions in the header');
    } else {
      ({ width, height } = input.raw);
    }
    const aug = sampleAugment(t, width, height, rng);
    const size = t.size;
    let img = open(input).autoOrient();
    if (aug.box) {
      img = img.extract(aug.box).resize(size, size, { fit: 'fill', kernel: KERNEL });
    } else {
      const plan = resizeCenterCrop(width, height, size, t.cropPct);
      img = img.resize(plan.resizeWidth, plan.resizeHeight, { fit: 'fill', kernel: KERNEL }).extract(plan.crop);
    }
    if (aug.flip) img = img.flop();
    const { data, info } = await img.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.width !== size || info.height !== size || info.channels !== 3) {
      throw new Error(`expected ${size}×${size}×3 after the transform, got ${info.width}×${info.height}×${info.channels}`);
    }
    if (!aug.colour) return data;
    // Colour jitter as one affine map of RGB; contrast needs the mean colour of this crop.
    const { m, t: shift } = composeColour(aug.colour, needsMean(aug.colour) ? meanRgb(data) : null);
    return await sharp(data, { raw: { width: size, height: size, channels: 3 } })
      .recomb([[m[0]!, m[1]!, m[2]!], [m[3]!, m[4]!, m[5]!], [m[6]!, m[7]!, m[8]!]])
      .linear([1, 1, 1], shift)
      .raw({ depth: 'uchar' })
      .toBuffer();
  } catch (err) {
    throw decodeError(what, err);
  }
}

/**
 * Mean R, G, B of 8-bit RGB pixels: an integer sum over the bytes, far cheaper than sharp's stats(),
 * which computes much more (docs/performance.md#image-statistics).
 */
function meanRgb(px: Uint8Array): number[] {
  let r = 0;
  let g = 0;
  let b = 0;
  for (let p = 0; p < px.length; p += 3) {
    r += px[p]!;
    g += px[p + 1]!;
    b += px[p + 2]!;
  }
  const n = px.length / 3;
  return [r / n, g / n, b / n];
}
