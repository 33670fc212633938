package db

import (
	"context"
	"path/filepath"
	"testing"
)

// Every connection, writer and readers, gets the settings of the DSN and of onConnect.
func TestConnectionSettings(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), Options{Migrations: benchSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tc := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"temp_store", "2"},  // MEMORY
		{"foreign_keys", "1"},
	} {
		var got string
		if err := d.Get(ctx, &got, "PRAGMA "+tc.pragma); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("read pool: %s = %s, want %s", tc.pragma, got, tc.want)
		}
		if err := d.Write(ctx, func(tx *Tx) error { return tx.Get(&got, "PRAGMA "+tc.pragma) }); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("writer: %s = %s, want %s", tc.pragma, got, tc.want)
		}
	}
}
