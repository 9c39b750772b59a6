/** What the data-read path needs to know of a remote file. */
export interface RemoteFile {
  readonly id: string;
  readonly size: number;
  /**
   * Identifies one content of the file (see `versionKeyOf`): blocks cached under another key of
   * the same file id are never served, and are dropped when a new key shows up.
   */
  readonly versionKey: string;
}

/** An open file's reads: keeps the file's cached blocks from being evicted until close(). */
export interface ReadSession {
  /** Reads up to `length` bytes at `position` into `into` (from offset 0); fewer only at end of file. */
  read(into: Buffer, length: number, position: number): Promise<number>;
  close(): void;
}
