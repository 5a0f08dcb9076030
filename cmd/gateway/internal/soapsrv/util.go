package soapsrv

import (
	"crypto/x509"
	"encoding/json"

	"github.com/perkeso/jambatan/adapters"
)

type x509Certificate = x509.Certificate

type adaptersProblem = adapters.Problem

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
