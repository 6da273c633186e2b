// Where names from the input or the options (models, file stems, unit keys, metric and rule names) become paths.
// A name is kept when it is plainly safe as one path segment, so existing outputs keep their names; any other name
// is made safe deterministically, with a hash of the original so that two names never share a segment. Writers and
// removers then check, as a last line, that what they touch lies under the directory the user named.
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { sha256Hex } from '../core/ids.ts';
import { BdpoError } from '../core/errors.ts';

const PLAIN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export class UnsafePathError extends BdpoError {}

/**
 * One path segment for a user-given name: the name itself when it is plain (a letter or digit, then up to 63 of
 * letters, digits, `.`, `_`, `-`); otherwise its plain characters, cut to 40, then `~` and 8 hex digits of its hash.
 * `+` and `~` appear in no kept name, so keys joined with `+` stay unambiguous.
 */
export function safeName(name: string): string {
  if (PLAIN.test(name)) return name;
  return `${name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 40)}~${sha256Hex(name).slice(0, 8)}`;
}

/** `root` joined with a relative path, refused when the result is not strictly under `root`. */
export function resolveInside(root: string, path: string): string {
  const joined = join(root, path);
  const rel = relative(resolve(root), resolve(joined));
  if (isAbsolute(path) || rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel) || path.includes('\0')) {
    throw new UnsafePathError(`${JSON.stringify(path)} would be written outside ${root}`);
  }
  return joined;
}
