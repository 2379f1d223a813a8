package objstore

import (
	"bytes"
	"errors"
	"testing"
)

func TestDatasetFiles(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		testDatasetFiles(t, openTest(t, endpoint))
	})
}

func testDatasetFiles(t *testing.T, st *Store) {
	ctx := testCtx(t)
	data := bytes.Repeat([]byte("idx"), 1000)
	if err := st.PutDatasetFile(ctx, "fashion-mnist", "abc123", "train-images-idx3-ubyte.gz", data); err != nil {
		t.Fatal(err)
	}
	// A second upload of the same file is a no-op.
	if err := st.PutDatasetFile(ctx, "fashion-mnist", "abc123", "train-images-idx3-ubyte.gz", data); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetDatasetFile(ctx, "fashion-mnist", "abc123", "train-images-idx3-ubyte.gz")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes: %v", len(got), err)
	}
	if _, err := st.GetDatasetFile(ctx, "fashion-mnist", "abc123", "t10k-labels-idx1-ubyte.gz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
	if err := st.PutDatasetFile(ctx, "fashion-mnist", "../x", "f", data); !errors.Is(err, ErrInvalid) {
		t.Fatalf("path in a digest: %v", err)
	}
}
