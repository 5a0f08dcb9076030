package config

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// reloadable are the settings a reload (SIGHUP) applies, as dotted paths of
// the file's JSON names: the partner registry, the server's TLS material,
// the receipt key, the SOAP signing and outbound client certificates, the
// back office's request keys (added or removed, the gateway's reload says
// itself that it takes a restart), and who may use the operator listener.
// The gateway builds everything else once, when it starts.
var reloadable = []string{
	"tls", "receipt_key_file", "partners",
	"soap.signing_cert_file", "soap.signing_key_file",
	"outbound.client_cert_file", "outbound.client_key_file", "outbound.request_signers_file",
	"operator.client_ca_file", "operator.allowed_cns", "operator.crl_files", "operator.roles",
}

// RestartOnly names the settings, as dotted paths ("limits.max_connections",
// "kafka.brokers"), that differ between the file c was loaded from and the
// one next was, and that a reload does not apply: an operator who changed
// one and sent SIGHUP would otherwise believe it in force. Each side is its
// file as read, so what a command set for its run is no change: gateway
// dev's broker address and ops listener, which every SIGHUP in dev mode
// named until it compared files as read.
func (c *Config) RestartOnly(next *Config) []string {
	return restartOnly(c.asRead, next.asRead)
}

func restartOnly(running, next map[string]any) []string {
	var changed []string
	diff("", running, next, &changed)
	return slices.DeleteFunc(changed, func(path string) bool {
		return slices.ContainsFunc(reloadable, func(r string) bool { return path == r || strings.HasPrefix(path, r+".") })
	})
}

// tree is f as encoding/json's generic form, so that settings compare by
// their names in the file. The partners are left out: a reload applies
// them, and a registry of 10,000 kept 15 MB of generic JSON alive for a
// comparison that never looks at it.
func tree(f File) map[string]any {
	f.Partners = nil
	b, _ := json.Marshal(f)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// diff appends the paths under prefix where a and b differ: objects member
// by member, anything else (arrays included) as a whole.
func diff(prefix string, a, b any, out *[]string) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok || !bok {
		if !reflect.DeepEqual(a, b) {
			*out = append(*out, prefix)
		}
		return
	}
	keys := map[string]bool{}
	for k := range am {
		keys[k] = true
	}
	for k := range bm {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		diff(path, am[k], bm[k], out)
	}
}
