//go:build race

package e2e

// raceEnabled says this test binary was built with -race; the services are then built with it too.
const raceEnabled = true
