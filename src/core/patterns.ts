/**
 * Layer patterns (PLAN-SPEC "Layer patterns"): `*` matches any run of characters, including
 * `.` and `/`, `?` matches one character, everything else is literal; `re:...` is a regular
 * expression that must match the whole name.
 */
import { LayerwiseError } from './errors.ts';

export type NameMatcher = (name: string) => boolean;

const REGEX_PREFIX = 're:';

/** Throws a LayerwiseError (naming `where.field`) when a `re:` pattern is not a valid regex. */
export function compilePattern(pattern: string, where: { file?: string; field?: string } = {}): NameMatcher {
  if (pattern.startsWith(REGEX_PREFIX)) {
    const source = pattern.slice(REGEX_PREFIX.length);
    let re: RegExp;
    try {
      // Compiled alone first: `a)|(b` is only valid once wrapped, and would escape the anchors.
      new RegExp(source);
      // The group keeps `re:a|b` from meaning "starts with a, or ends with b".
      re = new RegExp(`^(?:${source})$`);
    } catch (e) {
      throw new LayerwiseError(`invalid regular expression ${JSON.stringify(source)}: ${(e as Error).message}`, where);
    }
    return (name) => re.test(name);
  }
  if (!/[*?]/.test(pattern)) return (name) => name === pattern;
  const re = new RegExp(`^${globToRegexSource(pattern)}$`);
  return (name) => re.test(name);
}

function globToRegexSource(glob: string): string {
  let out = '';
  for (const ch of glob) {
    // [\s\S] rather than `.`, which would stop at line breaks.
    if (ch === '*') out += '[\\s\\S]*';
    else if (ch === '?') out += '[\\s\\S]';
    else out += escapeRegex(ch);
  }
  return out;
}

export function escapeRegex(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

/**
 * A pattern matching exactly `name`. Globs have no escape character, so a name that contains
 * `*` or `?`, or that starts with `re:`, is written as an anchored regular expression instead.
 */
export function escapeGlob(name: string): string {
  if (!/[*?]/.test(name) && !name.startsWith(REGEX_PREFIX)) return name;
  return REGEX_PREFIX + escapeRegex(name);
}

/** True when `pattern` would be read as a glob or regex rather than as a literal name. */
export function isWildcardPattern(pattern: string): boolean {
  return pattern.startsWith(REGEX_PREFIX) || /[*?]/.test(pattern);
}
