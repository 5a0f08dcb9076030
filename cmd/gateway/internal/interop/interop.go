// Package interop holds the tests that run the gateway against independent
// implementations of its protocols (npm jose today; npm soap, xmlsec1 and
// kcat as those interfaces land). The tools are installed by .ci/run; a test
// whose tool is missing skips locally and fails when JAMBATAN_REQUIRE_INTEROP
// is set, as it is in CI.
package interop
