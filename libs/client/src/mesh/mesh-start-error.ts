/** Where a failed process's output is, for the error message. */
export interface MeshStartErrorOptions {
  /** The process that failed ("decision", "agent-2"). */
  processName?: string;
  /** Its log file. */
  logPath?: string;
  /** The last lines it wrote. */
  logTail?: readonly string[];
}

/** The mesh could not be started: a service is not built, or a process did not become ready. */
export class MeshStartError extends Error {
  readonly processName: string | undefined;
  readonly logPath: string | undefined;
  readonly logTail: readonly string[];

  constructor(reason: string, options: MeshStartErrorOptions = {}) {
    const tail = options.logTail ?? [];
    const lines = tail.length === 0 ? '  (no output)' : tail.map((line) => `  ${line}`).join('\n');
    super(options.logPath === undefined ? reason : `${reason}; last lines of ${options.logPath}:\n${lines}`);
    this.name = 'MeshStartError';
    this.processName = options.processName;
    this.logPath = options.logPath;
    this.logTail = tail;
  }
}
