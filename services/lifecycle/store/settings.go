package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// AccountSettings is an account's settings row. An account without one has the defaults, which
// the lifecycle package holds (a row stores only what the account set).
type AccountSettings struct {
	AccountID string
	// ExpiryReminderDays are the days before a certificate's not_after at which an expiry reminder
	// is sent, in descending order (before scaling for short certificates).
	ExpiryReminderDays []int
	UpdateTime         int64
}

type accountSettingsRow struct {
	AccountID          string `db:"account_id"`
	ExpiryReminderDays string `db:"expiry_reminder_days"`
	UpdateTime         int64  `db:"update_time"`
}

func (r accountSettingsRow) model() (AccountSettings, error) {
	out := AccountSettings{AccountID: r.AccountID, UpdateTime: r.UpdateTime}
	for f := range strings.SplitSeq(r.ExpiryReminderDays, ",") {
		if f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		if err != nil {
			return AccountSettings{}, fmt.Errorf("store: account %s: expiry_reminder_days %q: %w", r.AccountID, r.ExpiryReminderDays, err)
		}
		out.ExpiryReminderDays = append(out.ExpiryReminderDays, d)
	}
	return out, nil
}

func joinDays(days []int) string {
	parts := make([]string, len(days))
	for i, d := range days {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, ",")
}

const accountSettingsColumns = `account_id, expiry_reminder_days, update_time`

// AccountSettings returns the account's stored settings, ok false when it has none (the defaults).
func (s *Store) AccountSettings(ctx context.Context, accountID string) (AccountSettings, bool, error) {
	var r accountSettingsRow
	err := s.db.Get(ctx, &r, `SELECT `+accountSettingsColumns+` FROM account_settings WHERE account_id = ?`, accountID)
	return settingsResult(r, err)
}

// AccountSettings is Store.AccountSettings inside a transaction.
func (t *Tx) AccountSettings(accountID string) (AccountSettings, bool, error) {
	var r accountSettingsRow
	err := t.tx.Get(&r, `SELECT `+accountSettingsColumns+` FROM account_settings WHERE account_id = ?`, accountID)
	return settingsResult(r, err)
}

func settingsResult(r accountSettingsRow, err error) (AccountSettings, bool, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return AccountSettings{}, false, nil
	}
	if err != nil {
		return AccountSettings{}, false, err
	}
	m, err := r.model()
	return m, err == nil, err
}

// SaveAccountSettings writes the account's settings row (insert or replace), at the transaction's
// time.
func (t *Tx) SaveAccountSettings(as *AccountSettings) error {
	as.UpdateTime = t.now
	_, err := t.tx.Exec(`INSERT INTO account_settings (`+accountSettingsColumns+`) VALUES (?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET expiry_reminder_days = excluded.expiry_reminder_days,
		update_time = excluded.update_time`, as.AccountID, joinDays(as.ExpiryReminderDays), as.UpdateTime)
	return err
}

// RescheduleReminders makes every reminder of the account's certificates due at the transaction's
// time, so that new reminder thresholds apply to the next one (the sweep works out which that is;
// one already sent is never sent again, since only thresholds after the one the old schedule
// waited for are sent).
func (t *Tx) RescheduleReminders(accountID string) error {
	_, err := t.tx.Exec(`UPDATE certificates SET remind_at = ? WHERE account_id = ? AND remind_at IS NOT NULL AND remind_at > ?`,
		t.now, accountID, t.now)
	return err
}
