/**
 * Reading a plan file: JSONC parsing, validation against `plan.schema.json` (the single source of
 * truth, also used by VS Code) and the checks a schema cannot express. Every problem names the
 * file and the JSON path; `collectPlanProblems` also gives text ranges for editor diagnostics.
 *
 * The schema is read by a small interpreter rather than ajv: ajv generates code at run time,
 * which the extension host and worker bundles should not do, and its messages ("must match
 * exactly one schema in oneOf") point at the wrong branch.
 */
import { findNodeAtLocation, getNodeValue, parseTree, printParseErrorCode, type Node, type ParseError } from 'jsonc-parser';
import schemaJson from './plan.schema.json';
import { DEFAULT_GROUP, DEFAULTS, type Plan } from './plan.ts';
import { LayerwiseError, jsonPath } from './errors.ts';
import { compilePattern } from './patterns.ts';

export type PlanPath = Array<string | number>;

/** One problem in a plan file, placed for the editor's Problems panel. */
export interface PlanProblem {
  /** The problem, without file or field: `must be a number > 0 (got "fast")`. */
  message: string;
  /** Where, as users read it: `training.lr`, or `line:column` for a syntax error. */
  field: string;
  /** The JSON path of the field (empty for syntax errors). */
  path: PlanPath;
  /** Range in the text to underline. */
  offset: number;
  length: number;
}

/** The subset of JSON Schema draft-07 this interpreter understands (plus VS Code's `errorMessage`). */
export interface SchemaNode {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
  required?: string[];
  additionalProperties?: boolean | SchemaNode;
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
  items?: SchemaNode | SchemaNode[];
  oneOf?: SchemaNode[];
  anyOf?: SchemaNode[];
  pattern?: string;
  minLength?: number;
  /** Replaces the generated message when the value itself (not something inside it) is wrong. */
  errorMessage?: string;
  definitions?: Record<string, SchemaNode>;
}

/** Keywords the interpreter enforces; anything else in the schema must be documentation only. */
export const SUPPORTED_KEYWORDS: ReadonlySet<string> = new Set([
  '$ref', 'type', 'properties', 'required', 'additionalProperties', 'enum', 'const', 'minimum',
  'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minItems', 'maxItems', 'items', 'oneOf',
  'anyOf', 'pattern', 'minLength', 'errorMessage', 'definitions',
]);

// The JSON's inferred type is too literal to be a SchemaNode; a unit test checks that every keyword
// in the file is one this interpreter enforces or pure documentation.
export const planSchema: SchemaNode = schemaJson as unknown as SchemaNode;

const PARSE_OPTIONS = { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false };

interface Finding {
  path: PlanPath;
  problem: string;
  /** What to underline: the value, the property's key, or (for a missing property) its parent. */
  at: 'value' | 'key' | 'missing';
  /** An exact node, when the path cannot find it (a duplicate key). */
  node?: Node;
}

/** Parses and validates a plan file's text; throws the first problem as a LayerwiseError. */
export function parsePlanText(text: string, file: string): Plan {
  const { value, problems } = analyse(text);
  const first = problems[0];
  if (first !== undefined) throw new LayerwiseError(first.message, { file, field: first.field });
  return value as Plan;
}

/** Validates an already-parsed plan (tests, the host); throws the first problem. */
export function validatePlanValue(value: unknown, file: string): Plan {
  const findings = [...schemaFindings(value), ...semanticFindings(value)];
  const first = findings[0];
  if (first !== undefined) throw new LayerwiseError(first.problem, { file, field: jsonPath(first.path) });
  return value as Plan;
}

/** Every problem in the text (not just the first), in document order, with text ranges. */
export function collectPlanProblems(text: string, _file: string): PlanProblem[] {
  return analyse(text).problems;
}

