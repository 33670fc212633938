package benchseed

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// TestHistory checks that a store seeded with History looks to the service as one it wrote
// itself: the account given, the names the list filters read (nothing left to backfill), each
// bundle's current certificate as RefreshCurrent works it out, and the history events, with new
// events numbered after them.
func TestHistory(t *testing.T) {
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Second)
	account := ids.New(ids.Account, at)
	path := filepath.Join(t.TempDir(), "lifecycle.db")
	const n = 20
	if err := SQLiteWith(ctx, path, Options{N: n, Due: 2, At: at, Account: account, History: true}); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, path, store.DBOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := store.New(d, nil)

	if filled, err := s.BackfillDomains(ctx); err != nil || filled != 0 {
		t.Errorf("BackfillDomains filled %d instances (err %v), want none: the seed wrote every name", filled, err)
	}
	cs, err := s.ListCertificates(ctx, store.CertificateFilter{AccountID: account,
		Domain: &store.DomainFilter{Name: "bench-7.example.com"}}, store.CertificatePosition{}, 10)
	if err != nil || len(cs) != 1 || cs[0].Sequence != 1 || cs[0].State != state.Hosted {
		t.Fatalf("instances named bench-7.example.com: %+v (err %v), want bundle 7's first, HOSTED", cs, err)
	}
	bundleID := cs[0].BundleID

	err = s.Write(ctx, db.Micros(at), func(tx *store.Tx) error {
		b, err := tx.Bundle(bundleID)
		if err != nil {
			return err
		}
		refreshed := b
		if err := tx.RefreshCurrent(&refreshed); err != nil {
			return err
		}
		if !b.CurrentIssuanceID.Valid || b.CurrentCertificateID != refreshed.CurrentCertificateID ||
			b.CurrentIssuanceID != refreshed.CurrentIssuanceID || b.CurrentNotAfter != refreshed.CurrentNotAfter {
			t.Errorf("seeded current certificate %v %v %v, the service's %v %v %v", b.CurrentCertificateID, b.CurrentIssuanceID,
				b.CurrentNotAfter, refreshed.CurrentCertificateID, refreshed.CurrentIssuanceID, refreshed.CurrentNotAfter)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	es, err := s.ListEvents(ctx, account, cs[0].ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{store.EventCreated, store.EventApplicationSubmitted, store.EventHosted}
	if len(es) != len(want) {
		t.Fatalf("first instance's events: %+v, want %v", es, want)
	}
	for i, e := range es {
		if e.Type != want[i] || e.AccountID != account || (i > 0 && e.From != es[i-1].To) {
			t.Errorf("event %d: %+v, want %s continuing from %s", i, e, want[i], es[max(0, i-1)].To)
		}
	}
	if last, err := s.LastEventID(ctx); err != nil || last != n*eventsPerBundle {
		t.Errorf("last event id %d (err %v), want %d", last, err, n*eventsPerBundle)
	}
	err = s.Write(ctx, db.Micros(at), func(tx *store.Tx) error {
		return tx.Event(store.Event{AccountID: account, BundleID: bundleID, CertificateID: cs[0].ID, Type: store.EventTemplateUpdated,
			From: state.Hosted, To: state.Hosted, Actor: state.ActorCustomer})
	})
	if err != nil {
		t.Fatal(err)
	}
	if after, err := s.EventsAfter(ctx, account, "", n*eventsPerBundle, 10); err != nil || len(after) != 1 || after[0].Type != store.EventTemplateUpdated {
		t.Errorf("events after the seeded ones: %+v (err %v), want the one just written", after, err)
	}
	// The notification fan-out starts after the seeded history, as in a store whose fan-out kept
	// up with its writes: it has the one new event to consume, not the whole history.
	var fanned []int64
	consumed, err := s.FanOut(ctx, db.Micros(at), 1000, func(_ *store.Tx, es []store.Event) ([]store.Notification, error) {
		for _, e := range es {
			fanned = append(fanned, e.ID)
		}
		return nil, nil
	})
	if err != nil || consumed != 1 || len(fanned) != 1 || fanned[0] != n*eventsPerBundle+1 {
		t.Errorf("FanOut consumed %d events %v (err %v), want only the new one, %d", consumed, fanned, err, n*eventsPerBundle+1)
	}
}
