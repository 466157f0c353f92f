#!/bin/sh
# LocalStack init hook (mounted into /etc/localstack/init/ready.d/ by docker-compose.yml): the same
# resources `npm run local` creates on moto — jobs queue redriven to a dead-letter queue, result
# queue, reference and staging buckets, and a settings secret holding a development signing key.
set -eu
awslocal sqs create-queue --queue-name enrollment-dlq >/dev/null
dlq_arn=$(awslocal sqs get-queue-attributes --queue-url http://localhost:4566/000000000000/enrollment-dlq \
  --attribute-names QueueArn --query Attributes.QueueArn --output text)
awslocal sqs create-queue --queue-name enrollment-jobs \
  --attributes "{\"RedrivePolicy\":\"{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"5\\\"}\"}" >/dev/null
awslocal sqs create-queue --queue-name enrollment-results >/dev/null
awslocal s3 mb s3://enrollment-refs >/dev/null
awslocal s3 mb s3://enrollment-staging >/dev/null
# The signing key lives in the secret, as in production (the worker refuses to start without one).
# A fixed, public development key: this LocalStack is a laptop's, and enqueue needs the same key.
awslocal secretsmanager create-secret --name enrollment-worker/settings \
  --secret-string '{"JOB_SIGNING_KEY":"local-development-key-not-a-secret-0123456789"}' >/dev/null
echo "enrollment-worker resources ready"
