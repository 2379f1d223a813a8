// Package natsconn is how the coordinator and worker connect to NATS.
//
// Both binaries take the same connection settings from flags and from the
// standard NATS environment variables, merge them (a non-empty flag wins),
// and call [Connect]:
//
//	o := natsconn.FromEnv().Merge(flagValues) // NATS_URL, NATS_USER, ...
//	o.Name = "worker"
//	nc, err := natsconn.Connect(ctx, o)
//	if err != nil {
//		return err // one line, e.g. `natsconn: authentication failed at nats://ops:***@nats:4222: ...`
//	}
//	defer nc.Close()
//
// # Authentication and TLS
//
// One of user/password ([Options.User], [Options.Password]), a token
// ([Options.Token]), a creds file holding a user JWT and nkey seed
// ([Options.CredsFile]) or a bare nkey seed file ([Options.NKeyFile]) is sent
// to the server. Credentials may also be embedded in the URL
// (nats://user:pass@host:4222 or nats://token@host:4222). TLS is used when the
// URL scheme is tls:// or when any of [Options.TLSCA], [Options.TLSCert] and
// [Options.TLSKey] is set; TLSCert and TLSKey together give a client
// certificate for servers that verify clients.
//
// # Failures
//
// Connect waits at most [DefaultConnectTimeout] (or [Options.ConnectTimeout],
// or the context's deadline, whichever is sooner). It reports a failure as a
// single line that names the server by its [Options.Redacted] URL and wraps
// one of the sentinels [ErrUnreachable], [ErrAuth] or [ErrTLS], so callers can
// use errors.Is. Once connected, the connection reconnects forever with
// jittered backoff (MaxReconnects -1; a quarter of a second apart at most)
// and logs each disconnect and reconnect once.
//
// # Requests across a lost connection
//
// A request the server read and did not answer before the connection was
// lost is never answered: the client does not send it again. Bound a
// request's context with a [Losses] watching the connection, and it ends
// (cause [ErrLost]) when the connection is lost, so the caller can ask
// again as soon as the client is back:
//
//	losses := natsconn.WatchLosses(nc)
//	defer losses.Close()
//	rctx, cancel := losses.Bound(ctx, time.Second)
//	msg, err := stream.GetMsg(rctx, seq)
//	cancel()
//
// # Secrets
//
// Passwords, tokens and seed files never appear in logs or errors:
// [Options.Redacted] replaces them with "***", and Options implements
// [fmt.Stringer] and [log/slog.LogValuer] with the redacted form.
package natsconn
