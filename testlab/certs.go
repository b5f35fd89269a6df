package testlab

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// CertCache holds the lab PKI (CA and both gateway certificates with their RSA-4096 keys).
// Generating it takes seconds, so it is made once per machine boot and shared by every lab.
const CertCache = "/run/ipsecpath/certs"

// CertValidity is how long generated lab certificates are valid; the cache is regenerated
// when less than a day remains.
const CertValidity = 90 * 24 * time.Hour

// certRSABits makes the gateway certificates large, so IKE_AUTH (≈3.3 kB) needs IP
// fragmentation or IKE fragmentation, like Kerberos-authenticated IKE does.
const certRSABits = 4096

// GatewayID is the IKE identity (and certificate CN) of a gateway: "ini.gw.ipsecpath-lab.example".
func GatewayID(gw string) string { return gw + ".gw.ipsecpath-lab.example" }

const longOrg = "ipsecpath Lab Example Organisation for IPsec Interop and Path Testing"

// pkiFiles are the files of the cache, relative to CertCache.
var pkiFiles = []string{"ca.crt", "ini.crt", "ini.key", "rsp.crt", "rsp.key"}

// ensurePKI returns the cache directory, generating it when missing or about to expire.
// Generation holds an exclusive flock on CertCache.lock, writes into a temporary directory
// and renames it in, so a reader never sees half-written files.
func ensurePKI() (string, error) { return ensurePKIAt(CertCache) }

func ensurePKIAt(cache string) (string, error) {
	if pkiValid(cache) {
		return cache, nil
	}
	if err := os.MkdirAll(filepath.Dir(cache), 0o755); err != nil {
		return "", fmt.Errorf("testlab: certificate cache: %w", err)
	}
	// One generator at a time across processes (parallel `go test` packages).
	lock, err := os.OpenFile(cache+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("testlab: certificate cache lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("testlab: certificate cache lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if pkiValid(cache) { // another process made it while we waited
		return cache, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(cache), ".certs-*")
	if err != nil {
		return "", fmt.Errorf("testlab: certificate cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := generatePKI(tmp); err != nil {
		return "", err
	}
	_ = os.RemoveAll(cache) // expired or incomplete
	if err := os.Rename(tmp, cache); err != nil {
		return "", fmt.Errorf("testlab: install certificate cache: %w", err)
	}
	return cache, nil
}

func pkiValid(dir string) bool {
	for _, f := range pkiFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	for _, f := range []string{"ca.crt", "ini.crt", "rsp.crt"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return false
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return false
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil || time.Until(c.NotAfter) < 24*time.Hour {
			return false
		}
	}
	return true
}

func subject(ou, cn string) pkix.Name {
	return pkix.Name{
		Country: []string{"ZZ"}, Province: []string{"Nowhere State"}, Locality: []string{"Test City"},
		Organization: []string{longOrg}, OrganizationalUnit: []string{ou}, CommonName: cn,
	}
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
}

// generatePKI writes a CA and ini/rsp gateway certificates and keys (PKCS#8 PEM) into dir.
func generatePKI(dir string) error {
	now := time.Now().Add(-time.Hour)
	caKey, err := rsa.GenerateKey(rand.Reader, certRSABits)
	if err != nil {
		return fmt.Errorf("testlab: CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return fmt.Errorf("testlab: serial: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: sn, Subject: subject("Certification Authority Operations", "ipsecpath Lab Root Certification Authority"),
		NotBefore: now, NotAfter: now.Add(CertValidity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("testlab: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("testlab: CA certificate: %w", err)
	}
	if err := writePEM(filepath.Join(dir, "ca.crt"), "CERTIFICATE", caDER); err != nil {
		return err
	}
	for _, gw := range []string{NodeIni, NodeRsp} {
		key, err := rsa.GenerateKey(rand.Reader, certRSABits)
		if err != nil {
			return fmt.Errorf("testlab: %s key: %w", gw, err)
		}
		sn, err := serial()
		if err != nil {
			return fmt.Errorf("testlab: serial: %w", err)
		}
		dns := []string{GatewayID(gw)}
		for i := 1; i <= 12; i++ {
			dns = append(dns, fmt.Sprintf("alias-%d-of-a-rather-long-gateway-name.%s", i, GatewayID(gw)))
		}
		tmpl := &x509.Certificate{
			SerialNumber: sn, Subject: subject("Security Gateways and Tunnel Endpoints Department", GatewayID(gw)),
			NotBefore: now, NotAfter: now.Add(CertValidity),
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			// id-kp-ipsecIKE (RFC 4945), as openssl's extendedKeyUsage=1.3.6.1.5.5.7.3.17
			UnknownExtKeyUsage: []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 17}},
			DNSNames:           dns,
			IPAddresses:        []net.IP{net.IP(primary[gw].AsSlice())},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("testlab: %s certificate: %w", gw, err)
		}
		p8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("testlab: %s key: %w", gw, err)
		}
		if err := writePEM(filepath.Join(dir, gw+".crt"), "CERTIFICATE", der); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, gw+".key"), "PRIVATE KEY", p8); err != nil {
			return err
		}
	}
	return nil
}

func writePEM(path, typ string, der []byte) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if b == nil {
		return errors.New("testlab: pem encode " + path)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("testlab: write %s: %w", path, err)
	}
	return nil
}
