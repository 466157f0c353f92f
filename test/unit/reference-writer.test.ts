// The conditional write of a reference (s3ReferenceWriter, src/aws/s3.ts), read on the wire: a real
// S3 client whose request handler records the HTTP request it would send and answers as S3 would.
// The integration suite proves the same against an endpoint (test/integration/enrollment.test.ts,
// "a reference already stored is never overwritten").
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import type { HttpRequest, HttpResponse, RequestHandler } from '@aws-sdk/types';
import { describe, expect, it } from 'vitest';
import { s3ReferenceWriter } from '../../src/aws/s3.ts';
import type { ReferenceObject } from '../../src/enroll/references.ts';
import { sha256Of } from '../../src/enroll/references.ts';
import { rejectionOf } from './helpers.ts';

/** An S3 answer: a status, and for an error its XML code. */
type Answer = { status: number; code?: string };

/** A real S3Client that sends nothing: each request is recorded and answered with `answer`. */
function wireS3(answer: Answer) {
  const requests: HttpRequest[] = [];
  const handler: RequestHandler<HttpRequest, HttpResponse> = {
    handle: async (request) => {
      requests.push(request);
      const body = answer.code === undefined ? '' : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${answer.code}</Code><Message>from the test</Message></Error>`;
      const headers: Record<string, string> = answer.code === undefined ? { etag: '"0"' } : { 'content-type': 'application/xml' };
      return { response: { statusCode: answer.status, headers, body: Readable.from([Buffer.from(body)]) } };
    },
  };
  const client = new S3Client({
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 1,
    requestHandler: handler,
  });
  return { client, requests };
}

const stored = Buffer.from('the normalised image');
const reference: ReferenceObject = {
  key: 'users/alice/ref_6f3e884f8bcd.jpg',
  body: stored,
  contentType: 'image/jpeg',
  sha256: Buffer.alloc(32, 0xab),
  storedSha256: sha256Of(stored),
  jobId: 'signup-7f3a9c',
  metadata: { face: '{"x":1,"y":2,"width":3,"height":4,"score":0.9}' },
};

describe('s3ReferenceWriter', () => {
  it('writes only if nothing is at the key (If-None-Match: *, signed), with the checksum and the metadata', async () => {
    // Prepare
    const s3 = wireS3({ status: 200 });

    // Act
    const result = await s3ReferenceWriter(s3.client, 'face-references')(reference);

    // Assess
    expect(result).toBe('created');
    expect(s3.requests).toHaveLength(1);
    const [request] = s3.requests;
    expect(request?.method).toBe('PUT');
    expect(request?.path).toBe('/users/alice/ref_6f3e884f8bcd.jpg');
    expect(request?.headers).toMatchObject({
      'if-none-match': '*',
      'content-type': 'image/jpeg',
      'content-length': String(stored.length),
      'x-amz-checksum-sha256': sha256Of(stored).toString('base64'),
      'x-amz-content-sha256': sha256Of(stored).toString('hex'),
      'x-amz-meta-job-id': 'signup-7f3a9c',
      'x-amz-meta-sha256': 'ab'.repeat(32),
      'x-amz-meta-stored-sha256': sha256Of(stored).toString('hex'),
      'x-amz-meta-face': reference.metadata?.face,
    });
    // The condition is part of what is signed, so nothing between can drop it.
    expect(request?.headers.authorization).toMatch(/SignedHeaders=[^,]*\bif-none-match\b/);
  });

  it('counts an object already at the key (412 Precondition Failed) as stored: existed', async () => {
    // Prepare
    const s3 = wireS3({ status: 412, code: 'PreconditionFailed' });

    // Act
    const result = await s3ReferenceWriter(s3.client, 'face-references')(reference);

    // Assess
    expect(result).toBe('existed');
    expect(s3.requests.map((r) => r.headers['if-none-match'])).toEqual(['*']);
  });

  it('leaves a concurrent conditional write (409) and other failures to the caller, as transient errors', async () => {
    // Prepare
    const conflict = wireS3({ status: 409, code: 'ConditionalRequestConflict' });
    const unavailable = wireS3({ status: 503, code: 'ServiceUnavailable' });

    // Act
    const raced = await rejectionOf(() => s3ReferenceWriter(conflict.client, 'face-references')(reference));
    const down = await rejectionOf(() => s3ReferenceWriter(unavailable.client, 'face-references')(reference));

    // Assess
    expect(raced).toMatchObject({ name: 'ConditionalRequestConflict', $metadata: { httpStatusCode: 409 } });
    expect(down).toMatchObject({ name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } });
  });
});
