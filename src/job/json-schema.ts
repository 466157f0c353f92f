/**
 * The job contract v1 as a JSON Schema (`enrollment-worker schema`), so services in other
 * languages can validate a job before they sign and send it. It says what the parser accepts;
 * the worker stays the authority (the user-id normalisation and MAX_IMAGES_PER_JOB are spelled out
 * in the descriptions), and a property test keeps the two in agreement.
 */
import { z } from 'zod';
import { CLOCK_SKEW_SECONDS, CONTRACT_VERSION, MAX_JOB_AGE_SECONDS } from './contract.ts';
import { USER_ID_MAX_LENGTH } from './user-id.ts';
import { SIGNATURE_ATTRIBUTE } from './signature.ts';

// Exactly the characters Python's str.strip() removes (see user-id.ts), as a character class.
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/**
 * The raw userId the worker accepts: surrounding Python whitespace, then 1-128 ASCII characters of
 * A-Z a-z 0-9 . _ @ + -, starting with a letter or digit, with no "..".
 */
export const USER_ID_PATTERN = `^[${PY_SPACE}]*(?![^${PY_SPACE}]*\\.\\.)[A-Za-z0-9][A-Za-z0-9._@+-]{0,${USER_ID_MAX_LENGTH - 1}}[${PY_SPACE}]*$`;

/** Standard, padded base64 (RFC 4648 §4), as the worker decodes it. */
export const BASE64_PATTERN = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$';

const inlineImage = z
  .looseObject({
    data: z
      .string()
      .min(1)
      .regex(new RegExp(BASE64_PATTERN))
      .meta({ description: 'The image file (JPEG or PNG, decided by its bytes), standard padded base64.', contentEncoding: 'base64' }),
    // An image with both keys is refused whatever either holds: it is ambiguous, not "the first".
    s3: z.never().optional(),
  })
  .meta({ title: 'Inline image' });

const stagedImage = z
  .looseObject({
    s3: z.looseObject({
      bucket: z.string().min(1).max(63).meta({ description: "The worker's STAGING_BUCKET." }),
      key: z.string().min(1).max(1024).meta({ description: "Under the worker's STAGING_PREFIX." }),
      sha256: z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .meta({ description: 'SHA-256 of the staged object as uploaded, 64 lower-case hex digits; another object at that key is refused (SOURCE_MISMATCH).' }),
    }),
    data: z.never().optional(),
  })
  .meta({ title: 'Staged image' });

/** The job message body, contract v1. Extra fields are allowed (ignored, for forward compatibility). */
export const jobContractSchema = z
  .looseObject({
    version: z.literal(CONTRACT_VERSION),
    jobId: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,128}$/)
      .meta({ description: 'Yours: it comes back in the outcome and the S3 metadata.' }),
    userId: z.string().regex(new RegExp(USER_ID_PATTERN)).meta({
      description:
        'Normalised by the worker as Python strip() then lower-case; must be ASCII before lower-casing. The reference keys are users/<normalised id>/ref_<12 hex>.<jpg|png>.',
    }),
    issuedAt: z
      .int()
      .min(0)
      .optional()
      .meta({
        description: `When the job was built, in whole seconds since the Unix epoch. Required when the worker checks signatures. Older than the worker's SIGNED_JOB_MAX_AGE_SECONDS (default ${MAX_JOB_AGE_SECONDS}) is JOB_EXPIRED; more than ${CLOCK_SKEW_SECONDS} s ahead of the worker's clock is INVALID_MESSAGE.`,
      }),
    images: z
      .array(z.xor([inlineImage, stagedImage]))
      .min(1)
      .meta({ description: "1 to the worker's MAX_IMAGES_PER_JOB (default 10) images; each has exactly one of data and s3." }),
  })
  .meta({
    title: 'Enrollment job, contract v1',
    description: `The SQS message body. When the worker has a signing key, the message must carry the String attribute ${SIGNATURE_ATTRIBUTE} = "v1=" + hex HMAC-SHA256(key, the exact UTF-8 bytes of this body).`,
  });

/** The JSON Schema (draft 2020-12) of the job message body. */
export function jobJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(jobContractSchema, { target: 'draft-2020-12', io: 'input' }) as Record<string, unknown>;
  return { $id: 'urn:enrollment-worker:job:v1', ...schema };
}