function analyse(text: string): { value: unknown; problems: PlanProblem[] } {
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, PARSE_OPTIONS);
  if (errors.length > 0 || root === undefined) {
    // Findings on a half-parsed document would mostly be echoes of the syntax error.
    const syntax = errors.length > 0 ? errors : [{ error: 4, offset: 0, length: 0 } as ParseError];
    return { value: undefined, problems: syntax.map((e) => syntaxProblem(text, e)) };
  }
  const value = plainJson(getNodeValue(root));
  const findings = [...duplicateKeyFindings(root), ...schemaFindings(value), ...semanticFindings(value)];
  const problems = findings.map((f): PlanProblem => ({
    message: f.problem,
    field: jsonPath(f.path),
    path: f.path,
    ...rangeOf(root, f),
  }));
  // Stable: problems at one place keep the order they were found in.
  problems.sort((a, b) => a.offset - b.offset);
  return { value, problems };
}

// ---------------------------------------------------------------------------------------------
// Syntax

const SYNTAX_MESSAGES: Record<string, string> = {
  InvalidSymbol: 'unexpected character',
  InvalidNumberFormat: 'invalid number',
  PropertyNameExpected: 'a property name in double quotes is expected',
  ValueExpected: 'a value is expected',
  ColonExpected: 'a colon is expected',
  CommaExpected: 'a comma is expected',
  CloseBraceExpected: 'a closing brace } is expected',
  CloseBracketExpected: 'a closing bracket ] is expected',
  EndOfFileExpected: 'nothing may follow the top-level value',
  InvalidCommentToken: 'invalid comment',
  UnexpectedEndOfComment: 'the comment is not closed (missing */)',
  UnexpectedEndOfString: 'the string is not closed (missing ")',
  UnexpectedEndOfNumber: 'the number is incomplete',
  InvalidUnicode: 'invalid \\u escape',
  InvalidEscapeCharacter: 'invalid escape character',
  InvalidCharacter: 'invalid character in a string',
};

function syntaxProblem(text: string, e: ParseError): PlanProblem {
  const { line, column } = lineColumn(text, e.offset);
  const message =
    text.trim() === ''
      ? 'the file is empty (a plan is a JSON object)'
      : e.offset === 0 && text.startsWith('\ufeff')
        ? 'the file starts with a byte-order mark (BOM); save it as UTF-8 without BOM'
        : `syntax error: ${SYNTAX_MESSAGES[printParseErrorCode(e.error)] ?? 'invalid JSON'}`;
  return { message, field: `${line}:${column}`, path: [], offset: e.offset, length: Math.max(1, e.length) };
}

/** 1-based line and column, as editors and compilers print them. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === '\n') {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

function duplicateKeyFindings(root: Node): Finding[] {
  const out: Finding[] = [];
  const walk = (node: Node, path: PlanPath): void => {
    if (node.type === 'object') {
      const seen = new Set<string>();
      for (const prop of node.children ?? []) {
        const [key, value] = prop.children ?? [];
        if (key === undefined || typeof key.value !== 'string') continue;
        const name: string = key.value;
        if (seen.has(name)) {
          out.push({ path: [...path, name], problem: `duplicate property "${name}" (JSON keeps only the last one; remove one)`, at: 'key', node: key });
        }
        seen.add(name);
        if (value !== undefined) walk(value, [...path, name]);
      }
    } else if (node.type === 'array') {
      (node.children ?? []).forEach((child, i) => walk(child, [...path, i]));
    }
  };
  walk(root, []);
  return out;
}

/**
 * jsonc-parser builds objects without a prototype; callers expect ordinary ones. fromEntries
 * defines keys as own data properties, so a `"__proto__"` key stays a key (and gets reported).
 */
function plainJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plainJson);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plainJson(v)]));
  return value;
}

