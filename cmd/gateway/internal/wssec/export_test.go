package wssec

// ExcC14N is excC14N, for the tests.
var ExcC14N = excC14N
