// The bookkeeping every fault scenario shares: a known set of jobs (good ones and one bad one per
// permanent error code), sent with an attribute that names each send, and the final account —
// the bucket, the queues and the outcomes — that every scenario ends with.
import { createHmac } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { jpegImage } from '../support/images.ts';
import { issuedNow, queueDepth, queueHolds, sendJob } from '../support/jobs.ts';
import type { Outcome } from '../../src/job/contract.ts';
import { drainQueue, listKeys, type Stack } from '../support/resources.ts';
import { until } from '../support/wait.ts';
import type { LogLine, WorkerProcess } from '../support/worker-process.ts';
import { FACE_CODES } from '../../src/face/verdict.ts';
import { JOB_ERROR_CODES } from '../../src/job/errors.ts';
import { inlineImage as inline, sha256Hex as sha256 } from '../support/bytes.ts';

/** The key jobs are signed with: the suite runs signed, as production should. */
const SIGNING_KEY = 'fault-suite-signing-key-0123456789abcdef';

/**
 * Settings every fault scenario's worker gets on top of stackEnv: a signing key, and an image byte
 * limit small enough for an inline IMAGE_TOO_LARGE.
 */
export const FAULT_ENV = { MAX_IMAGE_BYTES: String(64 * 1024), JOB_SIGNING_KEY: SIGNING_KEY } as const;

/** The `Signature` attribute of the contract: `v1=` + hex HMAC-SHA256 of the exact body. */
const signatureOf = (body: string): string => `v1=${createHmac('sha256', SIGNING_KEY).update(body, 'utf8').digest('hex')}`;

// Every permanent code of the contract: a code added to the worker is a bad job the suite must make —
// but the face check's, which need FACE_CHECK=one (its own end-to-end suite, face-check.test.ts).
type FaceCode = (typeof FACE_CODES)[number];
export const BAD_CODES = JOB_ERROR_CODES.filter((c): c is Exclude<(typeof JOB_ERROR_CODES)[number], FaceCode> => !(FACE_CODES as readonly string[]).includes(c));
export type BadCode = (typeof BAD_CODES)[number];

/** Names one send, so its dead-letter entry (which keeps the original attributes) can be traced. */
const SEND_ATTRIBUTE = 'faultSend';

export interface GoodCase {
  readonly kind: 'good';
  readonly id: string;
  readonly jobId: string;
  readonly userId: string;
  readonly body: string;
  /** The references this job must report (one per distinct photo). */
  readonly keys: readonly string[];
}

export interface BadCase {
  readonly kind: 'bad';
  readonly id: string;
  readonly code: BadCode;
  readonly body: string;
}

export type Case = GoodCase | BadCase;

export interface Send {
  readonly sendId: string;
  readonly caseId: string;
  readonly messageId: string;
}

export interface Ledger {
  readonly stack: Stack;
  readonly name: string;
  readonly cases: readonly Case[];
  readonly stagedKeys: readonly string[];
  readonly sends: Send[];
  /** Every outcome read from the result queue so far, in the order read. */
  readonly outcomes: Outcome[];
}

const refKey = (userId: string, photo: Buffer): string => `users/${userId}/ref_${sha256(photo).slice(0, 12)}.jpg`;

/**
 * Builds `good` + `bad` jobs. Good jobs spread over a few users, carry one or two new photos, and
 * every fourth repeats a photo of an earlier job of the same user (the same key: one object); every
 * fifth has one staged photo. Bad jobs cycle through the permanent error codes (all twelve with
 * `bad` ≥ 12). Every job is signed (FAULT_ENV sets the key), the INVALID_SIGNATURE ones wrongly.
 */