function rangeOf(root: Node, f: Finding): { offset: number; length: number } {
  if (f.node !== undefined) return { offset: f.node.offset, length: f.node.length };
  const node = findNodeAtLocation(root, f.path);
  if (node !== undefined) {
    const key = keyOf(node);
    if (f.at === 'key' && key !== undefined) return span(key);
    // A whole object or list would underline many lines; its key says where just as well.
    if (node.type === 'object' || node.type === 'array') return key !== undefined ? span(key) : { offset: node.offset, length: 1 };
    return span(node);
  }
  for (let n = f.path.length - 1; n >= 0; n--) {
    const ancestor = findNodeAtLocation(root, f.path.slice(0, n));
    if (ancestor === undefined) continue;
    const key = keyOf(ancestor);
    return key !== undefined ? span(key) : { offset: ancestor.offset, length: 1 };
  }
  return { offset: root.offset, length: 1 };
}

function keyOf(valueNode: Node): Node | undefined {
  const parent = valueNode.parent;
  return parent?.type === 'property' ? parent.children?.[0] : undefined;
}

function span(node: Node): { offset: number; length: number } {
  return { offset: node.offset, length: node.length };
}

// ---------------------------------------------------------------------------------------------
// The schema interpreter

function schemaFindings(value: unknown): Finding[] {
  const out: Finding[] = [];
  check(value, planSchema, [], out);
  return out;
}

function resolve(s: SchemaNode): SchemaNode {
  if (s.$ref === undefined) return s;
  const prefix = '#/definitions/';
  const target = s.$ref.startsWith(prefix) ? own(planSchema.definitions ?? {}, s.$ref.slice(prefix.length)) : undefined;
  if (target === undefined) throw new Error(`plan schema: unresolved $ref ${s.$ref}`);
  // Siblings of $ref (a more specific description, an errorMessage) win, as in VS Code.
  const { $ref: _ref, ...siblings } = s;
  return resolve({ ...target, ...siblings });
}

function check(value: unknown, schema: SchemaNode, path: PlanPath, out: Finding[]): void {
  const s = resolve(schema);
  const branches = s.oneOf ?? s.anyOf;
  if (branches !== undefined) {
    checkBranches(value, s, branches.map(resolve), path, out);
    return;
  }
  if (s.const !== undefined && !deepEqual(value, s.const)) {
    out.push({ path, problem: `must be ${show(s.const)} (got ${got(value)})`, at: 'value' });
    return;
  }
  if (s.enum !== undefined && !s.enum.some((e) => deepEqual(e, value))) {
    const hint = typeof value === 'string' ? didYouMean(value, s.enum.filter((e): e is string => typeof e === 'string')) : '';
    out.push({ path, problem: `must be one of ${s.enum.map(show).join(', ')} (got ${got(value)})${hint}`, at: 'value' });
    return;
  }
  if (s.type !== undefined && !typeMatches(value, s.type)) {
    out.push({ path, problem: s.errorMessage !== undefined ? `${s.errorMessage} (got ${got(value)})` : `must be ${describe(s)} (got ${got(value)})`, at: 'value' });
    return;
  }
  if (typeof value === 'number') {
    if (!withinBounds(value, s)) out.push({ path, problem: `${s.errorMessage ?? `must be ${describe(s)}`} (got ${value})`, at: 'value' });
  } else if (typeof value === 'string') {
    if (s.minLength !== undefined && value.length < s.minLength) {
      out.push({ path, problem: s.minLength === 1 ? 'must not be empty' : `must have at least ${s.minLength} characters`, at: 'value' });
    } else if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(value)) {
      out.push({ path, problem: `${s.errorMessage ?? `must match ${s.pattern}`} (got ${got(value)})`, at: 'value' });
    }
  } else if (Array.isArray(value)) {
    checkArray(value, s, path, out);
  } else if (isRecord(value)) {
    checkObject(value, s, path, out);
  }
}

