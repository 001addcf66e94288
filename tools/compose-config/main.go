// compose-config loads a compose file with Compose's own loader (compose-go, the library
// `docker compose` is built on) the way `docker compose config` does, and prints the resolved
// project as JSON: variables interpolated from the environment it runs with (and `.env`, unless
// COMPOSE_DISABLE_ENV_FILE is set), profiles applied, services of inactive profiles left out.
// It needs no Docker engine. Usage:
//
//	compose-config [-f docker-compose.yml]... [--profile NAME]... [--env-file FILE]...
//
// A file that does not load (a required variable unset, an invalid file) exits 1 with
// Compose's message on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

// repeated collects a flag given several times, as docker compose's -f and --profile are.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	var files, profiles, envFiles repeated
	flag.Var(&files, "f", "compose file (repeatable; default: COMPOSE_FILE or the compose file of this directory)")
	flag.Var(&profiles, "profile", "profile to enable (repeatable; default: COMPOSE_PROFILES)")
	flag.Var(&envFiles, "env-file", "environment file (repeatable; default: .env)")
	flag.Parse()

	if err := run(files, profiles, envFiles); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(files, profiles, envFiles []string) error {
	pwd, err := os.Getwd()
	if err != nil {
		return err
	}
	// The same options, in the same order, as docker compose's own project loading.
	options, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(""),
		cli.WithOsEnv,
		cli.WithEnv([]string{"PWD=" + pwd}),
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		cli.WithDefaultProfiles(profiles...),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return err
	}
	out, err := project.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(out))
	return err
}
