package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// mathKeys is the part of a Config that changes the weights a run produces.
type mathKeys struct {
	Model     string    `json:"model"`
	Hidden    []int     `json:"hidden,omitempty"`
	Dataset   string    `json:"dataset"`
	BatchSize int       `json:"batch_size"`
	Shards    int       `json:"shards"`
	Seed      uint64    `json:"seed"`
	Optimizer Optimizer `json:"optimizer"`
	Epochs    int       `json:"epochs,omitempty"` // only when a schedule depends on the run's length
}

func (c Config) math() mathKeys {
	// hidden sizes the MLP's layers and the CNN's dense layers alike
	m := mathKeys{Model: c.Model, Hidden: c.Hidden, Dataset: c.Dataset, BatchSize: c.BatchSize, Shards: c.Shards, Seed: c.Seed, Optimizer: c.Optimizer}
	if c.Optimizer.Schedule != "" && c.Optimizer.Schedule != "constant" {
		m.Epochs = c.Epochs
	}
	return m
}

// Signature is the run's identity: 16 hex digits of the sha256 of the
// canonical JSON of the keys that change the math.
func (c Config) Signature() string {
	b, _ := json.Marshal(c.math())
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Diff names the keys that change the math and differ between a and b.
func Diff(a, b Config) []string {
	ma, _ := json.Marshal(a.math())
	mb, _ := json.Marshal(b.math())
	var x, y map[string]any
	_ = json.Unmarshal(ma, &x)
	_ = json.Unmarshal(mb, &y)
	return diffTrees(x, y, "")
}

func diffTrees(x, y map[string]any, prefix string) []string {
	var out []string
	keys := map[string]bool{}
	for k := range x {
		keys[k] = true
	}
	for k := range y {
		keys[k] = true
	}
	for _, k := range sortedKeys(keys) {
		xs, xm := x[k].(map[string]any)
		ys, ym := y[k].(map[string]any)
		if xm && ym {
			out = append(out, diffTrees(xs, ys, prefix+k+".")...)
			continue
		}
		a, _ := json.Marshal(x[k])
		b, _ := json.Marshal(y[k])
		if string(a) != string(b) {
			out = append(out, prefix+k)
		}
	}
	return out
}
