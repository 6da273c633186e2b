// JSON files a user gives or a stage left behind: a parse error names the file and the line and column where the
// text stops being JSON, and never quotes the text (V8's messages do, and a tokenizer.json is megabytes of it).
import { readFile } from 'node:fs/promises';
import { BdpoError } from '../core/errors.ts';

export class JsonFileError extends BdpoError {}

/** The parsed value of a JSON file; a missing file keeps its ENOENT error (callers decide whether that is fine). */
export async function readJsonFile(path: string): Promise<unknown> {
  return parseJsonText(await readFile(path, 'utf8'), path);
}

export function parseJsonText(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new JsonFileError(`${path}: not valid JSON (${describeJsonSyntaxError(text)})`);
  }
}

/** "what, at line L column C (offset N)" for text that JSON.parse rejects, found by a scan that quotes nothing. */
export function describeJsonSyntaxError(text: string): string {
  const { offset, problem } = firstJsonError(text);
  let line = 1;
  let column = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      column = 1;
    } else {
      column++;
    }
  }
  return `${problem} at line ${line} column ${column} (offset ${offset})`;
}

/** Where a recursive-descent JSON recogniser first fails, iteratively (deep nesting must not overflow the stack). */
function firstJsonError(text: string): { offset: number; problem: string } {
  let i = 0;
  const fail = (problem: string): { offset: number; problem: string } => ({
    offset: i,
    problem: i >= text.length ? 'unexpected end of file' : problem,
  });
  const skipSpace = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const scanString = (): boolean => {
    i++;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c === 0x5c) {
        const escaped = text[i + 1];
        if (escaped === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return false;
          i += 6;
        } else if (escaped !== undefined && '"\\/bfnrt'.includes(escaped)) {
          i += 2;
        } else {
          i++;
          return false;
        }
      } else {
        i++;
      }
    }
    return false;
  };
  const scanScalar = (): boolean => {
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return true;
      }
    }
    const match = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!match || match[0] === '' || match[0] === '-') return false;
    i += match[0].length;
    return true;
  };
  // The closing character of each open container.
  const stack: ('}' | ']')[] = [];
  for (;;) {
    // Expect a value.
    skipSpace();
    const c = text[i];
    if (c === '{' || c === '[') {
      stack.push(c === '{' ? '}' : ']');
      i++;
      skipSpace();
      if (text[i] === stack[stack.length - 1]) {
        stack.pop();
        i++;
      } else if (c === '{') {
        if (text[i] !== '"') return fail('expected a property name in double quotes');
        if (!scanString()) return fail('bad string');
        skipSpace();
        if (text[i] !== ':') return fail("expected ':' after a property name");
        i++;
        continue;
      } else {
        continue;
      }
    } else if (c === '"') {
      if (!scanString()) return fail('bad string (unescaped control character, bad escape or no closing quote)');
    } else if (!scanScalar()) {
      return fail('expected a value (string, number, object, array, true, false or null)');
    }
    // After a value: close containers or move to the next member.
    for (;;) {
      skipSpace();
      const close = stack[stack.length - 1];
      if (close === undefined) {
        return i < text.length ? fail('unexpected text after the JSON value') : { offset: i, problem: 'JSON.parse disagrees' };
      }
      if (text[i] === close) {
        stack.pop();
        i++;
        continue;
      }
      if (text[i] !== ',') return fail(`expected ',' or '${close}'`);
      i++;
      if (close === '}') {
        skipSpace();
        if (text[i] !== '"') return fail('expected a property name in double quotes');
        if (!scanString()) return fail('bad string');
        skipSpace();
        if (text[i] !== ':') return fail("expected ':' after a property name");
        i++;
      }
      break;
    }
  }
}

/** A file that is not there (ENOENT), as opposed to one that is there and damaged. */
export function isMissingFile(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}