function checkArray(value: unknown[], s: SchemaNode, path: PlanPath, out: Finding[]): void {
  const tooFew = s.minItems !== undefined && value.length < s.minItems;
  const tooMany = s.maxItems !== undefined && value.length > s.maxItems;
  if (tooFew || tooMany) {
    const problem = s.errorMessage ?? `must be ${describe(s)}`;
    out.push({ path, problem: `${problem} (got ${value.length === 0 ? 'an empty list' : `${value.length} item${value.length === 1 ? '' : 's'}`})`, at: 'value' });
    return;
  }
  const items = s.items;
  if (items === undefined) return;
  value.forEach((item, i) => {
    const itemSchema = Array.isArray(items) ? items[i] : items;
    if (itemSchema !== undefined) check(item, itemSchema, [...path, i], out);
  });
}

function checkObject(value: Record<string, unknown>, s: SchemaNode, path: PlanPath, out: Finding[]): void {
  const properties = s.properties ?? {};
  for (const [key, child] of Object.entries(value)) {
    const propertySchema = own(properties, key);
    if (propertySchema !== undefined) check(child, propertySchema, [...path, key], out);
    else if (s.additionalProperties === false) out.push({ path: [...path, key], problem: unknownProperty(key, Object.keys(properties)), at: 'key' });
    else if (typeof s.additionalProperties === 'object') check(child, s.additionalProperties, [...path, key], out);
  }
  for (const key of s.required ?? []) {
    if (!(key in value)) out.push({ path: [...path, key], problem: 'is required', at: 'missing' });
  }
}

/**
 * oneOf/anyOf: pick the branch the value is meant for (by JSON type, then by a discriminating
 * property such as `type` or `mode`) and report that branch's errors, which say what to fix;
 * "matches none of the alternatives" would not.
 */
function checkBranches(value: unknown, s: SchemaNode, branches: SchemaNode[], path: PlanPath, out: Finding[]): void {
  const candidates = branches.filter((b) => typeAllows(b, value));
  if (candidates.length === 0) {
    out.push({ path, problem: `${s.errorMessage ?? `must be ${describeBranches(branches)}`} (got ${got(value)})`, at: 'value' });
    return;
  }
  let chosen: SchemaNode | undefined;
  if (candidates.length === 1) chosen = candidates[0];
  else if (isRecord(value)) chosen = pickObjectBranch(value, candidates, path, out);
  else {
    for (const b of candidates) {
      const trial: Finding[] = [];
      check(value, b, path, trial);
      if (trial.length === 0) return;
    }
    chosen = candidates[0];
  }
  if (chosen === undefined) return;
  const found: Finding[] = [];
  check(value, chosen, path, found);
  explainMisplacedProperties(value, chosen, branches, path, found);
  const aboutThisValue = found.length > 0 && found.every((f) => f.path.length === path.length);
  if (aboutThisValue && s.errorMessage !== undefined) out.push({ path, problem: `${s.errorMessage} (got ${got(value)})`, at: 'value' });
  else out.push(...found);
}

function pickObjectBranch(value: Record<string, unknown>, candidates: SchemaNode[], path: PlanPath, out: Finding[]): SchemaNode | undefined {
  const key = discriminator(candidates);
  if (key !== undefined) {
    const allowed = candidates.flatMap((b) => constantsOf(own(b.properties ?? {}, key)));
    const list = allowed.map(show).join(', ');
    const actual = value[key];
    if (actual === undefined) {
      out.push({ path: [...path, key], problem: `is required: one of ${list}`, at: 'missing' });
      return undefined;
    }
    const match = candidates.find((b) => constantsOf(own(b.properties ?? {}, key)).some((c) => deepEqual(c, actual)));
    if (match === undefined) {
      const hint = typeof actual === 'string' ? didYouMean(actual, allowed.filter((a): a is string => typeof a === 'string')) : '';
      out.push({ path: [...path, key], problem: `must be one of ${list} (got ${got(actual)})${hint}`, at: 'value' });
    }
    return match;
  }
  const withRequired = candidates.filter((b) => (b.required ?? []).every((k) => k in value));
  if (withRequired.length === 1) return withRequired[0];
  const distinguishing = [...new Set(candidates.flatMap((b) => b.required ?? []))];
  if (withRequired.length === 0) {
    const known = [...new Set(candidates.flatMap((b) => Object.keys(b.properties ?? {})))];
    for (const k of Object.keys(value)) {
      if (!known.includes(k)) out.push({ path: [...path, k], problem: unknownProperty(k, known), at: 'key' });
    }
    out.push({ path, problem: `must have ${distinguishing.map(show).join(' or ')}`, at: 'value' });
    return undefined;
  }
  const clashing = distinguishing.filter((k) => k in value);
  out.push({ path, problem: `${clashing.map(show).join(' and ')} cannot be used together`, at: 'value' });
  return undefined;
}

