package benchutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// RenewalCrypto measures a baseline for completed renewals: the public-key cryptography one
// hosted renewal cannot do without, alone, on every core for d. Each round generates a P-256
// key, signs a CSR with it, checks the CSR's signature (as a CA does), and signs the leaf with a
// P-256 issuer key (x509.CreateCertificate, which also verifies the signature it made) — what
// the lifecycle service and the local CA do per renewal, minus everything else (databases, DNS,
// gRPC, sealing). It returns rounds per second: the ceiling the machine's cores put on completed
// renewals/s in the same run, which makes the figure comparable across runs on a noisy machine.
func RenewalCrypto(d time.Duration) (float64, error) {
	issuerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	issuerTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "baseline issuer"},
		NotBefore: now, NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, issuerTmpl, issuerTmpl, issuerKey.Public(), issuerKey)
	if err != nil {
		return 0, err
	}
	issuer, err := x509.ParseCertificate(der)
	if err != nil {
		return 0, err
	}
	var (
		rounds   atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
		deadline = time.Now().Add(d)
	)
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for serial := int64(2); time.Now().Before(deadline); serial++ {
				if err := renewalRound(issuer, issuerKey, serial); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				rounds.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(rounds.Load()) / time.Since(start).Seconds(), firstErr
}

func renewalRound(issuer *x509.Certificate, issuerKey *ecdsa.PrivateKey, serial int64) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"www.example.com"}}, key)
	if err != nil {
		return err
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return err
	}
	if err := csr.CheckSignature(); err != nil {
		return err
	}
	now := time.Now()
	leaf := &x509.Certificate{SerialNumber: big.NewInt(serial), DNSNames: csr.DNSNames, NotBefore: now, NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	_, err = x509.CreateCertificate(rand.Reader, leaf, issuer, csr.PublicKey, issuerKey)
	return err
}
