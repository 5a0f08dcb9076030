package certs_test

import (
	"crypto/x509"
	"fmt"

	"github.com/perkeso/jambatan/certs"
)

// A CA's revocation list is honoured for whatever a verification builds on
// it: the listener refuses a partner's client certificate the CRL lists,
// and keeps taking the others the CA issued.
func ExampleRevocations() {
	ca, err := certs.NewCA("Example partner CA")
	if err != nil {
		fmt.Println(err)
		return
	}
	kept, _ := ca.IssueClient("employer-kept")
	revoked, _ := ca.IssueClient("employer-revoked")
	crl, err := ca.RevocationList(1, revoked.Cert)
	if err != nil {
		fmt.Println(err)
		return
	}
	r := certs.NewRevocations([]*x509.RevocationList{crl})
	for _, c := range []*certs.Issued{kept, revoked} {
		chain := []*x509.Certificate{c.Cert, ca.Cert} // as a verification builds it, leaf to anchor
		fmt.Println(c.Cert.Subject.CommonName, "revoked:", r.Revokes(chain))
	}
	// Output:
	// employer-kept revoked: false
	// employer-revoked revoked: true
}
