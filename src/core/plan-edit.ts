/**
 * Edits to a plan file's text that keep the user's comments and layout (PLAN-SPEC "Results
 * written back"): only the edited member changes, written in the file's own indentation and
 * line endings. The host turns `planEdits` into a WorkspaceEdit; the CLI applies them itself.
 *
 * Members are added on their own line before the closing brace and removed together with the
 * comment on their line. jsonc-parser's `modify` appends right after the previous value instead,
 * which moves a trailing `// comment` of that value onto the new member, and its removal
 * strands comments on the wrong member; it is still used for layouts these rules don't cover
 * (one-line objects, an empty document, new arrays).
 */
import { applyEdits, findNodeAtLocation, modify, parseTree, type Edit, type Node, type ParseError } from 'jsonc-parser';
import { LayerwiseError, jsonPath } from './errors.ts';
import { compilePattern, escapeGlob, escapeRegex } from './patterns.ts';
import type { DataField, GroupSpec, LayerOverride, PlanResults, TrainingSpec } from './plan.ts';
import { collectPlanProblems, lineColumn } from './validate.ts';

export type { Edit } from 'jsonc-parser';
export type EditPath = Array<string | number>;

/** How a file is laid out: its indentation unit and line ending. */
export interface TextLayout {
  indent: string;
  eol: '\n' | '\r\n';
}

export interface EditOptions {
  /** For a path ending in an array index: insert before that element instead of replacing it. */
  insert?: boolean;
  /** Names the file in errors. */
  file?: string;
}

/** The edits that set `path` to `value` (`undefined` removes it), keeping comments and layout. */
export function planEdits(text: string, path: EditPath, value: unknown, options: EditOptions = {}): Edit[] {
  const layout = detectLayout(text);
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: true });
  const first = errors[0];
  if (first !== undefined) {
    const { line, column } = lineColumn(text, first.offset);
    throw new LayerwiseError(`cannot edit ${jsonPath(path)}: the file has a syntax error at ${line}:${column}; fix it first`, { file: options.file });
  }
  const json = value === undefined ? undefined : toJson(value);
  if (root === undefined || root.type !== 'object' || path.length === 0) return fallback(text, path, json, options, layout);

  let depth = path.length;
  let node = findNodeAtLocation(root, path);
  while (node === undefined) {
    depth--;
    node = findNodeAtLocation(root, path.slice(0, depth));
  }
  if (depth === path.length) {
    if (json === undefined) return removeNode(text, node, path, options, layout);
    if (options.insert === true && node.parent?.type === 'array') return insertElement(text, node.parent, path, json, options, layout);
    const container = memberOf(node).parent;
    const content = container !== undefined && onOneLine(text, container) ? renderInline(json) : render(json, indentOfLine(text, node.offset), layout);
    return [{ offset: node.offset, length: node.length, content }];
  }
  if (json === undefined) return [];
  const segment = path[depth];
  const rest = path.slice(depth + 1);
  if (node.type === 'object' && typeof segment === 'string' && rest.every((s) => typeof s === 'string')) {
    const nested = rest.reduceRight<unknown>((v, key) => ({ [key]: v }), json);
    return insertMember(text, node, segment, nested, path, options, layout);
  }
  if (node.type === 'array' && typeof segment === 'number' && rest.length === 0) {
    return appendElement(text, node, path, json, options, layout);
  }
  if (node.type === 'object' || node.type === 'array') return fallback(text, path, json, options, layout);
  throw new LayerwiseError(`cannot set ${jsonPath(path)}: ${jsonPath(path.slice(0, depth))} is a ${node.type}, not an object or list`, { file: options.file, field: jsonPath(path) });
}

/** `text` with `path` set to `value` (`undefined` removes it), comments and layout kept. */
export function setPlanValue(text: string, path: EditPath, value: unknown, options: EditOptions = {}): string {
  return applyEdits(text, planEdits(text, path, value, options));
}

/**
 * Sets the plan's `results` member (adding it at the end when absent). Everything outside
 * `results` stays byte-identical, except the comma that must separate a new last member.
 */
export function writeResults(text: string, results: PlanResults, file?: string): string {
  return setPlanValue(text, ['results'], results, { file });
}

