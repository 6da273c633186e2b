// Which process wrote something: a pid names a process only together with its start time, since pids are reused.
import { readFileSync } from 'node:fs';

/**
 * A process's start time, which together with its pid names one process for the life of the machine.
 * Null when the process does not exist or the system has no /proc.
 */
export function processStartTime(pid: number): string | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22; the command name (field 2) is in parentheses and may hold spaces, so count after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Whether the process that wrote `pid` (and `start`, when it recorded one) on this host still runs. A live pid
 * whose start time differs is another process that was given the same pid.
 */
export function writerAlive(pid: number, start: string | null): boolean {
  if (!pidAlive(pid)) return false;
  if (start === null) return true;
  const now = processStartTime(pid);
  return now === null || now === start;
}
