/**
 * The package's library face, for Node producers and readers of the contract: build and send jobs,
 * and the contract's own rules (user ids, reference keys, error codes), so a producer can check a
 * job before sending it exactly as the worker will.
 */
export { buildJob, enqueueJob, planStaging, waitForOutcome, type JobImage, type JobMessage } from './producer/enqueue.ts';
export { CONTRACT_VERSION, parseJob, type Job, type Outcome, type ParsedJob, type Reference } from './job/contract.ts';
export { JOB_ERROR_CODES, RETRIES_EXHAUSTED, type JobErrorCode } from './job/errors.ts';
export { normalizeUserId, type UserId } from './job/user-id.ts';
export { referenceKey, userPrefix } from './enroll/references.ts';
