// Package objstore keeps jettrain runs in an S3 bucket through minio-go v7:
// resolved configs, checkpoints, the manifest that commits them, the
// training history and the best weights as safetensors. It also serves an
// S3 endpoint from a local directory (versitygw's posix backend) for the
// embedded default of `coordinator start`.
//
// # Layout
//
// One bucket (Config.Bucket, default "jettrain") holds every run under
// runs/<run>/, where <run> is the run signature:
//
//	runs/<run>/config.json                  resolved config, written once (PutConfig)
//	runs/<run>/checkpoints/000000001200     checkpoint at step 1200 (Commit)
//	runs/<run>/checkpoint.json              manifest: the commit point (Commit, Manifest)
//	runs/<run>/history.json                 one JSON object per finished epoch (History)
//	runs/<run>/best.safetensors             best weights so far (PutBest)
//
// Checkpoint names are the step zero-padded to 12 digits, so listing order is
// step order. Every object is written with its sha256 in the user metadata
// "X-Amz-Meta-Jettrain-Sha256", and every write request signs that sha256
// as its payload hash, so the server refuses bytes damaged in transit
// (ErrCorrupt); reads check the recorded sha256 again. Each write also
// names the bytes' CRC32C (x-amz-checksum-crc32c), the checksum the server
// keeps for the object, in place of the CRC64NVME S3 servers compute by
// default: CRC32C runs in hardware on both sides. Requests carry no
// Content-MD5, which S3 requires only of buckets with Object Lock
// retention: those are not supported.
//
// # Commit protocol
//
// [Store.Commit] writes, in this order:
//
//  1. the checkpoint object (weights, optimizer state, step, epoch, the
//     grads-stream sequence it covers, the full history, the partial
//     epoch state), in the binary encoding of [Checkpoint.MarshalBinary];
//  2. the manifest checkpoint.json naming it, with its size and sha256 —
//     the single commit point. A crash before this write leaves the
//     previous commit in force; the stray checkpoint is ignored and later
//     overwritten or pruned;
//  3. history.json, rewritten whole from the checkpoint's history, so it is
//     never ahead of the commit and never loses or duplicates an entry;
//  4. pruning: checkpoints older than the newest Config.Keep (or the
//     run's own keep, with CommitKeeping) are deleted.
//     The committed one is never deleted, nor anything newer than it, and
//     nothing is deleted before its successor is committed.
//
// [Store.Latest] reads the manifest, fetches the checkpoint it names and
// verifies its size, sha256 and encoding. If it is missing or corrupt, a
// one-line warning names the key and the reason and the previous checkpoint
// objects are tried, newest first, each checked against its recorded
// sha256. Network and credential errors are returned, never treated as
// corruption. Latest then rewrites history.json if it differs from the
// returned checkpoint's history.
//
// # Errors
//
// Errors are *[Error] values whose message is one line naming the operation,
// endpoint, bucket and key, and which match the sentinels with errors.Is:
// [ErrUnreachable], [ErrCredentials], [ErrNoBucket], [ErrReadOnly],
// [ErrCorrupt], [ErrNotFound], [ErrConflict], [ErrUnavailable], [ErrInvalid].
// An unreachable endpoint fails within about Config.Timeout ×
// (Config.MaxRetries+1); a server answering 500, 502, 503 or 504, after as
// many tries.
//
// # Embedded server
//
// [Serve] runs versitygw (posix backend, single account) on a loopback
// address. It runs it in a child process — the current executable started
// again with JETTRAIN_OBJSTORE_S3_SERVER=1, which this package's init turns
// into the server before main runs — because versitygw changes the
// process's working directory to its root for as long as it serves, and
// allows only one instance per process. The child reads its configuration
// (including the secret) from a pipe, ignores SIGINT so the parent can make
// a final commit on Ctrl-C, and exits when the parent closes that pipe or
// dies. Any number of servers may run from one process. Data lives in
// <dir>/buckets/<bucket>/<key>; object metadata in user.* extended
// attributes, or under <dir>/meta where the file system has none.
//
// Init functions of packages initialized before this one also run in the
// child; they must not read stdin.
package objstore
