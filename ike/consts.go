package ike

import "strconv"

// Version is the version byte of the header: major version in the high nibble.
const (
	VersionIKEv1 uint8 = 0x10 // ISAKMP 1.0
	VersionIKEv2 uint8 = 0x20 // IKEv2 2.0
)

// HeaderLen is the size of the IKE/ISAKMP header.
const HeaderLen = 28

// genericHeaderLen is the size of the generic payload header (next, flags, length).
const genericHeaderLen = 4

// MaxMessageLen bounds what DecodeFromBytes accepts: the header's length is 32 bits, a UDP
// datagram carries at most 65507 bytes.
const MaxMessageLen = 65535

// MaxPayloads is how many payloads one message may carry; Message keeps them in a fixed
// array so decoding allocates nothing. Real first messages carry fewer than 20.
const MaxPayloads = 64

// ExchangeType is the header's exchange type.
type ExchangeType uint8

// Exchange types of RFC 2408/2409 (IKEv1) and RFC 7296 (IKEv2).
const (
	ExchangeIdentityProtection ExchangeType = 2  // IKEv1 Main Mode
	ExchangeAggressive         ExchangeType = 4  // IKEv1 Aggressive Mode
	ExchangeInformationalV1    ExchangeType = 5  // IKEv1 Informational
	ExchangeQuickMode          ExchangeType = 32 // IKEv1 Quick Mode
	ExchangeIKESAInit          ExchangeType = 34 // IKEv2 IKE_SA_INIT
	ExchangeIKEAuth            ExchangeType = 35 // IKEv2 IKE_AUTH
	ExchangeCreateChildSA      ExchangeType = 36 // IKEv2 CREATE_CHILD_SA
	ExchangeInformational      ExchangeType = 37 // IKEv2 INFORMATIONAL
)

func (e ExchangeType) String() string {
	switch e {
	case ExchangeIdentityProtection:
		return "Main Mode"
	case ExchangeAggressive:
		return "Aggressive Mode"
	case ExchangeInformationalV1:
		return "Informational (IKEv1)"
	case ExchangeQuickMode:
		return "Quick Mode"
	case ExchangeIKESAInit:
		return "IKE_SA_INIT"
	case ExchangeIKEAuth:
		return "IKE_AUTH"
	case ExchangeCreateChildSA:
		return "CREATE_CHILD_SA"
	case ExchangeInformational:
		return "INFORMATIONAL"
	}
	return "exchange " + strconv.Itoa(int(e))
}

// Header flags.
const (
	FlagV1Encryption uint8 = 0x01 // IKEv1: payloads after the header are encrypted
	FlagV1Commit     uint8 = 0x02
	FlagV1AuthOnly   uint8 = 0x04
	FlagInitiator    uint8 = 0x08 // IKEv2: sent by the original initiator
	FlagVersion      uint8 = 0x10 // IKEv2: sender can speak a higher major version
	FlagResponse     uint8 = 0x20 // IKEv2: this is a response
)

// PayloadType is the type in a next-payload field.
type PayloadType uint8

// Payload types: IKEv1 (RFC 2408 §3.1, RFC 3947) and IKEv2 (RFC 7296 §3.2, RFC 7383).
const (
	PayloadNone        PayloadType = 0
	PayloadSAv1        PayloadType = 1
	PayloadProposalV1  PayloadType = 2
	PayloadTransformV1 PayloadType = 3
	PayloadKEv1        PayloadType = 4
	PayloadIDv1        PayloadType = 5
	PayloadCertV1      PayloadType = 6
	PayloadCertReqV1   PayloadType = 7
	PayloadHashV1      PayloadType = 8
	PayloadSigV1       PayloadType = 9
	PayloadNonceV1     PayloadType = 10
	PayloadNotifyV1    PayloadType = 11
	PayloadDeleteV1    PayloadType = 12
	PayloadVendorIDV1  PayloadType = 13
	PayloadNATDV1      PayloadType = 20  // RFC 3947
	PayloadNATOAV1     PayloadType = 21  // RFC 3947
	PayloadNATDDraft   PayloadType = 130 // draft-ietf-ipsec-nat-t-ike-02/03
	PayloadFragmentV1  PayloadType = 132 // IKEv1 fragment (Cisco, strongSwan, Windows)
	PayloadSA          PayloadType = 33
	PayloadKE          PayloadType = 34
	PayloadIDi         PayloadType = 35
	PayloadIDr         PayloadType = 36
	PayloadCert        PayloadType = 37
	PayloadCertReq     PayloadType = 38
	PayloadAuth        PayloadType = 39
	PayloadNonce       PayloadType = 40
	PayloadNotify      PayloadType = 41
	PayloadDelete      PayloadType = 42
	PayloadVendorID    PayloadType = 43
	PayloadTSi         PayloadType = 44
	PayloadTSr         PayloadType = 45
	PayloadSK          PayloadType = 46
	PayloadCP          PayloadType = 47
	PayloadEAP         PayloadType = 48
	PayloadSKF         PayloadType = 53 // RFC 7383 encrypted fragment
)

