package lifecycle_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
)

const (
	roleOwner    = lifecyclev1.ApiKeyRole_API_KEY_ROLE_OWNER
	roleDeployer = lifecyclev1.ApiKeyRole_API_KEY_ROLE_DEPLOYER
	roleReader   = lifecyclev1.ApiKeyRole_API_KEY_ROLE_READER
)

func TestCreateApiKeyRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acct := lifecyclev1.NewAccountServiceClient(e.gs.Dial(t, e.keyA))
	bundle := e.buy("dv-single", dv, single, 1, 1, false).GetBundleId()
	past, far := timestamppb.New(e.clk.Now().Add(-time.Second)), timestamppb.New(e.clk.Now().Add(3*365*24*time.Hour))
	many := make([]string, 101)
	for i := range many {
		many[i] = bundle
	}
	for _, tc := range []struct {
		name  string
		req   *lifecyclev1.CreateApiKeyRequest
		field string
	}{
		{"no name", &lifecyclev1.CreateApiKeyRequest{Role: roleReader}, "name"},
		{"long name", &lifecyclev1.CreateApiKeyRequest{Name: strings.Repeat("n", 101), Role: roleReader}, "name"},
		{"control character", &lifecyclev1.CreateApiKeyRequest{Name: "ci\x00", Role: roleReader}, "name"},
		{"no role", &lifecyclev1.CreateApiKeyRequest{Name: "ci"}, "role"},
		{"support role", &lifecyclev1.CreateApiKeyRequest{Name: "ci", Role: lifecyclev1.ApiKeyRole_API_KEY_ROLE_SUPPORT}, "role"},
		{"service role", &lifecyclev1.CreateApiKeyRequest{Name: "ci", Role: lifecyclev1.ApiKeyRole_API_KEY_ROLE_SERVICE}, "role"},
		{"unknown role", &lifecyclev1.CreateApiKeyRequest{Name: "ci", Role: 42}, "role"},
		{"deployer without bundles", &lifecyclev1.CreateApiKeyRequest{Name: "ci", Role: roleDeployer}, "bundle_ids"},
		{"owner with bundles", &lifecyclev1.CreateApiKeyRequest{Name: "ci", Role: roleOwner, BundleIds: []string{bundle}}, "bundle_ids"},
		{"malformed bundle", &lifecyclev1.CreateApiKeyRequest{Name: "ci", Role: roleDeployer, BundleIds: []string{"bdl_nope"}}, "bundle_ids"},
		{"bundle twice", &lifecyclev1.CreateApiKeyRequest{Name: "ci", Role: roleDeployer, BundleIds: []string{bundle, bundle}}, "bundle_ids"},
		{"too many bundles", &lifecyclev1.CreateApiKeyRequest{Name: "ci", Role: roleReader, BundleIds: many}, "bundle_ids"},
		{"expired already", &lifecyclev1.CreateApiKeyRequest{Name: "ci", Role: roleReader, ExpireTime: past}, "expire_time"},
		{"expires too late", &lifecyclev1.CreateApiKeyRequest{Name: "ci", Role: roleReader, ExpireTime: far}, "expire_time"},
		{"invalid expiry", &lifecyclev1.CreateApiKeyRequest{Name: "ci", Role: roleReader, ExpireTime: &timestamppb.Timestamp{Nanos: -1}}, "expire_time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := acct.CreateApiKey(e.ctx, tc.req)
			grpctest.WantInvalidArgument(t, err, tc.field)
		})
	}
	keys, err := acct.ListApiKeys(e.ctx, &lifecyclev1.ListApiKeysRequest{})
	if err != nil || len(keys.GetApiKeys()) != 1 {
		t.Errorf("keys after refused creations: %v, %v; want only the test's own", keys.GetApiKeys(), err)
	}
	for _, tc := range []struct {
		name  string
		err   error
		code  codes.Code
		field string
	}{
		{"revoke malformed", errOf(acct.RevokeApiKey(e.ctx, &lifecyclev1.RevokeApiKeyRequest{KeyId: "key_1"})), codes.InvalidArgument, "key_id"},
		{"revoke unknown", errOf(acct.RevokeApiKey(e.ctx, &lifecyclev1.RevokeApiKeyRequest{KeyId: "key_01JAAAAAAAAAAAAAAAAAAAAAAA"})), codes.NotFound, ""},
		{"list page size", errOf(acct.ListApiKeys(e.ctx, &lifecyclev1.ListApiKeysRequest{PageSize: 501})), codes.InvalidArgument, "page_size"},
		{"list token", errOf(acct.ListApiKeys(e.ctx, &lifecyclev1.ListApiKeysRequest{PageToken: "x"})), codes.InvalidArgument, "page_token"},
		{"audit kind", errOf(acct.ListAuditEvents(e.ctx, &lifecyclev1.ListAuditEventsRequest{Kinds: []lifecyclev1.AuditEventKind{0}})), codes.InvalidArgument, "kinds"},
		{"audit times", errOf(acct.ListAuditEvents(e.ctx, &lifecyclev1.ListAuditEventsRequest{
			StartTime: timestamppb.New(e.clk.Now()), EndTime: timestamppb.New(e.clk.Now().Add(-time.Hour))})), codes.InvalidArgument, "end_time"},
		{"audit token", errOf(acct.ListAuditEvents(e.ctx, &lifecyclev1.ListAuditEventsRequest{PageToken: "x"})), codes.InvalidArgument, "page_token"},
	} {
		if tc.field != "" {
			grpctest.WantInvalidArgument(t, tc.err, tc.field)
		} else if status.Code(tc.err) != tc.code {
			t.Errorf("%s: %v; want %s", tc.name, tc.err, tc.code)
		}
	}
}