/**
 * `results` after a run or an LR range test: only the members given are replaced, so a training
 * run keeps the last LR test's result and the other way round.
 */
export function mergeResults(text: string, results: PlanResults, file?: string): string {
  let out = text;
  for (const [key, value] of Object.entries(results)) {
    if (value !== undefined) out = setPlanValue(out, ['results', key], value, { file });
  }
  return out;
}

export function setTrainingField<K extends keyof TrainingSpec>(text: string, key: K, value: TrainingSpec[K] | undefined): string {
  return setPlanValue(text, ['training', key], value);
}


/**
 * Sets (or, with `undefined`, removes) one image-folder setting under `data`; `data.augment` goes
 * once it holds nothing. A value the schema refuses throws a LayerwiseError naming the file and
 * the field (`data.augment.rotation: must be ≤ 180`), and the text is left as it was.
 */
export function setDataField(text: string, field: DataField, value: unknown, file?: string): string {
  const path: EditPath = ['data', ...field.split('.')];
  let edited = setPlanValue(text, path, value, { file });
  if (value === undefined && field.startsWith('augment.')) {
    const root = parseTree(edited);
    const augment = root && findNodeAtLocation(root, ['data', 'augment']);
    if (augment?.type === 'object' && (augment.children ?? []).length === 0) edited = setPlanValue(edited, ['data', 'augment'], undefined, { file });
  }
  const wrong = collectPlanProblems(edited, file ?? '').find((p) => p.field === `data.${field}` || p.field.startsWith(`data.${field}.`) || p.field.startsWith(`data.${field}[`));
  if (wrong !== undefined) throw new LayerwiseError(wrong.message, { ...(file === undefined ? {} : { file }), field: wrong.field });
  return edited;
}

/** Sets (or, with `undefined`, removes) one setting of `layers[layer]`; drops the entry once empty. */
export function setLayerOverride<K extends keyof LayerOverride>(text: string, layer: string, key: K, value: LayerOverride[K] | undefined): string {
  const edited = setPlanValue(text, ['layers', layer, key], value);
  if (value !== undefined) return edited;
  const root = parseTree(edited);
  const entry = root && findNodeAtLocation(root, ['layers', layer]);
  return entry?.type === 'object' && (entry.children ?? []).length === 0 ? setPlanValue(edited, ['layers', layer], undefined) : edited;
}

export function setGroupField<K extends keyof GroupSpec>(text: string, groupIndex: number, key: K, value: GroupSpec[K] | undefined): string {
  requireGroup(text, groupIndex);
  return setPlanValue(text, ['groups', groupIndex, key], value);
}

/**
 * Puts `layerName` into group `to` (an index into `groups`, or the implicit `"default"` group).
 * A layer belongs to the first group in file order with a matching pattern, so besides adding
 * the exact name as the target's first pattern this removes the exact name from every other
 * group and narrows any earlier group's wider pattern that would still claim the layer
 * (`dense_*` becomes `re:(?!dense_1$)dense_.*`).
 */
export function moveLayerToGroup(text: string, layerName: string, to: number | 'default'): string {
  const groupCount = countGroups(text);
  if (to !== 'default') requireGroup(text, to);
  const exact = escapeGlob(layerName);
  let out = text;
  // Last group first and last pattern first, so the indices still to visit stay valid.
  for (let g = groupCount - 1; g >= 0; g--) {
    const patterns = groupPatterns(out, g);
    for (let j = patterns.length - 1; j >= 0; j--) {
      const pattern = patterns[j];
      if (pattern === undefined) continue;
      if (g === to) {
        if (pattern === exact && j > 0) out = setPlanValue(out, ['groups', g, 'layers', j], undefined);
      } else if (pattern === exact) {
        out = setPlanValue(out, ['groups', g, 'layers', j], undefined);
      } else if ((to === 'default' || g < to) && matches(pattern, layerName)) {
        out = setPlanValue(out, ['groups', g, 'layers', j], excluding(pattern, layerName));
      }
    }
  }
  if (to === 'default') return out;
  const target = groupPatterns(out, to);
  if (target[0] === exact) return out;
  const root = parseTree(out);
  const layers = root && findNodeAtLocation(root, ['groups', to, 'layers']);
  if (layers?.type !== 'array') return setPlanValue(out, ['groups', to, 'layers'], [exact]);
  if ((layers.children ?? []).length === 0) return setPlanValue(out, ['groups', to, 'layers'], [exact]);
  return setPlanValue(out, ['groups', to, 'layers', 0], exact, { insert: true });
}

