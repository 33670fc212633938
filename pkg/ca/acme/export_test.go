package acme

import "crypto/x509"

// AccountKeyForTest is the account's private key (PKCS #8 DER), for the test that looks for it in
// the database file.
func (c *Client) AccountKeyForTest() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		panic(err)
	}
	return der
}
