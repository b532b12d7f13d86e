/** A mistake in how the command was called: printed as one line (plus a hint), exit code 2. */
export class UsageError extends Error {
  constructor(message: string, readonly help?: string) {
    super(message);
  }
}