/** `"warmup"` on an `stlr` schedule is not a typo but a field of other schedule types: say so. */
function explainMisplacedProperties(value: unknown, chosen: SchemaNode, branches: SchemaNode[], path: PlanPath, found: Finding[]): void {
  const key = discriminator(branches);
  if (key === undefined || !isRecord(value)) return;
  for (const f of found) {
    const name = f.path[path.length];
    if (f.at !== 'key' || f.path.length !== path.length + 1 || typeof name !== 'string') continue;
    const owners = branches.filter((b) => b !== chosen && own(b.properties ?? {}, name) !== undefined).flatMap((b) => constantsOf(own(b.properties ?? {}, key)));
    if (owners.length > 0) {
      f.problem = `"${name}" does not apply to ${key} ${show(value[key])} (only to ${owners.map(show).join(', ')})`;
    }
  }
}

/** A property every branch pins to constants (`"type": { "const": "ulmfit" }`). */
function discriminator(branches: SchemaNode[]): string | undefined {
  const first = branches[0]?.properties ?? {};
  return Object.keys(first).find((k) => branches.every((b) => constantsOf(own(b.properties ?? {}, k)).length > 0));
}

function constantsOf(s: SchemaNode | undefined): unknown[] {
  if (s === undefined) return [];
  const r = resolve(s);
  if (r.const !== undefined) return [r.const];
  return r.enum ?? [];
}

function typeAllows(s: SchemaNode, value: unknown): boolean {
  if (s.type !== undefined) return typeMatches(value, s.type);
  if (s.const !== undefined) return jsonType(s.const) === jsonType(value);
  if (s.enum !== undefined) return s.enum.some((e) => jsonType(e) === jsonType(value));
  return true;
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function typeMatches(value: unknown, type: string | string[]): boolean {
  const types = Array.isArray(type) ? type : [type];
  return types.some((t) => {
    switch (t) {
      case 'integer':
        return typeof value === 'number' && Number.isInteger(value);
      case 'number':
        return typeof value === 'number' && Number.isFinite(value);
      case 'object':
        return isRecord(value);
      case 'array':
        return Array.isArray(value);
      case 'null':
        return value === null;
      default:
        return typeof value === t;
    }
  });
}

function withinBounds(v: number, s: SchemaNode): boolean {
  return (
    (s.minimum === undefined || v >= s.minimum) &&
    (s.exclusiveMinimum === undefined || v > s.exclusiveMinimum) &&
    (s.maximum === undefined || v <= s.maximum) &&
    (s.exclusiveMaximum === undefined || v < s.exclusiveMaximum)
  );
}

/** Each distinct alternative once: three kinds of schedule object are still "an object". */
function describeBranches(branches: SchemaNode[]): string {
  return [...new Set(branches.map(describe))].join(' or ');
}

/** "a number > 0", "a whole number >= 1", "a non-empty list of strings", … */
function describe(schema: SchemaNode): string {
  const s = resolve(schema);
  if (s.const !== undefined) return show(s.const);
  if (s.enum !== undefined) return `one of ${s.enum.map(show).join(', ')}`;
  const branches = s.oneOf ?? s.anyOf;
  if (branches !== undefined) return describeBranches(branches);
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'number':
    case 'integer': {
      const bounds: string[] = [];
      if (s.minimum !== undefined) bounds.push(`>= ${s.minimum}`);
      if (s.exclusiveMinimum !== undefined) bounds.push(`> ${s.exclusiveMinimum}`);
      if (s.maximum !== undefined) bounds.push(`<= ${s.maximum}`);
      if (s.exclusiveMaximum !== undefined) bounds.push(`< ${s.exclusiveMaximum}`);
      const noun = type === 'integer' ? 'a whole number' : 'a number';
      return bounds.length > 0 ? `${noun} ${bounds.join(' and ')}` : noun;
    }
    case 'string':
      return s.minLength !== undefined && s.minLength > 0 ? 'a non-empty string' : 'a string';
    case 'boolean':
      return 'true or false';
    case 'object':
      return 'an object';
    case 'array':
      return describeList(s);
    default:
      return 'a value';
  }
}

