/**
 * SDK clients from Config. Credentials come only from the SDK's default chain — on EC2 the
 * instance role through IMDSv2 — resolved once and shared by every client. There is deliberately
 * no setting for keys: the worker has nothing to leak.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@aws-sdk/types';

export interface AwsTarget {
  readonly region: string;
  /** An emulator's endpoint (AWS_ENDPOINT_URL), or undefined for real AWS. */
  readonly endpoint: string | undefined;
}

/**
 * IMDSv2 only (no silent fall-back to v1 on a token timeout), with a timeout and retries that
 * survive a busy metadata service: the SDK's defaults are 1 s and no retry.
 */
export function defaultCredentials(): AwsCredentialIdentityProvider {
  return fromNodeProviderChain({ timeout: 2_000, maxRetries: 3, ec2MetadataV1Disabled: true });
}

/** An undefined endpoint is the SDK's own default: the service's endpoint for the region. */
function common(target: AwsTarget, credentials: AwsCredentialIdentityProvider) {
  return { region: target.region, credentials, endpoint: target.endpoint };
}

/**
 * Timeouts that end a request which never gets an answer (an endpoint that accepts connections and
 * then hangs): without `throwOnRequestTimeout` the handler only warns, and the call waits forever.
 * `requestTimeout` is the socket's idle time, so it must outlast a 20 s long poll.
 */
function requestHandler(requestTimeout: number, sockets: number) {
  return {
    connectionTimeout: 5_000,
    requestTimeout,
    throwOnRequestTimeout: true,
    httpsAgent: { maxSockets: sockets, keepAlive: true },
    httpAgent: { maxSockets: sockets, keepAlive: true },
  };
}

/**
 * The handler's socket pool is sized to the concurrency (the SDK caps it at 50 by default, and
 * requests beyond that queue inside the client). The SQS request timeout outlasts a 20 s long poll.
 */
export function sqsClient(target: AwsTarget, credentials: AwsCredentialIdentityProvider, sockets = 50): SQSClient {
  return new SQSClient({
    // The SDK sends a call to the host its queue URL names (a VPC endpoint, a legacy host) only when
    // no endpoint is set: with an emulator every call goes to the emulator.
    ...common(target, credentials),
    // No MD5 of every received body: TLS already protects it in transit, and a signed job's HMAC
    // covers it end to end. At ~1 MiB messages it was the worker's largest single hash.
    md5: false,
    requestHandler: requestHandler(30_000, sockets),
  });
}

export function s3Client(target: AwsTarget, credentials: AwsCredentialIdentityProvider, sockets = 50): S3Client {
  return new S3Client({
    ...common(target, credentials),
    // Emulators serve buckets by path, not by virtual host.
    forcePathStyle: target.endpoint !== undefined,
    requestHandler: requestHandler(60_000, sockets),
  });
}

export function secretsClient(target: AwsTarget, credentials: AwsCredentialIdentityProvider): SecretsManagerClient {
  return new SecretsManagerClient({ ...common(target, credentials), requestHandler: requestHandler(10_000, 4) });
}

export function stsClient(target: AwsTarget, credentials: AwsCredentialIdentityProvider): STSClient {
  return new STSClient({ ...common(target, credentials), requestHandler: requestHandler(10_000, 4) });
}

// The SDK marks resolved credentials with the provider that produced them (feature ids).
const CREDENTIAL_SOURCES: ReadonlyArray<[string, string]> = [
  ['CREDENTIALS_IMDS', 'EC2 instance metadata (IMDSv2, instance role)'],
  ['CREDENTIALS_HTTP', 'container credentials endpoint (ECS task role)'],
  ['CREDENTIALS_ENV_VARS_STS_WEB_ID_TOKEN', 'web identity token (environment)'],
  ['CREDENTIALS_STS_ASSUME_ROLE_WEB_ID', 'web identity token'],
  ['CREDENTIALS_ENV_VARS', 'environment variables'],
  ['CREDENTIALS_SSO', 'SSO'],
  ['CREDENTIALS_PROFILE_SSO', 'SSO profile'],
  ['CREDENTIALS_PROCESS', 'credential_process'],
  ['CREDENTIALS_PROFILE', 'shared config/credentials file profile'],
];

export function credentialSource(credentials: AwsCredentialIdentity, env: Readonly<Record<string, string | undefined>> = process.env): string {
  const marks = (credentials as { $source?: Record<string, unknown> }).$source ?? {};
  for (const [mark, description] of CREDENTIAL_SOURCES) if (mark in marks) return description;
  // Every provider of the chain marks its credentials except the last, the remote one: unmarked
  // credentials came from the container endpoint when one is configured, else from IMDS.
  const container = env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI ?? env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
  return container ? 'container credentials endpoint (ECS task role)' : 'EC2 instance metadata (IMDSv2, instance role)';
}

export interface Identity {
  readonly arn: string;
  readonly account: string;
  readonly credentialSource: string;
}

/** Resolves credentials and asks STS who they belong to: proof the chain works, for the log. */
export async function whoAmI(credentials: AwsCredentialIdentityProvider, sts: STSClient): Promise<Identity> {
  const resolved = await credentials();
  const identity = await sts.send(new GetCallerIdentityCommand({}));
  return { arn: identity.Arn ?? 'unknown', account: identity.Account ?? 'unknown', credentialSource: credentialSource(resolved) };
}
