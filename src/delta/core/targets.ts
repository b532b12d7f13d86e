// Target matching over module names, after Hugging Face PEFT (tuners_utils): a string is a
// full-match regular expression; a list holds exact names or dotted suffixes. `exclude` takes the
// same forms and drops modules from the match (PEFT's exclude_modules).
import type { Module } from '../../nn/module.js';

type Pattern = string | readonly string[];

/** A test for module names: PEFT's rules for a regular expression string or a list of names/suffixes. */
export function moduleMatcher(pattern: Pattern, what: string, key: string): (name: string) => boolean {
  if (typeof pattern !== 'string') return (name) => pattern.some((p) => name === p || name.endsWith(`.${p}`));
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${pattern})$`);
  } catch (err) {
    throw new Error(`${what}: invalid ${key} pattern '${pattern}': ${(err as Error).message}`);
  }
  return (name) => re.test(name);
}

/**
 * Module names a pattern selects, less those `exclude` selects. Throws listing real names when
 * the pattern matches nothing, and when `exclude` removes nothing (a typo would otherwise go unseen)
 * or everything.
 */
export function matchModules(model: Module<any, any>, pattern: Pattern, what: string, exclude: Pattern | null = null): [string, Module<any, any>][] {
  const all = [...model.namedModules()].filter(([name]) => name !== '');
  const isTarget = moduleMatcher(pattern, what, 'target');
  const matched = all.filter(([name]) => isTarget(name));
  if (matched.length === 0) {
    const sample = all.slice(0, 40).map(([n, m]) => `${n} (${m.constructor.name})`).join(', ');
    throw new Error(`${what}: target ${JSON.stringify(pattern)} matches no module. Module names look like: ${sample}${all.length > 40 ? ', ...' : ''}`);
  }
  return excludeFrom(matched, exclude, what);
}

/** Drops the modules `exclude` names from `candidates`; refuses an exclude that drops none or all. */
export function excludeFrom(candidates: [string, Module<any, any>][], exclude: Pattern | null, what: string): [string, Module<any, any>][] {
  if (exclude === null) return candidates;
  const isExcluded = moduleMatcher(exclude, what, 'exclude');
  const kept = candidates.filter(([name]) => !isExcluded(name));
  if (kept.length === candidates.length) {
    const sample = candidates.slice(0, 12).map(([n]) => n).join(', ');
    throw new Error(`${what}: exclude ${JSON.stringify(exclude)} matches none of the ${candidates.length} targeted modules (${sample}${candidates.length > 12 ? ', ...' : ''})`);
  }
  if (kept.length === 0) throw new Error(`${what}: exclude ${JSON.stringify(exclude)} removes every targeted module; nothing would be adapted`);
  return kept;
}
