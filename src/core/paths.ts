/**
 * Paths named by a plan or a model (PLAN-SPEC "Paths"): relative to the plan's folder, and never
 * resolving outside the workspace folder — nor, for weight shards, outside the model's folder.
 * Symlinks are followed where they exist, so a link cannot lead out either.
 */
import * as path from 'node:path';
import { existsSync, lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { LayerwiseError } from './errors.ts';

/**
 * The absolute path of `relPath`, a path the plan names in `field`, resolved against the plan's
 * folder. Throws a LayerwiseError naming the plan file and the field when it is absolute, holds a
 * NUL byte, or resolves (after `..` and symlinks) outside `workspaceRoot`.
 */
export function resolvePlanPath(planFile: string, relPath: string, field: string, workspaceRoot: string): string {
  const where = { file: planFile, field };
  checkRelative(relPath, where);
  const resolved = path.resolve(path.dirname(path.resolve(planFile)), relPath);
  const root = path.resolve(workspaceRoot);
  if (!isInside(root, resolved) || !isInside(realpathOrSelf(root), realpathOfExisting(resolved))) {
    throw new LayerwiseError(`${JSON.stringify(relPath)} resolves outside the workspace folder ${root}; paths must stay inside it`, where);
  }
  return resolved;
}

/**
 * `rel` resolved inside `dir` (e.g. a weight shard inside the model's folder). `what` names the
 * thing for the message ("weight shard"); `file` and `field` say where `rel` was written.
 */
export function resolveInside(dir: string, rel: string, what: string, file: string, field: string): string {
  const where = { file, field };
  checkRelative(rel, where, what);
  const base = path.resolve(dir);
  const resolved = path.resolve(base, rel);
  if (!isInside(base, resolved) || !isInside(realpathOrSelf(base), realpathOfExisting(resolved))) {
    throw new LayerwiseError(`${what} ${JSON.stringify(rel)} resolves outside ${base}; it must stay inside that folder`, where);
  }
  return resolved;
}

/**
 * The CLI's workspace folder: the plan's folder, or `--workspace DIR` when given — which must be
 * that folder or one above it, since every path check is relative to it.
 */
export function cliWorkspaceRoot(planFile: string, workspaceFlag?: string): string {
  const planDir = path.dirname(path.resolve(planFile));
  if (workspaceFlag === undefined) return planDir;
  if (workspaceFlag.includes('\0')) throw new LayerwiseError('must not contain a NUL byte', { field: '--workspace' });
  const root = path.resolve(workspaceFlag);
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new LayerwiseError(`${JSON.stringify(workspaceFlag)} is not a folder`, { field: '--workspace' });
  }
  if (!isInside(root, planDir) || !isInside(realpathOrSelf(root), realpathOrSelf(planDir))) {
    throw new LayerwiseError(`${root} must be the plan's folder or a folder above it (the plan is in ${planDir})`, { field: '--workspace' });
  }
  return root;
}

/**
 * A folder named on the command line (`--out`, `--resume`): like every path of a plan it must lie
 * inside the workspace (after symlinks), since the run records it in the plan's results.
 */
export function resolveCliFolder(value: string, flag: string, workspaceRoot: string): string {
  if (value.includes('\0')) throw new LayerwiseError('must not contain a NUL byte', { field: flag });
  const resolved = path.resolve(value);
  const root = path.resolve(workspaceRoot);
  if (!isInside(root, resolved) || !isInside(realpathOrSelf(root), realpathOfExisting(resolved))) {
    throw new LayerwiseError(`${resolved} lies outside the workspace folder ${root}; choose a folder inside it, or give --workspace DIR above both`, { field: flag });
  }
  return resolved;
}

/** True when `child` is `parent` or lies below it (both absolute and normalised). */
export function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

function checkRelative(rel: string, where: { file: string; field: string }, what?: string): void {
  const subject = what !== undefined ? `${what} ${JSON.stringify(rel)}` : JSON.stringify(rel);
  if (rel === '') throw new LayerwiseError(what !== undefined ? `${what} path must not be empty` : 'must not be an empty path', where);
  if (rel.includes('\0')) throw new LayerwiseError(`${what !== undefined ? `${what} path` : 'path'} must not contain a NUL byte`, where);
  // Both conventions: a plan written on Windows must not escape on Linux, nor the reverse.
  if (path.posix.isAbsolute(rel) || path.win32.isAbsolute(rel) || /^[A-Za-z]:/.test(rel)) {
    throw new LayerwiseError(`${subject} is an absolute path; write it relative to ${what !== undefined ? 'its folder' : "the plan's folder"}`, where);
  }
  // A backslash is a separator on Windows: "..\\x" must not escape there while passing here.
  if (path.sep === '/' && rel.split(/[\\/]/).includes('..') && rel.includes('\\')) {
    throw new LayerwiseError(`${subject} mixes "\\" with ".."; use "/" as the separator`, where);
  }
}

function realpathOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/**
 * The real path of the deepest part of `p` that exists, with the rest appended. A dangling
 * symlink counts as existing and is followed by hand: whatever is created through it later
 * would land at its target.
 */
function realpathOfExisting(p: string, hops = 0): string {
  let existing = p;
  const rest: string[] = [];
  while (!lexists(existing)) {
    const parent = path.dirname(existing);
    if (parent === existing) return p;
    rest.unshift(path.basename(existing));
    existing = parent;
  }
  try {
    return path.join(realpathSync(existing), ...rest);
  } catch {
    if (hops > 40) return p;
    const target = path.resolve(path.dirname(existing), readlinkSync(existing));
    return realpathOfExisting(path.join(target, ...rest), hops + 1);
  }
}

function lexists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
