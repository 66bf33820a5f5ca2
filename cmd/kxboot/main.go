// Command kxboot boots the kernel its owner chooses through kexec. All the
// work is in internal/cli; this is only the entry point.
package main

import (
	"os"

	"github.com/kxboot/kxboot/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
