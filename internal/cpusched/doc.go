// Package cpusched puts a training process under the kernel's batch
// scheduling policy.
//
// Training is a batch workload: what matters is how much a worker computes
// in a minute, not how soon one of the process's threads runs after it
// wakes. Under the default policy every wake-up may preempt the thread that
// is running — on a machine with a core per busy thread, the thread
// computing a gradient, preempted by the broker's, the coordinator's or the
// NATS clients' goroutines waking to pass a message along. Under
// SCHED_BATCH (Linux) a thread that wakes does not preempt: it runs on an
// idle core, or at the next tick. Nice values and fairness between
// processes are unchanged, and no privilege is needed.
//
// Batch sets the policy of every thread of the process that runs under the
// default one (a real-time or idle policy someone chose is kept); threads
// started afterwards, and child processes, inherit it. On other systems, and
// on Linux systems without the call, it does nothing and reports
// ErrUnsupported.
package cpusched
