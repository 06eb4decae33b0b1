// Package helperproc runs the test binary again as a helper process (its
// TestHelperProcess), the way the tests of code that runs programs fake
// a program. Under an emulator (make unit-arm64 sets AW_TEST_EMULATOR to
// qemu-aarch64) the helper is started through it: a binary of another
// architecture cannot be executed directly unless binfmt_misc is set up on
// the host, which the suite does not touch.
package helperproc

import (
	"os"
	"os/exec"
	"path/filepath"
)

// Argv is the command line that runs the test binary's TestHelperProcess,
// then args. Its program is an absolute path, as exec checks require (they
// start programs without a PATH lookup).
func Argv(args ...string) []string {
	argv := []string{absolute(os.Args[0]), "-test.run=TestHelperProcess"}
	if emu := os.Getenv("AW_TEST_EMULATOR"); emu != "" {
		if path, err := exec.LookPath(emu); err == nil {
			emu = absolute(path)
		}
		argv = append([]string{emu}, argv...)
	}
	return append(argv, args...)
}

func absolute(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// Command is Argv as an *exec.Cmd.
func Command(args ...string) *exec.Cmd {
	argv := Argv(args...)
	return exec.Command(argv[0], argv[1:]...)
}