func errOf[T any](_ T, err error) error { return err }

// TestApiKeysLifecycle: an owner makes a deployer key for one bundle and a reader key that
// expires; the deployer sees and exports that bundle only; the reader stops working at its expiry;
// revoking the deployer key stops it; the list shows all of it without secrets; and the audit log
// holds every step with its actor, newest first, filtered by kind and time, in pages.
func TestApiKeysLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acct := lifecyclev1.NewAccountServiceClient(e.gs.Dial(t, e.keyA))
	mine := e.buy("dv-single", dv, single, 1, 1, false)
	cert := mine.GetCertificates()[0].GetCertificateId()
	e.issue(application(cert, "deploy.example.com"))
	notMine := e.buy("dv-single", dv, single, 1, 1, false)
	e.clk.Advance(time.Second)
	t0 := e.clk.Now()

	dep, err := acct.CreateApiKey(e.ctx, &lifecyclev1.CreateApiKeyRequest{Name: "web deploy", Role: roleDeployer, BundleIds: []string{mine.GetBundleId()}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dep.GetSecret(), "chk_") || dep.GetApiKey().GetRole() != roleDeployer || !slices.Equal(dep.GetApiKey().GetBundleIds(), []string{mine.GetBundleId()}) {
		t.Fatalf("CreateApiKey = %v", dep)
	}
	// The audit log is in time order to the millisecond (ULIDs): the fake clock moves between
	// audited actions, as a real one would.
	e.clk.Advance(time.Second)
	deployer := lifecyclev1.NewLifecycleServiceClient(e.gs.Dial(t, dep.GetSecret()))
	exp, err := deployer.ExportCertificate(e.ctx, &lifecyclev1.ExportCertificateRequest{CertificateId: cert})
	if err != nil || exp.GetPrivateKeyPem() == "" {
		t.Fatalf("deployer's export of its bundle: %v", err)
	}
	e.clk.Advance(time.Second)
	if _, err := deployer.GetBundle(e.ctx, &lifecyclev1.GetBundleRequest{BundleId: notMine.GetBundleId()}); status.Code(err) != codes.NotFound {
		t.Errorf("deployer's GetBundle of another bundle: %v; want NotFound", err)
	}
	list, err := deployer.ListBundles(e.ctx, &lifecyclev1.ListBundlesRequest{})
	if err != nil || len(list.GetBundles()) != 1 || list.GetBundles()[0].GetBundleId() != mine.GetBundleId() {
		t.Errorf("deployer's ListBundles: %v, %v; want its one bundle", list.GetBundles(), err)
	}
	certs, err := deployer.ListCertificates(e.ctx, &lifecyclev1.ListCertificatesRequest{})
	if err != nil || len(certs.GetCertificates()) != 1 || certs.GetCertificates()[0].GetCertificateId() != cert {
		t.Errorf("deployer's ListCertificates: %v, %v; want its bundle's one instance", certs.GetCertificates(), err)
	}
	if _, err := deployer.SubmitApplication(e.ctx, application(notMine.GetCertificates()[0].GetCertificateId(), "x.example.com")); status.Code(err) != codes.PermissionDenied {
		t.Errorf("deployer's SubmitApplication: %v; want PermissionDenied", err)
	}

	rd, err := acct.CreateApiKey(e.ctx, &lifecyclev1.CreateApiKeyRequest{Name: "dashboard", Role: roleReader, ExpireTime: timestamppb.New(t0.Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	reader := lifecyclev1.NewLifecycleServiceClient(e.gs.Dial(t, rd.GetSecret()))
	if _, err := reader.GetBundle(e.ctx, &lifecyclev1.GetBundleRequest{BundleId: notMine.GetBundleId()}); err != nil {
		t.Errorf("reader's GetBundle: %v", err)
	}
	if _, err := reader.ExportCertificate(e.ctx, &lifecyclev1.ExportCertificateRequest{CertificateId: cert}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("reader's export: %v; want PermissionDenied", err)
	}
	e.clk.Advance(time.Hour)
	if _, err := reader.GetBundle(e.ctx, &lifecyclev1.GetBundleRequest{BundleId: mine.GetBundleId()}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("reader's GetBundle after its expiry: %v; want Unauthenticated", err)
	}

	e.clk.Advance(time.Second)
	revoked, err := acct.RevokeApiKey(e.ctx, &lifecyclev1.RevokeApiKeyRequest{KeyId: dep.GetApiKey().GetKeyId()})
	if err != nil || revoked.GetApiKey().GetRevokeTime() == nil {
		t.Fatalf("RevokeApiKey: %v, %v", revoked, err)
	}
	again, err := acct.RevokeApiKey(e.ctx, &lifecyclev1.RevokeApiKeyRequest{KeyId: dep.GetApiKey().GetKeyId()})
	if err != nil || !again.GetApiKey().GetRevokeTime().AsTime().Equal(revoked.GetApiKey().GetRevokeTime().AsTime()) {
		t.Errorf("revoking again: %v, %v; want the same revocation", again, err)
	}
	e.clk.Advance(time.Minute) // past the verifier's cache
	if _, err := deployer.GetBundle(e.ctx, &lifecyclev1.GetBundleRequest{BundleId: mine.GetBundleId()}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("revoked deployer key: %v; want Unauthenticated", err)
	}
	if _, err := lifecyclev1.NewAccountServiceClient(e.gs.Dial(t, e.keyA)).RevokeApiKey(e.ctx, &lifecyclev1.RevokeApiKeyRequest{KeyId: rd.GetApiKey().GetKeyId()}); err != nil {
		t.Fatal(err)
	}
	// B cannot see or revoke A's keys.
	bAcct := lifecyclev1.NewAccountServiceClient(e.gs.Dial(t, bOwnerKey(t, e)))
	if _, err := bAcct.RevokeApiKey(e.ctx, &lifecyclev1.RevokeApiKeyRequest{KeyId: dep.GetApiKey().GetKeyId()}); status.Code(err) != codes.NotFound {
		t.Errorf("B revoking A's key: %v; want NotFound", err)
	}

	keys, _ := grpctest.Pages(t, func(token string) ([]*lifecyclev1.ApiKey, string, error) {
		r, err := acct.ListApiKeys(e.ctx, &lifecyclev1.ListApiKeysRequest{PageSize: 1, PageToken: token})
		return r.GetApiKeys(), r.GetNextPageToken(), err
	})
	if len(keys) != 3 || keys[0].GetKeyId() != rd.GetApiKey().GetKeyId() || keys[0].GetRevokeTime() == nil || keys[2].GetRole() != roleOwner {
		t.Errorf("ListApiKeys = %v; want the reader, the deployer and the owner key, newest first", keys)
	}

	events, pages := grpctest.Pages(t, func(token string) ([]*lifecyclev1.AuditEvent, string, error) {
		r, err := acct.ListAuditEvents(e.ctx, &lifecyclev1.ListAuditEventsRequest{PageSize: 2, PageToken: token})
		return r.GetAuditEvents(), r.GetNextPageToken(), err
	})
	var got []string
	for _, ev := range events {
		got = append(got, strings.TrimPrefix(ev.GetKind().String(), "AUDIT_EVENT_KIND_")+" by "+ev.GetActorRole())
		for _, secret := range []string{dep.GetSecret(), rd.GetSecret(), e.keyA} {
			if strings.Contains(ev.String(), secret) {
				t.Errorf("audit event %v holds a key's secret", ev)
			}
		}
	}
	want := []string{
		"API_KEY_REVOKED by owner", "API_KEY_REVOKED by owner", "API_KEY_CREATED by owner",
		"CERTIFICATE_EXPORTED by deployer", "API_KEY_CREATED by owner",
		"API_KEY_CREATED by admin", "ACCOUNT_CREATED by admin",
	}
	// The last two (the account and its first key, made by the env at one instant) are within one
	// millisecond of each other: their order is not defined.
	if len(got) != len(want) || !slices.Equal(got[:5], want[:5]) || !slices.Equal(slices.Sorted(slices.Values(got[5:])), slices.Sorted(slices.Values(want[5:]))) {
		t.Errorf("audit log (%d pages):\n got %q\nwant %q", pages, got, want)
	}
	export := events[3]
	if export.GetActorKeyId() != dep.GetApiKey().GetKeyId() || export.GetActorName() != "web deploy" || export.GetResource() != cert {
		t.Errorf("export's audit event = %v; want the deployer key acting on %s", export, cert)
	}

	filtered, err := acct.ListAuditEvents(e.ctx, &lifecyclev1.ListAuditEventsRequest{
		Kinds: []lifecyclev1.AuditEventKind{lifecyclev1.AuditEventKind_AUDIT_EVENT_KIND_API_KEY_CREATED}, StartTime: timestamppb.New(t0)})
	if err != nil || len(filtered.GetAuditEvents()) != 2 || filtered.GetAuditEvents()[1].GetResource() != dep.GetApiKey().GetKeyId() {
		t.Errorf("API_KEY_CREATED since t0: %v, %v; want the deployer and reader keys' creation", filtered.GetAuditEvents(), err)
	}
	if _, err := acct.ListAuditEvents(e.ctx, &lifecyclev1.ListAuditEventsRequest{PageToken: mustToken(t, acct, e),
		Kinds: []lifecyclev1.AuditEventKind{lifecyclev1.AuditEventKind_AUDIT_EVENT_KIND_API_KEY_REVOKED}}); status.Code(err) != codes.InvalidArgument {
		t.Error("a page token used with another filter was accepted")
	}
}

// mustToken is a page token of the unfiltered audit log, to use with a filtered one.
func mustToken(t *testing.T, acct lifecyclev1.AccountServiceClient, e *env) string {
	t.Helper()
	r, err := acct.ListAuditEvents(e.ctx, &lifecyclev1.ListAuditEventsRequest{PageSize: 1})
	if err != nil || r.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", r, err)
	}
	return r.GetNextPageToken()
}
