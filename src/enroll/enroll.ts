/**
 * One job → its references. The use case, with no knowledge of queues: load every image, check
 * every image, and only then write — one bad image fails the job and nothing of it is stored.
 */
import type { Job, Reference } from '../job/contract.ts';
import { checkImage } from './images.ts';
import { referenceKey, sha256Of, type PutResult, type ReferenceWriter } from './references.ts';
import { loadImage, type StagedObjectReader, type StagingRules } from './sources.ts';

export interface EnrollmentDeps {
  readonly rules: StagingRules;
  readonly readStaged: StagedObjectReader;
  readonly writeReference: ReferenceWriter;
}

export interface Enrollment {
  readonly references: readonly Reference[];
  /** How many of the references this job wrote; the rest were already stored. */
  readonly created: number;
}

export async function enroll(job: Job, deps: EnrollmentDeps): Promise<Enrollment> {
  const loaded = await Promise.all(
    job.images.map((source, index) => loadImage(source, `images[${index}]`, deps.rules, deps.readStaged)),
  );

  // The same photo twice in one job is one reference, not two.
  const planned = new Map<string, { reference: Reference; body: Buffer; sha256: Buffer }>();
  loaded.forEach((bytes, index) => {
    const { type } = checkImage(bytes, `images[${index}]`, deps.rules.maxImageBytes);
    const sha256 = sha256Of(bytes);
    const hex = sha256.toString('hex');
    const key = referenceKey(job.userId, hex, type.ext);
    if (!planned.has(key)) {
      planned.set(key, { reference: { key, sha256: hex, contentType: type.contentType, bytes: bytes.length }, body: bytes, sha256 });
    }
  });

  const plan = [...planned.values()];
  const results: PutResult[] = await Promise.all(
    plan.map(({ reference, body, sha256 }) =>
      deps.writeReference({ key: reference.key, body, contentType: reference.contentType, sha256, jobId: job.jobId }),
    ),
  );
  return { references: plan.map((p) => p.reference), created: results.filter((r) => r === 'created').length };
}
