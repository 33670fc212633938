// Package grpcclient dials the replicas of a service as one client: gRPC client-side load
// balancing (round_robin) over a fixed list of addresses. Each replica gets its own connection;
// calls go to the replicas in turn, and a replica that is down (refusing connections, or gone
// mid-call) is passed by until it answers again, while its calls in flight fail with
// UNAVAILABLE, for the caller to retry.
package grpcclient

import (
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// RoundRobin is the service config that spreads calls over every address of the target.
const RoundRobin = `{"loadBalancingConfig": [{"round_robin": {}}]}`

// Replicas returns a dial target and the options that make grpc.NewClient spread calls over
// addrs ("host:port" each) with round_robin. One address gives the plain target.
func Replicas(addrs []string) (string, []grpc.DialOption, error) {
	var state resolver.State
	for _, a := range addrs {
		if a = strings.TrimSpace(a); a != "" {
			state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
		}
	}
	switch len(state.Addresses) {
	case 0:
		return "", nil, fmt.Errorf("no address given")
	case 1:
		return state.Addresses[0].Addr, nil, nil
	}
	r := manual.NewBuilderWithScheme("certhosting-replicas")
	r.InitialState(state)
	return r.Scheme() + ":///replicas", []grpc.DialOption{grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(RoundRobin)}, nil
}

// ReplicaList splits a flag value of comma-separated addresses.
func ReplicaList(flag string) []string { return strings.Split(flag, ",") }
