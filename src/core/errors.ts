// The errors a user can fix, and the exit code each one means. The CLI prints a BdpoError as one line and exits with
// its code; anything else that escapes a command is a defect of the tool, reported with its stack.
export class BdpoError extends Error {
  /** 2: the command line was wrong; 1: an input (file, folder, model, option value of the library) was. */
  readonly exitCode: 1 | 2 = 1;
}

/** A command-line argument or option value that cannot be used (exit 2). */
export class UsageError extends BdpoError {
  override readonly exitCode = 2;
}

/** A file or folder given to a command that cannot be read as what it claims to be (exit 1). */
export class InputError extends BdpoError {}

/** A metric JSON, or a model it names, that breaks the metric contract (exit 1). */
export class MetricSpecError extends BdpoError {}

/** A dataset's manifest.json that cannot be read or belongs to another format (exit 1). */
export class ManifestError extends BdpoError {}

/** The errno code of a failed file operation (ENOENT, EACCES, …), or its message when it has none. */
export function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? String((error as Error).message ?? error);
}