/** The pattern `pattern` restricted so that it no longer matches `name`. */
function excluding(pattern: string, name: string): string {
  const notName = `(?!${escapeRegex(name)}$)`;
  if (pattern.startsWith('re:')) return `re:${notName}(?:${pattern.slice(3)})`;
  // Layer names hold no line breaks, so `.` reads better here than patterns.ts's [\s\S].
  const source = [...pattern].map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : escapeRegex(ch))).join('');
  return `re:${notName}${source}`;
}

function matches(pattern: string, name: string): boolean {
  try {
    return compilePattern(pattern)(name);
  } catch {
    // An invalid regex matches nothing; validation reports it.
    return false;
  }
}

function countGroups(text: string): number {
  const root = parseTree(text);
  const groups = root && findNodeAtLocation(root, ['groups']);
  return groups?.type === 'array' ? (groups.children ?? []).length : 0;
}

function requireGroup(text: string, index: number): void {
  const count = countGroups(text);
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new LayerwiseError(`there is no group ${index} (the plan has ${count} group${count === 1 ? '' : 's'})`, { field: `groups[${index}]` });
  }
}

function groupPatterns(text: string, groupIndex: number): Array<string | undefined> {
  const root = parseTree(text);
  const layers = root && findNodeAtLocation(root, ['groups', groupIndex, 'layers']);
  if (layers?.type !== 'array') return [];
  return (layers.children ?? []).map((c) => (c.type === 'string' && typeof c.value === 'string' ? c.value : undefined));
}

// ---------------------------------------------------------------------------------------------
// Layout

/** The file's indentation unit (tab, or the smallest space indent) and line ending. */
export function detectLayout(text: string): TextLayout {
  const eol = /\r?\n/.exec(text)?.[0] === '\r\n' ? '\r\n' : '\n';
  let smallest = Infinity;
  for (const line of text.split(/\r?\n/)) {
    const m = /^([ \t]+)(\S)/.exec(line);
    // A block comment's " * " lines say nothing about the indentation of the JSON.
    if (m === null || m[2] === '*') continue;
    const indent = m[1] ?? '';
    if (indent.startsWith('\t')) return { indent: '\t', eol };
    smallest = Math.min(smallest, indent.length);
  }
  return { indent: Number.isFinite(smallest) ? ' '.repeat(Math.min(8, smallest)) : '  ', eol };
}

/** JSON in the file's layout: objects one member per line, short lists of scalars on one line. */
function render(value: unknown, baseIndent: string, layout: TextLayout): string {
  const inner = baseIndent + layout.indent;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (value.every((v) => v === null || typeof v !== 'object')) {
      const inline = `[${value.map((v) => JSON.stringify(v)).join(', ')}]`;
      if (inline.length <= 80) return inline;
    }
    return `[${layout.eol}${value.map((v) => inner + render(v, inner, layout)).join(`,${layout.eol}`)}${layout.eol}${baseIndent}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) return '{}';
    const members = entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${render(v, inner, layout)}`);
    return `{${layout.eol}${members.join(`,${layout.eol}`)}${layout.eol}${baseIndent}}`;
  }
  return JSON.stringify(value);
}

/** JSON on one line, for objects and lists written on one line: `{ "lrMult": 0.5 }`. */
function renderInline(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(renderInline).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    return entries.length === 0 ? '{}' : `{ ${entries.map(([k, v]) => `${JSON.stringify(k)}: ${renderInline(v)}`).join(', ')} }`;
  }
  return JSON.stringify(value);
}

/** True when the node's text holds no line break. */
function onOneLine(text: string, node: Node): boolean {
  return !/[\r\n]/.test(text.slice(node.offset, node.offset + node.length));
}

/** What JSON.stringify would write (dates as strings, no undefined members, NaN as null). */
function toJson(value: unknown): unknown {
  const s = JSON.stringify(value);
  return s === undefined ? null : JSON.parse(s);
}

function lineStart(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1;
}