export async function createLedger(stack: Stack, name: string, counts: { good: number; bad: number }): Promise<Ledger> {
  if (stack.stagingBucket === undefined) throw new Error('fault scenarios need a staging bucket');
  const stagingBucket = stack.stagingBucket;
  const cases: Case[] = [];
  const stagedKeys: string[] = [];
  const users = Array.from({ length: Math.max(1, Math.ceil(counts.good / 6)) }, (_, i) => `${name}-u${i}@example.com`);
  const photosOf = new Map<string, Buffer[]>();

  for (let i = 0; i < counts.good; i += 1) {
    const id = `good-${i}`;
    const jobId = `${name}-${id}`;
    const userId = users[i % users.length] ?? 'nobody';
    const earlier = photosOf.get(userId) ?? [];
    const fresh = await Promise.all(Array.from({ length: 1 + (i % 2) }, () => jpegImage({ width: 96, height: 72 })));
    const photos = [...fresh];
    const repeated = i % 4 === 3 ? earlier[0] : undefined;
    if (repeated) photos.push(repeated);
    photosOf.set(userId, [...earlier, ...fresh]);

    const images: unknown[] = photos.map(inline);
    if (i % 5 === 4) {
      const staged = await jpegImage({ width: 96, height: 72 });
      const key = `uploads/${jobId}/1.jpg`;
      await stack.s3.send(new PutObjectCommand({ Bucket: stagingBucket, Key: key, Body: staged }));
      stagedKeys.push(key);
      photos.push(staged);
      images.push({ s3: { bucket: stagingBucket, key, sha256: sha256(staged) } });
    }
    const keys = [...new Set(photos.map((p) => refKey(userId, p)))];
    cases.push({ kind: 'good', id, jobId, userId, keys, body: JSON.stringify({ version: 1, jobId, userId, issuedAt: issuedNow(), images }) });
  }

  const photo = await jpegImage({ width: 96, height: 72 });
  let large: Buffer | undefined;
  for (let i = 0; i < counts.bad; i += 1) {
    const id = `bad-${i}`;
    const code = BAD_CODES[i % BAD_CODES.length] ?? 'INVALID_MESSAGE';
    const jobId = `${name}-${id}`;
    const userId = `${name}-bad@example.com`;
    const job = (images: unknown[], extra: Record<string, unknown> = {}) =>
      JSON.stringify({ version: 1, jobId, userId, issuedAt: issuedNow(), images, ...extra });
    let body: string;
    switch (code) {
      case 'INVALID_SIGNATURE':
        // A good job in every other way; sendCases signs it with another key.
        body = job([inline(await jpegImage({ width: 96, height: 72 }))]);
        break;
      case 'INVALID_MESSAGE':
        body = `this is not JSON (${jobId})`;
        break;
      case 'UNSUPPORTED_VERSION':
        body = job([inline(photo)], { version: 2 });
        break;
      case 'INVALID_USER_ID':
        body = job([inline(photo)], { userId: `../${name}` });
        break;
      case 'TOO_MANY_IMAGES':
        body = job(Array.from({ length: 11 }, () => inline(photo)));
        break;
      case 'INVALID_IMAGE':
        body = job([inline(Buffer.from(`not an image (${jobId})`))]);
        break;
      case 'IMAGE_TOO_LARGE':
        // Noise hardly compresses: 400×300 is ~85 KB, over FAULT_ENV's 64 KiB.
        large ??= await jpegImage({ width: 400, height: 300 });
        body = job([inline(large)]);
        break;
      case 'IMAGE_TOO_SMALL':
        // Under the worker's default MIN_IMAGE_DIMENSION (64).
        body = job([inline(await jpegImage({ width: 40, height: 30 }))]);
        break;
      case 'SOURCE_NOT_ALLOWED':
        body = job([{ s3: { bucket: stack.bucket, key: `users/${userId}/ref_000000000000.jpg`, sha256: sha256(photo) } }]);
        break;
      case 'SOURCE_NOT_FOUND':
        body = job([{ s3: { bucket: stagingBucket, key: `uploads/${jobId}/missing.jpg`, sha256: sha256(photo) } }]);
        break;
      case 'SOURCE_MISMATCH': {
        // The object at the key is not the one the (signed) job names: swapped after signing.
        const key = `uploads/${jobId}/swapped.jpg`;
        await stack.s3.send(new PutObjectCommand({ Bucket: stagingBucket, Key: key, Body: await jpegImage({ width: 96, height: 72 }) }));
        stagedKeys.push(key);
        body = job([{ s3: { bucket: stagingBucket, key, sha256: sha256(photo) } }]);
        break;
      }
      case 'JOB_EXPIRED':
        // Issued 15 days ago: past the default SIGNED_JOB_MAX_AGE_SECONDS (14 days).
        body = job([inline(photo)], { issuedAt: issuedNow() - 15 * 86_400 });
        break;
    }
    cases.push({ kind: 'bad', id, code, body });
  }
  if (large !== undefined && large.length <= Number(FAULT_ENV.MAX_IMAGE_BYTES)) throw new Error('the IMAGE_TOO_LARGE photo is not too large');

  return { stack, name, cases, stagedKeys, sends: [], outcomes: [] };
}

