package probe

// WithPathMTUSearches returns cfg with the pmtu probe on and its searches opened by open
// (reverse false: toward the target; true: back, nil for none) instead of the real probers.
func WithPathMTUSearches(cfg CheckConfig, open func(reverse bool) (PathMTUSearch, error)) CheckConfig {
	cfg.PathMTU.Enabled = true
	cfg.pmtuSearch = open
	return cfg
}
