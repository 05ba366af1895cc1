package pgaccess

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// BootstrapOptions configure Bootstrap.
type BootstrapOptions struct {
	// Database is the database to prepare (created when missing). Default "demo".
	Database string
}

// Bootstrap prepares a PostgreSQL server for just-in-time access, idempotently: it creates
// the database, takes CONNECT away from PUBLIC, creates the NOLOGIN group roles
// GroupRole(db, read) and GroupRole(db, write) with CONNECT, and, inside the database's
// public schema, gives SELECT to the read role and SELECT/INSERT/UPDATE/DELETE to the write
// role on every table, now and (through default privileges) on tables the same admin role
// creates later. It creates no table and no login role (activities.GrantAccess does).
// adminURL needs CREATEDB and CREATEROLE.
func Bootstrap(ctx context.Context, adminURL string, opts BootstrapOptions) error {
	db := opts.Database
	if db == "" {
		db = "demo"
	}
	if !ValidDatabase(db) {
		return fmt.Errorf("%w: %q", ErrInvalidDatabase, db)
	}
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return fmt.Errorf("pgaccess: bootstrap: parse url: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("pgaccess: bootstrap: connect: %w", err)
	}
	defer conn.Close(ctx)

	dbID := pgx.Identifier{db}.Sanitize()
	read := pgx.Identifier{GroupRole(db, AccessRead)}.Sanitize()
	write := pgx.Identifier{GroupRole(db, AccessWrite)}.Sanitize()

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("pgaccess: bootstrap: %w", err)
	}
	if !exists {
		// CREATE DATABASE cannot run in a transaction; a concurrent bootstrap may win the race.
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+dbID); err != nil {
			if err2 := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err2 != nil || !exists {
				return fmt.Errorf("pgaccess: bootstrap: create database: %w", err)
			}
		}
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('oidcflow-bootstrap'))"); err != nil {
			return err
		}
		for _, g := range []string{GroupRole(db, AccessRead), GroupRole(db, AccessWrite)} {
			var ok bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", g).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				if _, err := tx.Exec(ctx, "CREATE ROLE "+pgx.Identifier{g}.Sanitize()+" NOLOGIN"); err != nil {
					return err
				}
			}
		}
		for _, stmt := range []string{
			"REVOKE CONNECT ON DATABASE " + dbID + " FROM PUBLIC",
			"GRANT CONNECT ON DATABASE " + dbID + " TO " + read + ", " + write,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgaccess: bootstrap roles: %w", err)
	}

	dcfg := cfg.Copy()
	dcfg.Database = db
	dconn, err := pgx.ConnectConfig(ctx, dcfg)
	if err != nil {
		return fmt.Errorf("pgaccess: bootstrap: connect to %s: %w", db, err)
	}
	defer dconn.Close(ctx)
	err = pgx.BeginFunc(ctx, dconn, func(tx pgx.Tx) error {
		for _, stmt := range []string{
			"SELECT pg_advisory_xact_lock(hashtext('oidcflow-bootstrap'))",
			"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
			"GRANT USAGE ON SCHEMA public TO " + read + ", " + write,
			"GRANT SELECT ON ALL TABLES IN SCHEMA public TO " + read,
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + write,
			"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO " + write,
			"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO " + read,
			"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO " + write,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgaccess: bootstrap %s: %w", db, err)
	}
	return nil
}
