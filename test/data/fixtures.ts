// Test images made with sharp in a temporary folder (tests never read ../shared/data).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';

export function tempDir(tag: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `deltatune-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A deterministic RGB pattern: pixel (x, y) = (x·a + y·b + seed, ...) mod 256 per channel. */
export function pattern(width: number, height: number, seed = 0): Uint8Array {
  const px = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = 3 * (y * width + x);
      px[p] = (x * 7 + y * 3 + seed * 11) & 255;
      px[p + 1] = (x * 2 + y * 9 + seed * 5) & 255;
      px[p + 2] = (x * 13 + y * 1 + seed * 17) & 255;
    }
  }
  return px;
}

export function constant(width: number, height: number, rgb: readonly [number, number, number]): Uint8Array {
  const px = new Uint8Array(width * height * 3);
  for (let p = 0; p < px.length; p += 3) px.set(rgb, p);
  return px;
}

export type Format = 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff';

/** Writes RGB (or `channels`-channel) pixels as an image file; returns its path. */
export async function writeImage(path: string, px: Uint8Array, width: number, height: number, format: Format = 'png', channels: 1 | 3 | 4 = 3): Promise<string> {
  mkdirSync(dirname(path), { recursive: true });
  let img = sharp(px, { raw: { width, height, channels } });
  if (format === 'png') img = img.png();
  else if (format === 'jpeg') img = img.jpeg({ quality: 95 });
  else if (format === 'webp') img = img.webp({ lossless: true });
  else if (format === 'gif') img = img.gif();
  else img = img.tiff({ compression: 'lzw' }); // sharp's default TIFF compression is lossy JPEG
  await img.toFile(path);
  return path;
}

/** A file that looks like a JPEG but is cut in half. */
export async function writeTruncatedJpeg(path: string): Promise<string> {
  mkdirSync(dirname(path), { recursive: true });
  const full = await sharp(pattern(64, 48), { raw: { width: 64, height: 48, channels: 3 } }).jpeg().toBuffer();
  writeFileSync(path, full.subarray(0, full.length >> 1));
  return path;
}

/** An ImageFolder of `perClass` pattern PNGs per class, of varying sizes. */
export async function makeFolder(root: string, classes: readonly string[], perClass: number): Promise<void> {
  let seed = 0;
  for (const cls of classes) {
    for (let k = 0; k < perClass; k++) {
      const w = 40 + ((seed * 7) % 30);
      const h = 30 + ((seed * 5) % 40);
      await writeImage(join(root, cls, `img${k}.png`), pattern(w, h, seed), w, h);
      seed++;
    }
  }
}
