// Package mapping holds the code lists, crosswalks, identifier checks, money
// arithmetic and deadline rules that the canonical record specification
// (perkeso-injury-notification/v1, crosswalk version 2026.1) fixes for every
// adapter. Adapters read from here; nothing here knows about a wire format.
package mapping

// CrosswalkVersion is the version of the crosswalk tables in this package,
// recorded in every canonical record's provenance.
const CrosswalkVersion = "2026.1"