function indentOfLine(text: string, offset: number): string {
  return /^[ \t]*/.exec(text.slice(lineStart(text, offset)))?.[0] ?? '';
}

/** Nothing but spaces and tabs between the start of the line and `offset`. */
function startsLine(text: string, offset: number): boolean {
  return /^[ \t]*$/.test(text.slice(lineStart(text, offset), offset));
}

/** Skips whitespace and comments from `i`; stops at a line break unless `acrossLines`. */
function skipTrivia(text: string, i: number, acrossLines: boolean): number {
  for (;;) {
    const ch = text[i];
    if (ch === ' ' || ch === '\t') i++;
    else if (acrossLines && (ch === '\n' || ch === '\r')) i++;
    else if (text.startsWith('//', i)) {
      const end = text.slice(i).search(/\r?\n/);
      i = end < 0 ? text.length : i + end;
    } else if (text.startsWith('/*', i)) {
      const close = text.indexOf('*/', i + 2);
      if (close < 0) return text.length;
      if (!acrossLines && /[\r\n]/.test(text.slice(i, close))) return i;
      i = close + 2;
    } else return i;
  }
}

/**
 * What follows a member or element ending at `end`: its separating comma, and — when only
 * whitespace and comments follow on that line — the offset just past the line break.
 */
function afterMember(text: string, end: number): { comma: number | undefined; lineEnd: number | undefined } {
  const next = skipTrivia(text, end, true);
  const comma = text[next] === ',' ? next : undefined;
  const j = skipTrivia(text, comma !== undefined ? comma + 1 : end, false);
  let lineEnd: number | undefined;
  if (j >= text.length) lineEnd = text.length;
  else if (text.startsWith('\r\n', j)) lineEnd = j + 2;
  else if (text[j] === '\n') lineEnd = j + 1;
  return { comma, lineEnd };
}

/** The property node of a member, or the element itself. */
function memberOf(node: Node): Node {
  return node.parent?.type === 'property' ? node.parent : node;
}

function removeNode(text: string, valueNode: Node, path: EditPath, options: EditOptions, layout: TextLayout): Edit[] {
  const member = memberOf(valueNode);
  const container = member.parent;
  const siblings = container?.children ?? [];
  const index = siblings.indexOf(member);
  const { comma, lineEnd } = afterMember(text, member.offset + member.length);
  if (container === undefined || index < 0) return fallback(text, path, undefined, options, layout);
  if (onOneLine(text, container)) {
    const previous = siblings[index - 1];
    const next = siblings[index + 1];
    if (next !== undefined) return [{ offset: member.offset, length: next.offset - member.offset, content: '' }];
    if (previous !== undefined) {
      const from = previous.offset + previous.length;
      // Keep a trailing comma the list was written with.
      const to = comma !== undefined ? comma : member.offset + member.length;
      return [{ offset: from, length: to - from, content: '' }];
    }
    return [{ offset: container.offset + 1, length: container.length - 2, content: '' }];
  }
  if (!startsLine(text, member.offset) || lineEnd === undefined) return fallback(text, path, undefined, options, layout);
  const start = lineStart(text, member.offset);
  const close = container.offset + container.length - 1;
  const leftover = text.slice(container.offset + 1, start) + text.slice(lineEnd, close);
  // The only member gone and nothing else inside (no comments): `{}` rather than an empty line.
  if (siblings.length === 1 && leftover.trim() === '') return [{ offset: container.offset + 1, length: close - container.offset - 1, content: '' }];
  const edits: Edit[] = [{ offset: start, length: lineEnd - start, content: '' }];
  const previous = siblings[index - 1];
  if (index === siblings.length - 1 && comma === undefined && previous !== undefined) {
    // The member before becomes the last one: its comma would now be a trailing comma.
    const before = afterMember(text, previous.offset + previous.length).comma;
    if (before !== undefined) edits.push({ offset: before, length: 1, content: '' });
  }
  return edits;
}

