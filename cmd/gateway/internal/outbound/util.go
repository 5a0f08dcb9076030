package outbound

import "crypto/x509"

type x509Certificate = x509.Certificate