var payloadNames = map[PayloadType]string{
	PayloadSAv1: "SA", PayloadProposalV1: "Proposal", PayloadTransformV1: "Transform",
	PayloadKEv1: "KE", PayloadIDv1: "ID", PayloadCertV1: "CERT", PayloadCertReqV1: "CERTREQ",
	PayloadHashV1: "HASH", PayloadSigV1: "SIG", PayloadNonceV1: "Nonce", PayloadNotifyV1: "N",
	PayloadDeleteV1: "D", PayloadVendorIDV1: "VID", PayloadNATDV1: "NAT-D", PayloadNATOAV1: "NAT-OA",
	PayloadNATDDraft: "NAT-D (draft)", PayloadFragmentV1: "FRAG",
	PayloadSA: "SA", PayloadKE: "KE", PayloadIDi: "IDi", PayloadIDr: "IDr", PayloadCert: "CERT",
	PayloadCertReq: "CERTREQ", PayloadAuth: "AUTH", PayloadNonce: "Ni/Nr", PayloadNotify: "N",
	PayloadDelete: "D", PayloadVendorID: "V", PayloadTSi: "TSi", PayloadTSr: "TSr", PayloadSK: "SK",
	PayloadCP: "CP", PayloadEAP: "EAP", PayloadSKF: "SKF",
}

func (p PayloadType) String() string {
	if n, ok := payloadNames[p]; ok {
		return n
	}
	return "payload " + strconv.Itoa(int(p))
}

// NotifyType is the Notify Message Type of a notify payload; IKEv1 and IKEv2 share the
// error numbers below 8192 that matter here.
type NotifyType uint16

// Notify types (RFC 2408 §3.14.1, RFC 7296 §3.10.1, RFC 7383, RFC 7427).
const (
	NotifyInvalidPayloadType        NotifyType = 1 // IKEv1; IKEv2: UNSUPPORTED_CRITICAL_PAYLOAD
	NotifyInvalidCookie             NotifyType = 4 // IKEv1 INVALID_COOKIE; IKEv2 INVALID_IKE_SPI
	NotifyInvalidMajorVersion       NotifyType = 5
	NotifyInvalidSyntax             NotifyType = 7 // IKEv1 INVALID_EXCHANGE_TYPE
	NotifyInvalidMessageID          NotifyType = 9
	NotifyInvalidSPI                NotifyType = 11
	NotifyNoProposalChosen          NotifyType = 14
	NotifyBadProposalSyntax         NotifyType = 15 // IKEv1
	NotifyPayloadMalformed          NotifyType = 16 // IKEv1
	NotifyInvalidKEPayload          NotifyType = 17 // IKEv2 (IKEv1: INVALID_KEY_INFORMATION)
	NotifyAuthenticationFailed      NotifyType = 24
	NotifyTemporaryFailure          NotifyType = 43
	NotifyInitialContact            NotifyType = 16384
	NotifyNATDetectionSourceIP      NotifyType = 16388
	NotifyNATDetectionDestinationIP NotifyType = 16389
	NotifyCookie                    NotifyType = 16390
	NotifyMOBIKESupported           NotifyType = 16396
	NotifyMultipleAuthSupported     NotifyType = 16404
	NotifyRedirectSupported         NotifyType = 16406
	NotifyChildlessIKEv2Supported   NotifyType = 16418
	NotifyFragmentationSupported    NotifyType = 16430 // IKEV2_FRAGMENTATION_SUPPORTED, RFC 7383
	NotifySignatureHashAlgorithms   NotifyType = 16431 // RFC 7427
	NotifyIntermediateSupported     NotifyType = 16438
)

