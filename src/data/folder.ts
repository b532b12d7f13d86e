// Datasets of image files: torchvision's ImageFolder layout, and CSV lists of `path,label`.
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { INPUT_LIMITS, InputFileError, formatCount, readTextFile } from '../io/read.js';
import { type Dataset, ENCODED, checkIndex } from './dataset.js';
import { type RawImage, decodeImage, readImageFile, reason } from './image.js';

/** What sharp can decode (BMP, PPM and friends need ImageMagick, which sharp's libvips lacks). */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff'];

function normaliseExtensions(exts: unknown, what: string): Set<string> {
  if (exts === undefined) return new Set(IMAGE_EXTENSIONS);
  if (!Array.isArray(exts) || exts.length === 0 || !exts.every((e) => typeof e === 'string' && e.length > 0)) {
    throw new TypeError(`${what}: extensions must be a non-empty array of strings like '.jpg', got ${JSON.stringify(exts)}`);
  }
  return new Set(exts.map((e: string) => (e.startsWith('.') ? e : `.${e}`).toLowerCase()));
}

// Python's sorted() order on str (code points); localeCompare would differ from torchvision.
const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory(); // follows symlinks, as torchvision's os.walk(followlinks=True)
  } catch {
    return false;
  }
}

function realpathOf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function tooManySamples(where: string): Error {
  return new Error(`${where}: more than ${formatCount(INPUT_LIMITS.samples)} images, the limit for one dataset (INPUT_LIMITS.samples)`);
}

/**
 * Image files under dir (recursively), sorted; dot-files (e.g. macOS '._x.jpg') are skipped.
 * Symlinked folders are followed, as torchvision does, but each real folder is listed once per
 * class: `seen` holds the real paths listed so far, and a folder reached again (a symlink loop,
 * which would make torchvision list forever, or a second link to the same folder, which would
 * list its images twice) is an Error naming the link and the folder it leads to. `limit` counts
 * the images every class may still add.
 */
function listImages(dir: string, exts: Set<string>, out: string[], seen: Map<string, string>, limit: { left: number; root: string }): void {
  const real = realpathOf(dir);
  const first = seen.get(real);
  if (first !== undefined) {
    throw new Error(
      `ImageFolder: ${dir} leads to ${real}, which this class already lists as ${first} ` +
        '(a symlink loop, or two links to one folder, whose images would be listed twice); remove or replace the link',
    );
  }
  seen.set(real, dir);
  for (const name of readdirSync(dir).sort(byCodePoint)) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    if (isDir(path)) listImages(path, exts, out, seen, limit);
    else if (exts.has(extname(name).toLowerCase())) {
      if (--limit.left < 0) throw tooManySamples(`ImageFolder: ${limit.root}`);
      // Not opened here: a FIFO or device named like an image fails when loaded, as a bad image.
      out.push(path);
    }
  }
}

/** Base for datasets of files: label and path arrays, file-backed load. */
abstract class FileDataset implements Dataset {
  abstract readonly classes: readonly string[];
  /** Absolute file paths, index = sample. */
  readonly files: readonly string[];
  readonly labels: Int32Array;

  protected constructor(files: string[], labels: number[]) {
    this.files = Object.freeze(files);
    this.labels = Int32Array.from(labels);
  }

  get length(): number {
    return this.files.length;
  }
  label(i: number): number {
    checkIndex(this, i, `${this.constructor.name}.label`);
    return this.labels[i]!;
  }
  source(i: number): string {
    checkIndex(this, i, `${this.constructor.name}.source`);
    return this.files[i]!;
  }
  async load(i: number): Promise<RawImage> {
    const path = this.source(i);
    // Only a regular file of at most INPUT_LIMITS.imageBytes is read (never a FIFO or a device).
    return decodeImage(await readImageFile(path), path);
  }
  /** @internal */
  [ENCODED](i: number): string {
    return this.source(i);
  }
}

/** Image files given as a list (e.g. images to predict); every label is 0 of `classes`. */
export class ImageFiles extends FileDataset {
  readonly classes: readonly string[];
  constructor(files: readonly string[], classes: readonly string[]) {
    super(files.map((f) => resolve(f)), files.map(() => 0));
    this.classes = classes;
  }
}

/**
 * torchvision's ImageFolder: `root/<class>/<image>` (images may sit in sub-folders of a class
 * folder). Classes are the sub-folder names sorted by code point, files sorted within each class.
 */
