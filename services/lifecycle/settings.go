package lifecycle

import (
	"context"
	"slices"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// accountSettingsProto is the account's settings with the defaults filled in.
func accountSettingsProto(as store.AccountSettings, ok bool) *lifecyclev1.AccountSettings {
	out := &lifecyclev1.AccountSettings{}
	for _, d := range reminderDays(as, ok) {
		out.ExpiryReminderDays = append(out.ExpiryReminderDays, int32(d))
	}
	if ok {
		out.UpdateTime = ts(as.UpdateTime)
	}
	return out
}

// GetAccountSettings implements AccountService.GetAccountSettings.
func (s *AccountServer) GetAccountSettings(ctx context.Context, _ *lifecyclev1.GetAccountSettingsRequest) (*lifecyclev1.GetAccountSettingsResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	as, ok, err := s.Store.AccountSettings(ctx, who.AccountID)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.GetAccountSettingsResponse{Settings: accountSettingsProto(as, ok)}, nil
}

// UpdateAccountSettings implements AccountService.UpdateAccountSettings. New reminder thresholds
// take effect from each certificate's next reminder: the account's pending reminders are made due
// now (store.Tx.RescheduleReminders), and the remind sweep plans them again with the new
// thresholds, never sending one whose time passed before the change.
func (s *AccountServer) UpdateAccountSettings(ctx context.Context, req *lifecyclev1.UpdateAccountSettingsRequest) (*lifecyclev1.UpdateAccountSettingsResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, apierr.InvalidArgument("update_mask", "is required: name the settings to change (expiry_reminder_days)")
	}
	for _, p := range paths {
		if p != "expiry_reminder_days" {
			return nil, apierr.InvalidArgument("update_mask", "unknown or read-only field %s", apierr.Quote(p))
		}
	}
	if req.GetSettings() == nil {
		return nil, apierr.InvalidArgument("settings", "is required")
	}
	days, err := checkReminderDays(req.GetSettings().GetExpiryReminderDays())
	if err != nil {
		return nil, err
	}
	as := store.AccountSettings{AccountID: who.AccountID, ExpiryReminderDays: days}
	err = s.Store.Write(ctx, db.Micros(s.Clock.Now()), func(tx *store.Tx) error {
		if err := tx.SaveAccountSettings(&as); err != nil {
			return err
		}
		return tx.RescheduleReminders(who.AccountID)
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.UpdateAccountSettingsResponse{Settings: accountSettingsProto(as, true)}, nil
}

// checkReminderDays checks expiry_reminder_days and returns them in descending order.
func checkReminderDays(in []int32) ([]int, error) {
	const field = "settings.expiry_reminder_days"
	if len(in) == 0 {
		return nil, apierr.InvalidArgument(field, "needs at least one threshold: reminders cannot be turned off")
	}
	if len(in) > maxReminderThresholds {
		return nil, apierr.InvalidArgument(field, "has %d thresholds; at most %d", len(in), maxReminderThresholds)
	}
	days := make([]int, 0, len(in))
	for _, d := range in {
		if d < 1 || d > maxReminderDays {
			return nil, apierr.InvalidArgument(field, "%d is out of range: whole days from 1 to %d", d, maxReminderDays)
		}
		if slices.Contains(days, int(d)) {
			return nil, apierr.InvalidArgument(field, "%d is given twice", d)
		}
		days = append(days, int(d))
	}
	slices.Sort(days)
	slices.Reverse(days)
	return days, nil
}
