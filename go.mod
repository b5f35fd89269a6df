module github.com/ipsecpath/ipsecpath

go 1.26.8

require (
	github.com/google/gopacket v1.1.19
	github.com/spf13/pflag v1.1.0
	github.com/vishvananda/netlink v1.3.1
	github.com/vishvananda/netns v0.0.5
	golang.org/x/net v0.62.0
)

require golang.org/x/sys v0.49.0

require (
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3 // indirect
	golang.org/x/text v0.43.0 // indirect
)
