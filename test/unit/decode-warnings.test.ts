// The ledger that tells libjpeg's warnings apart while several decodes run at once
// (src/image/decode-warnings.ts), first against a model of sharp's warning queue — where the test
// decides which completion empties the queue — then against sharp itself.
//
// The model, as sharp 0.34 behaves (src/common.cc, pipeline.cc): one process-wide FIFO queue of
// libvips' logged warnings; an operation logs into it while it runs; when any operation completes,
// it empties the queue onto its own 'warning' event, stopping at the first empty message.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeHeedingWarnings, DecoderWarning, heeded, isDecoderWarning, sharpWarnings, warningLedger, type Hear, type Operation } from '../../src/image/decode-warnings.ts';
import { damagedInLastStrip, randomFrom } from '../support/jpeg-corpus.ts';
import { rejectionOf, settle as tick, sourceFiles } from './helpers.ts';

const READ_GAVE = 'read gave 1 warnings';
const BUFFER = 'VipsJpeg: Corrupt JPEG data: premature end of data segment\n';

function sharpQueue() {
  const queue: string[] = [];
  /** An operation completing: the queue emptied onto `hear`, up to the first empty message. */
  const complete = (hear: Hear) => {
    for (let message = queue.shift(); message !== undefined && message !== ''; message = queue.shift()) hear(message);
  };
  return { queue, complete };
}

/**
 * A decode in the model. Its first run waits for `finish` (the test orders completions); runs after
 * it complete at once. A corrupt image logs libjpeg's two lines each time it is decoded — the second
 * empty when `emptyBuffer` (another operation cleared libvips' error buffer meanwhile).
 */
function modelDecode(model: ReturnType<typeof sharpQueue>, corrupt: boolean, options: { emptyBuffer?: boolean } = {}) {
  let runs = 0;
  let release: () => void = () => undefined;
  const firstRun = new Promise<void>((resolve) => {
    release = resolve;
  });
  const logs = () => (corrupt ? [READ_GAVE, options.emptyBuffer && runs === 1 ? '' : BUFFER] : []);
  const heardFirst: string[] = [];
  const operation: Operation<string> = async (hear) => {
    runs += 1;
    const run = runs;
    // The first run's work is done by the test (`log`), so that it can interleave the logs.
    if (run === 1) await firstRun;
    else model.queue.push(...logs());
    model.complete(run === 1 ? (m) => (heardFirst.push(m), hear(m)) : hear);
    return corrupt ? 'corrupt pixels' : 'pixels';
  };
  return {
    operation,
    /** The first run's work: what it logs. */
    log: () => model.queue.push(...logs()),
    /** The first run's completion. */
    finish: () => release(),
    runs: () => runs,
    heardFirst,
  };
}

const settled = <T>(p: Promise<T>) => p.then((value) => ({ value }), (error: unknown) => ({ error }));

describe('isDecoderWarning: which libvips warnings are libjpeg reporting corrupt data', () => {
  it('counts the "read gave" line and the VipsJpeg buffer, not warnings about metadata or other formats', () => {
    // Act + Assess
    expect([READ_GAVE, 'read gave 12 warnings', BUFFER, 'Warning treated as error\nVipsJpeg: Corrupt JPEG data: bad Huffman code'].every(isDecoderWarning)).toBe(true);
    expect(
      ['unknown JFIF resolution unit', 'unknown EXIF resolution unit', 'corrupt profile', 'Invalid embedded profile', '300 text chunks, only 50 text chunks will be loaded', 'error in tile 0 x 120', 'pngload_buffer: IDAT stream error', ''].some(isDecoderWarning),
    ).toBe(false);
  });
});

describe('isDecoderWarning: the "read gave" line exactly', () => {
  it('takes one warning or many, around whitespace, and no line that only contains it', () => {
    // Act + Assess
    expect(['read gave 1 warning', ' read gave 3 warnings\n'].map(isDecoderWarning)).toEqual([true, true]);
    expect(['xread gave 1 warnings', 'read gave 1 warnings, then more', 'read gave warnings', 'read gave one warning'].map(isDecoderWarning)).toEqual([false, false, false, false]);
  });
});

