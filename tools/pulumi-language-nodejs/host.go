package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	// The run script inside the @pulumi/pulumi npm package; it connects to the
	// resource monitor and loads the user's program.
	runModule = "@pulumi/pulumi/cmd/run"
	// Overrides where the run script is (same variable as the upstream host).
	runPathEnv = "PULUMI_LANGUAGE_NODEJS_RUN_PATH"

	// Read by @pulumi/pulumi/runtime/config.js.
	configEnv           = "PULUMI_CONFIG"
	configSecretKeysEnv = "PULUMI_CONFIG_SECRET_KEYS"
	// Read by @pulumi/pulumi/cmd/run/run.js.
	typescriptEnv = "PULUMI_NODEJS_TYPESCRIPT"
	tsconfigEnv   = "PULUMI_NODEJS_TSCONFIG_PATH"

	// The run script exits with this code after it has already shown the user
	// an actionable error; the engine must not add its own message then.
	exitedAfterLoggingUserActionableMessage = 32

	// How long a cancelled program gets between SIGTERM and SIGKILL.
	cancelGrace = 10 * time.Second
)

type hostConfig struct {
	nodeBin       string
	engineAddress string
	tracing       string
	typescript    bool
	root          string
	version       string
}

// nodeHost implements pulumirpc.LanguageRuntimeServer. Methods it does not
// define answer codes.Unimplemented through the embedded type.
type nodeHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	cfg hostConfig

	mu            sync.Mutex
	engineAddress string
	running       map[*exec.Cmd]struct{}
}

func newHost(cfg hostConfig) *nodeHost {
	return &nodeHost{cfg: cfg, engineAddress: cfg.engineAddress, running: map[*exec.Cmd]struct{}{}}
}

// Handshake records the engine address (it may also arrive as the positional
// command-line argument).
func (h *nodeHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if addr := req.GetEngineAddress(); addr != "" {
		h.mu.Lock()
		h.engineAddress = addr
		h.mu.Unlock()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *nodeHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: h.cfg.version}, nil
}

// GetRequiredPlugins reports no plugins: the dynamic-provider plugin
// (pulumi-resource-pulumi-nodejs) is found on PATH by the engine on demand, and
// this host does not scan node_modules for provider packages.
func (h *nodeHost) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

// GetRequiredPackages reports no packages, for the same reason.
func (h *nodeHost) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

// InstallDependencies does nothing: dependencies are the project's business
// (npm ci), and this machine has no internet anyway.
func (h *nodeHost) InstallDependencies(
	*pulumirpc.InstallDependenciesRequest, grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	return nil
}

func (h *nodeHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

// About reports the node executable and its version (`pulumi about`).
func (h *nodeHost) About(ctx context.Context, _ *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	out, err := exec.CommandContext(ctx, h.cfg.nodeBin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("running %s --version: %w", h.cfg.nodeBin, err)
	}
	return &pulumirpc.AboutResponse{
		Executable: h.cfg.nodeBin,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "v"),
		Metadata:   map[string]string{"languageHost": "pulumi-lxc-btrfs minimal host " + h.cfg.version},
	}, nil
}

// GetProgramDependencies lists the direct dependencies from the program's
// package.json with the versions installed in node_modules (`pulumi about`).
func (h *nodeHost) GetProgramDependencies(
	_ context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	dir := req.GetInfo().GetProgramDirectory()
	if dir == "" {
		dir = req.GetPwd() //nolint:staticcheck // fallback for old engines
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: directDependencies(dir)}, nil
}

// Cancel asks running programs to stop.
func (h *nodeHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for cmd := range h.running {
		if cmd.Process != nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	return &emptypb.Empty{}, nil
}

// Run executes the program: node <run script> <flags> <entry point>, with
// the program's stdout/stderr wired to ours (the engine shows them).
func (h *nodeHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if req.GetAttachDebugger() {
		return nil, errors.New("pulumi-language-nodejs (minimal host): --attach-debugger is not supported")
	}

	spec, err := h.buildRun(req)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	cmd := exec.CommandContext(ctx, h.cfg.nodeBin, spec.args...)
	cmd.Dir = spec.dir
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = cancelGrace

	if err := cmd.Start(); err != nil {
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}, nil
	}
	h.mu.Lock()
	h.running[cmd] = struct{}{}
	h.mu.Unlock()
	err = cmd.Wait()
	h.mu.Lock()
	delete(h.running, cmd)
	h.mu.Unlock()

	return runResult(err), nil
}

// runSpec is what Run executes: node's argv (without node), working
// directory and extra environment.
type runSpec struct {
	args []string
	dir  string
	env  []string
}

