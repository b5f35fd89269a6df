// Package ike encodes and decodes the first messages of IKEv1 (ISAKMP Main Mode) and IKEv2
// (IKE_SA_INIT), so a probe can ask a gateway for an answer and read what it chose or refused.
//
// Both versions share the 28-byte header (RFC 2408 §3.1, RFC 7296 §3.1):
//
//	                     1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       IKE SA Initiator's SPI                  |
//	|                    (IKEv1: initiator cookie)                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       IKE SA Responder's SPI                  |
//	|                    (IKEv1: responder cookie)                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          Message ID                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                            Length                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// followed by a chain of payloads, each with the 4-byte generic header
// (Next Payload, Critical/Reserved, Payload Length). Message.DecodeFromBytes walks that chain
// without allocating: it slices into its input, bounds every length against what remains and
// requires the chain to end. Typed decoders (ParseSAv1, ParseSAv2, ParseNotify, …) read one
// payload's body. AppendMessage writes a message, computing lengths and the next-payload
// chain unless the caller asks it to keep wrong values on purpose.
//
// On UDP 4500 every IKE message follows a 4-byte zero non-ESP marker (RFC 3948 §2.2): see
// AppendNonESPMarker and StripNonESPMarker. Nothing here opens a socket.
package ike
