package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestBuildRunArgumentsAndEnvironment(t *testing.T) {
	t.Setenv(runPathEnv, "/sdk/cmd/run/index.js")
	opts, err := structpb.NewStruct(map[string]any{"typescript": false, "nodeargs": "--max-old-space-size=512"})
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(hostConfig{nodeBin: "node", engineAddress: "127.0.0.1:1", typescript: true, tracing: ""})
	spec, err := h.buildRun(&pulumirpc.RunRequest{
		MonitorAddress:   "127.0.0.1:2",
		Project:          "proj",
		Stack:            "dev",
		Organization:     "organization",
		Pwd:              "/p",
		DryRun:           true,
		Parallel:         16,
		Config:           map[string]string{"proj:greeting": "hi"},
		ConfigSecretKeys: []string{"proj:password"},
		Info:             &pulumirpc.ProgramInfo{RootDirectory: "/p", ProgramDirectory: "/p", EntryPoint: ".", Options: opts},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"--max-old-space-size=512", "/sdk/cmd/run/index.js",
		"--monitor", "127.0.0.1:2", "--engine", "127.0.0.1:1", "--organization", "organization",
		"--project", "proj", "--stack", "dev", "--root-directory", "/p", "--pwd", "/p",
		"--dry-run", "--parallel", "16", ".",
	}
	if !slices.Equal(spec.args, want) {
		t.Errorf("args:\n got %q\nwant %q", spec.args, want)
	}
	if spec.dir != "/p" {
		t.Errorf("dir = %q", spec.dir)
	}
	for _, e := range []string{
		`PULUMI_CONFIG={"proj:greeting":"hi"}`,
		`PULUMI_CONFIG_SECRET_KEYS=["proj:password"]`,
		"PULUMI_NODEJS_TYPESCRIPT=false",
	} {
		if !slices.Contains(spec.env, e) {
			t.Errorf("env lacks %s: %q", e, spec.env)
		}
	}
}

func TestHandshakeEngineAddressWins(t *testing.T) {
	t.Setenv(runPathEnv, "/run")
	h := newHost(hostConfig{nodeBin: "node", engineAddress: "old", typescript: true})
	if _, err := h.Handshake(t.Context(), &pulumirpc.LanguageHandshakeRequest{EngineAddress: "new"}); err != nil {
		t.Fatal(err)
	}
	spec, err := h.buildRun(&pulumirpc.RunRequest{MonitorAddress: "m", Pwd: "/x", Program: "main.js"})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(spec.args, " ")
	if !strings.Contains(joined, "--engine new") || !strings.HasSuffix(joined, " main.js") {
		t.Errorf("args = %q", joined)
	}
	if !slices.Contains(spec.env, "PULUMI_NODEJS_TYPESCRIPT=true") || !slices.Contains(spec.env, "PULUMI_CONFIG={}") {
		t.Errorf("env = %q", spec.env)
	}
}

func TestRunResult(t *testing.T) {
	if r := runResult(nil); r.Error != "" || r.Bail {
		t.Errorf("success: %v", r)
	}
	err := exec.Command("sh", "-c", "exit 32").Run()
	if r := runResult(err); !r.Bail || r.Error != "" {
		t.Errorf("exit 32 must bail silently: %v", r)
	}
	err = exec.Command("sh", "-c", "exit 3").Run()
	if r := runResult(err); r.Error != "Program exited with non-zero exit code: 3" {
		t.Errorf("exit 3: %v", r)
	}
}
