package db

import (
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/jmoiron/sqlx"
	"github.com/jmoiron/sqlx/reflectx"
)

// Named statements (Tx.NamedExec) are compiled once per query text and bound by field index once
// per struct type. sqlx.Named parses the query and walks the struct's tags on every call, and for
// a slice builds a new multi-row statement text of its own length each time, which the driver's
// prepared-statement cache then misses: together about a fifth of the lifecycle writer's CPU per
// purchase (docs/performance.md). The statements are the same; only the work around them is
// done once.

// namedQuery is a compiled named statement.
type namedQuery struct {
	query string   // with ? in place of each :name
	names []string // the names, in placeholder order
	// For a slice argument, the query around its VALUES tuple: head + tuple×n (comma-separated)
	// + tail, as sqlx.Named writes it. multi is false when the query has no such tuple holding every name.
	head, tuple, tail string
	multi             bool
	texts             sync.Map // rows (int) → statement text
}

var (
	namedQueries sync.Map // query text → *namedQuery
	namedFields  sync.Map // namedKey → [][]int
	// fieldMapper maps db tags to fields as sqlx's default mapper does (tag "db", else the
	// lower-cased field name), so a struct binds here exactly as it scans in sqlx.
	fieldMapper = reflectx.NewMapperFunc("db", strings.ToLower)
)

type namedKey struct {
	t reflect.Type
	q *namedQuery
}

// maxRowsPerStatement bounds the rows of one multi-row INSERT: SQLite takes at most 32,766
// parameters per statement, PostgreSQL 65,535, and a row has at most a few dozen columns.
const maxRowsPerStatement = 64

func compileNamed(query string) *namedQuery {
	if q, ok := namedQueries.Load(query); ok {
		return q.(*namedQuery)
	}
	q := &namedQuery{}
	var b strings.Builder
	var tupleStart, tupleEnd, namesBefore, namesInTuple int
	depth, inTuple := 0, false
	values := strings.LastIndex(strings.ToUpper(query), "VALUES")
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == ':' && i+1 < len(query) && query[i+1] == ':':
			b.WriteByte(':') // sqlx's escape for a literal colon
			i++
			continue
		case c == ':' && i+1 < len(query) && isNameByte(query[i+1]):
			j := i + 1
			for j < len(query) && isNameByte(query[j]) {
				j++
			}
			q.names = append(q.names, query[i+1:j])
			if inTuple {
				namesInTuple++
			} else if tupleEnd == 0 {
				namesBefore++
			}
			b.WriteByte('?')
			i = j - 1
			continue
		case c == '(' && values >= 0 && i > values:
			if depth == 0 && tupleEnd == 0 {
				inTuple, tupleStart = true, b.Len()
			}
			depth++
		case c == ')' && values >= 0 && i > values:
			depth--
			if depth == 0 && inTuple {
				inTuple, tupleEnd = false, b.Len()+1
			}
		}
		b.WriteByte(c)
	}
	q.query = b.String()
	if tupleEnd > 0 && namesBefore == 0 && namesInTuple == len(q.names) {
		q.head, q.tuple, q.tail, q.multi = q.query[:tupleStart], q.query[tupleStart:tupleEnd], q.query[tupleEnd:], true
	}
	actual, _ := namedQueries.LoadOrStore(query, q)
	return actual.(*namedQuery)
}

func isNameByte(c byte) bool {
	return c == '_' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// text is the statement for rows rows of a slice argument.
func (q *namedQuery) text(rows int) string {
	if rows == 1 {
		return q.query
	}
	if t, ok := q.texts.Load(rows); ok {
		return t.(string)
	}
	t := q.head + strings.TrimSuffix(strings.Repeat(q.tuple+",", rows), ",") + q.tail
	q.texts.Store(rows, t)
	return t
}

// fields returns the field index of each of q's names in struct type t.
func (q *namedQuery) fields(t reflect.Type) ([][]int, error) {
	key := namedKey{t, q}
	if f, ok := namedFields.Load(key); ok {
		return f.([][]int), nil
	}
	f := fieldMapper.TraversalsByName(t, q.names)
	for i, idx := range f {
		if len(idx) == 0 {
			return nil, fmt.Errorf("db: %s has no field for :%s", t, q.names[i])
		}
	}
	namedFields.Store(key, f)
	return f, nil
}

// appendArgs appends the values of v's fields (v a struct) in placeholder order.
func appendArgs(args []any, v reflect.Value, fields [][]int) []any {
	for _, idx := range fields {
		args = append(args, reflectx.FieldByIndexesReadOnly(v, idx).Interface())
	}
	return args
}

// namedExec runs query with arg: a struct (or pointer to one), or a slice of structs for a
// multi-row INSERT, in as few statements of at most maxRowsPerStatement rows as the chunk sizes
// allow (64, 16, then the rest), so that a handful of statement texts serve every length. Other
// arguments (maps) go through sqlx.Named.
func (t *Tx) namedExec(query string, arg any) (sql.Result, error) {
	v := reflect.Indirect(reflect.ValueOf(arg))
	switch {
	case v.Kind() == reflect.Struct:
		q := compileNamed(query)
		fields, err := q.fields(v.Type())
		if err != nil {
			return nil, err
		}
		return t.Exec(q.query, appendArgs(make([]any, 0, len(fields)), v, fields)...)
	case v.Kind() == reflect.Slice && structType(v.Type().Elem()).Kind() == reflect.Struct:
		q := compileNamed(query)
		if !q.multi {
			return nil, errors.New("db: a slice argument needs an INSERT … VALUES (:a, :b, …) statement")
		}
		if v.Len() == 0 {
			return rowsAffected(0), nil
		}
		fields, err := q.fields(structType(v.Type().Elem()))
		if err != nil {
			return nil, err
		}
		var total rowsAffected
		args := make([]any, 0, len(fields)*min(v.Len(), maxRowsPerStatement))
		for done := 0; done < v.Len(); {
			n := chunk(v.Len() - done)
			args = args[:0]
			for i := done; i < done+n; i++ {
				args = appendArgs(args, reflect.Indirect(v.Index(i)), fields)
			}
			res, err := t.Exec(q.text(n), args...)
			if err != nil {
				return nil, err
			}
			affected, err := res.RowsAffected()
			if err != nil {
				return nil, err
			}
			total += rowsAffected(affected)
			done += n
		}
		return total, nil
	}
	q, args, err := sqlx.Named(query, arg)
	if err != nil {
		return nil, err
	}
	return t.Exec(q, args...)
}

// structType is t, or what t points to.
func structType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		return t.Elem()
	}
	return t
}

// chunk is how many of left rows the next statement takes.
func chunk(left int) int {
	switch {
	case left >= maxRowsPerStatement:
		return maxRowsPerStatement
	case left >= 16:
		return 16
	}
	return left
}

// rowsAffected is the sql.Result of a multi-row INSERT run as several statements.
type rowsAffected int64

func (r rowsAffected) LastInsertId() (int64, error) {
	return 0, errors.New("db: no single insert id for several statements")
}
func (r rowsAffected) RowsAffected() (int64, error) { return int64(r), nil }
