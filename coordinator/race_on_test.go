//go:build race

package coordinator

// raceBuild reports a build with the race detector, whose instrumented
// code runs several times slower.
const raceBuild = true