/** The cases in a fixed shuffled order (bad ones spread among the good), so every run is alike. */
export function mixed(ledger: Ledger): Case[] {
  const good = ledger.cases.filter((c) => c.kind === 'good');
  const bad = ledger.cases.filter((c) => c.kind === 'bad');
  const out: Case[] = [];
  const every = Math.max(1, Math.floor(good.length / Math.max(1, bad.length)));
  for (let i = 0; i < good.length; i += 1) {
    const g = good[i];
    if (g) out.push(g);
    if ((i + 1) % every === 0) {
      const b = bad.shift();
      if (b) out.push(b);
    }
  }
  return [...out, ...bad];
}

/** Sends each case `copies` times (copies back to back), recording every send. */
export async function sendCases(ledger: Ledger, cases: readonly Case[], copies = 1): Promise<Send[]> {
  const sent: Send[] = [];
  for (const c of cases) {
    for (let copy = 0; copy < copies; copy += 1) {
      const sendId = `${c.id}#${ledger.sends.length}`;
      const signature = c.kind === 'bad' && c.code === 'INVALID_SIGNATURE' ? signatureOf(`${c.body} `) : signatureOf(c.body);
      const messageId = await sendJob(ledger.stack, c.body, {
        [SEND_ATTRIBUTE]: { DataType: 'String', StringValue: sendId },
        Signature: { DataType: 'String', StringValue: signature },
      });
      const send = { sendId, caseId: c.id, messageId };
      ledger.sends.push(send);
      sent.push(send);
    }
  }
  return sent;
}

/** Reads outcomes (deleting them) until the result queue comes back empty once. */
async function readOutcomes(ledger: Ledger): Promise<number> {
  const url = ledger.stack.resultQueueUrl;
  if (url === undefined) throw new Error('fault scenarios need a result queue');
  const messages = await drainQueue(ledger.stack.sqs, url, { timeoutMs: 3_000 });
  for (const m of messages) ledger.outcomes.push(JSON.parse(m.Body ?? 'null') as Outcome);
  return messages.length;
}

/** Job lines (the last line of each processing: succeeded, failed, retry) of these workers. */
export function jobLines(workers: readonly WorkerProcess[]): LogLine[] {
  return workers.flatMap((w) => w.logs.filter((l) => l.outcome === 'succeeded' || l.outcome === 'failed' || l.outcome === 'retry'));
}

/**
 * Waits until these workers have finished (succeeded or failed) `count` jobs between them; fails if
 * one of `alive` (default: all of them) exits first.
 */
export async function untilFinished(ws: readonly WorkerProcess[], count: number, alive: readonly WorkerProcess[] = ws, timeoutMs = 60_000): Promise<void> {
  await until(
    `${count} jobs to finish`,
    () => {
      const gone = alive.find((w) => w.child.exitCode !== null || w.child.signalCode !== null);
      if (gone) throw new Error(`a worker exited by itself: ${JSON.stringify(gone.logs.slice(-5))} ${gone.text.slice(-5).join(' | ')}`);
      return jobLines(ws).filter((l) => l.outcome !== 'retry').length >= count;
    },
    timeoutMs,
    { everyMs: 10 },
  );
}

/**
 * Waits, with workers still running, until every send has at least one outcome and the jobs queue
 * holds nothing, visible or in flight (messages a dead or frozen receiver held come back after
 * their visibility timeout and are processed by the workers still running).
 */
