// Typed errors for data that is missing or malformed, so callers can tell "fix your input" apart from bugs.

/** Input data is malformed; `source` names the file or input it came from. */
export class DataError extends Error {
  override readonly name: string = 'DataError';

  constructor(
    message: string,
    readonly source?: string,
  ) {
    super(source === undefined ? message : `${source}: ${message}`);
  }
}

/** A data file is not where Tessera looks for it; the message says where that is and how to change it. */
export class DataNotFoundError extends DataError {
  override readonly name: string = 'DataNotFoundError';
}

/** An IDX file (the MNIST family's format) is corrupt or not what the caller expects. */
export class IdxError extends DataError {
  override readonly name: string = 'IdxError';
}
