package grpcclient_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/certhosting/certhosting/pkg/grpcclient"
)

// counting is a health server that counts the calls it answered.
type counting struct {
	*health.Server
	calls chan string
	addr  string
}

func (c *counting) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	c.calls <- c.addr
	return c.Server.Check(ctx, req)
}

// Calls through Replicas reach every replica in turn; with one replica gone they all reach the
// others.
func TestReplicasRoundRobin(t *testing.T) {
	t.Parallel()
	calls := make(chan string, 100)
	var addrs []string
	var servers []*grpc.Server
	for range 3 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		healthpb.RegisterHealthServer(s, &counting{Server: health.NewServer(), calls: calls, addr: lis.Addr().String()})
		go s.Serve(lis)
		t.Cleanup(s.Stop)
		addrs = append(addrs, lis.Addr().String())
		servers = append(servers, s)
	}
	target, opts, err := grpcclient.Replicas(addrs)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	count := func(n int) map[string]int {
		seen := map[string]int{}
		for range n {
			var p peer.Peer
			if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true), grpc.Peer(&p)); err != nil {
				if status.Code(err) == codes.Unavailable {
					continue // a call caught by the replica going away
				}
				t.Fatal(err)
			}
			seen[<-calls]++
		}
		return seen
	}
	// Connections come up one by one: after warming up, every replica takes a share.
	count(30)
	if seen := count(30); len(seen) != 3 {
		t.Errorf("30 calls reached %v, want all 3 replicas", seen)
	}
	servers[0].Stop()
	count(10) // calls in flight to the stopped replica may fail; the balancer notices
	seen := count(30)
	if seen[addrs[0]] != 0 || len(seen) != 2 {
		t.Errorf("with replica %s stopped, calls reached %v, want only the other two", addrs[0], seen)
	}
	if _, _, err := grpcclient.Replicas([]string{" ", ""}); err == nil {
		t.Error("Replicas with no address succeeded")
	}
}
