/**
 * The package's library face, for Node producers and readers of the contract: build and send jobs,
 * sign jobs, and the contract's own rules (user ids, reference keys, error codes, the JSON Schema),
 * so a producer can check a job before sending it exactly as the worker will.
 */
export {
  buildJob,
  buildSignedJob,
  checkMessageGroupId,
  enqueueJob,
  planStaging,
  waitForOutcome,
  type EnqueueInput,
  type JobImage,
  type JobInput,
  type JobMessage,
  type SignedJob,
  type StagedImage,
} from './producer/enqueue.ts';
export { keyFingerprint, SIGNATURE_ATTRIBUTE, signJob, verifyJobSignature, type SigningKeys } from './job/signature.ts';
export { AWS_TRACE_HEADER, parseAwsTraceHeader, parseTraceparent, producerContextOf, TRACEPARENT_ATTRIBUTE, TRACESTATE_ATTRIBUTE, type ProducerContext } from './job/trace-context.ts';
export { jobJsonSchema } from './job/json-schema.ts';
export { CLOCK_SKEW_SECONDS, CONTRACT_VERSION, MAX_JOB_AGE_SECONDS, parseJob, type Job, type Outcome, type ParsedJob, type Reference } from './job/contract.ts';
export { JOB_ERROR_CODES, RETRIES_EXHAUSTED, type JobErrorCode } from './job/errors.ts';
export { normaliseUserId, type UserId } from './job/user-id.ts';
export { referenceKey, userPrefix } from './enroll/references.ts';
