package localca

import "crypto/x509"

// SecretsForTest are the CA's private keys (PKCS #8 DER) and validation secret, for the test that
// looks for them in the database file.
func (c *CA) SecretsForTest() [][]byte {
	var out [][]byte
	for _, is := range []*issuer{c.root, c.intermediate} {
		der, err := x509.MarshalPKCS8PrivateKey(is.key)
		if err != nil {
			panic(err)
		}
		out = append(out, der)
	}
	return append(out, c.secret)
}