export async function settle(ledger: Ledger, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const missing = () => {
    const seen = new Set(ledger.outcomes.map((o) => o.messageId));
    return ledger.sends.filter((s) => !seen.has(s.messageId));
  };
  await until(
    'an outcome for every send',
    async () => {
      if (missing().length > 0) await readOutcomes(ledger);
      return missing().length === 0;
    },
    timeoutMs,
    { everyMs: 250, detail: () => `none for ${missing().length} sends: ${missing().map((s) => s.sendId).join(', ')}` },
  );
  await queueHolds(ledger.stack, ledger.stack.jobsQueueUrl, { visible: 0, inFlight: 0 }, Math.max(0, deadline - Date.now()));
}

export interface AccountOptions {
  /** Every worker that ran in the scenario (for its log lines). */
  readonly workers: readonly WorkerProcess[];
  /**
   * Whether a receiver could have died or lost its connection between dead-lettering a message and
   * deleting it (SIGKILL, a frozen emulator). Then a message that was received again may have
   * more than one dead-letter entry: the dead-letter queue is at-least-once, like every queue.
   */
  readonly atLeastOnceWindow: boolean;
  /**
   * True when the endpoint stopped answering mid-call (a frozen emulator): a send cut off by the
   * SQS request timeout is retried by the SDK, and the first attempt may still land once the
   * endpoint wakes — SQS standard queues have no idempotent send — so a dead-letter entry may be
   * doubled without the message being received again. Still one receive, one failed line.
   */
  readonly sendsCutOff?: boolean;
  /**
   * True when nothing was interrupted, so every stored object was created by exactly one logged
   * job line. Otherwise an object may have been created by a worker that died before logging, or
   * by a write whose answer was lost (its SDK retry then saw 412): created ≤ objects.
   */
  readonly createdExactly: boolean;
}

export interface Account {
  /** Problems found; the scenario asserts this is empty. */
  readonly problems: string[];
  /** What at-least-once delivery produced and the contract allows (duplicate outcomes, dead letters), with evidence. */
  readonly notes: string[];
  readonly figures: Record<string, number | string>;
}

const groupCount = <T>(items: readonly T[], key: (t: T) => string): Map<string, number> => {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
};

/**
 * The final account, once the workers have stopped: the reference bucket holds exactly one object
 * per distinct photo of the good jobs and nothing else; the staging bucket only what was staged;
 * every send of a bad job has one dead-letter entry with its ErrorCode and the body unchanged, and
 * no good one has any; the jobs queue is empty; every send has at least one outcome and all of them
 * (duplicates included) are right.
 */
