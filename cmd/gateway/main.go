// Command gateway is Jambatan, Perkeso's cross-border employment-injury data
// gateway. Run "gateway help" for its subcommands.
package main

import (
	"fmt"
	"os"

	_ "github.com/perkeso/jambatan/adapters/sgemployer" // sg-employer-notice/v1
)

func main() {
	fmt.Fprintln(os.Stderr, "usage: gateway <command> [flags]")
	os.Exit(2)
}
