/**
 * Safe unpacking of a downloaded archive (zip, tar, tar.gz, tar.bz2, tar.xz, tar.zst) into a
 * directory: streamed, bounded by ArchiveLimits, refusing any entry that could land outside.
 */
export { extractArchive, type ExtractResult } from './extract.js';
export { archiveFormatFromName, sniffArchiveFormat, type ArchiveFormat } from './format.js';
export type { ArchiveLimits } from './limits.js';