export async function account(ledger: Ledger, options: AccountOptions): Promise<Account> {
  const { stack } = ledger;
  const problems: string[] = [];
  const notes: string[] = [];
  while ((await readOutcomes(ledger)) > 0);

  const caseById = new Map(ledger.cases.map((c) => [c.id, c]));
  const sendByMessage = new Map(ledger.sends.map((s) => [s.messageId, s]));
  const lines = jobLines(options.workers);

  // The reference bucket: one object per distinct photo, nothing else.
  const expectedKeys = [...new Set(ledger.sends.flatMap((s) => { const c = caseById.get(s.caseId); return c?.kind === 'good' ? c.keys : []; }))].sort();
  const keys = (await listKeys(stack.s3, stack.bucket)).sort();
  const keySet = new Set(keys);
  const missingKeys = expectedKeys.filter((k) => !keySet.has(k));
  const extraKeys = keys.filter((k) => !expectedKeys.includes(k));
  if (missingKeys.length > 0) problems.push(`missing references: ${missingKeys.join(', ')}`);
  if (extraKeys.length > 0) problems.push(`unexpected objects in the reference bucket: ${extraKeys.join(', ')}`);
  if (stack.stagingBucket !== undefined) {
    const staged = (await listKeys(stack.s3, stack.stagingBucket)).sort();
    if (JSON.stringify(staged) !== JSON.stringify([...ledger.stagedKeys].sort())) problems.push(`the staging bucket changed: ${staged.join(', ')}`);
  }
  // Conditional writes: no object is ever created twice.
  const created = lines.filter((l) => l.outcome === 'succeeded').reduce((n, l) => n + Number(l.created ?? 0), 0);
  const referencesReported = lines.filter((l) => l.outcome === 'succeeded').reduce((n, l) => n + Number(l.references ?? 0), 0);
  if (created > expectedKeys.length) problems.push(`${created} objects reported created, for ${expectedKeys.length} distinct photos`);
  if (options.createdExactly && created !== expectedKeys.length) problems.push(`${created} objects reported created, expected exactly ${expectedKeys.length}`);

  // The jobs queue: nothing left, visible or in flight.
  const depth = await queueDepth(stack, stack.jobsQueueUrl);
  if (depth.visible !== 0 || depth.inFlight !== 0) problems.push(`the jobs queue still holds ${JSON.stringify(depth)}`);

  // The dead-letter queue: one entry per send of a bad job, with its code and its body unchanged.
  const dead = stack.deadLetterQueueUrl === undefined ? [] : await drainQueue(stack.sqs, stack.deadLetterQueueUrl, { timeoutMs: 5_000 });
  const deadBySend = new Map<string, number>();
  for (const entry of dead) {
    const sendId = entry.MessageAttributes?.[SEND_ATTRIBUTE]?.StringValue ?? '';
    const send = ledger.sends.find((s) => s.sendId === sendId);
    const c = send === undefined ? undefined : caseById.get(send.caseId);
    deadBySend.set(sendId, (deadBySend.get(sendId) ?? 0) + 1);
    if (c === undefined) {
      problems.push(`a dead-letter entry of no known send (${sendId || 'no attribute'}): ${(entry.Body ?? '').slice(0, 80)}`);
      continue;
    }
    if (c.kind === 'good') {
      problems.push(`good job ${c.id} (${sendId}) was dead-lettered with ${entry.MessageAttributes?.ErrorCode?.StringValue ?? 'no ErrorCode (redriven by the queue?)'}`);
      continue;
    }
    const code = entry.MessageAttributes?.ErrorCode?.StringValue;
    if (code !== c.code) problems.push(`${sendId}: dead-lettered with ErrorCode ${String(code)}, expected ${c.code}`);
    if (entry.Body !== c.body) problems.push(`${sendId}: the dead-letter body differs from the job's`);
  }
  let deadDuplicates = 0;
  for (const send of ledger.sends) {
    const c = caseById.get(send.caseId);
    if (c?.kind !== 'bad') continue;
    const n = deadBySend.get(send.sendId) ?? 0;
    if (n === 0) problems.push(`${send.sendId} (${c.code}) was never dead-lettered`);
    if (n <= 1) continue;
    deadDuplicates += n - 1;
    const seen = lines.filter((l) => l.messageId === send.messageId).map((l) => `${String(l.outcome)}@receive${String(l.receiveCount)}`);
    const redelivered = lines.some((l) => l.messageId === send.messageId && Number(l.receiveCount) >= 2);
    const what = `${send.sendId} (${c.code}, message ${send.messageId}) dead-lettered ${n} times; its job lines: ${seen.join(', ') || 'none'}`;
    const failedOnce = seen.length === 1 && seen[0]?.startsWith('failed@');
    if (options.atLeastOnceWindow && redelivered) notes.push(`${what} — received again after its first receiver died before deleting it`);
    else if (options.sendsCutOff && failedOnce) notes.push(`${what} — one failed job line: a dead-letter send cut off by its timeout and retried, landing twice`);
    else problems.push(what);
  }

  // Outcomes: at least one per send; every one of them right, duplicates allowed.
  const outcomesBySend = groupCount(ledger.outcomes, (o) => sendByMessage.get(o.messageId)?.sendId ?? `?${o.messageId}`);
  for (const outcome of ledger.outcomes) {
    const send = sendByMessage.get(outcome.messageId);
    const c = send === undefined ? undefined : caseById.get(send.caseId);
    if (send === undefined || c === undefined) {
      problems.push(`an outcome for a message that was not sent: ${JSON.stringify(outcome).slice(0, 200)}`);
      continue;
    }
    if (c.kind === 'good') {
      const got = (outcome.references ?? []).map((r) => r.key).sort();
      if (outcome.status !== 'succeeded' || outcome.jobId !== c.jobId || outcome.userId !== c.userId || JSON.stringify(got) !== JSON.stringify([...c.keys].sort())) {
        problems.push(`${send.sendId}: wrong outcome ${JSON.stringify({ ...outcome, references: got })}`);
      }
    } else if (outcome.status !== 'failed' || outcome.error?.code !== c.code) {
      problems.push(`${send.sendId}: outcome ${outcome.status}/${outcome.status === 'failed' ? outcome.error.code : '-'}, expected failed/${c.code}`);
    }
  }
  for (const send of ledger.sends) {
    const n = outcomesBySend.get(send.sendId) ?? 0;
    if (n === 0) problems.push(`${send.sendId}: no outcome`);
    if (n > 1) {
      const seen = lines.filter((l) => l.messageId === send.messageId).map((l) => `${String(l.outcome)}@receive${String(l.receiveCount)}`);
      notes.push(`${send.sendId} (message ${send.messageId}) has ${n} outcomes; its job lines: ${seen.join(', ') || 'none'}`);
    }
  }
  // The final outcome of each send (the last one read) is the one a producer keeps.
  const finals = new Map<string, Outcome>();
  for (const o of ledger.outcomes) finals.set(o.messageId, o);
  const finalsRight = ledger.sends.filter((s) => {
    const o = finals.get(s.messageId);
    const c = caseById.get(s.caseId);
    return o !== undefined && c !== undefined && (c.kind === 'good' ? o.status === 'succeeded' : o.status === 'failed' && o.error.code === c.code);
  }).length;

  const goodSends = ledger.sends.filter((s) => caseById.get(s.caseId)?.kind === 'good').length;
  const processings = groupCount(lines.filter((l) => l.outcome !== 'retry'), (l) => String(l.messageId));
  const figures: Record<string, number | string> = {
    sends: ledger.sends.length,
    goodSends,
    badSends: ledger.sends.length - goodSends,
    distinctPhotos: expectedKeys.length,
    objects: keys.length,
    createdLogged: created,
    referencesReported,
    alreadyStored: referencesReported - created,
    outcomes: ledger.outcomes.length,
    duplicateOutcomes: ledger.outcomes.length - outcomesBySend.size,
    finalOutcomesRight: finalsRight,
    deadLetterEntries: dead.length,
    deadLetterDuplicates: deadDuplicates,
    jobLines: lines.length,
    retryLines: lines.filter((l) => l.outcome === 'retry').length,
    messagesProcessedMoreThanOnce: [...processings.values()].filter((n) => n > 1).length,
    redeliveries: lines.filter((l) => Number(l.receiveCount) >= 2 && l.outcome !== 'retry').length,
  };
  return { problems, notes, figures };
}

/** One line a reader can quote, `[faults] <scenario>: key=value …`, then any notes, one a line. */
export function report(scenario: string, figures: Record<string, number | string | boolean>, notes: readonly string[] = []): void {
  const text = Object.entries(figures)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  console.log([`[faults] ${scenario}: ${text}`, ...notes.map((n) => `[faults] ${scenario}: note: ${n}`)].join('\n'));
}

/** Where each scenario leaves its workers' logs, for reading after a run (or a failure). */
export const LOG_DIR = join(tmpdir(), 'enrollment-worker-faults');

/** Writes every worker's log lines (JSON, then its other output) to LOG_DIR; returns the paths. */
export function saveLogs(scenario: string, workers: readonly WorkerProcess[]): string[] {
  mkdirSync(LOG_DIR, { recursive: true });
  for (const old of readdirSync(LOG_DIR)) if (old.startsWith(`${scenario}-`)) rmSync(join(LOG_DIR, old));
  return workers.map((w, i) => {
    const path = join(LOG_DIR, `${scenario}-${i + 1}-pid${w.child.pid ?? 0}.log`);
    writeFileSync(path, [...w.logs.map((l) => JSON.stringify(l)), ...w.text].join('\n') + '\n');
    return path;
  });
}
