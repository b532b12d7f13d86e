// Datasets of image files: torchvision's ImageFolder layout, and CSV lists of `path,label`.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import { type Dataset, ENCODED, checkIndex } from './dataset.js';
import { type RawImage, decodeImage, reason } from './image.js';

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

/** Image files under dir (recursively), sorted; dot-files (e.g. macOS '._x.jpg') are skipped. */
function listImages(dir: string, exts: Set<string>, out: string[]): void {
  for (const name of readdirSync(dir).sort(byCodePoint)) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    if (isDir(path)) listImages(path, exts, out);
    else if (exts.has(extname(name).toLowerCase())) out.push(path);
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
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      throw new Error(`${path}: cannot read image file: ${reason(err)}`, { cause: err });
    }
    return decodeImage(bytes, path);
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
    const files: string[] = [];
    const labels: number[] = [];
    const empty: string[] = [];
    classes.forEach((cls, c) => {
      const found: string[] = [];
      listImages(join(abs, cls), exts, found);
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
      text = readFileSync(abs, 'utf8');
    } catch (err) {
      throw new Error(`CsvList: cannot read ${abs}: ${reason(err)}`, { cause: err });
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
    }
    const base = options.root !== undefined ? resolve(options.root) : dirname(abs);

    const rows: { path: string; label: string; line: number }[] = [];
    const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
    lines.forEach((raw, k) => {
      const line = k + 1;
      if (raw.trim() === '') return;
      const fields = csvFields(raw);
      if (!fields || fields.length !== 2 || fields[0] === '' || fields[1] === '') {
        throw new Error(`${abs}:${line}: expected 'path,label', got ${JSON.stringify(raw)}`);
      }
      if (rows.length === 0 && fields[0]!.toLowerCase() === 'path' && fields[1]!.toLowerCase() === 'label') return; // header
      rows.push({ path: fields[0]!, label: fields[1]!, line });
    });
    if (rows.length === 0) throw new Error(`CsvList: ${abs} lists no images`);

    let classes: string[];
    if (given) classes = [...given];
    else if (rows.every((r) => INTEGER.test(r.label))) {
      const max = Math.max(...rows.map((r) => Number(r.label)));
      classes = Array.from({ length: max + 1 }, (_, i) => String(i));
    } else classes = [...new Set(rows.map((r) => r.label))].sort(byCodePoint);
    const index = new Map(classes.map((c, i) => [c, i]));

    const files: string[] = [];
    const labels: number[] = [];
    for (const r of rows) {
      let label = index.get(r.label);
      if (label === undefined && given && INTEGER.test(r.label)) {
        label = Number(r.label);
        if (label >= classes.length) {
          throw new Error(`${abs}:${r.line}: class number ${label} is out of range for ${classes.length} classes`);
        }
      }
      if (label === undefined) {
        throw new Error(`${abs}:${r.line}: unknown class '${r.label}' (classes: ${classes.join(', ')})`);
      }
      files.push(resolve(base, r.path));
      labels.push(label);
    }
    super(files, labels);
    this.csvPath = abs;
    this.classes = Object.freeze(classes);
  }
}
