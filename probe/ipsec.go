package probe

// The bounded decoders of the headers the capture sees: IPv4 (as captured, before
// reassembly), ESP (RFC 4303) and AH (RFC 4302). They are probe/wire's; these are their
// names in probe.

import "github.com/ipsecpath/ipsecpath/probe/wire"

// Sentinel errors of the decoders. Wrapped errors name the field. The IPv4 ones are
// probe/wire's, whose decoder this package uses.
var (
	ErrTruncated   = wire.ErrTruncated
	ErrNotIPv4     = wire.ErrNotIPv4
	ErrBadIHL      = wire.ErrBadIHL
	ErrBadAHLength = wire.ErrBadAHLength
)

// IPv4 header sizes.
const (
	ipv4MinHeader = wire.IPv4HeaderLen    // without options
	ipv4MaxHeader = wire.IPv4MaxHeaderLen // IHL 15
)

// IP protocol numbers the probes use.
const (
	ProtoICMP = wire.ProtoICMP
	ProtoTCP  = wire.ProtoTCP
	ProtoUDP  = wire.ProtoUDP
	ProtoESP  = wire.ProtoESP
	ProtoAH   = wire.ProtoAH
	protoNone = wire.ProtoNone // IPv6-NoNxt: "no next header", what our AH probes protect
)

// IPv4Header is a decoded IPv4 header in wire form (probe/wire's codec): DecodeFromBytes
// slices Options and Payload from the input, MarshalTo writes one.
type IPv4Header = wire.IPv4Header

// ESPHeader is the cleartext start of an ESP packet: SPI and sequence number (probe/wire's
// decoder).
type ESPHeader = wire.ESPHeader

// AHHeader is an Authentication Header (RFC 4302), probe/wire's decoder.
type AHHeader = wire.AHHeader
