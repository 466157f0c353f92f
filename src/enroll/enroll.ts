/**
 * One job → its references. The use case, with no knowledge of queues: load every image, check
 * every image, and only then write — one bad image fails the job and nothing of it is stored.
 *
 * Checks run cheapest first, so a hostile job costs little: the bytes (type, size, structure) of
 * every image, then the header's dimensions, and only then the full decode and re-encode
 * (`normalise`). The key names the photo as received (so a redelivered job finds its references),
 * while the stored bytes are the normalised image.
 */
import type { Job, Reference } from '../job/contract.ts';
import { checkImage } from './images.ts';
import { checkDimensions, type ImageLimits, type ImageNormaliser } from './normalise.ts';
import { referenceKey, sha256Of, type PutResult, type ReferenceWriter } from './references.ts';
import { loadImage, type StagedObjectReader, type StagingRules } from './sources.ts';

export type EnrollmentRules = StagingRules & ImageLimits;

export interface EnrollmentDeps {
  readonly rules: EnrollmentRules;
  readonly readStaged: StagedObjectReader;
  readonly normalise: ImageNormaliser;
  readonly writeReference: ReferenceWriter;
}

export interface Enrollment {
  readonly references: readonly Reference[];
  /** How many of the references this job wrote; the rest were already stored. */
  readonly created: number;
}

export async function enroll(job: Job, deps: EnrollmentDeps): Promise<Enrollment> {
  const label = (index: number) => `images[${index}]`;
  const loaded = await Promise.all(
    job.images.map((source, index) => loadImage(source, label(index), deps.rules, deps.readStaged)),
  );
  const checked = loaded.map(({ bytes, sha256 }, index) => {
    const info = checkImage(bytes, label(index), deps.rules.maxImageBytes);
    checkDimensions(info, label(index), deps.rules);
    return { bytes, sha256, info, index };
  });

  // The same photo twice in one job is one reference (and one decode), not two.
  const planned = new Map<string, (typeof checked)[number]>();
  for (const image of checked) {
    const key = referenceKey(job.userId, image.sha256.toString('hex'), image.info.type.ext);
    if (!planned.has(key)) planned.set(key, image);
  }

  const plan = await Promise.all(
    [...planned].map(async ([key, image]) => {
      const stored = await deps.normalise(image.bytes, image.info, label(image.index), deps.rules);
      const reference: Reference = {
        key,
        sha256: image.sha256.toString('hex'),
        contentType: image.info.type.contentType,
        bytes: stored.bytes.length,
      };
      return { reference, body: stored.bytes, sha256: image.sha256, storedSha256: sha256Of(stored.bytes) };
    }),
  );

  const results: PutResult[] = await Promise.all(
    plan.map(({ reference, body, sha256, storedSha256 }) =>
      deps.writeReference({ key: reference.key, body, contentType: reference.contentType, sha256, storedSha256, jobId: job.jobId }),
    ),
  );
  return { references: plan.map((p) => p.reference), created: results.filter((r) => r === 'created').length };
}
