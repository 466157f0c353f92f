/**
 * libjpeg's warnings about corrupt data, heard even when libvips does not act on them, and told
 * apart from other images' warnings while several images are decoded at once.
 *
 * Why: libvips (8.17) checks libjpeg's warning count before each 8-row strip it decodes, never after
 * the last one (decode.ts). A warning raised while the last strip is decoded is not an error: libvips
 * logs it when the image is closed — "read gave N warnings", then a copy of its error buffer
 * ("VipsJpeg: Corrupt JPEG data: …") — and the decode succeeds. Counting those logged warnings
 * closes the hole, at any decode scale.
 *
 * But sharp (0.34) keeps libvips' logged warnings in one process-wide queue, and the queue is
 * emptied, onto the `'warning'` event, by whichever operation completes next on the main thread —
 * not necessarily the one that logged them. What holds (sharp's pipeline.cc, metadata.cc): a
 * warning is logged inside its operation's work, so it is already queued when that operation's own
 * completion empties the queue, which happens before its promise settles. So the operation that
 * logged a warning is still in flight whenever the warning is heard, by it or by another. Hence:
 *
 * - every sharp operation runs through a ledger (`run`), which knows which are in flight;
 * - a decoder warning, heard by any of them, makes every operation then in flight suspect;
 * - a suspect decode is decoded again alone (`alone`: no other sharp operation runs meanwhile), and
 *   refused only if it warns alone. A good image is never refused for another's warning; corrupt
 *   images are rare, so the usual cost is the bookkeeping.
 *
 * One exception to "heard before its source settles": the second message is a copy of libvips'
 * process-wide error buffer, which any operation may clear meanwhile, and sharp stops emptying the
 * queue at an empty message — what follows it waits for the next completion, possibly after its
 * source has settled. Every empty message follows a "read gave" line, so the ledger counts those
 * (`owed`): while one may be unconsumed, every operation that ends is suspect too, and a turn alone
 * first completes enough empty operations to be sure the queue is empty (each consumes at most one
 * empty message, or finds the queue empty).
 *
 * Needs libvips' operation cache off (`sharp.cache(false)`, as the normaliser sets): a cached load
 * keeps its image open, and its warnings are logged only when the cache lets it go — to anyone.
 */
import sharp from 'sharp';

/** "read gave N warnings": libvips closing a JPEG decode during which libjpeg warned. */
const READ_GAVE = /^read gave \d+ warnings?$/;

/**
 * Is this libvips warning libjpeg's report of corrupt data? The "read gave" line, or the error
 * buffer copied after it ("VipsJpeg: …"). Not: the metadata libvips could not use (an unknown
 * JFIF or EXIF resolution unit, a corrupt ICC profile), a PNG's excess text chunks, or "error in
 * tile" (an operation that failed, and was refused for it).
 */
export function isDecoderWarning(message: string): boolean {
  return READ_GAVE.test(message.trim()) || message.includes('VipsJpeg:');
}

/** Called with each warning an operation receives. */
export type Hear = (message: string) => void;
/** One sharp operation: started when called, its warnings passed to `hear`. */
export type Operation<T> = (hear: Hear) => Promise<T>;

export interface WarningLedger {
  /**
   * Runs `operation` (at once, unless a turn alone is running or waiting) and says whether it is
   * suspect: a decoder warning was heard while it was in flight, or it ended while the queue might
   * hold one back.
   */
  run<T>(operation: Operation<T>): Promise<{ value: T; suspect: boolean }>;
  /**
   * Runs `operation` alone: once every operation in flight has ended, with the queue emptied
   * before and after. `warnings`: the decoder warnings heard meanwhile — its own.
   */
  alone<T>(operation: Operation<T>): Promise<{ value: T; warnings: readonly string[] }>;
  /** Operations that ended suspect, turns alone taken, empty operations run to drain the queue. */
  readonly counts: Readonly<{ suspects: number; turns: number; drains: number }>;
  /** Operations in flight, and those waiting (turns alone, the one running, held operations): all 0 once every call has settled. */
  pending(): { inFlight: number; waiting: number };
}

interface Flight {
  suspect: boolean;
  readonly heard: string[];
}

/** The ledger's state: what is in flight, and who waits for what. */
interface Book {
  readonly inFlight: Set<Flight>;
  readonly counts: { suspects: number; turns: number; drains: number };
  // "read gave" lines heard since the queue was last known empty: each may be followed by an empty
  // message that holds back what is queued after it.
  owed: number;
  /** A turn alone is running. */
  alone: boolean;
  /** Turns alone waiting for the operations in flight to end. */
  readonly turns: (() => void)[];
  /** Operations held while a turn alone runs or waits. */
  held: (() => void)[];
}

/** A decoder warning heard by any operation makes every operation in flight suspect. */
const hearerOf =
  (book: Book): Hear =>
  (message) => {
    if (!isDecoderWarning(message)) return;
    for (const flight of book.inFlight) {
      flight.suspect = true;
      flight.heard.push(message);
    }
    if (READ_GAVE.test(message.trim())) book.owed += 1;
  };

/**
 * Runs `operation` in flight: every decoder warning heard meanwhile is recorded on its flight.
 * `landing` sees the flight as it ends, before it leaves the air.
 */
async function inFlight<T>(book: Book, hear: Hear, operation: Operation<T>, landing?: (flight: Flight) => void): Promise<{ value: T; flight: Flight }> {
  const flight: Flight = { suspect: false, heard: [] };
  book.inFlight.add(flight);
  try {
    return { value: await operation(hear), flight };
  } finally {
    landing?.(flight);
    book.inFlight.delete(flight);
  }
}