function insertMember(text: string, object: Node, key: string, value: unknown, path: EditPath, options: EditOptions, layout: TextLayout): Edit[] {
  const members = object.children ?? [];
  const close = object.offset + object.length - 1;
  const line = `${JSON.stringify(key)}: `;
  if (members.length === 0) {
    if (!/^\{\s*\}$/.test(text.slice(object.offset, close + 1))) return fallback(text, path, value, options, layout);
    const base = indentOfLine(text, object.offset);
    const inner = base + layout.indent;
    return [{ offset: object.offset, length: object.length, content: `{${layout.eol}${inner}${line}${render(value, inner, layout)}${layout.eol}${base}}` }];
  }
  if (onOneLine(text, object)) return appendInline(members, line, value);
  return appendOnOwnLine(text, members, close, line, value, path, options, layout);
}

function appendElement(text: string, array: Node, path: EditPath, value: unknown, options: EditOptions, layout: TextLayout): Edit[] {
  const elements = array.children ?? [];
  if (elements.length === 0 || onOneLine(text, array)) {
    if (elements.length > 0) return appendInline(elements, '', value);
    if (!/^\[\s*\]$/.test(text.slice(array.offset, array.offset + array.length))) return fallback(text, path, value, options, layout);
    return [{ offset: array.offset, length: array.length, content: `[${renderInline(value)}]` }];
  }
  return appendOnOwnLine(text, elements, array.offset + array.length - 1, '', value, path, options, layout);
}

/** A new last member of a one-line object or list, right after the current last one. */
function appendInline(siblings: Node[], prefix: string, value: unknown): Edit[] {
  const last = siblings[siblings.length - 1];
  if (last === undefined) return [];
  return [{ offset: last.offset + last.length, length: 0, content: `, ${prefix}${renderInline(value)}` }];
}

function insertElement(text: string, array: Node, path: EditPath, value: unknown, options: EditOptions, layout: TextLayout): Edit[] {
  const elements = array.children ?? [];
  const at = path[path.length - 1];
  const target = typeof at === 'number' ? elements[at] : undefined;
  if (target === undefined) return fallback(text, path, value, { ...options, insert: true }, layout);
  const ownLines = elements.every((e) => startsLine(text, e.offset)) && startsLine(text, array.offset + array.length - 1);
  if (ownLines) {
    const indent = indentOfLine(text, target.offset);
    return [{ offset: lineStart(text, target.offset), length: 0, content: `${indent}${render(value, indent, layout)},${layout.eol}` }];
  }
  if (elements.some((e) => startsLine(text, e.offset))) return fallback(text, path, value, { ...options, insert: true }, layout);
  // One-line list: reuse its own separator.
  const [a, b] = elements;
  const between = a !== undefined && b !== undefined ? text.slice(a.offset + a.length, b.offset) : ', ';
  const separator = /^[ \t]*,[ \t]*$/.test(between) ? between : ', ';
  return [{ offset: target.offset, length: 0, content: `${renderInline(value)}${separator}` }];
}

/** A new last member (or element) on its own line before the closing bracket, in the siblings' indentation. */
function appendOnOwnLine(text: string, siblings: Node[], close: number, prefix: string, value: unknown, path: EditPath, options: EditOptions, layout: TextLayout): Edit[] {
  const last = siblings[siblings.length - 1];
  if (last === undefined || !startsLine(text, last.offset) || !startsLine(text, close)) return fallback(text, path, value, options, layout);
  const indent = indentOfLine(text, last.offset);
  const { comma } = afterMember(text, last.offset + last.length);
  // A file written with trailing commas keeps them.
  const content = `${indent}${prefix}${render(value, indent, layout)}${comma !== undefined ? ',' : ''}${layout.eol}`;
  const edits: Edit[] = [{ offset: lineStart(text, close), length: 0, content }];
  if (comma === undefined) edits.unshift({ offset: last.offset + last.length, length: 0, content: ',' });
  return edits;
}

function fallback(text: string, path: EditPath, value: unknown, options: EditOptions, layout: TextLayout): Edit[] {
  try {
    return modify(text, path, value, {
      isArrayInsertion: options.insert === true,
      formattingOptions: { insertSpaces: layout.indent !== '\t', tabSize: layout.indent === '\t' ? 4 : layout.indent.length, eol: layout.eol },
    });
  } catch (e) {
    throw new LayerwiseError(`cannot set ${jsonPath(path)}: ${e instanceof Error ? e.message : String(e)}`, { file: options.file, field: jsonPath(path) });
  }
}
