package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"strings"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// The dedicated engineer (docs/lifecycle.md, "Support"): every account has one support engineer
// of the configured ones, and every case of the account is assigned to it, so the customer deals
// with one person. The engineer is chosen when the account first needs one (its first case, or
// the first time anyone asks who it is): the configured engineer with the fewest accounts, ties
// going to the one listed first (store.LeastLoaded). It stays the account's engineer for the
// account's lifetime, unless support assigns another (SetAccountEngineer) or the engineer is
// removed from -support-engineers (then the account gets the least-loaded one again when it
// next needs one). An account is known to this service once it has a bundle: the identity
// database that creates accounts is not this service's, and an account without bundles has
// nothing a case could be about.

// accountOf is the account a GetAccountEngineer or SetAccountEngineer call names: customers may
// name only their own (another is NotFound, as it is for every resource of another account);
// support engineers must name one.
func accountOf(who auth.Principal, accountID string) (string, error) {
	if who.Role != auth.RoleSupport {
		if accountID != "" && accountID != who.AccountID {
			return "", apierr.NotFound("account", accountID)
		}
		return who.AccountID, nil
	}
	if accountID == "" {
		return "", apierr.InvalidArgument("account_id", "is required for support engineers")
	}
	if err := apierr.CheckText("account_id", accountID); err != nil {
		return "", err
	}
	return accountID, nil
}

// engineerOf returns the engineer of a known account, assigning one if it has none yet.
func (c *core) engineerOf(tx *store.Tx, accountID string) (store.AccountEngineer, error) {
	known, err := tx.AccountKnown(accountID)
	if err != nil {
		return store.AccountEngineer{}, err
	}
	if !known {
		return store.AccountEngineer{}, apierr.NotFound("account", accountID)
	}
	if _, err := tx.EngineerFor(accountID, c.Engineers); err != nil {
		return store.AccountEngineer{}, err
	}
	return tx.Engineer(accountID)
}

func accountEngineerProto(e store.AccountEngineer) *lifecyclev1.AccountEngineer {
	return &lifecyclev1.AccountEngineer{AccountId: e.AccountID, Engineer: e.Engineer, AssignTime: ts(e.AssignTime)}
}

// GetAccountEngineer implements SupportService.GetAccountEngineer.
func (s *SupportServer) GetAccountEngineer(ctx context.Context, req *lifecyclev1.GetAccountEngineerRequest) (*lifecyclev1.GetAccountEngineerResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	account, err := accountOf(who, req.GetAccountId())
	if err != nil {
		return nil, err
	}
	// The common case reads; only an account without its engineer yet takes a write.
	if e, err := s.Store.AccountEngineerOf(ctx, account); err == nil && slices.Contains(s.Engineers, e.Engineer) {
		return &lifecyclev1.GetAccountEngineerResponse{AccountEngineer: accountEngineerProto(e)}, nil
	}
	var out store.AccountEngineer
	err = s.Store.Write(ctx, db.Micros(s.Clock.Now()), func(tx *store.Tx) error {
		out, err = s.engineerOf(tx, account)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.GetAccountEngineerResponse{AccountEngineer: accountEngineerProto(out)}, nil
}

// SetAccountEngineer implements SupportService.SetAccountEngineer.
func (s *SupportServer) SetAccountEngineer(ctx context.Context, req *lifecyclev1.SetAccountEngineerRequest) (*lifecyclev1.SetAccountEngineerResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if who.Role != auth.RoleSupport {
		// The Policy admits support only; this keeps the rule if the Policy ever widens.
		return nil, apierr.PermissionDenied("only support engineers reassign an account")
	}
	account, err := accountOf(who, req.GetAccountId())
	if err != nil {
		return nil, err
	}
	engineer := req.GetEngineer()
	if engineer == "" {
		return nil, apierr.InvalidArgument("engineer", "is required")
	}
	if !slices.Contains(s.Engineers, engineer) {
		return nil, apierr.InvalidArgument("engineer", "%s is not a support engineer (engineers: %s)", apierr.Quote(engineer), strings.Join(s.Engineers, ", "))
	}
	now := s.Clock.Now()
	resp := &lifecyclev1.SetAccountEngineerResponse{}
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		before, err := s.engineerOf(tx, account)
		if err != nil {
			return err
		}
		if before.Engineer != engineer {
			if err := tx.SetEngineer(account, engineer); err != nil {
				return err
			}
		}
		moved := 0
		if req.GetMoveOpenCases() {
			if moved, err = tx.MoveOpenCases(account, engineer, who.Name); err != nil {
				return err
			}
		}
		after, err := tx.Engineer(account)
		if err != nil {
			return err
		}
		resp.AccountEngineer, resp.MovedCases = accountEngineerProto(after), int32(moved)
		return tx.Audit(auth.NewAuditEvent(now, account, auth.AuditAccountEngineerSet, who, account,
			fmt.Sprintf("engineer %s → %s; %d open cases moved", before.Engineer, engineer, moved)))
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}
