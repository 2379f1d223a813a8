// Package deploy holds the deployment files' companions and the tests that
// keep them honest. It has no code of its own.
//
// The deployment is compose.yaml and Dockerfile at the module root, with
// deploy/nats.conf mounted into the NATS container:
//
//	docker compose up -d --build --scale worker=4
//
// starts NATS with JetStream (store on the nats-data volume, 8 MB max payload,
// user/password auth), MinIO (minio-data volume) with a one-shot service that
// creates the bucket, Jaeger (UI on :16686, OTLP on :4317/:4318), one
// coordinator (Prometheus metrics on :9464) and N workers. The coordinator
// and workers read their endpoints and secrets from the standard environment:
// NATS_URL, NATS_USER, NATS_PASSWORD, S3_ENDPOINT, S3_BUCKET,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_SERVICE_NAME and JETTRAIN_METRICS_ADDR.
//
// Secrets default to laptop values (jettrain / jettrain-secret); set
// NATS_USER, NATS_PASSWORD, MINIO_ROOT_USER and MINIO_ROOT_PASSWORD in the
// environment or an .env file beside compose.yaml for anything shared.
//
// No Docker engine is needed to test this: compose_test.go loads compose.yaml
// with the compose-spec loader (the one docker compose uses), checks that
// every service is wired to the others by name and port, that workers scale,
// and that NATS accepts the mounted configuration.
package deploy
