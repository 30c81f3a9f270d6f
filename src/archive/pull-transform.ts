import { Duplex } from 'node:stream';

/** A synchronous, incremental decoder: each call yields output pieces as it produces them. */
export interface IncrementalDecoder {
  write(chunk: Buffer): Iterator<Buffer>;
  end(): Iterator<Buffer>;
}

/**
 * Runs an IncrementalDecoder as a Duplex that produces output only while the reader wants it.
 *
 * Why not Transform: a Transform must push all output of a chunk before taking the next one, and
 * one compressed chunk can expand to gigabytes. Why not Duplex.from(async generator): when a
 * pipeline is destroyed while the generator awaits input, Node waits for the generator to return,
 * which it never does; the pipeline hangs. Here the decoder is a plain iterator: output is pulled
 * piece by piece in _read, the write callback is held until the chunk is fully decoded (so input
 * waits too), and destroying just drops the iterator.
 */
export class PullTransform extends Duplex {
  private current: { output: Iterator<Buffer>; done: (err?: Error | null) => void } | undefined;
  private pumping = false;
  private decoder: IncrementalDecoder | undefined;

  /** `create` may be async (e.g. to load WASM); it runs once, before the first chunk. */
  constructor(private readonly create: () => IncrementalDecoder | Promise<IncrementalDecoder>) {
    super({ readableHighWaterMark: 256 * 1024 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.withDecoder(callback, (decoder) => decoder.write(chunk), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.withDecoder(callback, (decoder) => decoder.end(), (err) => {
      if (err === undefined || err === null) this.push(null);
      callback(err);
    });
  }

  override _read(): void {
    this.pump();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.current = undefined;
    callback(err);
  }

  private withDecoder(fail: (err: Error) => void, start: (decoder: IncrementalDecoder) => Iterator<Buffer>, done: (err?: Error | null) => void): void {
    const begin = (decoder: IncrementalDecoder) => {
      let output: Iterator<Buffer>;
      try {
        output = start(decoder);
      } catch (err) {
        fail(err as Error);
        return;
      }
      this.current = { output, done };
      this.pump();
    };
    if (this.decoder !== undefined) {
      begin(this.decoder);
      return;
    }
    Promise.resolve()
      .then(() => this.create())
      .then((decoder) => {
        this.decoder = decoder;
        if (!this.destroyed) begin(decoder);
      }, (err: unknown) => { fail(err as Error); });
  }

  /**
   * Moves output to the readable side until it is full or there is no input left to decode.
   * Calling `done` may synchronously start the next write or _final (which install a new
   * `current` while this loop holds the `pumping` guard), so the loop goes on after it.
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.current !== undefined && !this.destroyed) {
        const current = this.current;
        let step: IteratorResult<Buffer>;
        try {
          step = current.output.next();
        } catch (err) {
          this.current = undefined;
          current.done(err as Error);
          continue;
        }
        if (step.done === true) {
          this.current = undefined;
          current.done();
          continue;
        }
        if (!this.push(step.value)) break;
      }
    } finally {
      this.pumping = false;
    }
  }
}
