package lifecycle_test

import (
	"testing"

	"google.golang.org/grpc"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/services/lifecycle"
)

// TestPolicyCoversEveryMethod: every RPC of both services has an entry in lifecycle.Policy naming
// who may call it (the interceptor refuses a method missing from it, so a new RPC fails closed
// until someone decides), and every entry is a real RPC.
func TestPolicyCoversEveryMethod(t *testing.T) {
	t.Parallel()
	methods := map[string]bool{}
	for _, sd := range []grpc.ServiceDesc{lifecyclev1.LifecycleService_ServiceDesc, lifecyclev1.SupportService_ServiceDesc, lifecyclev1.AccountService_ServiceDesc,
		lifecyclev1.WebhookService_ServiceDesc, lifecyclev1.OperationsService_ServiceDesc} {
		for _, m := range sd.Methods {
			methods["/"+sd.ServiceName+"/"+m.MethodName] = true
		}
		for _, s := range sd.Streams {
			methods["/"+sd.ServiceName+"/"+s.StreamName] = true
		}
	}
	for _, m := range []string{lifecyclev1.LifecycleService_SubmitApplication_FullMethodName, lifecyclev1.LifecycleService_WatchEvents_FullMethodName,
		lifecyclev1.SupportService_UpdateSupportCase_FullMethodName} {
		if !methods[m] {
			t.Fatalf("the service descriptors lack %s: the names are built wrong (%v)", m, methods)
		}
	}
	for m := range methods {
		if access, ok := lifecycle.Policy[m]; !ok || len(access.Roles) == 0 {
			t.Errorf("%s has no roles in lifecycle.Policy", m)
		}
	}
	for m := range lifecycle.Policy {
		if !methods[m] {
			t.Errorf("lifecycle.Policy names %s, which neither service has", m)
		}
	}
}
