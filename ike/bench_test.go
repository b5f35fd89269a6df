package ike

import "testing"

func BenchmarkDecodeSAInit(b *testing.B) {
	msg, _ := BuildSAInit(nil, SAInitParams{Rand: newDetRand()})
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	var m Message
	for b.Loop() {
		if err := m.DecodeFromBytes(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMainMode3000(b *testing.B) {
	msg, _ := BuildMainMode(nil, MainModeParams{Size: 3000})
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	var m Message
	for b.Loop() {
		if err := m.DecodeFromBytes(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSAv2(b *testing.B) {
	msg, _ := BuildSAInit(nil, SAInitParams{Rand: newDetRand()})
	var m Message
	_ = m.DecodeFromBytes(msg)
	body := m.Payloads[0].Body
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSAv2(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildSAInit includes the X25519 key generation of a real initiator.
func BenchmarkBuildSAInit(b *testing.B) {
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildSAInit(buf[:0], SAInitParams{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildMainMode(b *testing.B) {
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildMainMode(buf[:0], MainModeParams{}); err != nil {
			b.Fatal(err)
		}
	}
}