function describeList(s: SchemaNode): string {
  if (Array.isArray(s.items)) {
    const first = s.items[0];
    return `a list of ${s.items.length} ${first !== undefined ? plural(first) : 'items'}`;
  }
  const of = s.items !== undefined ? ` of ${plural(s.items)}` : '';
  if (s.minItems !== undefined && s.maxItems !== undefined && s.minItems === s.maxItems) return `a list of exactly ${s.minItems}${of === '' ? ' items' : of.slice(3)}`;
  const bounds = s.minItems !== undefined && s.minItems > 1 ? ` (at least ${s.minItems})` : '';
  return `${s.minItems === 1 ? 'a non-empty list' : 'a list'}${of}${bounds}`;
}

function plural(schema: SchemaNode): string {
  const s = resolve(schema);
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'string':
      return 'strings';
    case 'integer':
      return describe(s).replace('a whole number', 'whole numbers');
    case 'number':
      return describe(s).replace('a number', 'numbers');
    case 'object':
      return 'objects';
    case 'array':
      return 'lists';
    case 'boolean':
      return 'booleans';
    default:
      return 'items';
  }
}

function show(v: unknown): string {
  return JSON.stringify(v);
}

function got(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (isRecord(value)) return 'an object';
  if (typeof value === 'string') {
    const s = JSON.stringify(value);
    return s.length > 42 ? `${s.slice(0, 40)}…"` : s;
  }
  return String(value);
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A member of a schema map; `"__proto__"` or `"constructor"` in a plan must not find Object.prototype's. */
function own<T>(map: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------
// Suggestions

/** Names people bring from other tools (PyTorch, Keras, timm) that mean a plan field. */
const ALIASES: Record<string, string> = {
  learningrate: 'lr',
  baselr: 'lr',
  multiplier: 'lrMult',
  lrmultiplier: 'lrMult',
  lrscale: 'lrMult',
  freeze: 'frozen',
  wd: 'weightDecay',
  decay: 'weightDecay',
  bs: 'batchSize',
  warmupsteps: 'warmup',
  warmupratio: 'warmup',
  scheduler: 'schedule',
  lrschedule: 'schedule',
  valsplit: 'validationSplit',
  val: 'validation',
};

function unknownProperty(key: string, known: string[]): string {
  const suggestion = closest(key, known);
  if (suggestion !== undefined) return `unknown property "${key}" — did you mean "${suggestion}"?`;
  if (known.length === 0) return `unknown property "${key}"`;
  return `unknown property "${key}" (allowed: ${known.map(show).join(', ')})`;
}

function didYouMean(value: string, candidates: string[]): string {
  const suggestion = closest(value, candidates);
  return suggestion !== undefined ? ` — did you mean "${suggestion}"?` : '';
}

function normalise(name: string): string {
  return name.toLowerCase().replace(/[\s_-]/g, '');
}

/** The known name the user most likely meant, or undefined when nothing is close. */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  const n = normalise(name);
  const same = candidates.find((c) => normalise(c) === n);
  if (same !== undefined) return same;
  const alias = own(ALIASES, n);
  if (alias !== undefined && candidates.includes(alias)) return alias;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(n, normalise(c));
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const allowed = Math.max(1, Math.floor(Math.min(n.length, best?.length ?? 0) / 3));
  return bestDistance <= allowed ? best : undefined;
}

/** Edits (insert, delete, substitute, swap two neighbours) from a to b: "haed" is 1 from "head". */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      const row = d[i];
      if (row !== undefined) row[j] = best;
    }
  }
  return at(a.length, b.length);
}

