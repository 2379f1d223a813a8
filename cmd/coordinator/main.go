// Command coordinator starts, resumes and inspects jettrain runs.
// See package cli for the flags.
package main

import (
	"os"

	"github.com/jettrain/jettrain/cli"
)

func main() { os.Exit(cli.Execute(cli.Coordinator())) }
