package main

import "testing"

// usageCase is a command line that must be refused before anything runs: the arguments after
// the subcommand, and what the one line on stderr must hold.
type usageCase struct {
	name string
	args []string
	want string
}

// refusesAll runs `ipsecpath sub ARGS...` for each case, as a subtest of its name (or of
// its want, when it has no name), and checks the contract for usage errors: exit 2, nothing
// on stdout, one line on stderr holding the case's want (oneLine).
func refusesAll(t *testing.T, sub string, cases []usageCase) {
	t.Helper()
	for _, c := range cases {
		name := c.name
		if name == "" {
			name = c.want
		}
		t.Run(name, func(t *testing.T) {
			code, out, errs := runCLI(t, append([]string{sub}, c.args...)...)
			oneLine(t, code, out, errs, c.want)
		})
	}
}
