// Package cli is the command line of jettrain: the `coordinator` and `worker`
// commands, their flags and environment, and the embedded servers that let
// one `coordinator start` train end to end with nothing else running.
//
//	coordinator start [--config FILE] [--set key=value ...] [--data-dir DIR] [--workers N] [--nats URL] [--s3 URL]
//	coordinator status|history|inspect [RUN] [--json]
//	worker [--nats URL] [--s3 URL]
//
// With no --nats (and no NATS_URL), `coordinator start` runs an embedded
// NATS JetStream server storing under DIR/nats and listening on
// --nats-listen (default 127.0.0.1:4222); with no --s3 (and no S3_ENDPOINT)
// it serves an embedded S3 endpoint from DIR/s3 on --s3-listen (default
// 127.0.0.1:9000). A plain `worker` defaults to both addresses and to the
// default credentials (access key "jettrain", secret "jettrain-secret"),
// so extra workers join from another terminal with no flags at all.
package cli
