package autoglm_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tests run against the whole mesh, started as separate processes by the
// repository's CLI (`autoglm up`), as a user would run it.
const (
	meshReadyTimeout = 120 * time.Second // decision's store takes seconds to open, more on a loaded CI machine
	meshStopTimeout  = 30 * time.Second
)

// mesh is the running mesh, or why there is none (skip).
var mesh struct {
	address string
	token   string
	caFile  string
	skip    string
}

// missingTool is a prerequisite that is not installed: the mesh tests skip,
// except in CI, where they must run.
type missingTool struct{ reason string }

func (m missingTool) Error() string { return m.reason }

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runWithMesh(m))
}

func runWithMesh(m *testing.M) int {
	if testing.Short() {
		mesh.skip = "-short: no mesh"
		return m.Run()
	}
	stop, err := startMesh()
	var missing missingTool
	if errors.As(err, &missing) && os.Getenv("CI") != "true" {
		mesh.skip = missing.reason
		fmt.Fprintf(os.Stderr, "autoglm: the tests against the mesh skip: %s\n", missing.reason)
		return m.Run()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "autoglm: cannot start the mesh: %v\n", err)
		return 1
	}
	defer stop()
	return m.Run()
}

// requireMesh skips t when TestMain could not start the mesh outside CI.
func requireMesh(t *testing.T) {
	t.Helper()
	if mesh.skip != "" {
		t.Skip(mesh.skip)
	}
}

// upOutput is what `autoglm --json up` prints on stdout once the mesh is ready.
type upOutput struct {
	PublicAddress  string  `json:"publicAddress"`
	AdminTokenFile string  `json:"adminTokenFile"`
	CAFile         *string `json:"caFile"`
}

// startMesh runs `autoglm up` from the repository root and returns once the
// mesh is ready, with a function that stops it (SIGINT, as Ctrl-C would).
func startMesh() (stop func(), err error) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, missingTool{"node is not on PATH"}
	}
	cli := filepath.Join(root, "libs", "client", "bin", "autoglm.js")
	if _, err := os.Stat(filepath.Join(root, "libs", "client", "dist", "cli", "main.js")); err != nil {
		return nil, missingTool{"the autoglm CLI is not built: run `npm install && npm run build` at the repository root"}
	}

	workDir, err := os.MkdirTemp("", "autoglm-go-client-")
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(workDir, "mesh")
	logFile, err := os.Create(filepath.Join(workDir, "up.log"))
	if err != nil {
		_ = os.RemoveAll(workDir)
		return nil, err
	}
	cmd := exec.Command(node, cli, "--json", "up", "--ports", "ephemeral", "--data-dir", dataDir, "--time-scale", "50", "--agents", "2")
	cmd.Dir = root
	cmd.Stderr = logFile
	cmd.SysProcAttr = meshProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		_ = os.RemoveAll(workDir)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(workDir)
		return nil, err
	}
	exited := make(chan error, 1)
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(meshStopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = logFile.Close()
		_ = os.RemoveAll(workDir)
	}

	lines := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		if scanner.Scan() {
			lines <- scanner.Text()
		}
		close(lines)
		for scanner.Scan() {
			// Drained, so that the CLI never blocks on a full pipe.
		}
		exited <- cmd.Wait()
	}()
	fail := func(format string, args ...any) (func(), error) {
		stop()
		return nil, fmt.Errorf("%s\n%s", fmt.Sprintf(format, args...), logTail(logFile.Name(), dataDir))
	}

	var line string
	select {
	case l, ok := <-lines:
		if !ok {
			return fail("autoglm up exited before the mesh was ready")
		}
		line = l
	case <-time.After(meshReadyTimeout):
		return fail("the mesh was not ready after %s", meshReadyTimeout)
	}
	var up upOutput
	if err := json.Unmarshal([]byte(line), &up); err != nil || up.PublicAddress == "" {
		return fail("autoglm up printed %q, not its JSON ready line", line)
	}
	token, err := os.ReadFile(up.AdminTokenFile)
	if err != nil {
		return fail("reading the admin token: %v", err)
	}
	mesh.address = up.PublicAddress
	mesh.token = strings.TrimSpace(string(token))
	if up.CAFile != nil {
		mesh.caFile = *up.CAFile
	}
	return stop, nil
}

// logTail is the end of the CLI's output and of every service log, for a failure message.
func logTail(upLog, dataDir string) string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(dataDir, "logs", "*"))
	for _, file := range append([]string{upLog}, files...) {
		text, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(text)), "\n")
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(file), strings.Join(lines[max(0, len(lines)-10):], "\n"))
	}
	return b.String()
}