var notifyNames = map[NotifyType]string{
	NotifyInvalidPayloadType: "INVALID_PAYLOAD_TYPE", 2: "DOI_NOT_SUPPORTED", 3: "SITUATION_NOT_SUPPORTED",
	NotifyInvalidCookie: "INVALID_IKE_SPI", NotifyInvalidMajorVersion: "INVALID_MAJOR_VERSION",
	6: "INVALID_MINOR_VERSION", NotifyInvalidSyntax: "INVALID_SYNTAX", 8: "INVALID_FLAGS",
	NotifyInvalidMessageID: "INVALID_MESSAGE_ID", 10: "INVALID_PROTOCOL_ID", NotifyInvalidSPI: "INVALID_SPI",
	12: "INVALID_TRANSFORM_ID", 13: "ATTRIBUTES_NOT_SUPPORTED", NotifyNoProposalChosen: "NO_PROPOSAL_CHOSEN",
	NotifyBadProposalSyntax: "BAD_PROPOSAL_SYNTAX", NotifyPayloadMalformed: "PAYLOAD_MALFORMED",
	NotifyInvalidKEPayload: "INVALID_KE_PAYLOAD", 18: "INVALID_ID_INFORMATION",
	NotifyAuthenticationFailed: "AUTHENTICATION_FAILED", 34: "SINGLE_PAIR_REQUIRED", 35: "NO_ADDITIONAL_SAS",
	38: "TS_UNACCEPTABLE", NotifyTemporaryFailure: "TEMPORARY_FAILURE",
	NotifyInitialContact: "INITIAL_CONTACT", 16385: "SET_WINDOW_SIZE",
	NotifyNATDetectionSourceIP: "NAT_DETECTION_SOURCE_IP", NotifyNATDetectionDestinationIP: "NAT_DETECTION_DESTINATION_IP",
	NotifyCookie: "COOKIE", 16391: "USE_TRANSPORT_MODE", NotifyMOBIKESupported: "MOBIKE_SUPPORTED",
	NotifyMultipleAuthSupported: "MULTIPLE_AUTH_SUPPORTED", NotifyRedirectSupported: "REDIRECT_SUPPORTED",
	NotifyChildlessIKEv2Supported: "CHILDLESS_IKEV2_SUPPORTED", NotifyFragmentationSupported: "IKEV2_FRAGMENTATION_SUPPORTED",
	NotifySignatureHashAlgorithms: "SIGNATURE_HASH_ALGORITHMS", NotifyIntermediateSupported: "INTERMEDIATE_EXCHANGE_SUPPORTED",
	24576: "RESPONDER-LIFETIME", 24578: "INITIAL-CONTACT (IKEv1)", 36136: "R-U-THERE", 36137: "R-U-THERE-ACK",
}

func (n NotifyType) String() string {
	if s, ok := notifyNames[n]; ok {
		return s
	}
	return "notify " + strconv.Itoa(int(n))
}

// Error reports whether n is an error notify (below 16384): a refusal.
func (n NotifyType) Error() bool { return n > 0 && n < 16384 }

// TransformType is an IKEv2 transform type (RFC 7296 §3.3.2).
type TransformType uint8

// IKEv2 transform types.
const (
	TransformENCR  TransformType = 1
	TransformPRF   TransformType = 2
	TransformINTEG TransformType = 3
	TransformDH    TransformType = 4
	TransformESN   TransformType = 5
)

func (t TransformType) String() string {
	switch t {
	case TransformENCR:
		return "ENCR"
	case TransformPRF:
		return "PRF"
	case TransformINTEG:
		return "INTEG"
	case TransformDH:
		return "DH"
	case TransformESN:
		return "ESN"
	}
	return "transform-type " + strconv.Itoa(int(t))
}

