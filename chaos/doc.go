// Package chaos proves jettrain's fault tolerance by killing real
// processes. It starts nats-server, versitygw, coordinators and workers as
// separate OS processes, kills them with SIGKILL at random moments drawn
// from a seed, starts them again, and checks at the end that the run kept
// every promise of DESIGN.md.
//
// # Running it
//
// The harness needs the nats-server and versitygw binaries, named by
// JETTRAIN_NATS_SERVER and JETTRAIN_VERSITYGW:
//
//	export JETTRAIN_NATS_SERVER="$(.ci/nats-server.sh ~/.cache/jettrain)"
//	export JETTRAIN_VERSITYGW="$(.ci/versitygw.sh ~/.cache/jettrain)"
//
// The short run, part of the normal test suite (skipped with the reason when
// the variables are unset, and under -short): 8 faults, two of each kind,
// over a 2-epoch run, in about three minutes on two cores:
//
//	go test ./chaos
//
// The long run: at least 30 faults over a 3-epoch run, the seed printed so
// a failure can be replayed, the logs kept:
//
//	go run ./cmd/chaos -kills 30 -epochs 3 -keep
//	go test ./chaos -run TestChaos -timeout 60m -chaos.kills=30 -chaos.epochs=3 -chaos.seed=1 -chaos.dir=/tmp/chaos -v
//
// Add -cluster (-chaos.cluster) for a three-node NATS cluster on loopback
// with R3 streams, where a NATS fault kills one node of three.
//
// # What one experiment does
//
// [Run] runs the same config twice, each time on fresh servers in a
// directory of its own: first without faults (the reference), then with
// Options.Faults faults. Each run has one NATS server (or three), one
// versitygw, two coordinators (the leader and a hot standby waiting on the
// run's lease) and three workers (Options.Workers). With
// Options.InProcess each coordinator also runs that many workers in its
// own process (coordinator start --workers), which hand it their
// gradients in memory while it leads and die with it; the test suite's
// short run has one worker process and one worker in each coordinator.
// Every child runs in a process group of
// its own and is killed with its group; on Linux the kernel also kills it
// if the harness dies (Pdeathsig).
//
// The fault plan is drawn from a math/rand/v2 PCG seeded with
// Options.Seed: kinds in shuffled rounds (each kind once per round, so a
// short plan covers them all), and for each fault how many steps the run
// must commit before it, a jitter of up to half a second so the kill lands
// anywhere inside a step or a checkpoint, how long the node stays dead, and
// which node dies. The kinds:
//
//   - worker: SIGKILL a worker; its slot starts again 0.1-3 s later in the
//     background. A task it held is redelivered after the consumer's ack
//     wait.
//   - coordinator: SIGKILL the leading coordinator (the one that logged
//     the newest commit), wherever it is; its slot starts again 0-3 s
//     later in the background. The standby takes over when the lease
//     expires, resuming from the newest checkpoint and replaying the grads
//     stream. Since restarts are in the background, a following fault may
//     find both coordinators dead, or kill the one that just took over.
//   - nats: SIGKILL a NATS server; start it again after 0.2-2 s on the same
//     port and store directory, and wait until /healthz is good. A node
//     of a cluster catches up on its streams while the plan goes on (the
//     run goes on, on the other two); the next NATS fault waits until
//     every node is healthy, so that two are never away at once.
//   - s3: SIGKILL versitygw for up to 0.5 s and at least until a
//     coordinator warned that a checkpoint save failed; training must go on
//     from the stream meanwhile; then start it again on the same port and
//     data. The plan goes on at once (waiting would only use up steps);
//     the recovery is measured at the end.
//   - checkpoint (only with -kinds): overwrite the run's newest checkpoint
//     object with junk, then kill the leading coordinator as above. The
//     next one falls back to the previous checkpoint and recomputes the
//     steps to the damaged one itself, since the grads stream keeps only
//     the gradients since the newest checkpoint, and saves them again.
//
// The next fault comes once the run has committed its gap of steps past
// the step of the previous fault and (but for s3) has recovered from it;
// the gaps leave the run's last sixteenth clear. Recovery time
// is measured from the kill to the first commit of a step never committed
// before, and for s3 from the store's return to the next checkpoint saved.
// A process that exits without being killed is reported as unexpected
// (which fails the run: every process must ride out the others' faults)
// and started again after a second, as a supervisor would — unless it was
// started while a server it needs was down, where stopping with one clear
// line is the designed behaviour (listed, not failed). Twenty such exits
// end the run. The run ends when a coordinator exits 0.
//
// The harness watches the coordinators' debug log, which has one line per
// committed step (see [Commit]); all polling has deadlines, nothing waits
// on a bare sleep.
//
// # What it checks
//
//   - the final checkpoint's weights sha256 equals the fault-free run's, and
//     so does every step's weights check in the logs ([CompareSteps]);
//   - history.json has exactly one entry per epoch 0..E-1, in order, at the
//     step ending the epoch, with the fault-free run's losses and
//     accuracies ([CheckHistory]);
//   - over all coordinator incarnations: every step 1..N committed; each
//     step logged with the same weights check and seqs by every incarnation that
//     logged it; exactly one gradient per shard (one message may carry the
//     sum of shards 0..n-1, logged with first shard 0 for each of them; no
//     other message counts twice; a gradient sent in parts is logged with
//     the sequence of its first part), none used by two steps;
//     steps strictly increasing within an incarnation ([CheckCommits]);
//   - every fault recovered within Options.Recovery;
//   - no process of the run is left once the harness stops it.
//
// The [Report] prints a table per fault kind — injected, survived, median
// and maximum recovery — then every fault, unexpected exits and broken
// invariants.
package chaos
