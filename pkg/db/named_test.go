package db

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
)

type namedItem struct {
	ID   int            `db:"id"`
	Name string         `db:"name"`
	Note sql.NullString `db:"note"`
	Skip string         // no tag: maps to "skip", unused
}

// TestCompileNamedMatchesSqlx binds each statement both ways: the compiled query and its
// arguments must be what sqlx.Named makes of the same statement and argument, for one struct and
// for slices whose length crosses the chunk sizes (as one statement per chunk).
func TestCompileNamedMatchesSqlx(t *testing.T) {
	t.Parallel()
	row := func(i int) namedItem {
		return namedItem{ID: i, Name: fmt.Sprint("n", i), Note: sql.NullString{String: "x", Valid: i%2 == 0}}
	}
	for _, tc := range []struct {
		name, query string
	}{
		{"insert", `INSERT INTO items (id, name) VALUES (:id, :name)`},
		{"insert with suffix", `INSERT INTO items (id, name) VALUES (:id, COALESCE(:name, 'x')) ON CONFLICT (id) DO NOTHING`},
		{"update", `UPDATE items SET name = :name, note = :note WHERE id = :id AND name <> 'a::b'`},
		{"lower-case values", `insert into items (id, name, note) values (:id,:name,:note)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := compileNamed(tc.query)
			wantQ, wantArgs, err := sqlx.Named(tc.query, row(1))
			if err != nil {
				t.Fatal(err)
			}
			fields, err := q.fields(reflect.TypeFor[namedItem]())
			if err != nil {
				t.Fatal(err)
			}
			if gotArgs := appendArgs(nil, reflect.ValueOf(row(1)), fields); q.query != wantQ || !reflect.DeepEqual(gotArgs, wantArgs) {
				t.Fatalf("compiled %q %v, sqlx %q %v", q.query, gotArgs, wantQ, wantArgs)
			}
			if !strings.HasPrefix(strings.ToUpper(tc.query), "INSERT") {
				if q.multi {
					t.Fatal("an UPDATE counts as a multi-row INSERT")
				}
				return
			}
			for _, n := range []int{2, 3, 16, 17, 64, 65, 100} {
				rows := make([]namedItem, n)
				for i := range rows {
					rows[i] = row(i)
				}
				wantQ, _, err := sqlx.Named(tc.query, rows[:chunk(n)])
				if err != nil {
					t.Fatal(err)
				}
				if got := q.text(chunk(n)); got != wantQ {
					t.Fatalf("%d rows: first statement %q, sqlx %q", n, got, wantQ)
				}
			}
		})
	}
}

// TestNamedExecSlice inserts slices of every length around the chunk sizes and reads them back.
func TestNamedExecSlice(t *testing.T) {
	t.Parallel()
	d := open(t)
	next := 100
	for _, n := range []int{0, 1, 3, 15, 16, 17, 63, 64, 65, 130, 1000} {
		rows := make([]*namedItem, n)
		for i := range rows {
			rows[i] = &namedItem{ID: next, Name: fmt.Sprint("s", next)}
			next++
		}
		var affected int64
		if err := d.Write(context.Background(), func(tx *Tx) error {
			res, err := tx.NamedExec(`INSERT INTO items (id, name) VALUES (:id, :name) ON CONFLICT DO NOTHING`, rows)
			if err != nil {
				return err
			}
			affected, err = res.RowsAffected()
			return err
		}); err != nil {
			t.Fatalf("%d rows: %v", n, err)
		}
		var count int
		if err := d.Get(context.Background(), &count, `SELECT COUNT(*) FROM items WHERE id >= ? AND id < ?`, next-n, next); err != nil {
			t.Fatal(err)
		}
		if affected != int64(n) || count != n {
			t.Fatalf("%d rows: affected %d, stored %d", n, affected, count)
		}
	}
}

func TestNamedExecMissingField(t *testing.T) {
	t.Parallel()
	d := open(t)
	err := d.Write(context.Background(), func(tx *Tx) error {
		_, err := tx.NamedExec(`INSERT INTO items (id, name) VALUES (:id, :title)`, namedItem{ID: 1})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), ":title") {
		t.Fatalf("err = %v, want one naming :title", err)
	}
}

func TestRows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n, cols int
		want    string
	}{{1, 1, "(?)"}, {1, 3, "(?, ?, ?)"}, {3, 2, "(?, ?), (?, ?), (?, ?)"}} {
		if got := Rows(tc.n, tc.cols); got != tc.want {
			t.Errorf("Rows(%d, %d) = %q, want %q", tc.n, tc.cols, got, tc.want)
		}
	}
}
