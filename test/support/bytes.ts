// Bytes as jobs carry them and keys name them, written once for every suite.
import { createHash } from 'node:crypto';

/** SHA-256 of `bytes`, lower-case hex (a job's `sha256`, and the key's `ref_<12 hex>`). */
export const sha256Hex = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/** Base64 of bytes or of a string's UTF-8. */
export const base64 = (bytes: Buffer | string): string => Buffer.from(bytes).toString('base64');

/** An inline image as a job carries it. */
export const inlineImage = (bytes: Buffer | string): { data: string } => ({ data: base64(bytes) });
