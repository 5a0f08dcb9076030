package wssec

import (
	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// excC14N serializes a detached element in exclusive canonical form.
func excC14N(el *etree.Element, prefixList string) ([]byte, error) {
	return dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(prefixList).Canonicalize(el)
}
