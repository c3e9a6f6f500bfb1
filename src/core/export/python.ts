/**
 * What every exporter shares: the input (a plan and what the resolver made of it), Python
 * literals, and the translation of layer patterns into Python regular expressions.
 */
import { LayerwiseError, jsonPath } from '../errors.ts';
import type { Resolution } from '../groups.types.ts';
import type { ModelInfo } from '../model-info.ts';
import type { Plan } from '../plan.ts';
import type { UnfreezeStage } from '../timeline.ts';

export type ExportTarget = 'pytorch' | 'hf-trainer' | 'mmengine';
export const EXPORT_TARGETS: readonly ExportTarget[] = ['pytorch', 'hf-trainer', 'mmengine'];

export interface ExportInput {
  plan: Plan;
  /** `resolveGroups(model, plan)`: the resolved multipliers (presets applied) and every parameter's settings. */
  resolution: Resolution;
  /** `resolveStages(plan, resolution)`. */
  stages: UnfreezeStage[];
  model: ModelInfo;
  /** How the header names the plan (a path relative to where the user works). */
  planName: string;
  /** The command that regenerates the file, quoted in its header. */
  command?: string;
}

/** A Python string literal (JSON's escapes are all valid Python escapes). */
export function pyStr(s: string): string {
  return JSON.stringify(s);
}

/** A Python float literal that reads back as the same double (JS and Python share repr's shortest form). */
export function pyFloat(x: number): string {
  if (!Number.isFinite(x)) throw new Error(`not a finite number: ${x}`);
  const abs = Math.abs(x);
  // Python's repr: shortest digits, exponent form below 1e-4 and from 1e16 (`1e-05`, `1e+16`)
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e16)) return x.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
  if (Number.isInteger(x)) return `${x}.0`;
  return String(x);
}

export function pyBool(b: boolean): string {
  return b ? 'True' : 'False';
}

export function pyList(items: readonly string[], indent = ''): string {
  return items.length === 0 ? '[]' : `[${items.join(', ')}]`.replace(/\n/g, `\n${indent}`);
}

/** A raw Python string literal for a regex, falling back to an escaped literal when raw cannot hold it. */
export function pyRegex(source: string): string {
  // r"…" cannot end in an odd number of backslashes, nor hold a double quote or newline
  if (!/["\n\r]/.test(source) && !/(^|[^\\])(\\\\)*\\$/.test(source)) return `r"${source}"`;
  return pyStr(source);
}

const PY_SPECIAL = /[.^$*+?{}[\]\\|()]/;

/** Python regex source for a glob: `*` any run of characters (with re.DOTALL), `?` one. */
export function globToPython(glob: string): string {
  let out = '';
  for (const ch of glob) {
    if (ch === '*') out += '.*';
    else if (ch === '?') out += '.';
    else out += PY_SPECIAL.test(ch) ? `\\${ch}` : ch;
  }
  return out;
}

/**
 * Python regex source for a JavaScript `re:` pattern's body. The common syntax is shared; named
 * groups are renamed to Python's spelling, and constructs Python reads differently are refused
 * with the field, rather than exported to match other names.
 */
export function jsRegexToPython(source: string, where: { file?: string; field?: string }): string {
  const refuse = (what: string) => {
    throw new LayerwiseError(`the regular expression ${JSON.stringify(source)} uses ${what}, which Python's re module reads differently; rewrite the pattern without it to export`, where);
  };
  if (/\\[pP]\{/.test(source)) refuse('a Unicode property escape (\\p{…})');
  if (/\\u\{/.test(source)) refuse('a code point escape (\\u{…})');
  if (/\\c[A-Za-z]/.test(source)) refuse('a control escape (\\cX)');
  if (/(^|[^\\])\[\^?\]/.test(source)) refuse('an empty character class ([] or [^])');
  if (/\(\?[a-zA-Z-]+[:)]/.test(source)) refuse('inline flags');
  return source.replace(/\(\?<(?![=!])([A-Za-z_$][\w$]*)>/g, '(?P<$1>').replace(/\\k<([A-Za-z_$][\w$]*)>/g, '(?P=$1)');
}

/** A plan pattern as a Python `(pattern as written, compiled regex)` pair for the generated code. */
export function patternToPython(pattern: string, where: { file?: string; field?: string }): string {
  if (pattern.startsWith('re:')) {
    // re.ASCII: JavaScript's \d, \w and \b are ASCII-only, Python's are not by default
    return `(${pyStr(pattern)}, re.compile(${pyRegex(jsRegexToPython(pattern.slice(3), where))}, re.ASCII))`;
  }
  return `(${pyStr(pattern)}, re.compile(${pyRegex(globToPython(pattern))}, re.DOTALL))`;
}

/** Field path for error messages about a pattern of the plan. */
export function patternField(groupIndex: number, patternIndex: number): string {
  return jsonPath(['groups', groupIndex, 'layers', patternIndex]);
}

/** `# ` before every line of a text block. */
export function pyComment(text: string, indent = ''): string {
  return text
    .split('\n')
    .map((l) => `${indent}#${l === '' ? '' : ` ${l}`}`)
    .join('\n');
}

/** Wraps words to `width` columns (for comments and docstrings). */
export function wrap(text: string, width = 92): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}
