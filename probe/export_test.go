package probe

import (
	"context"

	"github.com/ipsecpath/ipsecpath/report"
)

// The check's seam for the tests of package probe_test: probe/probetest's fakes import
// probe, so the tests that run the check on them cannot be in package probe.
type (
	CheckEnv      = checkEnv
	CheckSender   = checkSender
	CheckObserver = checkObserver
	CheckAgent    = checkAgent
)

// CheckWith is Check on env, without the local target check.
func CheckWith(ctx context.Context, cfg CheckConfig, env CheckEnv) (*report.Report, error) {
	return check(ctx, cfg, env)
}

// MinSilenceWindow is the floor of the deadline for silence (check_rto.go).
const MinSilenceWindow = minSilenceWindow

// CheckCollectInterval is how often the run looks for answers without a capture wake-up.
const CheckCollectInterval = checkCollectInterval

// AgentPollInterval is how often the run asks the agent for its report.
const AgentPollInterval = agentPollInterval
