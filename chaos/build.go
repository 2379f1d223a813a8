package chaos

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles the coordinator and worker commands of the module that
// contains the working directory into outDir and returns their paths.
func Build(ctx context.Context, outDir string) (coordinator, worker string, err error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", "", fmt.Errorf("chaos: go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if strings.TrimSpace(string(gomod)) == "" || root == "." {
		return "", "", fmt.Errorf("chaos: not inside a Go module")
	}
	for _, name := range []string{"coordinator", "worker"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(outDir, name), "./cmd/"+name)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("chaos: building %s: %v\n%s", name, err, out)
		}
	}
	return filepath.Join(outDir, "coordinator"), filepath.Join(outDir, "worker"), nil
}