// ---------------------------------------------------------------------------------------------
// Checks the schema cannot express

function semanticFindings(plan: unknown): Finding[] {
  const out: Finding[] = [];
  if (!isRecord(plan)) return out;
  const add = (path: PlanPath, problem: string): void => {
    out.push({ path, problem, at: 'value' });
  };

  const groupNames: string[] = [];
  const groups = Array.isArray(plan.groups) ? plan.groups : [];
  groups.forEach((group, i) => {
    if (!isRecord(group)) return;
    const name = group.name;
    if (typeof name === 'string') {
      const earlier = groupNames.indexOf(name);
      if (name === DEFAULT_GROUP) {
        add(['groups', i, 'name'], `"${DEFAULT_GROUP}" is reserved for the implicit group of layers no pattern matches; pick another name`);
      } else if (earlier >= 0) {
        add(['groups', i, 'name'], `duplicate group name "${name}" (also groups[${earlier}].name)`);
      }
      groupNames.push(name);
    }
    if (Array.isArray(group.layers)) {
      group.layers.forEach((pattern, j) => {
        const problem = typeof pattern === 'string' ? regexProblem(pattern) : undefined;
        if (problem !== undefined) add(['groups', i, 'layers', j], problem);
      });
    }
  });

  const unfreeze = plan.unfreeze;
  if (isRecord(unfreeze) && Array.isArray(unfreeze.stages)) {
    const known = [...new Set(groupNames), DEFAULT_GROUP];
    unfreeze.stages.forEach((stage, i) => {
      if (!isRecord(stage) || !Array.isArray(stage.train)) return;
      stage.train.forEach((name, j) => {
        if (typeof name !== 'string' || known.includes(name)) return;
        const hint = closest(name, known);
        const listed = groupNames.length > 0 ? `the plan's groups are ${groupNames.map(show).join(', ')}` : 'the plan has no groups';
        add(['unfreeze', 'stages', i, 'train', j], `unknown group "${name}"${hint !== undefined ? ` — did you mean "${hint}"?` : ''} (${listed}; "${DEFAULT_GROUP}" is the group of unmatched layers)`);
      });
    });
  }

  const torch = isRecord(plan.pytorch) ? plan.pytorch : undefined;
  if (torch !== undefined) {
    const nproc = typeof torch.nproc === 'number' ? torch.nproc : 1;
    const training = isRecord(plan.training) ? plan.training : undefined;
    const batch = typeof training?.batchSize === 'number' ? training.batchSize : DEFAULTS.batchSize;
    if (nproc > 1 && Number.isInteger(nproc) && batch % nproc !== 0) {
      add(['pytorch', 'nproc'], `training.batchSize (${batch}) is the global batch and must divide by nproc (${nproc}): every rank takes batchSize / nproc samples per step`);
    }
  }

  const data = isRecord(plan.data) ? plan.data : undefined;
  if (data !== undefined) {
    if (data.validation !== undefined && data.validationSplit !== undefined) {
      add(['data', 'validationSplit'], 'cannot be used together with data.validation; keep one of them');
    }
    if (data.format === 'csv') {
      for (const key of ['size', 'channels', 'scale', 'normalize', 'augment', 'onBadImage']) {
        if (data[key] !== undefined) add(['data', key], 'applies to image folders only, but data.format is "csv"');
      }
    } else if (data.format === 'imagefolder') {
      for (const key of ['label', 'features']) {
        if (data[key] !== undefined) add(['data', key], 'applies to CSV data only, but data.format is "imagefolder"');
      }
    }
    if (data.scale !== undefined && data.normalize !== undefined && data.normalize !== 'unit') {
      add(['data', 'scale'], `cannot be combined with data.normalize ${JSON.stringify(data.normalize)}; keep one of them`);
    }
    const norm = data.normalize;
    if (isRecord(norm) && Array.isArray(norm.mean) && Array.isArray(norm.std) && norm.mean.length !== norm.std.length) {
      add(['data', 'normalize', 'std'], `has ${norm.std.length} value(s) but mean has ${norm.mean.length}; give one per channel for both`);
    }
    if (norm === 'imagenet' && data.channels === 1) {
      add(['data', 'normalize'], '"imagenet" has a mean and std for 3 channels but data.channels is 1; give { "mean": [m], "std": [s] }');
    }
    const crop = isRecord(data.augment) ? data.augment.randomResizedCrop : undefined;
    if (isRecord(crop)) {
      for (const key of ['scale', 'ratio']) {
        const r = crop[key];
        if (Array.isArray(r) && typeof r[0] === 'number' && typeof r[1] === 'number' && r[0] > r[1]) {
          add(['data', 'augment', 'randomResizedCrop', key], `must be [min, max] with min <= max (got [${r[0]}, ${r[1]}])`);
        }
      }
      if (Array.isArray(crop.scale) && crop.scale[1] === 0) add(['data', 'augment', 'randomResizedCrop', 'scale'], 'the largest area fraction must be above 0');
    }
    if (Array.isArray(data.features)) {
      const first = new Map<unknown, number>();
      data.features.forEach((f, j) => {
        const i = first.get(f);
        if (i === undefined) first.set(f, j);
        else add(['data', 'features', j], `${JSON.stringify(f)} is listed twice (also data.features[${i}])`);
      });
    }
    if (typeof data.label === 'string' && Array.isArray(data.features)) {
      const j = data.features.indexOf(data.label);
      if (j >= 0) add(['data', 'features', j], `"${data.label}" is the label column (data.label) and cannot also be a feature`);
    }
  }

  const discriminative = plan.discriminative;
  if (isRecord(discriminative) && discriminative.type === 'geometric') {
    const { low, high } = discriminative;
    if (typeof low === 'number' && typeof high === 'number' && low > high) {
      add(['discriminative', 'low'], `must be <= high (got low ${low} > high ${high})`);
    }
  }

  const training = isRecord(plan.training) ? plan.training : undefined;
  if (training !== undefined) {
    const early = training.earlyStopping;
    if (early !== undefined) {
      const hasValidation = data !== undefined && (data.validation !== undefined || data.validationSplit !== undefined);
      if (!hasValidation) add(['training', 'earlyStopping'], 'needs validation data: set data.validation or data.validationSplit');
      if (isRecord(early) && early.metric === 'valAccuracy' && plan.task === 'regression') {
        add(['training', 'earlyStopping', 'metric'], '"valAccuracy" needs a classification task (task is "regression"); use "valLoss"');
      }
    }
    if (training.optimizer === 'sgd' && training.nesterov === true && !(typeof training.momentum === 'number' && training.momentum > 0)) {
      add(['training', 'nesterov'], 'Nesterov momentum needs training.momentum > 0 (as in torch.optim.SGD)');
    }
  }
  return out;
}

/** Why a `re:` pattern is unusable, or undefined when it is fine (or not a regex). */
function regexProblem(pattern: string): string | undefined {
  if (!pattern.startsWith('re:')) return undefined;
  const source = pattern.slice(3);
  if (source === '') return '"re:" must be followed by a regular expression';
  try {
    // Alone, so that "a)(b" — valid only once wrapped in the matcher's ^(?:…)$ — is caught too.
    new RegExp(source);
    compilePattern(pattern);
    return undefined;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const reason = message.replace(/^.*Invalid regular expression: \/.*\/[a-z]*: /s, '');
    return `invalid regular expression ${JSON.stringify(source)}: ${reason}`;
  }
}
