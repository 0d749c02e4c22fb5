// Command pulumi-language-nodejs is a minimal Pulumi language host for
// Node.js programs.
//
// Why it exists: the upstream host lives in an untagged Go module that the
// Go module proxy reachable from our machines refuses to serve, and the npm
// package `pulumi` only downloads prebuilt binaries from the internet. The
// Pulumi CLI itself builds fine from the proxy (see scripts/pulumi-install.sh),
// so this host fills the one missing piece.
//
// Scope: enough of pulumirpc.LanguageRuntime for `pulumi preview`, `up`,
// `refresh`, `destroy` and `stack export` of a Node.js program (JavaScript or
// TypeScript) that uses @pulumi/pulumi. It does not install npm packages,
// generate code or report plugins found in node_modules (every plugin has to
// be on PATH or in the plugin cache already, which fits an offline machine
// with PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true). Everything else
// answers Unimplemented.
//
// Protocol, as the engine expects it from every plugin:
//   - started as `pulumi-language-nodejs [flags] <engine-address>`;
//   - prints the TCP port of its gRPC server as the first line of stdout;
//   - anything written to stdout/stderr afterwards is shown by the CLI.
//
// Running a program means spawning `node <@pulumi/pulumi/cmd/run> --monitor
// ... <program>` with the stack configuration in PULUMI_CONFIG and
// PULUMI_CONFIG_SECRET_KEYS; the run script in the npm package does the rest
// (TypeScript via ts-node, the Stack resource, shutdown).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// version is stamped by the install script with -ldflags "-X main.version=vX.Y.Z";
// it matches the Pulumi CLI and @pulumi/pulumi version it was built for.
var version = "v0.0.0-dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(argv []string) int {
	flags := flag.NewFlagSet("pulumi-language-nodejs", flag.ContinueOnError)
	tracing := flags.String("tracing", "", "Zipkin-compatible tracing endpoint, passed on to the program")
	typescript := flags.Bool("typescript", true,
		"run TypeScript programs through ts-node unless the project's runtime options say otherwise")
	root := flags.String("root", "", "project root directory (informational)")
	// Flags the engine passes to every plugin when verbose logging flows down.
	flags.Bool("logtostderr", false, "accepted for compatibility; ignored")
	flags.Bool("logflow", false, "accepted for compatibility; ignored")
	flags.Int("v", 0, "accepted for compatibility; ignored")
	if err := flags.Parse(argv); err != nil {
		return 2
	}

	nodeBin, err := exec.LookPath("node")
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: could not find node on the $PATH: %v\n", err)
		return 1
	}

	engineAddress := ""
	if flags.NArg() > 0 {
		engineAddress = flags.Arg(0)
	}

	host := newHost(hostConfig{
		nodeBin:       nodeBin,
		engineAddress: engineAddress,
		tracing:       *tracing,
		typescript:    *typescript,
		root:          *root,
		version:       version,
	})

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: could not start the gRPC server: %v\n", err)
		return 1
	}

	// The engine reads the port from our first line of stdout.
	fmt.Printf("%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: gRPC server stopped: %v\n", err)
		return 1
	}
	return 0
}
