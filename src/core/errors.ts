/**
 * One error type for every bad input: it names the file, the JSON path (or field) inside it and
 * the problem, so the CLI can print one line and the editor can place a diagnostic.
 */
export class LayerwiseError extends Error {
  readonly file: string | undefined;
  readonly field: string | undefined;
  readonly problem: string;

  constructor(problem: string, where: { file?: string; field?: string } = {}) {
    super(formatProblem(problem, where.file, where.field));
    this.name = 'LayerwiseError';
    this.problem = problem;
    this.file = where.file;
    this.field = where.field;
  }
}

export function formatProblem(problem: string, file?: string, field?: string): string {
  const parts = [file, field].filter((p): p is string => p !== undefined && p !== '');
  return parts.length > 0 ? `${parts.join(': ')}: ${problem}` : problem;
}

export function isLayerwiseError(e: unknown): e is LayerwiseError {
  return e instanceof LayerwiseError;
}

export function assertNever(x: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(x)}`);
}

/** JSON path in the form users read in error messages: `groups[2].layers[0]`. */
export function jsonPath(path: ReadonlyArray<string | number>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out === '' ? '(root)' : out;
}