describe('the ledger, against a model of sharp\u2019s warning queue', () => {
  it('refuses the corrupt one of two concurrent decodes when its warning is delivered to the good one, and accepts the good one', async () => {
    // Prepare
    const model = sharpQueue();
    const ledger = warningLedger(async (hear) => model.complete(hear));
    const good = modelDecode(model, false);
    const corrupt = modelDecode(model, true);
    const goodResult = settled(heeded(ledger, good.operation));
    const corruptResult = settled(heeded(ledger, corrupt.operation));
    await tick();

    // Act: the corrupt decode logs; the good one completes first and receives its warnings
    corrupt.log();
    good.finish();
    await tick();
    corrupt.finish();

    // Assess
    expect(await goodResult).toEqual({ value: 'pixels' });
    const refused = await corruptResult;
    expect('error' in refused && refused.error).toBeInstanceOf(DecoderWarning);
    expect('error' in refused && refused.error instanceof Error && refused.error.message).toContain('premature end of data segment');
    expect([good.runs(), corrupt.runs()]).toEqual([2, 2]); // both suspect, both decoded again alone
    expect(model.queue).toEqual([]);
  });

  it('needs no second decode when no decoder warning is heard, and ignores unrelated warnings', async () => {
    // Prepare
    const model = sharpQueue();
    const ledger = warningLedger(async (hear) => model.complete(hear));
    const a = modelDecode(model, false);
    const b = modelDecode(model, false);
    const results = Promise.all([heeded(ledger, a.operation), heeded(ledger, b.operation)]);
    await tick();

    // Act
    model.queue.push('unknown JFIF resolution unit', 'corrupt profile');
    a.finish();
    b.finish();

    // Assess
    expect(await results).toEqual(['pixels', 'pixels']);
    expect([a.runs(), b.runs(), ledger.counts.suspects, ledger.counts.turns]).toEqual([1, 1, 0, 0]);
  });

  it('still catches a warning held back behind an empty message until after its own decode completed, without refusing a good image for it', async () => {
    // Prepare: R, corrupt, whose second line will be empty (its error buffer was cleared meanwhile),
    // and T, an operation that decodes nothing (a header read, an encode)
    const model = sharpQueue();
    const ledger = warningLedger(async (hear) => model.complete(hear));
    const r = modelDecode(model, true, { emptyBuffer: true });
    const t = modelDecode(model, false);
    const rResult = settled(heeded(ledger, r.operation));
    const tResult = ledger.run(t.operation);
    await tick();

    // Act: R logs its first line; T completes and hears it; then R logs its empty line
    model.queue.push(READ_GAVE);
    t.finish();
    await tick();
    model.queue.push('');
    // S (corrupt) and G (good) start now; S logs behind the empty message and completes first,
    // hearing nothing; G completes with S's warnings
    const s = modelDecode(model, true);
    const g = modelDecode(model, false);
    const sResult = settled(heeded(ledger, s.operation));
    const gResult = settled(heeded(ledger, g.operation));
    await tick();
    s.log();
    s.finish();
    await tick();
    g.finish();
    await tick();
    r.finish();

    // Assess: S heard nothing of its own, yet the two corrupt images are refused, and G is accepted
    const outcomes = await Promise.all([rResult, sResult, gResult]);
    expect(s.heardFirst).toEqual([]);
    expect(g.heardFirst).toEqual([READ_GAVE, BUFFER]);
    expect(outcomes.map((o) => ('error' in o ? (o.error instanceof DecoderWarning ? 'refused' : o.error) : o.value))).toEqual(['refused', 'refused', 'pixels']);
    expect((await tResult).value).toBe('pixels');
    expect(model.queue).toEqual([]);
  });

  it('runs a turn alone only once the operations in flight have ended, and holds new ones until it is over', async () => {
    // Prepare
    const model = sharpQueue();
    const ledger = warningLedger(async (hear) => model.complete(hear));
    const events: string[] = [];
    const inFlight = modelDecode(model, false);
    const first = ledger.run(inFlight.operation).then(() => events.push('in flight ended'));
    await tick();

    // Act
    const turn = ledger.alone(async () => {
      events.push('alone');
      return 'done';
    });
    const later = ledger.run(async () => events.push('later'));
    await tick();
    events.push('finishing');
    inFlight.finish();
    await Promise.all([first, turn, later]);

    // Assess
    expect(events).toEqual(['finishing', 'in flight ended', 'alone', 'later']);
  });

  it('at 16 in flight, in any order of logging and completion, refuses exactly the corrupt decodes and leaves nothing behind', async () => {
    for (let seed = 1; seed <= 400; seed += 1) {
      // Prepare: 16 operations, three corrupt decodes (one whose error buffer is cleared: an empty
      // message), five that decode nothing
      const model = sharpQueue();
      const ledger = warningLedger(async (hear) => model.complete(hear));
      // Seeded: the same interleavings on every run.
      const random = randomFrom(seed);
      const corruptAt = new Map([[7, {}], [10, { emptyBuffer: true }], [13, {}]]);
      const decodes = Array.from({ length: 16 }, (_, i) => modelDecode(model, corruptAt.has(i), corruptAt.get(i)));
      const results: Promise<{ value: string } | { error: unknown }>[] = [];
      // Each decode's steps in order: it starts (new decodes keep starting while others run); a
      // corrupt one logs during its work, before it completes (the one with the cleared buffer logs
      // its two lines apart, so that an empty message may head the queue); it completes. The
      // decodes' steps interleaved at random.
      const started = new Set<number>();
      const start = (i: number) => () => {
        started.add(i);
        const operation = decodes[i]?.operation ?? (() => Promise.reject(new Error('no decode')));
        // the first five are operations that decode nothing (header reads, encodes): no second run
        results.push(settled(i < 5 ? ledger.run(operation).then((r) => r.value) : heeded(ledger, operation)));
      };
      const logApart = [() => model.queue.push(READ_GAVE), () => model.queue.push('')];
      const steps = decodes.map((d, i) => [start(i), ...(i === 10 ? logApart : corruptAt.has(i) ? [d.log] : []), d.finish]);

      // Act
      // (a decode held by the ledger has not begun its work: it can neither log nor complete yet)
      const ready = () => steps.filter((s, i) => s.length > 0 && (!started.has(i) || (decodes[i]?.runs() ?? 0) > 0));
      for (let left = ready(); steps.some((s) => s.length > 0); left = ready()) {
        left[Math.floor(random() * left.length)]?.shift()?.();
        if (left.length === 0 || random() < 0.5) await tick();
      }
      const outcomes = await Promise.all(results);

      // Assess: a corrupt decode's value is 'corrupt pixels', so any accepted one shows
      const verdicts = outcomes.map((o) => ('error' in o ? (o.error instanceof DecoderWarning ? 'refused' : o.error) : o.value)).sort();
      expect({ seed, verdicts }).toEqual({ seed, verdicts: [...Array<string>(13).fill('pixels'), ...Array<string>(3).fill('refused')] });
      expect(model.queue).toEqual([]);
      expect(ledger.pending()).toEqual({ inFlight: 0, waiting: 0 });
    }
  });

  it('keeps working after an operation fails', async () => {
    // Prepare
    const ledger = warningLedger(async () => undefined);

    // Act
    const failed = settled(ledger.run(() => Promise.reject(new Error('Input buffer contains unsupported image format'))));
    const turn = await ledger.alone(async () => 'alone');
    const next = await ledger.run(async () => 'next');

    // Assess
    expect(await failed).toMatchObject({ error: { message: 'Input buffer contains unsupported image format' } });
    expect([turn.value, next.value, next.suspect]).toEqual(['alone', 'next', false]);
  });
});

