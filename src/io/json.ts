// JSON files a person can edit (delta.json, config.json, adapter_config.json, results.json) are
// read through a schema: a wrong type, a missing field or an inconsistent pair is an error naming
// the file and the field, never a cast that fails later with a TypeError or a wrong answer.
import { z } from 'zod';
import { INPUT_LIMITS, readTextFile } from './read.js';

export { z };

/** A field path as people write it: preprocess.mean[2], classes[0]. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out ? `.${String(key)}` : String(key);
  return out || '(the top level)';
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = fieldPath(issue.path);
  // zod's own wording ("Invalid input: expected string, received null") after the field's name.
  const message = issue.message.replace(/^Invalid input: /, '');
  return `field '${where}': ${message}`;
}

/** A schema failure as one line naming the file and the first field at fault (and how many others). */
export function schemaError(path: string, what: string, error: z.ZodError): Error {
  const [first, ...rest] = error.issues;
  const more = rest.length ? ` (and ${rest.length} more problem${rest.length > 1 ? 's' : ''})` : '';
  return new Error(`${path}: invalid ${what}: ${first ? describeIssue(first) : 'does not match its schema'}${more}`);
}

/** Validates an already-parsed value; the error names `path` and the field. */
export function validate<T extends z.ZodType>(schema: T, value: unknown, path: string, what: string): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw schemaError(path, what, result.error);
  return result.data;
}

/** Nesting deeper than any file of ours needs; deeper input would exhaust the stack of a recursive reader. */
export const MAX_JSON_DEPTH = 64;

/**
 * The deepest nesting of arrays and objects in JSON `text` (strings skipped), scanned without
 * recursion, so a hostile file is refused before JSON.parse or a schema recurses into it.
 */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** Reads a JSON file (a regular file of at most 16 MiB) and validates it against `schema`. */
export function readJsonFile<T extends z.ZodType>(path: string, schema: T, what: string): z.output<T> {
  const text = readTextFile(path, { maxBytes: INPUT_LIMITS.manifestBytes, what });
  const depth = jsonDepth(text);
  if (depth > MAX_JSON_DEPTH) throw new Error(`${path}: the ${what} nests ${depth} levels deep, more than the limit of ${MAX_JSON_DEPTH}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: the ${what} is not valid JSON: ${(err as Error).message}`);
  }
  return validate(schema, value, path, what);
}

/** A finite number (JSON has no NaN, but a hand-made object may). */
export const finite = () => z.number().refine(Number.isFinite, 'must be a finite number');

/** JSON values with every number finite, to any depth (method configs are open-ended). */
export const finiteJson: z.ZodType<unknown> = z.lazy(() =>
  z.union([z.string(), finite(), z.boolean(), z.null(), z.array(finiteJson), z.record(z.string(), finiteJson)]),
);
