package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/ipsecpath/ipsecpath/report"
)

func init() {
	register(&command{
		name:     "pcap",
		synopsis: "explain FILE",
		summary:  "read a --pcap file back: per probe, what left one end and what reached the other",
		long: `'check --pcap FILE' writes every packet it sent and captured at both ends (interfaces
"initiator" and "agent"), each with a note naming its probe, direction, attempt, role and
fragment. 'pcap explain' reads those notes from the file alone and prints, per probe and
direction, a line of outcome (reached the far end whole, in part, or never) and per attempt
the fragments that left, the fragments that arrived, answers and ICMP errors, and the SPIs
and message ID of IKE packets, so the two ends can be matched the way the troubleshooting
guides match two captures. The section header's comments (the clock offset between the
ends) come first, as lines starting with '#'.

Exit status: 0 the file was read, 2 it is missing or not a pcapng file.`,
		examples: []string{
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10:7500 --key-file k --pcap run.pcapng",
			"ipsecpath pcap explain run.pcapng",
			"tshark -r run.pcapng -Y 'frame.comment contains \"probe=esp-frag\"'",
		},
		run: runPcap,
	})
}

func runPcap(_ context.Context, e *env, args []string) int {
	c := commands["pcap"]
	flags := newFlags(c)
	if done, code := parse(e, c, flags, args); done {
		return code
	}
	if flags.NArg() != 2 || flags.Arg(0) != "explain" {
		return usageError(e, c, fmt.Errorf("want 'explain FILE'"))
	}
	name := flags.Arg(1)
	f, err := os.Open(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return usageError(e, c, fmt.Errorf("%s: %w", name, err))
	}
	defer f.Close()
	pf, err := report.ReadPcap(f)
	if err != nil {
		return usageError(e, c, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "report: read ")))
	}
	if _, err := pf.Explain(e.stdout); err != nil {
		return usageError(e, c, fmt.Errorf("write: %w", err))
	}
	return exitOK
}
