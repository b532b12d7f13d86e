/** A failure already reported on stderr (the launcher's line about a worker): exit with `exitCode`, print nothing more. */
export class ReportedFailure extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/** A mistake in how the command was called: printed as one line (plus a hint), exit code 2. */
export class UsageError extends Error {
  constructor(message: string, readonly help?: string) {
    super(message);
  }
}
