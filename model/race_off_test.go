//go:build !race

package model

// raceBuild reports a build with the race detector, whose instrumented
// code the compiler may order differently.
const raceBuild = false
