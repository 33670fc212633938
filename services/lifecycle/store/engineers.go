package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"

	"github.com/certhosting/certhosting/pkg/apierr"
)

// Account engineers: each account's dedicated support engineer (migration 00010).

// AccountEngineer is the account_engineers row of one account.
type AccountEngineer struct {
	AccountID  string `db:"account_id"`
	Engineer   string `db:"engineer"`
	AssignTime int64  `db:"assign_time"`
}

// LeastLoaded is the engineer a new account gets: of engineers (in their configured order), the
// first of those with the fewest accounts in load. Engineers missing from load have none. It
// returns "" when engineers is empty.
func LeastLoaded(engineers []string, load map[string]int) string {
	best := ""
	for _, e := range engineers {
		if best == "" || load[e] < load[best] {
			best = e
		}
	}
	return best
}

// EngineerFor returns the engineer of accountID. An account that has none yet, or whose engineer
// is no longer one of engineers (the configuration changed, or the migration's backfill named
// one), gets the least-loaded of engineers, stored for the account's lifetime.
func (t *Tx) EngineerFor(accountID string, engineers []string) (string, error) {
	if len(engineers) == 0 {
		return "", errors.New("no support engineers configured")
	}
	var cur AccountEngineer
	err := t.tx.Get(&cur, `SELECT account_id, engineer, assign_time FROM account_engineers WHERE account_id = ?`, accountID)
	switch {
	case err == nil && slices.Contains(engineers, cur.Engineer):
		return cur.Engineer, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return "", err
	}
	var rows []struct {
		Engineer string `db:"engineer"`
		N        int    `db:"n"`
	}
	if err := t.tx.Select(&rows, `SELECT engineer, COUNT(*) AS n FROM account_engineers GROUP BY engineer`); err != nil {
		return "", err
	}
	load := map[string]int{}
	for _, r := range rows {
		load[r.Engineer] = r.N
	}
	e := LeastLoaded(engineers, load)
	return e, t.SetEngineer(accountID, e)
}

// SetEngineer makes engineer the engineer of accountID from now on.
func (t *Tx) SetEngineer(accountID, engineer string) error {
	_, err := t.tx.Exec(`INSERT INTO account_engineers (account_id, engineer, assign_time) VALUES (?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET engineer = excluded.engineer, assign_time = excluded.assign_time`,
		accountID, engineer, t.now)
	return err
}

// Engineer reads the engineer row of accountID inside the transaction (NotFound when it has none).
func (t *Tx) Engineer(accountID string) (AccountEngineer, error) {
	var e AccountEngineer
	err := t.tx.Get(&e, `SELECT account_id, engineer, assign_time FROM account_engineers WHERE account_id = ?`, accountID)
	return e, notFound(err, "account engineer", accountID)
}

// AccountKnown says whether the lifecycle service knows accountID: it has a bundle (accounts
// live in the identity database; this service hears of one with its first bundle).
func (t *Tx) AccountKnown(accountID string) (bool, error) {
	var n int
	err := t.tx.Get(&n, `SELECT COUNT(*) FROM (SELECT 1 FROM bundles WHERE account_id = ? LIMIT 1) b`, accountID)
	return n > 0, err
}

// MoveOpenCases assigns the unresolved cases of accountID to engineer, each with a note by
// author; it returns how many changed.
func (t *Tx) MoveOpenCases(accountID, engineer, author string) (int, error) {
	var cs []SupportCase
	if err := t.tx.Select(&cs, `SELECT `+caseColumns+` FROM support_cases WHERE account_id = ? AND status <> ? AND assignee <> ?
		ORDER BY case_id`, accountID, CaseResolved, engineer); err != nil {
		return 0, err
	}
	for i := range cs {
		cs[i].AddNote(Note{Author: author, Text: "reassigned from " + cs[i].Assignee + " to " + engineer + " with the account", Time: t.now})
		cs[i].Assignee = engineer
		if err := t.SaveCase(&cs[i]); err != nil {
			return 0, err
		}
	}
	return len(cs), nil
}

// CaseByRequest returns the case accountID opened with requestID; ok is false when there is none.
func (t *Tx) CaseByRequest(accountID, requestID string) (c SupportCase, ok bool, err error) {
	err = t.tx.Get(&c, `SELECT `+caseColumns+` FROM support_cases WHERE account_id = ? AND request_id = ?`, accountID, requestID)
	if errors.Is(err, sql.ErrNoRows) {
		return SupportCase{}, false, nil
	}
	return c, err == nil, err
}

// AccountEngineerOf reads the engineer row of accountID (NotFound when it has none).
func (s *Store) AccountEngineerOf(ctx context.Context, accountID string) (AccountEngineer, error) {
	var e AccountEngineer
	err := s.db.Get(ctx, &e, `SELECT account_id, engineer, assign_time FROM account_engineers WHERE account_id = ?`, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return AccountEngineer{}, apierr.NotFound("account engineer", accountID)
	}
	return e, err
}
