//go:build race

package cluster

// raceBuild: under -race the sessiongate nodes are built with -race too, so
// a data race in a node fails its process (and the test).
const raceBuild = true
