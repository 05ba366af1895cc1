package pgaccess_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/pgaccess"
)

func TestBootstrapRefusesABadName(t *testing.T) {
	err := pgaccess.Bootstrap(context.Background(), "postgres://unused", pgaccess.BootstrapOptions{Database: `demo"; DROP ROLE x; --`})
	if !errors.Is(err, pgaccess.ErrInvalidDatabase) {
		t.Fatalf("err = %v, want ErrInvalidDatabase", err)
	}
}

// TestIntegrationBootstrap prepares a database of its own on the stack's PostgreSQL twice
// (idempotent): PUBLIC may not connect, the group roles may, and a table made afterwards by
// the admin is readable by the read role and writable by the write role only.
func TestIntegrationBootstrap(t *testing.T) {
	url := testharness.Load(t).Env("OIDCFLOW_POSTGRES_URL")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := fmt.Sprintf("pgaccess_%d", time.Now().UnixNano())
	read, write := pgaccess.GroupRole(db, pgaccess.AccessRead), pgaccess.GroupRole(db, pgaccess.AccessWrite)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := context.Background()
		for _, stmt := range []string{"DROP DATABASE IF EXISTS " + pgx.Identifier{db}.Sanitize(),
			"DROP ROLE IF EXISTS " + pgx.Identifier{read}.Sanitize(), "DROP ROLE IF EXISTS " + pgx.Identifier{write}.Sanitize()} {
			if _, err := admin.Exec(c, stmt); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		admin.Close(c)
	})
	for range 2 {
		if err := pgaccess.Bootstrap(ctx, url, pgaccess.BootstrapOptions{Database: db}); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = db
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE public.t (id bigint)"); err != nil {
		t.Fatal(err)
	}
	var publicConnect, readConnect, readSelect, readInsert, writeInsert bool
	if err := conn.QueryRow(ctx, `SELECT has_database_privilege('public', $1, 'CONNECT'),
		has_database_privilege($2, $1, 'CONNECT'), has_table_privilege($2, 'public.t', 'SELECT'),
		has_table_privilege($2, 'public.t', 'INSERT'), has_table_privilege($3, 'public.t', 'INSERT')`, db, read, write).
		Scan(&publicConnect, &readConnect, &readSelect, &readInsert, &writeInsert); err != nil {
		t.Fatal(err)
	}
	if publicConnect || !readConnect || !readSelect || readInsert || !writeInsert {
		t.Errorf("PUBLIC connect %v; read role: connect %v, select %v, insert %v; write role: insert %v",
			publicConnect, readConnect, readSelect, readInsert, writeInsert)
	}
}
