package deploy

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
)

// root is the module root, where compose.yaml and Dockerfile live.
const root = ".."

// composeEnv is every variable compose.yaml interpolates; tests clear them so
// the defaults are what gets checked.
var composeEnv = []string{
	"NATS_USER", "NATS_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "S3_BUCKET", "JETTRAIN_TAG",
}

func loadProject(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	for _, k := range composeEnv {
		t.Setenv(k, env[k])
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "compose.yaml")},
		cli.WithOsEnv, cli.WithDotEnv, cli.WithName("jettrain"),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return s
}

func env(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

func hasVolume(s types.ServiceConfig, source, target string) bool {
	for _, v := range s.Volumes {
		if strings.HasSuffix(v.Source, source) && v.Target == target {
			return true
		}
	}
	return false
}

func publishes(s types.ServiceConfig, port uint32) bool {
	for _, p := range s.Ports {
		if p.Target == port && p.Published != "" {
			return true
		}
	}
	return false
}

func TestComposeServices(t *testing.T) {
	p := loadProject(t, nil)
	want := []string{"coordinator", "jaeger", "minio", "minio-init", "nats", "worker"}
	got := p.ServiceNames()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	for _, name := range want {
		s := service(t, p, name)
		if name == "minio-init" {
			if s.Restart != "no" {
				t.Errorf("minio-init is one-shot; restart %q", s.Restart)
			}
			continue
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s has no healthcheck", name)
		}
		if s.Restart == "" || s.Restart == "no" {
			t.Errorf("%s has no restart policy", name)
		}
	}
	for _, v := range []string{"nats-data", "minio-data"} {
		if _, ok := p.Volumes[v]; !ok {
			t.Errorf("volume %s missing", v)
		}
	}
}

func TestComposeNATS(t *testing.T) {
	p := loadProject(t, nil)
	nats := service(t, p, "nats")
	if !strings.HasPrefix(nats.Image, "nats:2.10") {
		t.Errorf("nats image %q", nats.Image)
	}
	cmd := strings.Join(nats.Command, " ")
	for _, flag := range []string{"--jetstream", "--store_dir=/data", "--config=/etc/nats/jettrain.conf", "--http_port=8222"} {
		if !strings.Contains(cmd, flag) {
			t.Errorf("nats command %q lacks %s", cmd, flag)
		}
	}
	if !hasVolume(nats, "nats-data", "/data") {
		t.Error("nats store is not on the nats-data volume")
	}
	if !hasVolume(nats, filepath.Join("deploy", "nats.conf"), "/etc/nats/jettrain.conf") {
		t.Error("deploy/nats.conf is not mounted")
	}
	if env(nats, "NATS_USER") != "jettrain" || env(nats, "NATS_PASSWORD") != "jettrain-secret" {
		t.Errorf("nats auth env defaults: %q %q", env(nats, "NATS_USER"), env(nats, "NATS_PASSWORD"))
	}
	if !strings.Contains(strings.Join(nats.HealthCheck.Test, " "), "8222/healthz") {
		t.Errorf("nats healthcheck %v", nats.HealthCheck.Test)
	}
}

// TestNATSConfig parses deploy/nats.conf with the real server's parser, with
// the environment compose gives the container.
func TestNATSConfig(t *testing.T) {
	t.Setenv("NATS_USER", "ops")
	t.Setenv("NATS_PASSWORD", "from-env-secret")
	o, err := server.ProcessConfigFile("nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxPayload != 8<<20 {
		t.Errorf("max_payload %d, want 8 MiB", o.MaxPayload)
	}
	if o.MaxPending < int64(o.MaxPayload) {
		t.Errorf("max_pending %d below max_payload", o.MaxPending)
	}
	if o.Username != "ops" || o.Password != "from-env-secret" {
		t.Errorf("auth from env: user %q password %q", o.Username, o.Password)
	}
}

func TestComposeMinIO(t *testing.T) {
	p := loadProject(t, nil)
	minio := service(t, p, "minio")
	if !hasVolume(minio, "minio-data", "/data") {
		t.Error("minio data is not on the minio-data volume")
	}
	if env(minio, "MINIO_ROOT_USER") != "jettrain" || env(minio, "MINIO_ROOT_PASSWORD") != "jettrain-secret" {
		t.Error("minio credentials do not default to jettrain / jettrain-secret")
	}
	initSvc := service(t, p, "minio-init")
	if c := initSvc.DependsOn["minio"].Condition; c != types.ServiceConditionHealthy {
		t.Errorf("minio-init waits for minio %q", c)
	}
	script := strings.Join(initSvc.Command, " ")
	if !strings.Contains(script, "http://minio:9000") || !strings.Contains(script, "mc mb --ignore-existing") {
		t.Errorf("minio-init does not create the bucket: %q", script)
	}
	if env(initSvc, "S3_BUCKET") != "jettrain" {
		t.Errorf("bucket %q", env(initSvc, "S3_BUCKET"))
	}
	// Compose must leave $MINIO_ROOT_PASSWORD for the container's shell.
	if strings.Contains(script, "jettrain-secret") {
		t.Error("the minio-init command line carries the secret")
	}
}

func TestComposeJaeger(t *testing.T) {
	p := loadProject(t, nil)
	j := service(t, p, "jaeger")
	if !strings.HasPrefix(j.Image, "jaegertracing/") {
		t.Errorf("jaeger image %q", j.Image)
	}
	for _, port := range []uint32{16686, 4317, 4318} {
		if !publishes(j, port) {
			t.Errorf("jaeger does not publish %d", port)
		}
	}
}

// TestComposeJettrain checks that the coordinator and workers reach every
// other service by its compose name and port, with auth.
func TestComposeJettrain(t *testing.T) {
	p := loadProject(t, nil)
	for _, name := range []string{"coordinator", "worker"} {
		s := service(t, p, name)
		t.Run(name, func(t *testing.T) {
			if s.Build == nil || s.Build.Dockerfile != "Dockerfile" {
				t.Errorf("not built from the Dockerfile: %+v", s.Build)
			}
			for k, v := range map[string]string{
				"NATS_URL":                    "nats://nats:4222",
				"NATS_USER":                   "jettrain",
				"NATS_PASSWORD":               "jettrain-secret",
				"S3_ENDPOINT":                 "http://minio:9000",
				"S3_BUCKET":                   "jettrain",
				"AWS_ACCESS_KEY_ID":           "jettrain",
				"AWS_SECRET_ACCESS_KEY":       "jettrain-secret",
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
				"OTEL_SERVICE_NAME":           name,
				"JETTRAIN_METRICS_ADDR":       ":9464",
			} {
				if got := env(s, k); got != v {
					t.Errorf("%s=%q, want %q", k, got, v)
				}
			}
			for dep, cond := range map[string]string{
				"nats":       types.ServiceConditionHealthy,
				"minio-init": types.ServiceConditionCompletedSuccessfully,
				"jaeger":     types.ServiceConditionStarted,
			} {
				if got := s.DependsOn[dep].Condition; got != cond {
					t.Errorf("depends_on %s: %q, want %q", dep, got, cond)
				}
			}
			if !strings.Contains(strings.Join(s.HealthCheck.Test, " "), "9464/healthz") {
				t.Errorf("healthcheck %v", s.HealthCheck.Test)
			}
		})
	}

	c := service(t, p, "coordinator")
	if got := strings.Join(c.Command, " "); got != "coordinator start --nats nats://nats:4222 --s3 http://minio:9000" {
		t.Errorf("coordinator command %q", got)
	}
	if c.Restart != types.RestartPolicyOnFailure {
		t.Errorf("coordinator exits 0 when done, so restart must be on-failure, not %q", c.Restart)
	}
	if !publishes(c, 9464) {
		t.Error("coordinator metrics port not published")
	}
	if c.DependsOn["minio"].Condition != types.ServiceConditionHealthy {
		t.Error("coordinator does not wait for minio")
	}
	w := service(t, p, "worker")
	if got := strings.Join(w.Command, " "); got != "worker" {
		t.Errorf("worker command %q", got)
	}
	if c.Image != w.Image {
		t.Errorf("coordinator image %q and worker image %q differ", c.Image, w.Image)
	}
}

// TestComposeWorkersScale is `docker compose up --scale worker=8` without an
// engine: replicas need no fixed name and no host port.
func TestComposeWorkersScale(t *testing.T) {
	p := loadProject(t, nil)
	w := service(t, p, "worker")
	if w.ContainerName != "" {
		t.Fatalf("worker has container_name %q; replicas would collide", w.ContainerName)
	}
	for _, port := range w.Ports {
		if port.Published != "" {
			t.Fatalf("worker publishes host port %s; replicas would collide", port.Published)
		}
	}
	if w.GetScale() < 1 {
		t.Fatalf("worker replicas %d", w.GetScale())
	}
	scaled, err := p.WithServicesTransform(func(name string, s types.ServiceConfig) (types.ServiceConfig, error) {
		if name == "worker" {
			s.SetScale(8)
		}
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := scaled.CheckContainerNameUnicity(); err != nil {
		t.Fatal(err)
	}
	sw := service(t, scaled, "worker")
	if got := sw.GetScale(); got != 8 {
		t.Fatalf("scaled to %d", got)
	}
}

// TestComposeSecretsFromEnv: every secret follows the environment.
func TestComposeSecretsFromEnv(t *testing.T) {
	p := loadProject(t, map[string]string{
		"NATS_USER": "ops", "NATS_PASSWORD": "n-secret",
		"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "m-secret", "S3_BUCKET": "runs",
	})
	for _, name := range []string{"coordinator", "worker"} {
		s := service(t, p, name)
		if env(s, "NATS_USER") != "ops" || env(s, "NATS_PASSWORD") != "n-secret" ||
			env(s, "AWS_ACCESS_KEY_ID") != "admin" || env(s, "AWS_SECRET_ACCESS_KEY") != "m-secret" ||
			env(s, "S3_BUCKET") != "runs" {
			t.Errorf("%s does not follow the environment: %v", name, s.Environment)
		}
	}
	if n := service(t, p, "nats"); env(n, "NATS_PASSWORD") != "n-secret" {
		t.Error("nats password does not follow NATS_PASSWORD")
	}
	if m := service(t, p, "minio"); env(m, "MINIO_ROOT_PASSWORD") != "m-secret" {
		t.Error("minio password does not follow MINIO_ROOT_PASSWORD")
	}
}

// TestDockerfile checks the image builds both commands as static binaries
// and ships the dataset.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1)); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a multi-stage build", n)
	}
	for _, want := range []string{
		"CGO_ENABLED=0",
		`-trimpath -ldflags "-s -w" -o /out/coordinator ./cmd/coordinator`,
		`-trimpath -ldflags "-s -w" -o /out/worker ./cmd/worker`,
		"dataset-fashion-mnist",
		"COPY --from=build /out/coordinator /out/worker /usr/local/bin/",
		"USER ",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, cmd := range []string{"cmd/coordinator", "cmd/worker"} {
		if _, err := os.Stat(filepath.Join(root, cmd)); err != nil {
			t.Errorf("Dockerfile builds %s: %v", cmd, err)
		}
	}
	// The build context must keep the sources the build needs.
	ig, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ig), "\n") {
		line = strings.TrimSpace(line)
		if line == "go.mod" || line == "go.sum" || line == "cmd" || line == "*.go" || line == "**/*.go" {
			t.Errorf(".dockerignore drops %s", line)
		}
	}
}