func (h *nodeHost) buildRun(req *pulumirpc.RunRequest) (runSpec, error) {
	programDir, entryPoint := programLocation(req)
	opts := runtimeOptionsFrom(req.GetInfo(), h.cfg.typescript)

	runPath := os.Getenv(runPathEnv)
	if runPath == "" {
		var err error
		runPath, err = resolveModule(h.cfg.nodeBin, runModule, programDir)
		if err != nil {
			return runSpec{}, fmt.Errorf("It looks like the Pulumi SDK has not been installed "+
				"(could not resolve %s from %s). Have you run npm install or yarn install?", runModule, programDir)
		}
	}

	h.mu.Lock()
	engine := h.engineAddress
	h.mu.Unlock()

	args := append([]string{}, opts.nodeArgs...)
	args = append(args, runPath)
	flag := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flag("monitor", req.GetMonitorAddress())
	flag("engine", engine)
	flag("organization", req.GetOrganization())
	flag("project", req.GetProject())
	flag("stack", req.GetStack())
	flag("root-directory", req.GetInfo().GetRootDirectory())
	// The run script resolves a relative entry point against --pwd, and only
	// consults package.json "main"/"exports" when the entry point is exactly ".".
	flag("pwd", programDir)
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	flag("parallel", fmt.Sprint(req.GetParallel()))
	flag("tracing", h.cfg.tracing)
	args = append(args, entryPoint)
	args = append(args, req.GetArgs()...)

	env, err := configEnvironment(req.GetConfig(), req.GetConfigSecretKeys())
	if err != nil {
		return runSpec{}, err
	}
	env = append(env, typescriptEnv+"="+fmt.Sprint(opts.typescript))
	if opts.tsconfig != "" {
		env = append(env, tsconfigEnv+"="+opts.tsconfig)
	}
	return runSpec{args: args, dir: programDir, env: env}, nil
}

// programLocation returns the absolute program directory and the entry point
// relative to it ("." means: let package.json or index.{js,ts} decide).
func programLocation(req *pulumirpc.RunRequest) (string, string) {
	dir := req.GetInfo().GetProgramDirectory()
	entry := req.GetInfo().GetEntryPoint()
	if dir == "" { // engines that predate ProgramInfo
		dir = req.GetPwd()
		entry = req.GetProgram() //nolint:staticcheck
	}
	if entry == "" {
		entry = "."
	}
	return dir, entry
}

type runtimeOptions struct {
	typescript bool
	tsconfig   string
	nodeArgs   []string
}

// runtimeOptionsFrom reads `runtime.options` from Pulumi.yaml: typescript
// (default true), tsconfig, nodeargs.
func runtimeOptionsFrom(info *pulumirpc.ProgramInfo, typescriptDefault bool) runtimeOptions {
	opts := runtimeOptions{typescript: typescriptDefault}
	m := info.GetOptions().AsMap()
	if v, ok := m["typescript"].(bool); ok {
		opts.typescript = v
	}
	if v, ok := m["tsconfig"].(string); ok {
		opts.tsconfig = v
	}
	if v, ok := m["nodeargs"].(string); ok {
		opts.nodeArgs = strings.Fields(v)
	}
	return opts
}

// configEnvironment serializes the stack configuration the way
// @pulumi/pulumi/runtime/config.js reads it: a JSON object of
// "<namespace>:<key>" to string value, and a JSON array of secret keys.
func configEnvironment(config map[string]string, secretKeys []string) ([]string, error) {
	if config == nil {
		config = map[string]string{}
	}
	if secretKeys == nil {
		secretKeys = []string{}
	}
	cfg, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("serializing configuration: %w", err)
	}
	keys, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("serializing secret configuration keys: %w", err)
	}
	return []string{configEnv + "=" + string(cfg), configSecretKeysEnv + "=" + string(keys)}, nil
}

// resolveModule asks node to resolve a module the way the program would,
// starting from dir.
func resolveModule(nodeBin, module, dir string) (string, error) {
	script := "console.log(require.resolve(process.argv[1], { paths: [process.argv[2]] }))"
	cmd := exec.Command(nodeBin, "-e", script, module, dir)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// runResult turns the program's exit status into the RunResponse the engine
// expects.
func runResult(err error) *pulumirpc.RunResponse {
	if err == nil {
		return &pulumirpc.RunResponse{}
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if status, ok := exitErr.Sys().(syscall.WaitStatus); ok {
			switch {
			case status.Exited() && status.ExitStatus() == exitedAfterLoggingUserActionableMessage:
				return &pulumirpc.RunResponse{Bail: true}
			case status.Exited():
				return &pulumirpc.RunResponse{
					Error: fmt.Sprintf("Program exited with non-zero exit code: %d", status.ExitStatus()),
				}
			case status.Signaled():
				return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program was killed by signal %v", status.Signal())}
			}
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited unexpectedly: %v", exitErr)}
	}
	return &pulumirpc.RunResponse{Error: fmt.Sprintf("Problem executing program: %v", err)}
}

// directDependencies reads dir/package.json and looks up each direct
// dependency's installed version in node_modules (walking up like node).
func directDependencies(dir string) []*pulumirpc.DependencyInfo {
	if dir == "" {
		return nil
	}
	var pkg struct {
		Dependencies    map[string]string `json:"dependencies"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return nil
	}
	names := map[string]struct{}{}
	for n := range pkg.Dependencies {
		names[n] = struct{}{}
	}
	for n := range pkg.DevDependencies {
		names[n] = struct{}{}
	}
	var deps []*pulumirpc.DependencyInfo
	for n := range names {
		if v := installedVersion(dir, n); v != "" {
			deps = append(deps, &pulumirpc.DependencyInfo{Name: n, Version: v})
		}
	}
	sort.Slice(deps, func(i, j int) bool { return deps[i].Name < deps[j].Name })
	return deps
}

func installedVersion(dir, name string) string {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "node_modules", name, "package.json"))
		if err == nil {
			var p struct {
				Version string `json:"version"`
			}
			if json.Unmarshal(b, &p) == nil {
				return p.Version
			}
			return ""
		}
		if parent := filepath.Dir(d); parent == d {
			return ""
		}
	}
}