/** Something ended: the next turn alone may start, or, with none waiting, the held operations. */
function admitNext(book: Book): void {
  if (book.alone) return;
  const turn = book.turns.shift();
  if (turn) {
    if (book.inFlight.size > 0) book.turns.unshift(turn);
    else {
      book.alone = true;
      turn();
    }
    return;
  }
  const waiting = book.held;
  book.held = [];
  for (const go of waiting) go();
}

/**
 * The bookkeeping, given the empty operation that drains the queue (`drainOperation` with sharp).
 * One per process in the worker (`sharpWarnings`): the queue it keeps track of is process-wide.
 */
export function warningLedger(drain: Operation<unknown>): WarningLedger {
  const book: Book = { inFlight: new Set(), counts: { suspects: 0, turns: 0, drains: 0 }, owed: 0, alone: false, turns: [], held: [] };
  const { counts } = book;
  const hear = hearerOf(book);
  const next = () => admitNext(book);

  const drainQueue = async () => {
    // At most `owed` empty messages are queued; each drain consumes one or finds the queue empty,
    // so one drain more than owed (counting lines heard meanwhile) leaves it empty.
    for (let done = 0; done <= book.owed; done += 1) {
      counts.drains += 1;
      await drain(hear);
    }
    book.owed = 0;
  };

  return {
    counts,
    pending: () => ({ inFlight: book.inFlight.size, waiting: book.turns.length + book.held.length + (book.alone ? 1 : 0) }),
    async run(operation) {
      while (book.alone || book.turns.length > 0) await new Promise<void>((go) => book.held.push(go));
      try {
        const { value, flight } = await inFlight(book, hear, operation, (landing) => {
          // It ended while the queue may hold a warning back behind an empty message.
          if (book.owed > 0) landing.suspect = true;
          if (landing.suspect) counts.suspects += 1;
        });
        return { value, suspect: flight.suspect };
      } finally {
        next();
      }
    },
    async alone(operation) {
      await new Promise<void>((go) => {
        book.turns.push(go);
        next();
      });
      counts.turns += 1;
      try {
        await drainQueue();
        const { value, flight } = await inFlight(book, hear, operation);
        await drainQueue();
        return { value, warnings: flight.heard };
      } finally {
        book.alone = false;
        next();
      }
    },
  };
}

/** A sharp instance whose warnings go to `hear`. */
export type Listen = <I extends sharp.Sharp>(image: I) => I;

const listenWith =
  (hear: Hear): Listen =>
  (image) => {
    image.on('warning', hear);
    return image;
  };

/**
 * A sharp operation, its warnings heard. When it fails because of a warning whose message libvips
 * had not kept, sharp puts the warnings it empties from the queue into the error instead of
 * emitting them: those are heard too (they may be another operation's).
 */
function sharpOperation<T>(start: (listen: Listen) => Promise<T>): Operation<T> {
  return async (hear) => {
    try {
      return await start(listenWith(hear));
    } catch (e: unknown) {
      const lines = e instanceof Error ? e.message.split('\n') : [];
      if (lines[0]?.startsWith('Warning treated as error')) for (const line of lines.slice(1)) hear(line);
      throw e;
    }
  };
}

/** The cheapest operation whose completion empties sharp's queue: a 1×1 image made and handed back. */
const drainOperation: Operation<unknown> = sharpOperation((listen) =>
  listen(sharp({ create: { width: 1, height: 1, channels: 3, background: { r: 0, g: 0, b: 0 } } }))
    .raw()
    .toBuffer(),
);

/** The ledger of every sharp operation the worker runs. */
export const sharpWarnings: WarningLedger = warningLedger(drainOperation);

/** libjpeg warned about the image's data (heard while it was decoded alone). */
export class DecoderWarning extends Error {
  override readonly name = 'DecoderWarning';
}

/**
 * An operation that decodes an image as received, run through `ledger`: its result, unless it is
 * suspect and, run again alone, hears a decoder warning — then DecoderWarning. `operation` must
 * start afresh each time it is called. Its own errors (failOn, memory) are thrown as they are.
 */
export async function heeded<T>(ledger: WarningLedger, operation: Operation<T>): Promise<T> {
  const first = await ledger.run(operation);
  if (!first.suspect) return first.value;
  const again = await ledger.alone(operation);
  if (again.warnings.length === 0) return again.value;
  // libjpeg's own words when libvips kept them ("VipsJpeg: Corrupt JPEG data: …"), else the count.
  const lines = again.warnings.flatMap((w) => w.split('\n')).map((l) => l.trim());
  throw new DecoderWarning(`libjpeg reported corrupt data (${lines.find((l) => l.includes('VipsJpeg:')) ?? lines[0] ?? 'a warning'})`);
}

/** A sharp decode of an image as received (`start` builds the pipeline afresh each time), heeding libjpeg's warnings. */
export function decodeHeedingWarnings<T>(start: (listen: Listen) => Promise<T>, ledger: WarningLedger = sharpWarnings): Promise<T> {
  return heeded(ledger, sharpOperation(start));
}

/** Any other sharp operation (a header read, an encode of decoded pixels): heard and counted in flight. */
export async function heedingWarnings<T>(start: (listen: Listen) => Promise<T>, ledger: WarningLedger = sharpWarnings): Promise<T> {
  return (await ledger.run(sharpOperation(start))).value;
}