// IKEv2 transform ids (IANA "IKEv2 Transform Type N Transform IDs").
const (
	EncrDES3            uint16 = 3
	EncrAESCBC          uint16 = 12
	EncrAESCTR          uint16 = 13
	EncrAESGCM8         uint16 = 18
	EncrAESGCM12        uint16 = 19
	EncrAESGCM16        uint16 = 20
	EncrChaCha20Poly    uint16 = 28
	PRFHMACMD5          uint16 = 1
	PRFHMACSHA1         uint16 = 2
	PRFAESXCBC          uint16 = 4
	PRFHMACSHA256       uint16 = 5
	PRFHMACSHA384       uint16 = 6
	PRFHMACSHA512       uint16 = 7
	IntegHMACMD596      uint16 = 1
	IntegHMACSHA196     uint16 = 2
	IntegAESXCBC96      uint16 = 5
	IntegHMACSHA256128  uint16 = 12
	IntegHMACSHA384192  uint16 = 13
	IntegHMACSHA512256  uint16 = 14
	AttrKeyLength       uint16 = 14 // IKEv2 transform attribute and IKEv1 SA attribute "Key Length"
	protoIKE            uint8  = 1  // proposal protocol id: IKE / ISAKMP
	situationIdentityV1 uint32 = 1  // SIT_IDENTITY_ONLY
	doiIPsecV1          uint32 = 1  // IPSEC DOI
	transformKeyIKEV1   uint8  = 1  // KEY_IKE
)

var transformNames = map[TransformType]map[uint16]string{
	TransformENCR: {1: "DES_IV64", 2: "DES", EncrDES3: "3DES", 6: "CAST", 7: "BLOWFISH", EncrAESCBC: "AES_CBC",
		EncrAESCTR: "AES_CTR", 14: "AES_CCM_8", 16: "AES_CCM_16", EncrAESGCM8: "AES_GCM_8", EncrAESGCM12: "AES_GCM_12",
		EncrAESGCM16: "AES_GCM_16", 23: "CAMELLIA_CBC", EncrChaCha20Poly: "CHACHA20_POLY1305"},
	TransformPRF: {PRFHMACMD5: "PRF_HMAC_MD5", PRFHMACSHA1: "PRF_HMAC_SHA1", PRFAESXCBC: "PRF_AES128_XCBC",
		PRFHMACSHA256: "PRF_HMAC_SHA2_256", PRFHMACSHA384: "PRF_HMAC_SHA2_384", PRFHMACSHA512: "PRF_HMAC_SHA2_512", 8: "PRF_AES128_CMAC"},
	TransformINTEG: {IntegHMACMD596: "HMAC_MD5_96", IntegHMACSHA196: "HMAC_SHA1_96", IntegAESXCBC96: "AES_XCBC_96",
		8: "AES_CMAC_96", IntegHMACSHA256128: "HMAC_SHA2_256_128", IntegHMACSHA384192: "HMAC_SHA2_384_192",
		IntegHMACSHA512256: "HMAC_SHA2_512_256"},
	TransformESN: {0: "NO_ESN", 1: "ESN"},
}

// TransformName names an IKEv2 transform id ("AES_CBC", "PRF_HMAC_SHA2_256", "CURVE_25519").
func TransformName(t TransformType, id uint16) string {
	if t == TransformDH {
		return Group(id).String()
	}
	if n, ok := transformNames[t][id]; ok {
		return n
	}
	return t.String() + "-" + strconv.Itoa(int(id))
}

// Group is a Diffie-Hellman group number, shared by IKEv1 and IKEv2 (IANA).
type Group uint16

// Diffie-Hellman groups.
const (
	MODP768    Group = 1
	MODP1024   Group = 2
	MODP1536   Group = 5
	MODP2048   Group = 14
	MODP3072   Group = 15
	MODP4096   Group = 16
	MODP6144   Group = 17
	MODP8192   Group = 18
	ECP256     Group = 19
	ECP384     Group = 20
	ECP521     Group = 21
	Curve25519 Group = 31
	Curve448   Group = 32
)