/** A promise the test resolves. */
function gate<T>(value: T) {
  let open: () => void = () => undefined;
  const promise = new Promise<T>((resolve) => {
    open = () => resolve(value);
  });
  return { promise, open };
}

describe('the ledger\u2019s own words and counts', () => {
  it('refuses with libjpeg\u2019s own line when libvips kept it, else the count line, after one turn alone with a drain more than owed on each side', async () => {
    // Prepare: decodes that warn every time they run (heard by themselves)
    const ledger = warningLedger(async () => undefined);
    const countOnly: Operation<string> = async (hear) => {
      hear('read gave 2 warnings');
      return 'pixels';
    };
    const withBuffer: Operation<string> = async (hear) => {
      hear('read gave 1 warnings');
      hear('VipsJpeg: Corrupt JPEG data: bad Huffman code\n');
      return 'pixels';
    };

    // Act
    const first = await rejectionOf(() => heeded(ledger, countOnly));
    const counts = { ...ledger.counts };
    const second = await rejectionOf(() => heeded(ledger, withBuffer));

    // Assess: before the turn alone one "read gave" line is owed (two drains), and again after it (two more)
    expect(first).toBeInstanceOf(DecoderWarning);
    expect(first).toMatchObject({ name: 'DecoderWarning', message: 'libjpeg reported corrupt data (read gave 2 warnings)' });
    expect(second).toMatchObject({ message: 'libjpeg reported corrupt data (VipsJpeg: Corrupt JPEG data: bad Huffman code)' });
    expect(counts).toEqual({ suspects: 1, turns: 1, drains: 4 });
    expect(ledger.pending()).toEqual({ inFlight: 0, waiting: 0 });
  });

  it('counts what waits: a turn alone waiting and an operation held, then the turn running', async () => {
    // Prepare
    const ledger = warningLedger(async () => undefined);
    const inFlight = gate('in flight');
    const turnWork = gate('alone');
    const first = ledger.run(() => inFlight.promise);
    await tick();

    // Act
    const turn = ledger.alone(() => turnWork.promise);
    const held = ledger.run(async () => 'held');
    await tick();
    const waiting = ledger.pending();
    inFlight.open();
    for (let i = 0; i < 5; i += 1) await tick();
    const running = ledger.pending();
    turnWork.open();
    await Promise.all([first, turn, held]);

    // Assess
    expect(waiting).toEqual({ inFlight: 1, waiting: 2 });
    expect(running).toEqual({ inFlight: 1, waiting: 2 });
    expect(ledger.pending()).toEqual({ inFlight: 0, waiting: 0 });
    expect((await held).value).toBe('held');
  });

  it('hears the warnings sharp puts into an error it throws for a warning, and only those', async () => {
    // Prepare: an operation in flight while another fails
    const ledger = warningLedger(async () => undefined);
    const failing = (message: string) => rejectionOf(() => decodeHeedingWarnings(() => Promise.reject(new Error(message)), ledger));
    const run = async (message: string) => {
      const other = gate('other');
      const inFlight = ledger.run(() => other.promise);
      await tick();
      const error = await failing(message);
      other.open();
      return { error, suspect: (await inFlight).suspect };
    };

    // Act
    const notAWarning = await run('Input file has corrupt header\nread gave 1 warnings');
    const warning = await run('Warning treated as error\nVipsJpeg: Corrupt JPEG data: premature end of data segment');

    // Assess
    expect(notAWarning).toMatchObject({ error: { message: 'Input file has corrupt header\nread gave 1 warnings' }, suspect: false });
    expect(warning).toMatchObject({ error: { message: 'Warning treated as error\nVipsJpeg: Corrupt JPEG data: premature end of data segment' }, suspect: true });
  });
});

