// Package config is a run's configuration: its keys and defaults, loading
// from a YAML or JSON file plus key=value overrides, validation, and the run
// signature.
//
// Every key is listed in [Config]; an unknown key is an error, never ignored.
// Overrides use dotted paths (optimizer.lr=0.01) and YAML scalar syntax for
// values (hidden=[256,128]).
//
// The signature identifies a run: it hashes the resolved keys that change the
// math (model, dataset, batch, shards, seed, optimizer) and none of those that
// do not (epochs, checkpoint interval, retention), so starting the same config
// resumes the same run, extending epochs continues it, and any change to the
// math starts a different run.
package config
