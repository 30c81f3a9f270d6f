import { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import xzDecompress from 'xz-decompress';
import { createBunzip2 } from './bzip2.js';
import { ArchiveFormatError, type Codec } from './format.js';
import { createZstdDecompress } from './zstd.js';

/** The compressions that wrap a tar stream. */
export type TarCodec = Exclude<Codec, 'zip' | 'tar'>;

/** xz-embedded's result codes (xz.h), as the WASM wrapper reports them in its error message. */
const XZ_ERRORS: Record<string, string> = {
  '2': 'unsupported integrity check',
  '3': 'out of memory',
  '4': 'it needs a dictionary larger than the 64 MiB supported',
  '5': 'not xz data',
  '6': 'unsupported options',
  '7': 'corrupt data',
  '8': 'truncated data',
};

/** xz-decompress's errors ("get_next_output failed with error code 7") as readable format errors. */
function xzError(err: unknown): ArchiveFormatError {
  const message = err instanceof Error ? err.message : String(err);
  const code = /error code (\d+)/.exec(message)?.[1];
  return new ArchiveFormatError(`xz data is invalid (${(code === undefined ? undefined : XZ_ERRORS[code]) ?? message})`, { cause: err });
}

/**
 * Decodes xz through xz-decompress (xz-embedded compiled to WASM, exposed as a web
 * ReadableStream over a web input stream). Duplex.fromWeb joins the two ends, with backpressure,
 * and cancels the decoder when the pipeline is destroyed: that matters, because the package
 * serialises all xz streams on one shared context, and a stream left pending would block every
 * later xz archive in this process. A thin ReadableStream in between translates its errors.
 */
function createUnxz(): Duplex {
  const input = new TransformStream<Uint8Array, Uint8Array>();
  const reader = new xzDecompress.XzReadableStream(input.readable).getReader();
  const output = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const result = await reader.read().catch((err: unknown) => { throw xzError(err); });
      if (result.done) controller.close();
      else controller.enqueue(result.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return Duplex.fromWeb({ readable: output, writable: input.writable });
}

/** A Duplex that removes one compression layer; use inside stream.pipeline. */
export function createDecompressor(codec: TarCodec): Duplex {
  switch (codec) {
    case 'gzip': return zlib.createGunzip();
    case 'bzip2': return createBunzip2();
    case 'xz': return createUnxz();
    case 'zstd': return createZstdDecompress();
  }
}