describe('decodeHeedingWarnings, with sharp', () => {
  it('hears the warning a decode delivers to another, concurrent one: the corrupt image is refused, the good one not', async () => {
    // Prepare: a grey baseline JPEG damaged in its last strip — libvips decodes it and only logs
    // libjpeg's warning — and a good image
    sharp.cache(false);
    sharp.concurrency(1);
    const good = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#6a4b3c' } }).jpeg().toBuffer();
    const damaged = await damagedInLastStrip({ coding: 'baseline', width: 320, height: 240, chroma: 'grey', seed: 11, quality: 85 });
    const firstRunHeard = { good: [] as string[] };
    let goodRuns = 0;
    const block = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

    // Act: the good decode finishes while the main thread is blocked; the damaged one starts and
    // finishes too; when the main thread is free, the good one completes first and empties the
    // queue, the damaged one's warning with it
    const goodResult = settled(
      decodeHeedingWarnings((listen) => {
        goodRuns += 1;
        const image = listen(sharp(good, { failOn: 'warning' }));
        if (goodRuns === 1) image.on('warning', (m: string) => firstRunHeard.good.push(m));
        return image.raw().toBuffer();
      }),
    );
    block(300);
    const damagedResult = settled(decodeHeedingWarnings((listen) => listen(sharp(damaged, { failOn: 'warning' })).raw().toBuffer()));
    block(1500);

    // Assess
    const [g, d] = await Promise.all([goodResult, damagedResult]);
    expect(firstRunHeard.good.some(isDecoderWarning)).toBe(true); // the warning went to the wrong decode
    expect('value' in g).toBe(true);
    expect('error' in d && d.error).toBeInstanceOf(DecoderWarning);
    expect(goodRuns).toBe(2);
  });

  it('with 16 decodes in flight, two of them damaged in their last strip, refuses those two and accepts the rest, leaving the ledger empty', async () => {
    // Prepare
    sharp.cache(false);
    sharp.concurrency(1);
    const good = await sharp({ create: { width: 320, height: 240, channels: 3, background: '#6a4b3c' } }).jpeg().toBuffer();
    const damaged = [
      await damagedInLastStrip({ coding: 'baseline', width: 320, height: 240, chroma: 'grey', seed: 11, quality: 85 }),
      await damagedInLastStrip({ coding: 'baseline', width: 320, height: 240, chroma: '4:4:4', seed: 12, quality: 85 }),
    ];
    const images = Array.from({ length: 16 }, (_, i) => (i === 5 ? damaged[0] : i === 10 ? damaged[1] : good) ?? good);

    // Act
    const outcomes = await Promise.all(images.map((image) => settled(decodeHeedingWarnings((listen) => listen(sharp(image, { failOn: 'warning' })).raw().toBuffer()))));

    // Assess
    const verdicts = outcomes.map((o) => ('error' in o ? (o.error instanceof DecoderWarning ? 'refused' : o.error) : 'stored'));
    expect(verdicts).toEqual(images.map((_, i) => (i === 5 || i === 10 ? 'refused' : 'stored')));
    expect(sharpWarnings.pending()).toEqual({ inFlight: 0, waiting: 0 });
  });
});

describe('the warning ledger sees every sharp operation in src', () => {
  it('builds every sharp instance through listen(), outside decode-warnings.ts itself', () => {
    // Prepare: an operation outside the ledger would empty the queue without anyone hearing it
    const root = fileURLToPath(new URL('../../src', import.meta.url));
    const files = sourceFiles(root).filter((f) => !f.endsWith('decode-warnings.ts'));

    // Act
    const unheard = files.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .filter((line) => /\bsharp\(/.test(line.replace(/listen\(sharp\(/g, '')))
        .map((line) => `${relative(root, f)}: ${line.trim()}`),
    );
    const heard = files.filter((f) => readFileSync(f, 'utf8').includes('listen(sharp('));

    // Assess
    expect(unheard).toEqual([]);
    expect(heard.length).toBeGreaterThanOrEqual(3); // decode.ts, normalise.ts, face/detector.ts
  });
});