export class ImageFolder extends FileDataset {
  readonly root: string;
  readonly classes: readonly string[];

  constructor(root: string, options: { extensions?: string[] } = {}) {
    if (typeof root !== 'string' || root === '') throw new TypeError(`ImageFolder: root must be a folder path, got ${String(root)}`);
    const exts = normaliseExtensions(options.extensions, 'ImageFolder');
    const abs = resolve(root);
    if (!existsSync(abs)) throw new Error(`ImageFolder: ${abs} does not exist`);
    if (!isDir(abs)) throw new Error(`ImageFolder: ${abs} is not a folder`);
    const classes = readdirSync(abs).filter((n) => !n.startsWith('.') && isDir(join(abs, n))).sort(byCodePoint);
    if (classes.length === 0) {
      throw new Error(`ImageFolder: ${abs} has no class folders (expected the layout root/<class>/<image>)`);
    }
    if (classes.length > INPUT_LIMITS.classes) {
      throw new Error(`ImageFolder: ${abs} has ${formatCount(classes.length)} class folders, more than the limit of ${formatCount(INPUT_LIMITS.classes)} classes (INPUT_LIMITS.classes)`);
    }
    const files: string[] = [];
    const labels: number[] = [];
    const empty: string[] = [];
    const limit = { left: INPUT_LIMITS.samples, root: abs };
    classes.forEach((cls, c) => {
      const found: string[] = [];
      // Two classes may share a folder through a symlink (torchvision lists it in both).
      listImages(join(abs, cls), exts, found, new Map(), limit);
      if (found.length === 0) empty.push(join(abs, cls));
      for (const f of found) {
        files.push(f);
        labels.push(c);
      }
    });
    if (empty.length > 0) {
      throw new Error(`ImageFolder: no images with extensions ${[...exts].join(' ')} in ${empty.join(', ')}`);
    }
    super(files, labels);
    this.root = abs;
    this.classes = Object.freeze(classes);
  }
}

/** Splits one CSV line into fields (RFC 4180 quoting: "a,b" and "" for a quote). */
function csvFields(line: string): string[] | null {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) return null; // unterminated quote
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
          } else {
            i++;
            break;
          }
        } else field += line[i++];
      }
      while (line[i] === ' ' || line[i] === '\t') i++;
      if (i < line.length && line[i] !== ',') return null;
    } else {
      const end = line.indexOf(',', i);
      field = (end < 0 ? line.slice(i) : line.slice(i, end)).trim();
      i = end < 0 ? line.length : end;
    }
    fields.push(field);
    if (i >= line.length) return fields;
    i++; // the comma
  }
}

const INTEGER = /^\d+$/;

/**
 * A CSV list of `path,label` lines (an optional first line `path,label` is a header; blank lines
 * are skipped). A label is a class name or a class number. Relative paths resolve against
 * `root`, or the CSV file's folder. Without `classes`, all-numeric labels give classes '0'..'max',
 * otherwise the distinct names sorted. Files are not opened until loaded.
 */
export class CsvList extends FileDataset {
  readonly csvPath: string;
  readonly classes: readonly string[];

