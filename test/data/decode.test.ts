// decodeImage: every supported format becomes 8-bit RGB of the right size; EXIF orientation is
// applied; broken files fail with the path in the message.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeImage } from '../../src/index.js';
import { constant, pattern, tempDir, writeImage, writeTruncatedJpeg } from './fixtures.js';

const { dir, cleanup } = tempDir('decode');
after(cleanup);

const pixel = (img: { data: Uint8Array; width: number }, x: number, y: number) => {
  const p = 3 * (y * img.width + x);
  return [img.data[p]!, img.data[p + 1]!, img.data[p + 2]!];
};

test('lossless formats (PNG, WebP, TIFF) decode to the exact RGB pixels', async () => {
  const px = pattern(37, 21, 3);
  for (const format of ['png', 'webp', 'tiff'] as const) {
    const path = await writeImage(join(dir, `p.${format}`), px, 37, 21, format);
    const img = await decodeImage(path);
    assert.equal(img.width, 37, format);
    assert.equal(img.height, 21, format);
    assert.deepEqual(Buffer.from(img.data), Buffer.from(px), `${format} pixels`);
  }
});

test('JPEG and GIF decode to RGB of the right size', async () => {
  const jpg = await decodeImage(await writeImage(join(dir, 'a.jpg'), constant(33, 17, [200, 40, 90]), 33, 17, 'jpeg'));
  assert.deepEqual([jpg.width, jpg.height, jpg.data.length], [33, 17, 33 * 17 * 3]);
  const [r, g, b] = pixel(jpg, 16, 8);
  assert.ok(Math.abs(r! - 200) <= 3 && Math.abs(g! - 40) <= 3 && Math.abs(b! - 90) <= 3, `JPEG colour ${[r, g, b]}`);
  const gif = await decodeImage(await writeImage(join(dir, 'a.gif'), constant(12, 9, [255, 0, 0]), 12, 9, 'gif'));
  assert.deepEqual([gif.width, gif.height, gif.data.length], [12, 9, 12 * 9 * 3]);
  assert.deepEqual(pixel(gif, 5, 5), [255, 0, 0]);
});

test('greyscale PNG becomes RGB with equal channels; RGBA drops alpha without compositing', async () => {
  const grey = Uint8Array.from({ length: 8 * 5 }, (_, i) => i * 6);
  const g = await decodeImage(await writeImage(join(dir, 'grey.png'), grey, 8, 5, 'png', 1));
  assert.equal(g.data.length, 8 * 5 * 3);
  for (let i = 0; i < grey.length; i++) assert.deepEqual([...g.data.subarray(3 * i, 3 * i + 3)], [grey[i], grey[i], grey[i]]);

  const rgba = new Uint8Array(6 * 4 * 4);
  for (let p = 0; p < rgba.length; p += 4) rgba.set([200, 100, 50, p < rgba.length / 2 ? 10 : 255], p);
  const a = await decodeImage(await writeImage(join(dir, 'rgba.png'), rgba, 6, 4, 'png', 4));
  assert.equal(a.data.length, 6 * 4 * 3);
  assert.deepEqual(pixel(a, 0, 0), [200, 100, 50]); // nearly transparent: colour kept, as PIL convert('RGB')
  assert.deepEqual(pixel(a, 5, 3), [200, 100, 50]);
});

test('16-bit PNG becomes 8-bit RGB', async () => {
  const px = pattern(6, 5, 2);
  const path = join(dir, 'deep.png');
  await sharp(px, { raw: { width: 6, height: 5, channels: 3 } }).toColourspace('rgb16').png().toFile(path);
  assert.equal((await sharp(path).metadata()).depth, 'ushort');
  const img = await decodeImage(path);
  assert.deepEqual(Buffer.from(img.data), Buffer.from(px));
});

test('EXIF orientation 6 is applied (the stored image is turned 90° clockwise)', async () => {
  // Stored 40×20: left half red, right half blue. Turned clockwise, red ends on top.
  const px = new Uint8Array(40 * 20 * 3);
  for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) px.set(x < 20 ? [255, 0, 0] : [0, 0, 255], 3 * (y * 40 + x));
  const path = join(dir, 'rotated.jpg');
  await sharp(px, { raw: { width: 40, height: 20, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toFile(path);
  assert.equal((await sharp(path).metadata()).orientation, 6);
  const img = await decodeImage(path);
  assert.deepEqual([img.width, img.height], [20, 40]);
  const top = pixel(img, 10, 5);
  const bottom = pixel(img, 10, 34);
  assert.ok(top[0]! > 200 && top[2]! < 50, `top is red, got ${top}`);
  assert.ok(bottom[2]! > 200 && bottom[0]! < 50, `bottom is blue, got ${bottom}`);
});

test('truncated and non-image files fail with the path and "cannot decode image"', async () => {
  const truncated = await writeTruncatedJpeg(join(dir, 'cut.jpg'));
  await assert.rejects(decodeImage(truncated), (e: Error) => e.message.startsWith(`${truncated}: cannot decode image:`));
  const text = join(dir, 'notes.png');
  writeFileSync(text, 'this is not an image');
  await assert.rejects(decodeImage(text), (e: Error) => e.message.startsWith(`${text}: cannot decode image:`));
  const missing = join(dir, 'missing.png');
  await assert.rejects(decodeImage(missing), (e: Error) => e.message.startsWith(`${missing}: cannot decode image:`));
});

test('a Buffer decodes too, and `what` names it in errors', async () => {
  const path = await writeImage(join(dir, 'buf.png'), pattern(9, 7), 9, 7);
  const img = await decodeImage(readFileSync(path));
  assert.deepEqual([img.width, img.height], [9, 7]);
  await assert.rejects(decodeImage(Buffer.from('nope'), 'upload #3'), /^Error: upload #3: cannot decode image:/);
});
