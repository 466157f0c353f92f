#!/usr/bin/env node
/**
 * The entry point. Its one job before anything is loaded: size libuv's thread pool, which runs image
 * decodes and the SDK's DNS lookups alike. The pool is made at its first use, so this must happen
 * before any module can queue work on it; with more than 4 cores the default 4 threads would let the
 * decodes (one per core) starve the lookups. An explicit UV_THREADPOOL_SIZE wins.
 */
import { availableParallelism } from 'node:os';

process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism() + 2));

const { main } = await import('./commands.ts');
const { describeError } = await import('./job/errors.ts');

process.on('uncaughtException', (e) => {
  process.stderr.write(`enrollment-worker: uncaught exception: ${describeError(e).name}: ${describeError(e).message}\n${e.stack ?? ''}\n`);
  process.exit(1);
});

process.exitCode = await main(process.argv.slice(2), process.env);