  constructor(csvPath: string, options: { root?: string; classes?: string[] } = {}) {
    if (typeof csvPath !== 'string' || csvPath === '') throw new TypeError(`CsvList: csvPath must be a file path, got ${String(csvPath)}`);
    const abs = resolve(csvPath);
    let text: string;
    try {
      // Only a regular file of at most INPUT_LIMITS.csvBytes (never a FIFO or a device).
      text = readTextFile(abs, { maxBytes: INPUT_LIMITS.csvBytes, what: 'CSV list' });
    } catch (err) {
      throw new Error(`CsvList: cannot read ${abs}: ${err instanceof InputFileError && err.path === abs ? err.detail : reason(err)}`, { cause: err });
    }
    if (options.root !== undefined && (typeof options.root !== 'string' || options.root === '')) {
      throw new TypeError(`CsvList: root must be a folder path, got ${String(options.root)}`);
    }
    const given = options.classes;
    if (given !== undefined) {
      if (!Array.isArray(given) || given.length === 0 || !given.every((c) => typeof c === 'string')) {
        throw new TypeError(`CsvList: classes must be a non-empty array of names, got ${JSON.stringify(given)}`);
      }
      if (new Set(given).size !== given.length) throw new Error(`CsvList: classes has duplicate names: ${JSON.stringify(given)}`);
      if (given.length > INPUT_LIMITS.classes) {
        throw new Error(`CsvList: classes has ${formatCount(given.length)} names, more than the limit of ${formatCount(INPUT_LIMITS.classes)} (INPUT_LIMITS.classes)`);
      }
    }
    const base = options.root !== undefined ? resolve(options.root) : dirname(abs);

    // One pass over the lines, without splitting the whole text into an array first.
    const paths: string[] = [];
    const names: string[] = [];
    const lineOf: number[] = [];
    const distinct = new Set<string>();
    let allNumeric = true;
    let maxNumber = -1;
    let maxLine = 0;
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    // Count the lines first: refusing an over-long list must not cost the memory of building it.
    let lineCount = 1;
    for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', at + 1)) lineCount++;
    if (lineCount > INPUT_LIMITS.samples + 1) {
      throw new Error(`${abs}: ${formatCount(lineCount)} lines, more than the limit of ${formatCount(INPUT_LIMITS.samples)} images for one dataset (INPUT_LIMITS.samples)`);
    }
    for (let at = 0, line = 1; at <= text.length; line++) {
      let end = text.indexOf('\n', at);
      if (end < 0) end = text.length;
      const raw = text.slice(at, end > at && text.charCodeAt(end - 1) === 13 ? end - 1 : end);
      at = end + 1;
      if (raw.trim() === '') continue;
      const fields = csvFields(raw);
      if (!fields || fields.length !== 2 || fields[0] === '' || fields[1] === '') {
        throw new Error(`${abs}:${line}: expected 'path,label', got ${JSON.stringify(raw.length > 200 ? `${raw.slice(0, 200)}...` : raw)}`);
      }
      const [path, label] = fields as [string, string];
      if (paths.length === 0 && path.toLowerCase() === 'path' && label.toLowerCase() === 'label') continue; // header
      if (paths.length >= INPUT_LIMITS.samples) {
        throw new Error(`${abs}:${line}: more than ${formatCount(INPUT_LIMITS.samples)} images, the limit for one dataset (INPUT_LIMITS.samples)`);
      }
      if (!given && !distinct.has(label)) {
        // More distinct labels than the limit is too many classes, whether names or numbers.
        if (distinct.size >= INPUT_LIMITS.classes) {
          throw new Error(`${abs}:${line}: label '${label}' makes more than ${formatCount(INPUT_LIMITS.classes)} distinct classes, the limit (INPUT_LIMITS.classes)`);
        }
        distinct.add(label);
      }
      if (allNumeric && INTEGER.test(label)) {
        const n = Number(label);
        if (n > maxNumber) [maxNumber, maxLine] = [n, line];
      } else allNumeric = false;
      paths.push(path);
      names.push(label);
      lineOf.push(line);
    }
    if (paths.length === 0) throw new Error(`CsvList: ${abs} lists no images`);

    let classes: string[];
    if (given) classes = [...given];
    else if (allNumeric) {
      // Classes 0..max: one large number alone would make that many classes.
      if (maxNumber >= INPUT_LIMITS.classes) {
        throw new Error(
          `${abs}:${maxLine}: class number ${maxNumber} would make ${formatCount(maxNumber + 1)} classes (all-numeric labels give classes 0..max), ` +
            `more than the limit of ${formatCount(INPUT_LIMITS.classes)} (INPUT_LIMITS.classes)`,
        );
      }
      classes = Array.from({ length: maxNumber + 1 }, (_, i) => String(i));
    } else classes = [...distinct].sort(byCodePoint);
    const index = new Map(classes.map((c, i) => [c, i]));

    const files: string[] = [];
    const labels: number[] = [];
    for (let r = 0; r < paths.length; r++) {
      const name = names[r]!;
      let label = index.get(name);
      if (label === undefined && given && INTEGER.test(name)) {
        label = Number(name);
        if (label >= classes.length) {
          throw new Error(`${abs}:${lineOf[r]}: class number ${label} is out of range for ${classes.length} classes`);
        }
      }
      if (label === undefined) {
        const shown = classes.length > 50 ? `${classes.slice(0, 50).join(', ')}, ... (${classes.length} in all)` : classes.join(', ');
        throw new Error(`${abs}:${lineOf[r]}: unknown class '${name}' (classes: ${shown})`);
      }
      files.push(resolve(base, paths[r]!));
      labels.push(label);
    }
    super(files, labels);
    this.csvPath = abs;
    this.classes = Object.freeze(classes);
  }
}
