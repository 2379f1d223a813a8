package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load resolves a configuration: the defaults, then the file (YAML or JSON,
// "" for none), then each key=value override in order. Unknown keys and
// malformed values are errors that name the key and where it came from.
func Load(file string, sets []string) (Config, error) {
	tree, err := toTree(Default())
	if err != nil {
		return Config{}, err
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		doc, err := decodeFile(b, file)
		if err != nil {
			return Config{}, err
		}
		if err := merge(tree, doc, "", file); err != nil {
			return Config{}, err
		}
	}
	for _, s := range sets {
		key, value, ok := strings.Cut(s, "=")
		if !ok || key == "" {
			return Config{}, fmt.Errorf("%w: --set %q: want key=value", ErrInvalid, s)
		}
		var v any
		if err := yaml.Unmarshal([]byte(value), &v); err != nil {
			return Config{}, fmt.Errorf("%w: --set %s: %v", ErrInvalid, key, err)
		}
		if err := set(tree, strings.Split(key, "."), v, "--set "+key); err != nil {
			return Config{}, err
		}
	}
	return fromTree(tree)
}

// decodeFile decodes the one YAML (or JSON) document of a config file. A
// second document is an error: its keys would otherwise go unread.
func decodeFile(b []byte, file string) (map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, file, err)
	}
	var more any
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s: more than one YAML document (a line \"---\"); put every key in one", ErrInvalid, file)
	}
	return doc, nil
}

func toTree(c Config) (map[string]any, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	return tree, json.Unmarshal(b, &tree)
}

func fromTree(tree map[string]any) (Config, error) {
	b, err := json.Marshal(tree)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return Parse(b)
}

// Parse decodes a resolved configuration in JSON, rejecting unknown keys, and
// validates it.
func Parse(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return c, c.Validate()
}

// merge copies doc into tree, refusing keys tree does not have.
func merge(tree, doc map[string]any, prefix, where string) error {
	keys := map[string]bool{}
	for k := range doc {
		keys[k] = true
	}
	for _, k := range sortedKeys(keys) {
		if err := set(tree, []string{k}, doc[k], where+": "+prefix+k); err != nil {
			return err
		}
	}
	return nil
}

func set(tree map[string]any, path []string, v any, where string) error {
	cur, ok := tree[path[0]]
	if !ok {
		return fmt.Errorf("%w: %s: unknown key %q", ErrInvalid, where, path[0])
	}
	sub, isMap := cur.(map[string]any)
	if len(path) > 1 {
		if !isMap {
			return fmt.Errorf("%w: %s: %q has no sub-keys", ErrInvalid, where, path[0])
		}
		return set(sub, path[1:], v, where)
	}
	if isMap {
		doc, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%w: %s: want a mapping", ErrInvalid, where)
		}
		return merge(sub, doc, path[0]+".", where)
	}
	if v == nil {
		return fmt.Errorf("%w: %s: no value (leave the key out for its default)", ErrInvalid, where)
	}
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return fmt.Errorf("%w: %s: %v is not a finite number", ErrInvalid, where, f)
	}
	tree[path[0]] = v
	return nil
}