var groupInfo = map[Group]struct {
	name string
	len  int // public value length in bytes (RFC 7296 §3.4, RFC 5903, RFC 8031)
}{
	MODP768: {"MODP_768", 96}, MODP1024: {"MODP_1024", 128}, MODP1536: {"MODP_1536", 192},
	MODP2048: {"MODP_2048", 256}, MODP3072: {"MODP_3072", 384}, MODP4096: {"MODP_4096", 512},
	MODP6144: {"MODP_6144", 768}, MODP8192: {"MODP_8192", 1024},
	ECP256: {"ECP_256", 64}, ECP384: {"ECP_384", 96}, ECP521: {"ECP_521", 132},
	Curve25519: {"CURVE_25519", 32}, Curve448: {"CURVE_448", 56},
}

func (g Group) String() string {
	if i, ok := groupInfo[g]; ok {
		return i.name
	}
	return "DH-" + strconv.Itoa(int(g))
}

// PublicLen is the length of a key-exchange public value for the group, 0 if unknown.
func (g Group) PublicLen() int { return groupInfo[g].len }

// IKEv1 SA attribute types (RFC 2409 Appendix A).
const (
	AttrEncryption   uint16 = 1
	AttrHash         uint16 = 2
	AttrAuthMethod   uint16 = 3
	AttrGroup        uint16 = 4
	AttrLifeType     uint16 = 11
	AttrLifeDuration uint16 = 12
)

// IKEv1 attribute values.
const (
	EncV1DES3    uint16 = 5
	EncV1AESCBC  uint16 = 7 // RFC 3602; key length attribute required
	HashV1MD5    uint16 = 1
	HashV1SHA1   uint16 = 2
	HashV1SHA256 uint16 = 4
	HashV1SHA384 uint16 = 5
	HashV1SHA512 uint16 = 6
	LifeSeconds  uint16 = 1
	LifeKBytes   uint16 = 2
)

// AuthMethod is an IKEv1 authentication method attribute value.
type AuthMethod uint16

// IKEv1 authentication methods. GSSKerberos is the value Windows uses for Kerberos (GSS-API)
// authentication; it collides with XAUTHInitPreShared of draft-beaulieu-ike-xauth (ike-scan's
// --help: "GSS (Windows "Kerberos") is 65001. XAUTH uses 65001 to 65010").
const (
	AuthPSK         AuthMethod = 1
	AuthDSS         AuthMethod = 2
	AuthRSASig      AuthMethod = 3
	AuthRSAEnc      AuthMethod = 4
	AuthECDSA256    AuthMethod = 9
	AuthHybridRSA   AuthMethod = 64221
	AuthGSSKerberos AuthMethod = 65001
)

func (a AuthMethod) String() string {
	switch a {
	case AuthPSK:
		return "PSK"
	case AuthDSS:
		return "DSS"
	case AuthRSASig:
		return "RSA-Sig"
	case AuthRSAEnc:
		return "RSA-Enc"
	case AuthECDSA256:
		return "ECDSA-256"
	case AuthHybridRSA:
		return "Hybrid-RSA"
	case AuthGSSKerberos:
		return "GSS-Kerberos"
	}
	return "auth-" + strconv.Itoa(int(a))
}

// EncV1Name and HashV1Name name IKEv1 attribute values.
func EncV1Name(v uint16) string {
	switch v {
	case 1:
		return "DES"
	case EncV1DES3:
		return "3DES"
	case EncV1AESCBC:
		return "AES"
	case 8:
		return "Camellia"
	}
	return "enc-" + strconv.Itoa(int(v))
}

// HashV1Name names an IKEv1 hash attribute value.
func HashV1Name(v uint16) string {
	switch v {
	case HashV1MD5:
		return "MD5"
	case HashV1SHA1:
		return "SHA1"
	case HashV1SHA256:
		return "SHA2-256"
	case HashV1SHA384:
		return "SHA2-384"
	case HashV1SHA512:
		return "SHA2-512"
	}
	return "hash-" + strconv.Itoa(int(v))
}
